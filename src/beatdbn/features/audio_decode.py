"""Decode audio files to mono blocks at one sample rate, in bounded memory.

:func:`decode_blocks` reads any file libsndfile reads (wav, flac, ogg/vorbis,
opus, mp3, aiff, ...) with :mod:`soundfile`, one block at a time: each block
is mixed down to mono (the mean of the channels) and resampled to ``sr`` with
a streaming ``soxr`` resampler (the same "HQ" quality as ``librosa.load``'s
default ``soxr_hq``), so a 30-minute file never sits in memory at once.
Non-finite samples (a damaged float WAV) are read as 0.

Errors name the file and the reason: a file libsndfile cannot open (not
audio, a corrupt header, a format it does not read) raises
:class:`~beatdbn.exceptions.DataError`; a truncated stream decodes as far as
it goes.

**Decoder notes.** libsndfile's decoders (mpg123 above all: "Note: Illegal
Audio-MPEG-Header ... Trying to resync...") write to the process's standard
error themselves, below Python. While a file is opened or read, file
descriptor 2 is pointed at a temporary file (:func:`decoder_notes`); what the
decoders wrote is then logged at DEBUG level on this module's logger
(``beatdbn.features.audio_decode``), so it reaches the terminal only when that
logger is set to DEBUG or ``BEATDBN_VERBOSE=1`` is set (verbose, as for Dask's
lines: :func:`beatdbn.utils.cluster.dask_verbose`), in which case standard
error is left alone.
Anything else written to standard error meanwhile (another thread's output)
is passed on to it unchanged.

Examples
--------
>>> import numpy as np, soundfile as sf, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
>>> sf.write(path, np.zeros((44100, 2), np.float32), 44100)
>>> blocks = list(decode_blocks(path, sr=22050))
>>> sum(len(b) for b in blocks)
22050
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.utils.cluster import dask_verbose

__all__ = ["AUDIO_SUFFIXES", "AudioInfo", "audio_info", "decode_blocks", "file_id", "decoder_notes"]

log = logging.getLogger(__name__)

#: File suffixes searched for as audio when a folder is extracted (all read by libsndfile).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf")

#: Input samples decoded per block (about 6 s at 44.1 kHz).
BLOCK_SAMPLES = 1 << 18


@dataclass(frozen=True)
class AudioInfo:
    """What the file's header says: sample rate, channels, length in samples, format."""

    samplerate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate if self.samplerate else 0.0


# one redirection of fd 2 shared by every thread decoding at the time: (depth, saved fd, capture file)
_NOTES_LOCK = threading.Lock()
_notes = {"depth": 0, "saved": -1, "capture": None}
#: How a decoder's own line starts (mpg123's notes and errors, libsndfile's and libvorbis's messages).
_NOTE_PREFIXES = ("Note:", "Warning:", "Error:", "[", "mpg123", "libsndfile", "Vorbis")


def _release_notes(path: str) -> None:
    """Undo the redirection when the last user leaves; log the decoders' lines, pass the rest on."""
    with _NOTES_LOCK:
        _notes["depth"] -= 1
        if _notes["depth"]:
            return
        saved, capture = _notes["saved"], _notes["capture"]
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        _notes.update(saved=-1, capture=None)
    capture.seek(0)
    text = capture.read(1 << 16).decode("utf-8", "replace")
    capture.close()
    other = []
    for line in text.splitlines():
        if line.strip().startswith(_NOTE_PREFIXES):
            log.debug("%s: decoder: %s", path, line.strip())
        elif line.strip():
            other.append(line)
    if other:
        with contextlib.suppress(Exception):
            sys.stderr.write("\n".join(other) + "\n")
            sys.stderr.flush()


@contextlib.contextmanager
def decoder_notes(path: str):
    """Keep what audio decoders write to fd 2 off the terminal (logged at DEBUG instead).

    Does nothing when this module's logger is enabled for DEBUG or the user asked for verbose output
    (``BEATDBN_VERBOSE``), or when fd 2 cannot be redirected.
    """
    if log.isEnabledFor(logging.DEBUG) or dask_verbose() or not _redirect():
        yield
        return
    try:
        yield
    finally:
        _release_notes(path)


def _redirect() -> bool:
    """Point fd 2 at the shared capture file (or join the redirection in place); False if it cannot be."""
    with _NOTES_LOCK:
        if _notes["depth"] == 0:
            try:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                capture = tempfile.TemporaryFile()
                saved = os.dup(2)
            except OSError:
                return False
            try:
                os.dup2(capture.fileno(), 2)
            except OSError:
                os.close(saved)
                capture.close()
                return False
            _notes.update(saved=saved, capture=capture)
        _notes["depth"] += 1
        return True


def _open(path: str):
    import soundfile as sf

    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, not an audio file")
    if not os.path.isfile(path):  # a FIFO would block the decoder, a device never end
        raise DataError(f"{path}: not a regular file (a pipe, socket or device); give a file")
    try:
        with decoder_notes(path):
            return sf.SoundFile(path)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        # libsndfile's message ("Error opening '...': <reason>") repeats the path; keep the reason
        reason = str(exc).split(": ", 1)[-1] if str(exc).startswith("Error opening") else str(exc)
        if "does not exist" in reason:  # libsndfile says so for any file it cannot sniff
            reason = "format not recognised"
        raise DataError(f"{path}: not a decodable audio file ({reason}); "
                        "beatdbn reads wav, flac, ogg, opus, mp3, aiff and MSD .h5 files") from None


def audio_info(path) -> AudioInfo:
    """Sample rate, channels, length in samples and format of an audio file.

    Raises
    ------
    DataError
        The file is missing or not audio libsndfile can read.
    """
    with _open(os.fspath(path)) as f:
        return AudioInfo(int(f.samplerate), int(f.channels), int(f.frames), str(f.format))


def decode_blocks(
    path,
    *,
    sr: int = 22050,
    block_samples: int = BLOCK_SAMPLES,
    max_duration: float | None = None,
    quality: str = "HQ",
) -> Iterator[np.ndarray]:
    """Yield the file's audio as mono float32 blocks at ``sr``.

    Parameters
    ----------
    path : str or Path
    sr : int
        Output sample rate; the file is resampled when its own rate differs.
    block_samples : int
        Input samples decoded per block; memory is O(block_samples).
    max_duration : float, optional
        Stop after this many seconds of audio.
    quality : str
        ``soxr`` quality ("VHQ", "HQ", "MQ", "LQ", "QQ").

    Yields
    ------
    np.ndarray [shape=(n,), dtype=float32]
        Consecutive blocks (their lengths vary; their concatenation is the signal).

    Raises
    ------
    DataError
        The file cannot be opened or decoding fails before any audio is read.
    ParameterError
        A bad ``sr`` or ``block_samples``.
    """
    if sr <= 0 or block_samples < 1:
        raise ParameterError(f"sr and block_samples must be positive, got sr={sr}, block_samples={block_samples}")
    path = os.fspath(path)
    with _open(path) as f:
        in_sr = int(f.samplerate)
        limit = None if max_duration is None else int(round(max_duration * in_sr))
        stream = None
        if in_sr != sr:
            import soxr

            stream = soxr.ResampleStream(in_sr, sr, 1, dtype="float32", quality=quality)
        read = 0
        while limit is None or read < limit:
            n = block_samples if limit is None else min(block_samples, limit - read)
            try:
                with decoder_notes(path):
                    block = f.read(n, dtype="float32", always_2d=True)
            except (RuntimeError, ValueError) as exc:  # a stream that breaks mid-way ends there
                if read == 0:
                    raise DataError(f"{path}: decoding failed ({exc})") from None
                break
            if not len(block):
                break
            read += len(block)
            # the mean of the channels as a mat-vec product (numpy's mean over a short axis 1 is slow)
            mono = block[:, 0] if block.shape[1] == 1 else block @ np.full(block.shape[1], 1 / block.shape[1], np.float32)
            if not np.isfinite(mono).all():
                mono = np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0)
            mono = np.ascontiguousarray(mono, dtype=np.float32)
            if stream is not None:
                mono = stream.resample_chunk(mono, last=False)
            if len(mono):
                yield mono
        if stream is not None:
            tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                yield tail


def file_id(path, *, prefix: str = "AU") -> str:
    """A stable track id from the file's bytes: ``prefix`` + 16 hex digits (BLAKE2b).

    The same recording gets the same id wherever it lies (a moved folder keeps
    its ids; a file present twice is one track, which keeps it out of two splits).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.bin"); _ = open(p, "wb").write(b"abc")
    >>> file_id(p)
    'AUD8BB14D833D59559'
    """
    h = hashlib.blake2b(digest_size=8)
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return prefix + h.hexdigest().upper()


def _is_hdf5(path) -> bool:
    """True when the file starts with the HDF5 signature (at 0, 512, 1024, ... as the spec allows)."""
    sig = b"\x89HDF\r\n\x1a\n"
    if not os.path.isfile(path):  # opening a FIFO to sniff it would block
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if head == sig:
                return True
            size = Path(path).stat().st_size
            offset = 512
            while offset + 8 <= min(size, 1 << 16):
                fh.seek(offset)
                if fh.read(8) == sig:
                    return True
                offset *= 2
    except OSError:
        return False
    return False
