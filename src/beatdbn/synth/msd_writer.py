"""Write Million Song Dataset HDF5 files: per-track and aggregate layouts.

The files follow the layout of the real MSD per-track files (PyTables 2.0,
``H5 Song File``), so :mod:`beatdbn.features.msd` and other MSD tools read them
unchanged:

* groups ``/metadata``, ``/analysis`` and ``/musicbrainz``, each holding a
  ``songs`` compound table with every field of the real file, in the same order
  and with the same dtypes (:data:`SONG_TABLE_DTYPES`);
* every array of the real file (segments, beats, bars, tatums, sections, artist
  terms, similar artists, MusicBrainz tags), gzip level 1 with shuffle, chunked
  and resizable (``maxshape=(None, ...)``), strings as fixed-length bytes
  holding UTF-8;
* the ``idx_*`` columns: in an aggregate file song ``i`` owns
  ``array[idx[i] : idx[i + 1]]`` (the last song runs to the end); in a
  per-track file they are all 0.

Fields a :class:`~beatdbn.features.msd.Track` has no value for get sensible
defaults: bars every ``time_signature`` beats, tatums at half beats, a section
every 16 bars, confidences of 1, ``audio_md5`` the MD5 of the track id, artist
terms copied from the MusicBrainz tags. ``**extra`` overrides any of them.

Public API: :func:`write_track` (one song), :func:`write_aggregate` (many
songs in one file), :data:`SONG_TABLE_DTYPES`, :data:`ARRAY_SPECS`.

Examples
--------
>>> from beatdbn.synth import make_track, write_track
>>> from beatdbn.features.msd import read_track
>>> path = write_track("/tmp/TRSYNTH0000000001.h5", make_track(n_beats=64))  # doctest: +SKIP
>>> read_track(path).beats_start.shape                                        # doctest: +SKIP
(64,)
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from beatdbn.exceptions import ParameterError
from beatdbn.features.msd import ANALYSIS_ARRAYS, Track
from beatdbn.utils.atomic import atomic_path

__all__ = ["write_track", "write_aggregate", "SONG_TABLE_DTYPES", "ARRAY_SPECS"]

#: The three song tables, field for field as in the real MSD files (packed).
SONG_TABLE_DTYPES: dict[str, np.dtype] = {
    "metadata/songs": np.dtype(
        [
            ("analyzer_version", "S32"),
            ("artist_7digitalid", "<i4"),
            ("artist_familiarity", "<f8"),
            ("artist_hotttnesss", "<f8"),
            ("artist_id", "S32"),
            ("artist_latitude", "<f8"),
            ("artist_location", "S1024"),
            ("artist_longitude", "<f8"),
            ("artist_mbid", "S40"),
            ("artist_name", "S1024"),
            ("artist_playmeid", "<i4"),
            ("genre", "S1024"),
            ("idx_artist_terms", "<i4"),
            ("idx_similar_artists", "<i4"),
            ("release", "S1024"),
            ("release_7digitalid", "<i4"),
            ("song_hotttnesss", "<f8"),
            ("song_id", "S32"),
            ("title", "S1024"),
            ("track_7digitalid", "<i4"),
        ]
    ),
    "analysis/songs": np.dtype(
        [
            ("analysis_sample_rate", "<i4"),
            ("audio_md5", "S32"),
            ("danceability", "<f8"),
            ("duration", "<f8"),
            ("end_of_fade_in", "<f8"),
            ("energy", "<f8"),
            ("idx_bars_confidence", "<i4"),
            ("idx_bars_start", "<i4"),
            ("idx_beats_confidence", "<i4"),
            ("idx_beats_start", "<i4"),
            ("idx_sections_confidence", "<i4"),
            ("idx_sections_start", "<i4"),
            ("idx_segments_confidence", "<i4"),
            ("idx_segments_loudness_max", "<i4"),
            ("idx_segments_loudness_max_time", "<i4"),
            ("idx_segments_loudness_start", "<i4"),
            ("idx_segments_pitches", "<i4"),
            ("idx_segments_start", "<i4"),
            ("idx_segments_timbre", "<i4"),
            ("idx_tatums_confidence", "<i4"),
            ("idx_tatums_start", "<i4"),
            ("key", "<i4"),
            ("key_confidence", "<f8"),
            ("loudness", "<f8"),
            ("mode", "<i4"),
            ("mode_confidence", "<f8"),
            ("start_of_fade_out", "<f8"),
            ("tempo", "<f8"),
            ("time_signature", "<i4"),
            ("time_signature_confidence", "<f8"),
            ("track_id", "S32"),
        ]
    ),
    "musicbrainz/songs": np.dtype([("idx_artist_mbtags", "<i4"), ("year", "<i4")]),
}

#: Array datasets: path -> (dtype, row width or None, chunk rows, TITLE, idx column).
#: The idx column lives in the ``songs`` table of the same group.
ARRAY_SPECS: dict[str, tuple[str, int | None, int, str, str]] = {
    "analysis/bars_confidence": ("<f8", None, 1024, "array of confidence of bars", "idx_bars_confidence"),
    "analysis/bars_start": ("<f8", None, 1024, "array of start times of bars", "idx_bars_start"),
    "analysis/beats_confidence": ("<f8", None, 1024, "array of confidence of sections", "idx_beats_confidence"),
    "analysis/beats_start": ("<f8", None, 1024, "array of start times of beats", "idx_beats_start"),
    "analysis/sections_confidence": (
        "<f8", None, 1024, "array of confidence of sections", "idx_sections_confidence"),
    "analysis/sections_start": ("<f8", None, 1024, "array of start times of sections", "idx_sections_start"),
    "analysis/segments_confidence": (
        "<f8", None, 1024, "array of confidence of segments", "idx_segments_confidence"),
    "analysis/segments_loudness_max": (
        "<f8", None, 1024, "array of max loudness of segments", "idx_segments_loudness_max"),
    "analysis/segments_loudness_max_time": (
        "<f8", None, 1024, "array of max loudness time of segments", "idx_segments_loudness_max_time"),
    "analysis/segments_loudness_start": (
        "<f8", None, 1024, "array of loudness of segments at start time", "idx_segments_loudness_start"),
    "analysis/segments_pitches": (
        "<f8", 12, 85, "array of pitches of segments (chromas)", "idx_segments_pitches"),
    "analysis/segments_start": ("<f8", None, 1024, "array of start times of segments", "idx_segments_start"),
    "analysis/segments_timbre": (
        "<f8", 12, 85, "array of timbre of segments (MFCC-like)", "idx_segments_timbre"),
    "analysis/tatums_confidence": ("<f8", None, 1024, "array of confidence of tatums", "idx_tatums_confidence"),
    "analysis/tatums_start": ("<f8", None, 1024, "array of start times of tatums", "idx_tatums_start"),
    "metadata/artist_terms": ("S256", None, 32, "array of terms (Echo Nest tags) for an artist", "idx_artist_terms"),
    "metadata/artist_terms_freq": (
        "<f8", None, 1024, "array of term (Echo Nest tags) frequencies for an artist", "idx_artist_terms"),
    "metadata/artist_terms_weight": (
        "<f8", None, 1024, "array of term (Echo Nest tags) weights for an artist", "idx_artist_terms"),
    "metadata/similar_artists": ("S20", None, 409, "array of similar artists Echo Nest id", "idx_similar_artists"),
    "musicbrainz/artist_mbtags": (
        "S256", None, 32, "array of tags from MusicBrainz for an artist", "idx_artist_mbtags"),
    "musicbrainz/artist_mbtags_count": (
        "<i4", None, 2048, "array of tag counts from MusicBrainz for an artist", "idx_artist_mbtags"),
}

_GROUP_TITLES = {
    "metadata": "metadata about the song",
    "analysis": "Echo Nest analysis of the song",
    "musicbrainz": "data about the song coming from MusicBrainz",
}
_TABLE_TITLES = {
    "metadata/songs": ("table of metadata for one song", 3),
    "analysis/songs": ("table of Echo Nest analysis for one song", 37),
    "musicbrainz/songs": ("table of data coming from MusicBrainz", 1024),
}
_FILTERS = np.int64(65793)  # PyTables code for zlib level 1 + shuffle
_TRACK_ARRAYS = {f"analysis/{name}" for name in ANALYSIS_ARRAYS} | {
    "musicbrainz/artist_mbtags",
    "musicbrainz/artist_mbtags_count",
}
_TRACK_ARRAY_NAMES = {p.split("/")[1] for p in _TRACK_ARRAYS}
_TRACK_FIELDS = {
    "song_id", "artist_id", "artist_name", "title", "track_id", "duration", "tempo",
    "time_signature", "key", "key_confidence", "mode", "mode_confidence", "year",
}  # fmt: skip
_SAME_LENGTH = (
    ("analysis/segments_start", "analysis/segments_pitches", "analysis/segments_timbre",
     "analysis/segments_loudness_max", "analysis/segments_loudness_max_time",
     "analysis/segments_loudness_start", "analysis/segments_confidence"),
    ("analysis/beats_start", "analysis/beats_confidence"),
    ("analysis/bars_start", "analysis/bars_confidence"),
    ("analysis/tatums_start", "analysis/tatums_confidence"),
    ("analysis/sections_start", "analysis/sections_confidence"),
    ("metadata/artist_terms", "metadata/artist_terms_freq", "metadata/artist_terms_weight"),
    ("musicbrainz/artist_mbtags", "musicbrainz/artist_mbtags_count"),
)  # fmt: skip


def _encode(value: Any, width: int, what: str) -> bytes:
    """``value`` as UTF-8 bytes that fit a fixed-length ``S<width>`` field."""
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if len(raw) > width:
        raise ParameterError(f"{what} is {len(raw)} bytes in UTF-8; the MSD field holds at most {width}")
    return raw


def _derived_arrays(track: Track) -> dict[str, np.ndarray]:
    """Default bars, tatums, sections and confidences, derived from the beats.

    Bars start every ``time_signature`` beats, tatums lie on the beats and
    half-way between them, sections start at 0 and then every 16 bars.
    """
    beats = np.asarray(track.beats_start, dtype=np.float64).reshape(-1)
    n_seg = len(track.segments_start)
    meter = max(int(track.time_signature), 1)
    bars = beats[::meter]
    if len(beats) > 1:
        tatums = np.empty(2 * len(beats) - 1)
        tatums[0::2] = beats
        tatums[1::2] = 0.5 * (beats[:-1] + beats[1:])
    else:
        tatums = beats.copy()
    sections = np.concatenate([[0.0], bars[16::16]]) if len(bars) else np.zeros(0)
    loud_max = np.asarray(track.segments_loudness_max, dtype=np.float64).reshape(-1)
    seg_start = np.asarray(track.segments_start, dtype=np.float64).reshape(-1)
    seg_len = np.diff(np.append(seg_start, max(float(track.duration), seg_start[-1] if n_seg else 0.0)))
    tags = list(track.mbtags)
    counts = np.asarray(track.mbtags_count, dtype=np.float64)
    weight = counts / counts.max() if len(counts) and counts.max() > 0 else np.ones(len(tags))
    return {
        "analysis/beats_confidence": np.ones(len(beats)),
        "analysis/bars_start": bars,
        "analysis/bars_confidence": np.ones(len(bars)),
        "analysis/tatums_start": tatums,
        "analysis/tatums_confidence": np.ones(len(tatums)),
        "analysis/sections_start": sections,
        "analysis/sections_confidence": np.ones(len(sections)),
        "analysis/segments_confidence": np.ones(n_seg),
        "analysis/segments_loudness_max_time": np.clip(0.25 * seg_len, 0.0, 0.05),
        "analysis/segments_loudness_start": np.maximum(loud_max - 10.0, -60.0),
        "metadata/artist_terms": np.array([_encode(t, 256, "artist term") for t in tags], dtype="S256"),
        "metadata/artist_terms_freq": weight.copy(),
        "metadata/artist_terms_weight": weight.copy(),
        "metadata/similar_artists": np.zeros(0, dtype="S20"),
    }


def _song(track: Track, extra: Mapping[str, Any]) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """One song's table rows (field -> value per table) and arrays (path -> array)."""
    if not isinstance(track, Track):
        raise ParameterError(f"expected a beatdbn.features.msd.Track, got {type(track).__name__}")
    arrays = {
        "analysis/segments_start": np.asarray(track.segments_start, dtype=np.float64),
        "analysis/segments_pitches": np.asarray(track.segments_pitches, dtype=np.float64),
        "analysis/segments_timbre": np.asarray(track.segments_timbre, dtype=np.float64),
        "analysis/segments_loudness_max": np.asarray(track.segments_loudness_max, dtype=np.float64),
        "analysis/beats_start": np.asarray(track.beats_start, dtype=np.float64),
        "musicbrainz/artist_mbtags": np.array(
            [_encode(t, 256, "MusicBrainz tag") for t in track.mbtags], dtype="S256"
        ).reshape(-1),
        "musicbrainz/artist_mbtags_count": np.asarray(track.mbtags_count, dtype=np.int64).reshape(-1),
    }
    for name in ("analysis/segments_pitches", "analysis/segments_timbre"):
        if arrays[name].size == 0:
            arrays[name] = arrays[name].reshape(0, 12)
    arrays.update(_derived_arrays(track))
    loud = arrays["analysis/segments_loudness_max"]
    rows = {
        "metadata/songs": {
            "artist_id": track.artist_id,
            "artist_latitude": np.nan,
            "artist_longitude": np.nan,
            "artist_name": track.artist_name,
            "artist_playmeid": -1,
            "song_id": track.song_id,
            "title": track.title,
        },
        "analysis/songs": {
            "analysis_sample_rate": 22050,
            "audio_md5": hashlib.md5(track.track_id.encode("utf-8")).hexdigest(),
            "duration": track.duration,
            "key": track.key,
            "key_confidence": track.key_confidence,
            "loudness": float(np.mean(loud)) if len(loud) else 0.0,
            "mode": track.mode,
            "mode_confidence": track.mode_confidence,
            "start_of_fade_out": track.duration,
            "tempo": track.tempo,
            "time_signature": track.time_signature,
            "time_signature_confidence": 1.0,
            "track_id": track.track_id,
        },
        "musicbrainz/songs": {"year": track.year},
    }
    for name, value in extra.items():
        if name in _TRACK_FIELDS or name in _TRACK_ARRAY_NAMES or name in ("mbtags", "mbtags_count"):
            raise ParameterError(f"extra field {name!r} is a Track field; set it on the Track instead")
        if name.startswith("idx_"):
            raise ParameterError(f"extra field {name!r}: the idx_* columns are computed by the writer")
        table = next((t for t, dt in SONG_TABLE_DTYPES.items() if name in dt.names), None)
        path = next((p for p in ARRAY_SPECS if p.split("/")[1] == name), None)
        if table is not None:
            rows[table][name] = value
        elif path is not None:
            arrays[path] = np.asarray(value)
        else:
            raise ParameterError(
                f"extra field {name!r} is neither a song-table field nor an array of an MSD file"
            )
    _check_song(track.track_id, arrays)
    return rows, arrays


def _check_song(track_id: str, arrays: dict[str, np.ndarray]) -> None:
    """Raise ParameterError when a song's arrays have the wrong shape or lengths."""
    for path, (dtype, width, _, _, _) in ARRAY_SPECS.items():
        a = arrays[path]
        want = (width,) if width else ()
        if a.ndim != 1 + len(want) or a.shape[1:] != want:
            shape = f"(n, {width})" if width else "(n,)"
            raise ParameterError(f"{track_id}: {path} has shape {a.shape}, expected {shape}")
        if dtype.startswith("S"):
            arrays[path] = np.array(
                [_encode(v, int(dtype[1:]), path) for v in a.tolist()], dtype=dtype
            ).reshape(-1)
    for group in _SAME_LENGTH:
        lengths = {p: len(arrays[p]) for p in group}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{p.split('/')[1]}={n}" for p, n in lengths.items())
            raise ParameterError(f"{track_id}: arrays that must have equal lengths differ ({detail})")


def _table(table: str, rows: list[dict]) -> np.ndarray:
    """The compound table of ``rows`` (missing fields 0 or empty)."""
    dtype = SONG_TABLE_DTYPES[table]
    out = np.zeros(len(rows), dtype=dtype)
    for i, row in enumerate(rows):
        for name, value in row.items():
            kind, size = dtype[name].kind, dtype[name].itemsize
            out[name][i] = _encode(value, size, f"{table} field {name!r}") if kind == "S" else value
    return out


def _set_attrs(obj, attrs: dict) -> None:
    """Write scalar attributes (str as fixed-length bytes, as PyTables does).

    Uses h5py's low-level API: a file carries ~220 attributes, and the
    high-level ``obj.attrs[...] = ...`` would dominate the writing time.
    """
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    types: dict = {}
    for name, value in attrs.items():
        arr = np.asarray(np.bytes_(value.encode("utf-8")) if isinstance(value, str) else value)
        if arr.dtype.kind == "S" and arr.dtype.itemsize == 0:
            arr = np.asarray(np.bytes_(b""), dtype="S1")
        if arr.dtype not in types:
            types[arr.dtype] = h5py.h5t.py_create(arr.dtype)
        h5py.h5a.create(obj.id, name.encode("ascii"), types[arr.dtype], space).write(arr)


def _write(path, songs: list[tuple[dict, dict]], *, title: str) -> Path:
    """Write ``songs`` (rows, arrays) into one MSD-layout file, atomically."""
    path = Path(os.fspath(path))
    if path.is_dir():
        raise ParameterError(f"{path}: is a directory; give the .h5 file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tables = {name: [] for name in SONG_TABLE_DTYPES}
    offsets = {p: 0 for p in ARRAY_SPECS}
    for rows, arrays in songs:
        for table in tables:
            tables[table].append(dict(rows[table]))
        for p, (_, _, _, _, idx_field) in ARRAY_SPECS.items():
            tables[p.split("/")[0] + "/songs"][-1][idx_field] = offsets[p]
            offsets[p] += len(arrays[p])
    for p, n_rows in offsets.items():
        if n_rows > np.iinfo(np.int32).max:
            raise ParameterError(f"{path}: {p} would have {n_rows} rows, more than an int32 idx_* column holds")

    # a fresh name beside the target (utils.atomic: same file system, renamed over it when complete, removed
    # on failure); h5py creates it exclusively, with the usual umask permissions
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "x", track_order=False) as h5:
            _set_attrs(h5, {"CLASS": "GROUP", "FILTERS": _FILTERS, "PYTABLES_FORMAT_VERSION": "2.0",
                            "TITLE": title, "VERSION": "1.0"})  # fmt: skip
            for group, gtitle in _GROUP_TITLES.items():
                g = h5.create_group(group, track_order=False)
                _set_attrs(g, {"CLASS": "GROUP", "FILTERS": _FILTERS, "TITLE": gtitle, "VERSION": "1.0"})
            for table, rows in tables.items():
                data = _table(table, rows)
                ttitle, chunk = _TABLE_TITLES[table]
                ds = h5.create_dataset(table, data=data, maxshape=(None,), chunks=(chunk,),
                                       compression="gzip", compression_opts=1, shuffle=True,
                                       track_times=False)  # fmt: skip
                attrs = {"CLASS": "TABLE", "NROWS": np.int64(len(data)), "TITLE": ttitle, "VERSION": "2.6"}
                for j, name in enumerate(data.dtype.names):
                    attrs[f"FIELD_{j}_NAME"] = name
                    kind = data.dtype[name].kind
                    attrs[f"FIELD_{j}_FILL"] = (
                        np.bytes_(b"") if kind == "S" else np.float64(0) if kind == "f" else np.int32(0)
                    )
                _set_attrs(ds, attrs)
            for p, (dtype, width, chunk, atitle, _) in ARRAY_SPECS.items():
                parts = [arrays[p] for _, arrays in songs]
                tail = (width,) if width else ()
                data = np.concatenate(parts).astype(dtype) if parts else np.zeros((0, *tail), dtype=dtype)
                data = data.reshape(-1, *tail)
                ds = h5.create_dataset(p, data=data, maxshape=(None, *tail), chunks=(chunk, *tail),
                                       compression="gzip", compression_opts=1, shuffle=True,
                                       track_times=False)  # fmt: skip
                _set_attrs(ds, {"CLASS": "EARRAY", "EXTDIM": np.int32(0), "TITLE": atitle, "VERSION": "1.0"})
    return path


def write_track(path, track: Track, **extra) -> Path:
    """Write one song as an MSD per-track ``.h5`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (its folder is created; an existing file is replaced
        atomically: written to a temporary file beside it, then renamed).
    track : Track
        The song. Its arrays, metadata and MusicBrainz tags are stored exactly
        (float64, int32 and UTF-8), so :func:`~beatdbn.features.msd.read_track`
        gives them back unchanged.
    **extra
        Values for fields a ``Track`` does not carry: any field of the three
        song tables (``danceability=0.5``, ``release="..."``, ``genre=...``) or
        any array (``bars_start=...``, ``artist_terms=[...]``,
        ``similar_artists=[...]``), replacing the defaults derived from the
        track.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ParameterError
        ``track`` is not a Track, its arrays disagree in length or shape, a
        string does not fit its fixed-length field, or an ``extra`` name is
        unknown, a Track field or an ``idx_*`` column.

    Examples
    --------
    >>> from beatdbn.synth import make_track
    >>> write_track("/tmp/TRSYNTH0000000001.h5", make_track(), danceability=0.7)  # doctest: +SKIP
    PosixPath('/tmp/TRSYNTH0000000001.h5')
    """
    return _write(path, [_song(track, extra)], title="H5 Song File")


def write_aggregate(path, tracks: Sequence[Track], *, extras: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Write many songs into one MSD aggregate ``.h5`` file.

    The song tables have one row per track, in order; every array holds the
    songs' arrays concatenated, and song ``i`` owns
    ``array[idx_<name>[i] : idx_<name>[i + 1]]`` (the last song runs to the end).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (atomically, as :func:`write_track`).
    tracks : sequence of Track
        The songs (at least one).
    extras : sequence of dict or None
        Per-track ``**extra`` values, as for :func:`write_track`, one mapping
        per track.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ParameterError
        No tracks, ``extras`` of the wrong length, or any reason of
        :func:`write_track`.
    """
    tracks = list(tracks)
    if not tracks:
        raise ParameterError("write_aggregate needs at least one track")
    extras = [{}] * len(tracks) if extras is None else list(extras)
    if len(extras) != len(tracks):
        raise ParameterError(f"extras has {len(extras)} entries for {len(tracks)} tracks; give one per track")
    return _write(path, [_song(t, e) for t, e in zip(tracks, extras)], title="H5 Aggregate File")
