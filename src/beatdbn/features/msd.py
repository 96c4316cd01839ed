"""Read Million Song Dataset HDF5 files with h5py.

Two layouts share one reader:

* a **per-track file** (``TRXXXXX.h5``): the song tables ``/metadata/songs``,
  ``/analysis/songs`` and ``/musicbrainz/songs`` have one row, and the arrays
  (``/analysis/segments_start`` ...) belong to that song;
* an **aggregate or summary file**: the song tables have many rows and every
  array holds all songs concatenated; song ``i`` owns
  ``array[idx_<name>[i] : idx_<name>[i + 1]]`` (the last song runs to the end).
  Summary files carry the tables only; read them with ``analysis=False``.

The public API is :func:`read_track` (one song) and :func:`iter_tracks` (every
song of a file, in order), both returning :class:`Track` records.

Examples
--------
>>> from beatdbn.features.msd import read_track
>>> track = read_track("TRAXLZU12903D05F94.h5")        # doctest: +SKIP
>>> track.segments_pitches.shape, track.beats_start.shape  # doctest: +SKIP
((935, 12), (397,))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator

import h5py
import numpy as np

from beatdbn.exceptions import DataError

__all__ = ["Track", "read_track", "iter_tracks", "count_tracks", "ANALYSIS_ARRAYS"]

#: Per-segment and per-beat arrays beatdbn needs, under ``/analysis``.
ANALYSIS_ARRAYS = (
    "segments_start",
    "segments_pitches",
    "segments_timbre",
    "segments_loudness_max",
    "beats_start",
)
_SONG_TABLES = ("metadata/songs", "analysis/songs", "musicbrainz/songs")
_METADATA_FIELDS = {
    "metadata/songs": ("song_id", "artist_id", "artist_name", "title"),
    "analysis/songs": (
        "track_id",
        "duration",
        "tempo",
        "time_signature",
        "key",
        "key_confidence",
        "mode",
        "mode_confidence",
    ),
    "musicbrainz/songs": ("year",),
}


@dataclass(frozen=True)
class Track:
    """One song of an MSD file: metadata and the Echo Nest analysis arrays.

    Attributes
    ----------
    segments_start : np.ndarray [shape=(n_segments,)]
        Segment onsets in seconds.
    segments_pitches : np.ndarray [shape=(n_segments, 12)]
        Chroma, pitch classes C..B, each row's maximum 1.
    segments_timbre : np.ndarray [shape=(n_segments, 12)]
        Echo Nest timbre coefficients (unbounded, roughly centred on 0).
    segments_loudness_max : np.ndarray [shape=(n_segments,)]
        Peak loudness of each segment in dB.
    beats_start : np.ndarray [shape=(n_beats,)]
        Beat onsets in seconds (may be empty).
    mbtags, mbtags_count : tuple
        The artist's MusicBrainz tags and how many users applied each.
    """

    track_id: str
    song_id: str
    artist_id: str
    artist_name: str
    title: str
    duration: float
    tempo: float
    time_signature: int
    key: int
    key_confidence: float
    mode: int
    mode_confidence: float
    year: int
    mbtags: tuple[str, ...]
    mbtags_count: tuple[int, ...]
    segments_start: np.ndarray = field(repr=False)
    segments_pitches: np.ndarray = field(repr=False)
    segments_timbre: np.ndarray = field(repr=False)
    segments_loudness_max: np.ndarray = field(repr=False)
    beats_start: np.ndarray = field(repr=False)
    source: str = ""

    def metadata(self) -> dict:
        """The scalar fields (everything but the arrays) as a plain dict."""
        return {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name not in ANALYSIS_ARRAYS
        }


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _open(path) -> h5py.File:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, not an MSD .h5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        raise DataError(f"{path}: not a readable HDF5 file ({reason}); is it an MSD track file?") from None


def _get(h5: h5py.File, name: str):
    """``h5[name]`` or None, with one lookup (h5py lookups are not free)."""
    try:
        return h5[name]
    except KeyError:
        return None


def _need(h5: h5py.File, name: str, path: str):
    obj = _get(h5, name)
    if obj is None:
        raise DataError(f"{path}: no /{name}; is this an MSD track file?")
    return obj


class _SongFile:
    """The song tables of one open file, and slicing of its arrays per song."""

    def __init__(self, h5: h5py.File, path: str, analysis: bool):
        self.h5, self.path, self.analysis = h5, path, analysis
        try:
            self.tables = {name: _need(h5, name, path)[()] for name in _SONG_TABLES}
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"{path}: unreadable song table ({exc})") from None
        counts = {len(t) for t in self.tables.values()}
        if len(counts) != 1:
            raise DataError(f"{path}: song tables disagree on the number of songs ({sorted(counts)})")
        self.n = counts.pop()
        for table, names in _METADATA_FIELDS.items():
            missing = [n for n in names if n not in (self.tables[table].dtype.names or ())]
            if missing:
                raise DataError(f"{path}: /{table} has no field {missing[0]!r}; is this an MSD file?")
        self.arrays = {}
        if analysis:
            for name in ANALYSIS_ARRAYS:
                self.arrays[name] = _need(h5, f"analysis/{name}", path)

    def _slice(self, dataset: h5py.Dataset, table: str, idx_field: str, i: int) -> np.ndarray:
        """Song ``i``'s rows of a concatenated array."""
        if self.n == 1:
            return dataset[()]
        idx = self.tables[table][idx_field]
        start = int(idx[i])
        stop = int(idx[i + 1]) if i + 1 < self.n else dataset.shape[0]
        return dataset[start:stop]

    def _mbtags(self, i: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
        tags_ds = _get(self.h5, "musicbrainz/artist_mbtags")
        if tags_ds is None:
            return (), ()
        tags = self._slice(tags_ds, "musicbrainz/songs", "idx_artist_mbtags", i)
        counts_ds = _get(self.h5, "musicbrainz/artist_mbtags_count")
        if counts_ds is not None:
            counts = self._slice(counts_ds, "musicbrainz/songs", "idx_artist_mbtags", i)
        else:
            counts = np.ones(len(tags), dtype=np.int64)
        if len(counts) != len(tags):
            raise DataError(f"{self.path}: {len(tags)} MusicBrainz tags but {len(counts)} tag counts")
        return tuple(_text(t) for t in tags), tuple(int(c) for c in counts)

    def track(self, i: int) -> Track:
        meta = self.tables["metadata/songs"][i]
        ana = self.tables["analysis/songs"][i]
        mb = self.tables["musicbrainz/songs"][i]
        arrays = {}
        for name in ANALYSIS_ARRAYS:
            if name in self.arrays:
                try:
                    arr = self._slice(self.arrays[name], "analysis/songs", f"idx_{name}", i)
                except (OSError, ValueError) as exc:
                    raise DataError(f"{self.path}: cannot read /analysis/{name} ({exc})") from None
                arrays[name] = np.asarray(arr, dtype=np.float64)
            else:
                width = (0, 12) if name in ("segments_pitches", "segments_timbre") else (0,)
                arrays[name] = np.zeros(width)
        if self.analysis:
            n_seg = len(arrays["segments_start"])
            for name in ("segments_pitches", "segments_timbre"):
                a = arrays[name]
                if a.ndim != 2 or a.shape[1] != 12:
                    raise DataError(f"{self.path}: /analysis/{name} has shape {a.shape}, expected (n, 12)")
            for name in ("segments_pitches", "segments_timbre", "segments_loudness_max"):
                if len(arrays[name]) != n_seg:
                    raise DataError(
                        f"{self.path}: /analysis/{name} has {len(arrays[name])} rows "
                        f"but there are {n_seg} segments"
                    )
        tags, counts = self._mbtags(i)
        return Track(
            track_id=_text(ana["track_id"]),
            song_id=_text(meta["song_id"]),
            artist_id=_text(meta["artist_id"]),
            artist_name=_text(meta["artist_name"]),
            title=_text(meta["title"]),
            duration=float(ana["duration"]),
            tempo=float(ana["tempo"]),
            time_signature=int(ana["time_signature"]),
            key=int(ana["key"]),
            key_confidence=float(ana["key_confidence"]),
            mode=int(ana["mode"]),
            mode_confidence=float(ana["mode_confidence"]),
            year=int(mb["year"]),
            mbtags=tags,
            mbtags_count=counts,
            source=self.path,
            **arrays,
        )


def iter_tracks(path, *, analysis: bool = True) -> Iterator[Track]:
    """Yield every song of an MSD file (per-track, aggregate or summary).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.h5`` file.
    analysis : bool
        Read the segment and beat arrays (``False`` for summary files, which
        hold the song tables only; the arrays then come back empty).

    Raises
    ------
    DataError
        The file is missing, not HDF5, truncated, or lacks a required field;
        the message names the file and the field.
    """
    path = os.fspath(path)
    h5 = _open(path)
    try:
        songs = _SongFile(h5, path, analysis)
        for i in range(songs.n):
            yield songs.track(i)
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: damaged MSD file ({type(exc).__name__}: {exc})") from None
    finally:
        h5.close()


def read_track(path, *, index: int = 0, analysis: bool = True) -> Track:
    """Read one song (by default the only one of a per-track file).

    Examples
    --------
    >>> track = read_track("TRAXLZU12903D05F94.h5")  # doctest: +SKIP
    >>> track.artist_name                              # doctest: +SKIP
    'Rick Astley'
    """
    for i, track in enumerate(iter_tracks(path, analysis=analysis)):
        if i == index:
            return track
    raise DataError(f"{os.fspath(path)}: has no song number {index}")


def count_tracks(path) -> int:
    """How many songs a file holds (rows of ``/analysis/songs``)."""
    h5 = _open(path)
    try:
        return int(_need(h5, "analysis/songs", os.fspath(path)).shape[0])
    finally:
        h5.close()
