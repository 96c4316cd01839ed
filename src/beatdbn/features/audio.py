"""Audio front-end: raw audio to the paper's beat-aligned 24-d representation.

The Echo Nest analysis behind the MSD, rebuilt from librosa parts, so every
later stage (store, tasks, pretraining, finetuning, prediction) reads audio
features exactly as it reads MSD features::

    file --decode_blocks--> mono float32 blocks at 22050 Hz (soxr, streaming)
         --one pass over the blocks, two STFTs a frame (hop 512 = 23 ms)-->
             n_fft 2048: 128-band mel power   (onsets, beats, timbre)
             n_fft 4096: 12-class chroma energy (5.4 Hz bins resolve semitones from ~C3)
         --whole-track, compact per-frame arrays (T x 140 float32)-->
             log-mel (dB, top 80 dB) -> onset strength (librosa, mean and median)
             onsets: librosa.onset.onset_detect(backtrack=True)
             tempo: librosa's global tempo estimate (mean tempogram x log-normal
                    prior at 120 BPM), its tempogram computed in chunks
             beats: librosa.beat.beat_track(bpm=tempo)
         --segments: boundaries at the backtracked onsets (and at the beats,
           so no segment straddles a beat; ``split_at_beats``)-->
             chroma  = segment's summed chroma energy / its maximum (max 1, as the MSD)
             timbre  = MFCC 0-11 of the segment: DCT-II (orthonormal) of its mean log-mel
             loudness_max = segment's peak frame power (dB)
         --beatdbn.features.beats.align_track (the MSD path's code)-->
             features (n_beats, 24) float32 = [12 chroma | 12 timbre], beats (n_beats,)

**Timbre basis.** MFCC 0-11 of each segment, not a shipped PCA basis of
log-mel patches: the DCT needs no learned data, cannot drift from the
package's version, and is what librosa users know; coefficient 0 is the
segment's mean log-mel level times sqrt(128) (loudness-like, as the Echo Nest's
timbre[0]), coefficients 1-11 describe spectral shape and sit around 0. The
scale differs from the Echo Nest's, which is harmless: pretraining and the
baselines standardize timbre per track.

**Memory** is O(block) for the signal and spectra, plus 140 float32 a frame
and a few whole-track temporaries of the log-mel's size: a 30-minute file
peaked at about 280 MB above the interpreter's own (measured). Tempo
estimation runs in chunks, so its tempogram never holds the whole track.
**Length bounds.** Files longer than ``max_duration`` (2 h) are decoded and
analysed up to that point only (cropped, with a warning logged): decoding
stops there, so a longer file costs no more than a 2-hour one. Recordings
shorter than ``min_duration`` (:data:`MIN_DURATION`, 1 s) raise
:class:`~beatdbn.exceptions.DataError` ("too short", naming the minimum).

**Defined results for odd input.** A file whose peak is at or below
``silence_db`` (-100 dBFS), or that holds no samples, raises
:class:`~beatdbn.exceptions.DataError` ("silent"). A file the beat tracker
finds no beat in (short, or no pulse) gets the MSD path's fallback: a
0.5 s beat grid over the track (:func:`beatdbn.features.beats.beat_grid`).
So does a file where the tracker loses the pulse: fewer beats than
``MIN_BEAT_COVERAGE`` (half) of those its estimated tempo implies over the
track give a grid at that tempo instead (on 408 synthesized pieces, 17 had
fewer than 16 beats, two 20 s pieces a single beat).
A segment without energy has flat chroma (all ones).

Examples
--------
>>> import numpy as np
>>> from beatdbn.features.audio import analyze_audio
>>> sr = 22050
>>> t = np.arange(4 * sr) / sr
>>> y = 0.3 * np.sin(2 * np.pi * 440.0 * t) * (1 + (t % 0.5 < 0.05))   # A4, pulsing at 120 BPM
>>> a = analyze_audio(y=y.astype(np.float32), sr=sr)
>>> int(np.argmax(a.segments_pitches.mean(axis=0)))   # pitch class 9 = A
9
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import numpy as np

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.features.fft import rfft

__all__ = ["AudioConfig", "AudioAnalysis", "analyze_audio", "audio_features", "segment_features", "DEFAULT_CONFIG",
           "MIN_BEAT_COVERAGE", "MIN_DURATION", "ENDS_FRACTION", "chroma_ends"]

log = logging.getLogger(__name__)

#: Fewer tracked beats than this fraction of those the tempo implies: use a beat grid at the tempo instead.
MIN_BEAT_COVERAGE = 0.5
#: Shortest recording analysed (seconds): two beats at 120 BPM; a shorter clip has no rhythm or key to speak of.
MIN_DURATION = 1.0


@dataclass(frozen=True)
class AudioConfig:
    """Parameters of the audio front-end (defaults: librosa's, where it has one)."""

    sr: int = 22050  # analysis sample rate (Hz); files at other rates are resampled
    hop_length: int = 512  # frame step in samples (23 ms at 22050 Hz)
    n_fft: int = 2048  # window of the mel spectrogram (onsets, beats, timbre)
    chroma_n_fft: int = 4096  # window of the chroma STFT (finer frequency bins)
    n_mels: int = 128  # mel bands of the log-mel spectrogram
    n_timbre: int = 12  # MFCCs kept per segment
    top_db: float = 80.0  # log-mel floor below the track's maximum (librosa's power_to_db)
    tuning: float = 0.0  # chroma tuning offset, fractions of a semitone bin (0 = A440)
    split_at_beats: bool = True  # cut segments at beats too, so a beat never averages across one
    silence_db: float = -100.0  # peak level (dBFS) at or below which a file is silent
    max_duration: float | None = 2 * 3600.0  # seconds analysed at most (None: all); longer files are cropped
    min_duration: float = MIN_DURATION  # shorter recordings are refused as too short (DataError)
    block_frames: int = 1024  # frames computed per block (memory ~ block_frames x chroma_n_fft)
    block_samples: int = 1 << 18  # input samples decoded per block
    resample_quality: str = "HQ"  # soxr quality when the file's rate differs from sr

    def __post_init__(self):
        checks = {
            "sr": self.sr > 0, "hop_length": self.hop_length > 0, "n_mels": self.n_mels > 0,
            "n_fft": self.n_fft >= 2 and self.n_fft % 2 == 0,
            "chroma_n_fft": self.chroma_n_fft >= self.n_fft and self.chroma_n_fft % 2 == 0,
            "n_timbre": 1 <= self.n_timbre <= self.n_mels, "block_frames": self.block_frames >= 1,
            "block_samples": self.block_samples >= 1,
            "top_db": self.top_db > 0,
            "max_duration": self.max_duration is None or self.max_duration > 0,
            "min_duration": 0 <= self.min_duration and (self.max_duration is None
                                                        or self.min_duration <= self.max_duration),
        }
        for name, ok in checks.items():
            if not ok:
                raise ParameterError(f"AudioConfig.{name}={getattr(self, name)!r} is out of range")


DEFAULT_CONFIG = AudioConfig()

#: The share of a recording's frames whose mean chroma stands for its start, and for its end (:func:`chroma_ends`).
ENDS_FRACTION = 0.1


@dataclass(frozen=True)
class AudioAnalysis:
    """Echo Nest-like analysis of one recording (the fields :func:`align_track` reads).

    Attributes
    ----------
    segments_start : np.ndarray [shape=(n_segments,)]
        Segment onsets in seconds (the first is 0).
    segments_pitches : np.ndarray [shape=(n_segments, 12)]
        Chroma C..B, each row's maximum 1.
    segments_timbre : np.ndarray [shape=(n_segments, 12)]
        MFCC 0-11 of each segment.
    segments_loudness_max : np.ndarray [shape=(n_segments,)]
        Peak frame power of each segment (dB, librosa's power scale).
    beats_start : np.ndarray [shape=(n_beats,)]
        Beat times in seconds from the beat tracker (may be empty).
    tempo : float
        Global tempo estimate in BPM (0 when the track has no onset at all).
    duration : float
        Seconds of audio analysed.
    chroma_ends : np.ndarray [shape=(2, 12)]
        Mean chroma energy (C..B, not normalized) of the first and of the last :data:`ENDS_FRACTION` of the
        frames: where a piece sets out and comes to rest, for :mod:`beatdbn.models.key_ends`.
    """

    track_id: str
    source: str
    duration: float
    tempo: float
    segments_start: np.ndarray = field(repr=False)
    segments_pitches: np.ndarray = field(repr=False)
    segments_timbre: np.ndarray = field(repr=False)
    segments_loudness_max: np.ndarray = field(repr=False)
    beats_start: np.ndarray = field(repr=False)
    sr: int = 22050
    chroma_ends: np.ndarray | None = field(default=None, repr=False)


# -- per-frame spectra, streamed ---------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _filters(sr: int, n_fft: int, chroma_n_fft: int, n_mels: int, tuning: float):
    from beatdbn.features.filters import chroma_filters, hann, mel_filters  # librosa's, without scipy.signal

    mel = mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels)  # (n_mels, 1 + n_fft/2)
    chroma = chroma_filters(sr=sr, n_fft=chroma_n_fft, tuning=tuning)  # (12, ...)
    win = hann(n_fft).astype(np.float32)
    cwin = hann(chroma_n_fft).astype(np.float32)
    return np.ascontiguousarray(mel.T), np.ascontiguousarray(chroma.T), win, cwin


class _FrameStream:
    """Consume signal blocks; keep per-frame mel power (T, n_mels) and chroma energy (T, 12).

    Frame ``t`` is centred on sample ``t * hop`` (librosa's ``center=True``
    with zero padding), for both windows; a track of ``n`` samples has
    ``1 + n // hop`` frames. Only the samples the next frame needs are kept.
    """

    def __init__(self, cfg: AudioConfig):
        self.cfg = cfg
        self.pad = cfg.chroma_n_fft // 2
        self.buf = np.zeros(self.pad, np.float32)  # the front padding
        self.buf_start = 0  # padded-signal index of buf[0]
        self.t_next = 0
        self.n_samples = 0
        self.peak = 0.0
        self.mel_parts: list[np.ndarray] = []
        self.chroma_parts: list[np.ndarray] = []
        self.mel_fb, self.chroma_fb, self.win, self.cwin = _filters(
            cfg.sr, cfg.n_fft, cfg.chroma_n_fft, cfg.n_mels, float(cfg.tuning))

    def feed(self, block: np.ndarray) -> None:
        if not len(block):
            return
        self.n_samples += len(block)
        self.peak = max(self.peak, float(block.max()), -float(block.min()))
        self.buf = np.concatenate([self.buf, block.astype(np.float32, copy=False)])
        end = self.buf_start + len(self.buf)
        self._run((end - 2 * self.pad) // self.cfg.hop_length + 1 if end >= 2 * self.pad else 0)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        self.buf = np.concatenate([self.buf, np.zeros(self.pad, np.float32)])
        self._run(1 + self.n_samples // self.cfg.hop_length)
        mel = np.concatenate(self.mel_parts) if self.mel_parts else np.zeros((0, self.cfg.n_mels), np.float32)
        chroma = np.concatenate(self.chroma_parts) if self.chroma_parts else np.zeros((0, 12), np.float32)
        return mel, chroma

    def _spectrum(self, t0: int, t1: int, n_fft: int, window: np.ndarray) -> np.ndarray:
        """Power spectra of frames t0..t1-1 for one window length: (t1 - t0, 1 + n_fft/2) float32."""
        hop = self.cfg.hop_length
        off = t0 * hop + self.pad - n_fft // 2 - self.buf_start
        frames = np.lib.stride_tricks.sliding_window_view(self.buf, n_fft)[off : off + (t1 - t0 - 1) * hop + 1 : hop]
        spec = rfft(frames * window)  # (K, 1 + n_fft/2) complex64, scipy.fft's (see beatdbn.features.fft)
        power = spec.real * spec.real
        power += spec.imag * spec.imag
        return power

    def _run(self, t_stop: int) -> None:
        cfg = self.cfg
        while self.t_next < t_stop:
            t1 = min(t_stop, self.t_next + cfg.block_frames)
            self.mel_parts.append(self._spectrum(self.t_next, t1, cfg.n_fft, self.win) @ self.mel_fb)
            mag = np.sqrt(self._spectrum(self.t_next, t1, cfg.chroma_n_fft, self.cwin))
            self.chroma_parts.append(mag @ self.chroma_fb)
            self.t_next = t1
        drop = self.t_next * cfg.hop_length - self.buf_start  # the next frame starts here
        if drop > 0:
            self.buf = self.buf[drop:]
            self.buf_start += drop


# -- whole-track stages --------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _dct_rows(n: int, k: int) -> np.ndarray:
    from beatdbn.features.filters import dct_basis

    return dct_basis(n, k)


def _power_to_db(power: np.ndarray, *, top_db: float) -> np.ndarray:
    """``librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=top_db)`` with one temporary."""
    out = np.maximum(power, np.float32(1e-10))
    np.log10(out, out=out)
    out *= 10.0
    np.maximum(out, out.max() - top_db, out=out)
    return out


def segment_features(
    bounds: np.ndarray, mel_db: np.ndarray, chroma: np.ndarray, mel_power: np.ndarray, *, n_timbre: int = 12
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-segment chroma, timbre and peak loudness from per-frame arrays.

    Parameters
    ----------
    bounds : np.ndarray [shape=(n_segments,), dtype=int]
        First frame of each segment, sorted, unique, ``bounds[0] == 0``.
    mel_db : np.ndarray [shape=(n_frames, n_mels)]
        Log-mel spectrogram (dB).
    chroma : np.ndarray [shape=(n_frames, 12)]
        Chroma energy per frame (non-negative).
    mel_power : np.ndarray [shape=(n_frames, n_mels)]
        Mel power (for the loudness).
    n_timbre : int
        MFCCs kept.

    Returns
    -------
    pitches : np.ndarray [shape=(n_segments, 12)]
        Summed chroma energy over the segment over its maximum (all ones if zero).
    timbre : np.ndarray [shape=(n_segments, n_timbre)]
        Orthonormal DCT-II of the segment's mean log-mel: MFCC 0..n_timbre-1.
    loudness_max : np.ndarray [shape=(n_segments,)]
        Peak frame power in dB.

    Examples
    --------
    >>> import numpy as np
    >>> chroma = np.zeros((4, 12)); chroma[:2, 0] = 1; chroma[2:, 7] = 2
    >>> p, t, l = segment_features(np.array([0, 2]), np.zeros((4, 16)), chroma, np.ones((4, 16)))
    >>> p.argmax(axis=1).tolist(), p.max(axis=1).tolist(), t.shape
    ([0, 7], [1.0, 1.0], (2, 12))
    """
    bounds = np.asarray(bounds, dtype=np.int64)
    n_frames = len(mel_db)
    if not len(bounds) or bounds[0] != 0 or (np.diff(bounds) <= 0).any() or bounds[-1] >= n_frames:
        raise ParameterError(f"bounds must be sorted, unique, start at 0 and lie below {n_frames} frames")
    counts = np.diff(np.append(bounds, n_frames)).astype(np.float64)
    csum = np.add.reduceat(chroma, bounds, axis=0, dtype=np.float64)
    peak = csum.max(axis=1, keepdims=True)
    flat = peak[:, 0] <= 1e-12 * max(float(peak.max()), 1e-30)
    pitches = np.divide(csum, peak, out=np.ones_like(csum), where=~flat[:, None])
    mean_db = np.add.reduceat(mel_db, bounds, axis=0, dtype=np.float64) / counts[:, None]
    timbre = mean_db @ _dct_rows(mel_db.shape[1], n_timbre).T  # scipy.fft.dct(type=2, norm="ortho")[:, :n_timbre]
    frame_db = 10.0 * np.log10(np.maximum(np.asarray(mel_power).sum(axis=1, dtype=np.float64), 1e-10))
    loudness = np.maximum.reduceat(frame_db, bounds)
    return pitches.astype(np.float32), timbre.astype(np.float32), loudness.astype(np.float32)


def _blocks_of(y: np.ndarray, size: int):
    for s in range(0, len(y), size):
        yield y[s : s + size]


def analyze_audio(
    path=None,
    *,
    y: np.ndarray | None = None,
    sr: int | None = None,
    config: AudioConfig = DEFAULT_CONFIG,
    track_id: str | None = None,
) -> AudioAnalysis:
    """Segments, chroma, timbre and beats of one recording.

    Parameters
    ----------
    path : str or Path, optional
        An audio file (decoded in blocks, see :mod:`beatdbn.features.audio_decode`).
    y : np.ndarray [shape=(n,) or (n, channels)], optional
        Or the signal itself, at ``sr`` (mixed to mono, resampled to ``config.sr``).
    sr : int, optional
        Sample rate of ``y`` (default ``config.sr``).
    config : AudioConfig
    track_id : str, optional
        The id to record (default: from the file's bytes, or "AUDIO").

    Returns
    -------
    AudioAnalysis

    Raises
    ------
    DataError
        Unreadable file, no samples, or silence; the message names the file.
    ParameterError
        Neither or both of ``path`` and ``y``.
    """
    from beatdbn.features.audio_decode import decode_blocks, file_id
    from beatdbn.features.rhythm import beat_track, global_tempo, onset_detect, onset_strength  # librosa's, no numba

    if (path is None) == (y is None):
        raise ParameterError("give exactly one of path or y")
    name = str(path) if path is not None else "<array>"
    stream = _FrameStream(config)
    if path is not None:
        blocks = decode_blocks(path, sr=config.sr, max_duration=config.max_duration,
                               quality=config.resample_quality, block_samples=config.block_samples)
    else:
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 2:
            y = y.mean(axis=1, dtype=np.float32)
        if y.ndim != 1:
            raise ParameterError(f"y must have shape (n,) or (n, channels), got {y.shape}")
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
        rate = config.sr if sr is None else int(sr)
        if rate != config.sr:
            import librosa  # only to resample an array given at another rate

            y = librosa.resample(y, orig_sr=rate, target_sr=config.sr, res_type="soxr_hq")
        if config.max_duration is not None:
            y = y[: int(config.max_duration * config.sr)]
        blocks = _blocks_of(np.ascontiguousarray(y, dtype=np.float32), config.block_samples)
    for block in blocks:
        stream.feed(block)
    if stream.n_samples == 0:
        raise DataError(f"{name}: no audio samples (an empty file)")
    if stream.n_samples < config.min_duration * config.sr:
        raise DataError(f"{name}: too short ({stream.n_samples / config.sr:.3g} s); beatdbn analyses recordings "
                        f"of at least {config.min_duration:g} s")
    peak_db = 20 * np.log10(stream.peak) if stream.peak > 0 else -np.inf
    if peak_db <= config.silence_db:
        raise DataError(f"{name}: silent (peak {peak_db:.0f} dBFS); nothing to analyse")
    duration = stream.n_samples / config.sr
    if config.max_duration is not None and path is not None and duration >= config.max_duration - 0.05:
        log.warning("%s: analysed the first %.0f s only (max_duration)", name, config.max_duration)
    mel, chroma = stream.finish()  # (T, n_mels), (T, 12)

    hop, rate = config.hop_length, config.sr
    mel_db = _power_to_db(mel, top_db=config.top_db)  # floor: the track's max - top_db
    s_db = mel_db.T  # (n_mels, T), librosa's orientation
    onset_mean = onset_strength(s_db, hop_length=hop)
    onsets = onset_detect(onset_mean, sr=rate, hop_length=hop, backtrack=True)
    onset_median = onset_strength(s_db, hop_length=hop, aggregate=np.median)
    if onset_median.any():
        tempo = global_tempo(onset_median, sr=rate, hop_length=hop)
        _, beat_frames = beat_track(onset_median, sr=rate, hop_length=hop, bpm=tempo)
    else:  # no onset energy at all: no tempo, no beats (align_track then uses its 0.5 s grid)
        tempo, beat_frames = 0.0, np.zeros(0, dtype=np.int64)
    n_frames = len(mel)
    expected = n_frames * hop / rate * tempo / 60.0
    if len(beat_frames) < MIN_BEAT_COVERAGE * expected:
        # the tracker lost the pulse (seen: 1 beat in a 20 s piece at 120 BPM): align_track's grid at the tempo
        log.info("%s: %d beats tracked where the tempo (%.0f BPM) implies %.0f; using a beat grid at the tempo",
                 path or track_id or "audio", len(beat_frames), tempo, expected)
        beat_frames = np.zeros(0, dtype=np.int64)
    cuts = [np.zeros(1, np.int64), np.asarray(onsets, np.int64)]
    if config.split_at_beats:
        cuts.append(np.asarray(beat_frames, np.int64))
    bounds = np.unique(np.concatenate(cuts))
    bounds = bounds[(bounds >= 0) & (bounds < n_frames)]
    pitches, timbre, loudness = segment_features(bounds, mel_db, chroma, mel, n_timbre=config.n_timbre)
    if track_id is None:
        track_id = file_id(path) if path is not None else "AUDIO"
    return AudioAnalysis(
        track_id=track_id, source=str(path) if path is not None else "", duration=float(duration),
        tempo=float(tempo), segments_start=bounds * (hop / rate), segments_pitches=pitches,
        segments_timbre=timbre, segments_loudness_max=loudness,
        beats_start=np.asarray(beat_frames, dtype=np.float64) * (hop / rate), sr=rate,
        chroma_ends=chroma_ends(chroma),
    )


def chroma_ends(chroma: np.ndarray, fraction: float | None = None) -> np.ndarray:
    """Mean chroma energy of the first and the last ``fraction`` (default :data:`ENDS_FRACTION`) of the frames.

    Parameters
    ----------
    chroma : np.ndarray [shape=(n_frames >= 1, 12)]

    Returns
    -------
    np.ndarray [shape=(2, 12), dtype=float64]
        Row 0 the start, row 1 the end (at least one frame each).

    Examples
    --------
    >>> c = np.zeros((20, 12)); c[:2, 0] = 1.0; c[-2:, 7] = 3.0
    >>> chroma_ends(c)[:, [0, 7]].tolist()
    [[1.0, 0.0], [0.0, 3.0]]
    """
    fraction = ENDS_FRACTION if fraction is None else fraction
    n = len(chroma)
    if n == 0:
        raise ParameterError("chroma_ends: no frames")
    k = max(1, int(round(n * fraction)))
    return np.stack([chroma[:k].mean(axis=0, dtype=np.float64), chroma[-k:].mean(axis=0, dtype=np.float64)])


def audio_features(path=None, *, y=None, sr=None, config: AudioConfig = DEFAULT_CONFIG,
                   track_id: str | None = None) -> tuple[np.ndarray, np.ndarray, AudioAnalysis]:
    """Beat-aligned ``[12 chroma | 12 timbre]`` features of one recording.

    The analysis of :func:`analyze_audio`, aligned to its beats by
    :func:`beatdbn.features.beats.align_track`, the code the MSD path uses.

    Returns
    -------
    features : np.ndarray [shape=(n_beats, 24), dtype=float32]
    beats : np.ndarray [shape=(n_beats,), dtype=float64]
        Beat times (the tracker's, or a 0.5 s grid when it found none).
    analysis : AudioAnalysis

    Raises
    ------
    DataError
        As :func:`analyze_audio`.
    """
    from beatdbn.features.beats import align_track

    analysis = analyze_audio(path, y=y, sr=sr, config=config, track_id=track_id)
    feats, beats = align_track(analysis)
    return feats, beats, analysis
