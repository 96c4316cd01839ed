"""Any input file to beat-aligned features: the one entry point for extract and predict.

:func:`read_features` yields ``(meta, features, beats)`` for every track of
one input file; ``features`` is ``(n_beats, 24)`` float32, ``meta`` a dict
with the columns of :data:`beatdbn.store.shard.METADATA_SCHEMA`:

* **MSD ``.h5``** (per-track or aggregate; also any file that starts with the
  HDF5 signature): every song, aligned with
  :func:`beatdbn.features.beats.align_track`; ``meta`` is
  ``Track.metadata()`` plus ``source``, ``source_index`` and
  ``representation="echonest"``.
* **Audio** (every other file: wav, flac, ogg, opus, mp3, aiff, ... whatever
  libsndfile decodes): one track, through the audio front-end
  (:func:`beatdbn.features.audio.audio_features`), ``representation="audio"``.
  Its metadata: ``track_id`` "AU" + 16 hex digits of the file's BLAKE2b hash
  (stable when files move; a copy is the same track); ``title`` the file's
  tag, else its stem; ``artist_name``/``genre``/``key``/``mode`` from the
  given labels, else the file's tags (artist, genre), else empty; ``artist_id``
  "AR" + a hash of the artist name (None without one); ``key`` and ``mode``
  -1 when not labelled; ``key_confidence`` and ``mode_confidence`` NaN (the
  audio front-end estimates no key); ``tempo`` the beat tracker's;
  ``duration`` the seconds analysed; ``year`` 0 and ``time_signature`` -1
  (unknown).

The two representations share a layout but not a scale (Echo Nest timbre vs
MFCCs, different chroma), so a model trained on one does not transfer to the
other; ``representation`` records which a track has.

Examples
--------
>>> for meta, feats, beats in read_features("TRAXLZU12903D05F94.h5"):  # doctest: +SKIP
...     print(meta["track_id"], feats.shape)
TRAXLZU12903D05F94 (397, 24)
>>> meta, feats, beats = next(read_features("song.mp3", labels={"genre": "rock"}))  # doctest: +SKIP
>>> meta["representation"], meta["genre"]                                            # doctest: +SKIP
('audio', 'rock')
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import numpy as np

from beatdbn.exceptions import BeatdbnError, DataError
from beatdbn.features.audio_decode import AUDIO_SUFFIXES
from beatdbn.labels import parse_key

__all__ = ["read_input", "error_text", "read_features", "read_audio_features", "is_msd_file", "MSD_SUFFIXES", "AUDIO_SUFFIXES",
           "INPUT_SUFFIXES", "REPRESENTATION_MSD", "REPRESENTATION_AUDIO"]

#: File suffixes read as MSD HDF5 files when a folder is searched.
MSD_SUFFIXES = (".h5", ".hdf5")
#: Every suffix a folder search picks up.
INPUT_SUFFIXES = MSD_SUFFIXES + AUDIO_SUFFIXES
#: ``representation`` of tracks read from MSD files (Echo Nest features).
REPRESENTATION_MSD = "echonest"
#: ``representation`` of tracks analysed from audio by beatdbn's front-end.
REPRESENTATION_AUDIO = "audio"


def is_msd_file(path) -> bool:
    """True for an ``.h5``/``.hdf5`` name or a file that starts with the HDF5 signature."""
    from beatdbn.features.audio_decode import _is_hdf5

    return Path(path).suffix.lower() in MSD_SUFFIXES or _is_hdf5(path)


def read_features(path, *, labels: dict | None = None, audio_config=None
                  ) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    """Yield ``(meta, features, beats)`` for every track of one input file.

    Parameters
    ----------
    path : str or Path
        An MSD ``.h5`` file or an audio file.
    labels : dict, optional
        For audio: any of ``artist``, ``genre``, ``key`` (0-11 or a name,
        see :func:`beatdbn.labels.parse_key`) and ``mode``.
    audio_config : beatdbn.features.audio.AudioConfig, optional
        Front-end parameters (default: :data:`~beatdbn.features.audio.DEFAULT_CONFIG`).

    Raises
    ------
    beatdbn.exceptions.DataError
        The file cannot be read as a track file or decoded as audio, or is
        silent (the message names it).
    """
    path = str(path)
    if not is_msd_file(path):
        yield read_audio_features(path, labels=labels, config=audio_config)
        return
    from beatdbn.features.beats import align_track
    from beatdbn.features.msd import iter_tracks

    for index, track in enumerate(iter_tracks(path)):
        feats, beats = align_track(track)
        meta = track.metadata()
        meta.update(mbtags=list(track.mbtags), mbtags_count=list(track.mbtags_count), source=path,
                    source_index=index, representation=REPRESENTATION_MSD, genre=None)
        yield meta, feats, beats


def _artist_id(name: str) -> str:
    return "AR" + hashlib.blake2b(" ".join(name.lower().split()).encode(), digest_size=8).hexdigest().upper()


def _tags(path: str) -> dict:
    """Title, artist and genre from the file's own tags (Vorbis comments, RIFF INFO, ...), when present."""
    import soundfile as sf

    from beatdbn.features.audio_decode import decoder_notes

    try:
        with decoder_notes(path), sf.SoundFile(path) as f:
            tags = f.copy_metadata()
    except Exception:  # tags are a nicety; the decoder reports real problems
        return {}
    return {k: str(v).strip() for k, v in tags.items() if k in ("title", "artist", "genre") and str(v).strip()}


def read_audio_features(path, *, labels: dict | None = None, config=None) -> tuple[dict, np.ndarray, np.ndarray]:
    """``(meta, features, beats)`` of one audio file (see the module docstring for ``meta``).

    Raises
    ------
    beatdbn.exceptions.DataError
        Unreadable, empty or silent file; the message names it.
    """
    from beatdbn.features.audio import DEFAULT_CONFIG, audio_features

    path = str(path)
    feats, beats, analysis = audio_features(path, config=config or DEFAULT_CONFIG)
    labels = dict(labels or {})
    tags = _tags(path)
    artist = labels.get("artist") or tags.get("artist") or ""
    genre = labels.get("genre") or tags.get("genre") or None
    key, mode = -1, -1
    if labels.get("key") is not None and labels.get("key") != "":
        key, mode = parse_key(labels["key"])
        if labels.get("mode") is not None and mode == -1:
            mode = int(labels["mode"])
    meta = {
        "track_id": analysis.track_id, "song_id": "", "artist_id": _artist_id(artist) if artist else None,
        "artist_name": artist, "title": tags.get("title") or Path(path).stem, "duration": analysis.duration,
        "tempo": analysis.tempo, "time_signature": -1, "key": key, "key_confidence": float("nan"),
        "mode": mode, "mode_confidence": float("nan"), "year": 0, "mbtags": [], "mbtags_count": [],
        "source": path, "source_index": 0, "representation": REPRESENTATION_AUDIO, "genre": genre,
        "chroma_ends": analysis.chroma_ends,  # (2, 12): not a store column; the key model's ends (key_ends)
    }
    return meta, feats, beats


def error_text(exc: BaseException) -> str:
    """One line for a failure: a BeatdbnError's message, else the exception's type and first line."""
    if isinstance(exc, BeatdbnError):
        return str(exc)
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_input(path) -> tuple[str, list[tuple[dict, np.ndarray, np.ndarray]] | str]:
    """``(name, tracks)`` of one file (``[(meta, features float32, beats float64), ...]``), or ``(name, error
    text)``; never raises (runs in worker processes and threads too)."""
    name = str(path)
    try:
        tracks = [(meta, np.asarray(f, dtype=np.float32), np.asarray(b, dtype=np.float64))
                  for meta, f, b in read_features(path)]
        if not tracks:
            raise DataError(f"{name}: holds no track")
        return name, tracks
    except Exception as exc:  # noqa: BLE001 - any failure to read is reported per file
        return name, error_text(exc)
