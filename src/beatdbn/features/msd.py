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
from beatdbn.features.beats import MAX_BEATS, MAX_SEGMENTS
from beatdbn.features.h5safe import open_untrusted

__all__ = ["Track", "read_track", "iter_tracks", "count_tracks", "ANALYSIS_ARRAYS", "MAX_SONGS", "MAX_TAGS"]

#: Per-segment and per-beat arrays beatdbn needs, under ``/analysis``.
ANALYSIS_ARRAYS = (
    "segments_start",
    "segments_pitches",
    "segments_timbre",
    "segments_loudness_max",
    "beats_start",
)
#: Trailing shape of each array (the rest are one number per segment or beat).
ARRAY_WIDTHS = {"segments_pitches": (12,), "segments_timbre": (12,)}
#: Most rows one song may have in each array, checked from the file's shapes before anything is read.
ARRAY_LIMITS = {name: MAX_BEATS if name == "beats_start" else MAX_SEGMENTS for name in ANALYSIS_ARRAYS}
#: Most songs one file may hold (the MSD summary file has 1,000,000).
MAX_SONGS = 1_000_000
#: Most MusicBrainz tags of one song's artist (the MSD's most tagged artists have a few dozen).
MAX_TAGS = 10_000
#: Most bytes of the columns beatdbn reads from one row of a song table (the MSD's: about 2,200).
MAX_ROW_BYTES = 1 << 16
#: Rows of a song table read at once.
TABLE_BLOCK = 1024
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


# what h5py raises on a damaged file: OSError from the library, RuntimeError from some of its calls
# (a float type whose exponent bias is 0: "Unspecified error in H5Tget_ebias", found by fuzzing), ...
_H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, OverflowError)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _open(path) -> h5py.File:
    """The file, opened by :func:`~beatdbn.features.h5safe.open_untrusted` (nothing outside it is read)."""
    return open_untrusted(path)


def _get(h5: h5py.File, name: str):
    """``h5[name]`` if it is a dataset, else None (one lookup: h5py lookups are not free)."""
    try:
        obj = h5[name]
    except (KeyError, TypeError, ValueError):
        return None
    return obj if isinstance(obj, h5py.Dataset) else None


def _need(h5: h5py.File, name: str, path: str):
    obj = _get(h5, name)
    if obj is None:
        raise DataError(f"{path}: no /{name}; is this an MSD track file?")
    return obj


def _rows(dataset: h5py.Dataset) -> int:
    """Length of a dataset's first axis (0 for a scalar or empty dataspace)."""
    shape = dataset.shape
    return int(shape[0]) if shape else 0


class _SongFile:
    """The song tables of one open file, and slicing of its arrays per song.

    Nothing is read before its size is known: the tables are read
    :data:`TABLE_BLOCK` rows at a time and only the columns beatdbn uses, and
    an array's slice for one song is checked against :data:`ARRAY_LIMITS`
    (from its shape, or its ``idx_`` bounds) before it is read.
    """

    def __init__(self, h5: h5py.File, path: str, analysis: bool):
        self.h5, self.path, self.analysis = h5, path, analysis
        self.tables = {name: _need(h5, name, path) for name in _SONG_TABLES}
        for name, table in self.tables.items():
            if table.ndim != 1 or table.dtype.names is None:
                raise DataError(f"{path}: /{name} has shape {table.shape} and type {table.dtype}; "
                                "expected a table of songs (is this an MSD file?)")
        counts = {_rows(t) for t in self.tables.values()}
        if len(counts) != 1:
            raise DataError(f"{path}: song tables disagree on the number of songs ({sorted(counts)})")
        self.n = counts.pop()
        if self.n > MAX_SONGS:
            raise DataError(f"{path}: {self.n:,} songs; beatdbn reads at most {MAX_SONGS:,} from one file "
                            "(the MSD summary file's size)")
        self.arrays = {}
        if analysis:
            for name in ANALYSIS_ARRAYS:
                self.arrays[name] = self._array(f"analysis/{name}")
        self.mbtags = _get(h5, "musicbrainz/artist_mbtags")
        self.mbtags_count = _get(h5, "musicbrainz/artist_mbtags_count") if self.mbtags is not None else None
        for tags, kinds in ((self.mbtags, "SUO"), (self.mbtags_count, "iu")):
            if tags is not None and (tags.ndim != 1 or tags.dtype.kind not in kinds
                                     or tags.dtype.itemsize > MAX_ROW_BYTES):
                raise DataError(f"{path}: {tags.name} has shape {tags.shape} and type {tags.dtype}; "
                                "expected one MusicBrainz tag (or count) per row")
        self.fields = {table: list(names) for table, names in _METADATA_FIELDS.items()}
        if self.n > 1:
            self.fields["analysis/songs"] += [f"idx_{name}" for name in self.arrays]
            if self.mbtags is not None:
                self.fields["musicbrainz/songs"].append("idx_artist_mbtags")
        for table, names in self.fields.items():
            have = self.tables[table].dtype.names
            missing = [n for n in names if n not in have]
            if missing:
                raise DataError(f"{path}: /{table} has no field {missing[0]!r}; is this an MSD file?")
            row_bytes = sum(self.tables[table].dtype.fields[n][0].itemsize for n in names)
            if row_bytes > MAX_ROW_BYTES:
                raise DataError(f"{path}: /{table} has {row_bytes:,}-byte rows; at most {MAX_ROW_BYTES:,} expected")
        self._block: dict[str, tuple[int, np.ndarray]] = {}

    def _array(self, name: str) -> h5py.Dataset:
        """The dataset ``name``, its type and shape checked (no data read)."""
        dataset = _need(self.h5, name, self.path)
        base = name.rsplit("/", 1)[-1]
        width = ARRAY_WIDTHS.get(base, ())
        if dataset.dtype.kind not in "iuf" or dataset.ndim != 1 + len(width) or dataset.shape[1:] != width:
            expected = "(n, " + ", ".join(map(str, width)) + ")" if width else "(n,)"
            raise DataError(f"{self.path}: /{name} has shape {dataset.shape} and type {dataset.dtype}, "
                            f"expected numbers of shape {expected}")
        return dataset

    def _row(self, table: str, i: int) -> np.ndarray:
        """Row ``i`` (and ``i + 1``, for the ``idx_`` bounds) of a table's used columns, read a block at a time."""
        start, block = self._block.get(table, (-1, None))
        if block is None or not start <= i < start + len(block) - (1 if i + 1 < self.n else 0):
            start = i - i % TABLE_BLOCK
            stop = min(self.n, start + TABLE_BLOCK + 1)
            block = self.tables[table].fields(self.fields[table])[start:stop]
            self._block[table] = (start, block)
        return block[i - start : i - start + 2]

    def _slice(self, dataset: h5py.Dataset, table: str, idx_field: str, i: int, limit: int) -> np.ndarray:
        """Song ``i``'s rows of a concatenated array, refused past ``limit`` rows before they are read."""
        total = _rows(dataset)
        if self.n == 1:
            start, stop = 0, total
        else:
            rows = self._row(table, i)[idx_field]
            start = int(rows[0])
            stop = int(rows[1]) if i + 1 < self.n else total
            if not 0 <= start <= stop <= total:
                raise DataError(f"{self.path}: song {i} of /{table} says its {dataset.name} rows are "
                                f"{start}..{stop}, outside the array's {total}")
        if stop - start > limit:
            raise DataError(f"{self.path}: {dataset.name} has {stop - start:,} rows for one song; beatdbn reads at "
                            f"most {limit:,} (see beatdbn.features.beats.MAX_BEATS and MAX_SEGMENTS)")
        return dataset[start:stop]

    def _mbtags(self, i: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
        if self.mbtags is None:
            return (), ()
        tags = self._slice(self.mbtags, "musicbrainz/songs", "idx_artist_mbtags", i, MAX_TAGS)
        if self.mbtags_count is not None:
            counts = self._slice(self.mbtags_count, "musicbrainz/songs", "idx_artist_mbtags", i, MAX_TAGS)
        else:
            counts = np.ones(len(tags), dtype=np.int64)
        if len(counts) != len(tags):
            raise DataError(f"{self.path}: {len(tags)} MusicBrainz tags but {len(counts)} tag counts")
        return tuple(_text(t) for t in np.ravel(tags)), tuple(int(c) for c in np.ravel(counts))

    def track(self, i: int) -> Track:
        meta = self._row("metadata/songs", i)[0]
        ana = self._row("analysis/songs", i)[0]
        mb = self._row("musicbrainz/songs", i)[0]
        arrays = {}
        for name in ANALYSIS_ARRAYS:
            if name in self.arrays:
                try:
                    arr = self._slice(self.arrays[name], "analysis/songs", f"idx_{name}", i, ARRAY_LIMITS[name])
                except (OSError, ValueError) as exc:
                    raise DataError(f"{self.path}: cannot read /analysis/{name} ({exc})") from None
                arrays[name] = np.asarray(arr, dtype=np.float64)
            else:
                arrays[name] = np.zeros((0,) + ARRAY_WIDTHS.get(name, ()))
        if self.analysis:
            n_seg = len(arrays["segments_start"])
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
    except _H5_ERRORS as exc:
        raise DataError(f"{path}: damaged MSD file ({type(exc).__name__}: {_first_line(exc)})") from None
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
        return _rows(_need(h5, "analysis/songs", os.fspath(path)))
    except _H5_ERRORS as exc:
        raise DataError(f"{os.fspath(path)}: damaged MSD file ({type(exc).__name__}: {_first_line(exc)})") from None
    finally:
        h5.close()
