"""One shard of the feature store: ragged features on disk, written atomically.

A shard is two files under ``STORE/shards/``:

``shard-NNNNNN.h5``
    ``features`` float32 [shape=(total_beats, 24)] (chroma then timbre),
    ``beats`` float64 [shape=(total_beats,)] (beat start times),
    ``offsets`` int64 [shape=(n_tracks + 1,)]: track ``r`` owns rows
    ``offsets[r]:offsets[r + 1]``. Compressed (LZF + shuffle).
``shard-NNNNNN.parquet``
    The metadata table, one row per track, in the same order; its schema
    metadata also records every input file the shard processed and the ones
    it had to skip (with the reason). ``representation`` says where a track's
    features come from ("echonest": an MSD file; "audio": beatdbn's audio
    front-end) and ``genre`` holds a genre label given with audio. Shards
    written before those columns existed read back with them null
    (:func:`conform_metadata`); null ``representation`` means "echonest".

Both are built in memory, then written under a temporary name that carries
the writer's pid (:func:`beatdbn.utils.atomic.atomic_path`) and renamed into
place; the Parquet file is renamed last and is the commit: a shard without
its Parquet file is a leftover of a killed run, ignored by readers and
rewritten by a rerun. The commit records the h5 file's size and BLAKE2b
checksum (``beatdbn check`` and every read verify them, :func:`read_shard_arrays`).

**Identity.** A shard carries the id of its store (``store_id`` of
``store.json``): in the h5 file's attributes (``beatdbn_store_id``, with its
number ``beatdbn_shard``) and in the commit's info. A shard copied in from
another store therefore names another id, and ``beatdbn check`` reports it;
shards of a store written before ids existed carry none (see
:mod:`beatdbn.store.check`). The commit's info also records the labels each
input was extracted with (``labels``: path -> the given labels), so a rerun
of ``extract`` with corrected labels updates the metadata in place.

Before writing, the free space is
checked against the shard's exact size; a full disk gives
:class:`~beatdbn.exceptions.DataError` "no space left on device while writing
..." and leaves no partial file. Non-finite features are refused
(:meth:`ShardData.add`): nothing non-finite is ever stored.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from beatdbn.exceptions import DataError
from beatdbn.features.h5safe import check_file
from beatdbn.utils.atomic import write_bytes

__all__ = ["ShardData", "write_shard", "read_shard_table", "shard_paths", "conform_metadata", "SHARD_META_KEY",
           "METADATA_SCHEMA", "checksum", "h5_image", "no_space_is_data_error", "FREE_SPACE_MARGIN",
           "read_shard_arrays", "write_commit", "H5_STORE_ATTR", "H5_SHARD_ATTR"]

SHARD_META_KEY = b"beatdbn.shard"
#: Attributes of a shard's h5 file: the id of the store it belongs to and its number.
H5_STORE_ATTR = "beatdbn_store_id"
H5_SHARD_ATTR = "beatdbn_shard"
N_DIMS = 24
#: Bytes that must stay free beyond a shard's own size before it is written (the index and report follow it).
FREE_SPACE_MARGIN = 1 << 20

#: Columns of the metadata table (one row per track).
METADATA_SCHEMA = pa.schema(
    [
        ("track_id", pa.string()),
        ("song_id", pa.string()),
        ("artist_id", pa.string()),
        ("artist_name", pa.string()),
        ("title", pa.string()),
        ("duration", pa.float64()),
        ("tempo", pa.float64()),
        ("time_signature", pa.int32()),
        ("key", pa.int32()),
        ("key_confidence", pa.float64()),
        ("mode", pa.int32()),
        ("mode_confidence", pa.float64()),
        ("year", pa.int32()),
        ("mbtags", pa.list_(pa.string())),
        ("mbtags_count", pa.list_(pa.int32())),
        ("n_beats", pa.int64()),
        ("source", pa.string()),
        ("source_index", pa.int32()),
        ("shard", pa.int32()),
        ("row", pa.int32()),
        ("representation", pa.string()),  # "echonest" (MSD) or "audio" (beatdbn's front-end)
        ("genre", pa.string()),  # a genre label given with audio (--labels, folder names), else null
    ]
)


def conform_metadata(table: pa.Table) -> pa.Table:
    """``table`` with exactly the columns of :data:`METADATA_SCHEMA`, in order.

    Columns an older store lacks are added as nulls (so shards of two
    versions concatenate); columns this version does not know are dropped.
    """
    if table.schema.names == METADATA_SCHEMA.names:
        return table
    n = table.num_rows
    cols = [table.column(f.name).cast(f.type) if f.name in table.schema.names else pa.nulls(n, f.type)
            for f in METADATA_SCHEMA]
    return pa.Table.from_arrays(cols, schema=METADATA_SCHEMA).replace_schema_metadata(table.schema.metadata)


@dataclass
class ShardData:
    """What one shard holds before it is written."""

    shard: int
    meta: list[dict] = field(default_factory=list)
    features: list[np.ndarray] = field(default_factory=list)
    beats: list[np.ndarray] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    store_id: str | None = None  # the store's id (None: a store written before ids)
    labels: dict[str, dict] = field(default_factory=dict)  # input path -> the labels it was extracted with

    def add(self, meta: dict, features: np.ndarray, beats: np.ndarray) -> None:
        """Add one track.

        Raises
        ------
        DataError
            Features not ``(n_beats, 24)``, beats of another length, or any
            value that is not finite in float32 (e.g. 1e308): never stored.
        """
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow shows as inf below
            feats = np.asarray(features, dtype=np.float32)
        beats = np.asarray(beats, dtype=np.float64)
        if feats.ndim != 2 or feats.shape[1] != N_DIMS or len(beats) != len(feats):
            raise DataError(f"features of shape {feats.shape} with {len(beats)} beat times; expected (n, {N_DIMS})")
        if not (np.isfinite(feats).all() and np.isfinite(beats).all()):
            raise DataError(f"{int((~np.isfinite(feats)).sum())} non-finite feature values; not stored")
        meta = dict(meta, n_beats=len(feats), shard=self.shard, row=len(self.meta))
        self.meta.append(meta)
        self.features.append(feats)
        self.beats.append(beats)

    @property
    def n_beats(self) -> int:
        return int(sum(len(f) for f in self.features))


def shard_paths(store: Path, shard: int) -> tuple[Path, Path]:
    """The (h5, parquet) paths of shard number ``shard``."""
    base = Path(store) / "shards" / f"shard-{shard:06d}"
    return base.with_suffix(".h5"), base.with_suffix(".parquet")


def checksum(data: bytes) -> str:
    """The checksum a commit records for its h5 file: BLAKE2b, 16 bytes, hex."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def h5_image(features: np.ndarray, beats: np.ndarray, offsets: np.ndarray, *, attrs: dict | None = None) -> bytes:
    """A shard's HDF5 file, built in memory (no partial file can reach the disk); ``attrs`` on its root."""
    with h5py.File(f"beatdbn-shard-{id(features)}", "w", driver="core", backing_store=False) as h5:
        for name, value in (attrs or {}).items():
            if value is not None:
                h5.attrs[name] = value
        rows = min(len(features), 8192)
        packed = {"compression": "lzf", "shuffle": True} if rows else {}  # an empty shard stays contiguous
        h5.create_dataset("features", data=features, chunks=(rows, N_DIMS) if rows else None, **packed)
        h5.create_dataset("beats", data=beats, chunks=(rows,) if rows else None, **packed)
        h5.create_dataset("offsets", data=offsets)
        h5.flush()
        return h5.id.get_file_image()


@contextlib.contextmanager
def no_space_is_data_error(path) -> Iterator[None]:
    """Turn a full disk (ENOSPC, EDQUOT) while writing ``path`` into one DataError line."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc):
            raise DataError(f"no space left on device while writing {path}; free some space and re-run "
                            f"(the committed shards are intact)") from None
        raise


def _check_space(folder: Path, need: int, what: Path) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < need + FREE_SPACE_MARGIN:
        raise DataError(f"no space left on device while writing {what} ({free:,} bytes free, "
                        f"{need + FREE_SPACE_MARGIN:,} needed); free some space and re-run "
                        f"(the committed shards are intact)")


def write_shard(store: Path, data: ShardData) -> None:
    """Write a shard atomically (h5 first, then the Parquet commit file).

    Raises
    ------
    DataError
        Not enough free space (checked first) or the disk filled up while
        writing; no partial file is left behind.
    """
    h5_path, pq_path = shard_paths(store, data.shard)
    h5_path.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.zeros(len(data.features) + 1, dtype=np.int64)
    np.cumsum([len(f) for f in data.features], out=offsets[1:])
    feats = np.concatenate(data.features) if data.features else np.zeros((0, N_DIMS), np.float32)
    beats = np.concatenate(data.beats) if data.beats else np.zeros(0)
    image = h5_image(feats, beats, offsets, attrs={H5_STORE_ATTR: data.store_id, H5_SHARD_ATTR: data.shard})

    columns = {name: [m.get(name) for m in data.meta] for name in METADATA_SCHEMA.names}
    table = pa.Table.from_pydict(columns, schema=METADATA_SCHEMA)
    info = {"shard": data.shard, "sources": data.sources, "skipped": data.skipped,
            "tracks": len(data.meta), "beats": int(offsets[-1]),
            "h5_bytes": len(image), "h5_blake2b": checksum(image), "store_id": data.store_id,
            "labels": data.labels}
    commit = _commit_bytes(table, info)

    _check_space(h5_path.parent, len(image) + len(commit), h5_path)
    with no_space_is_data_error(h5_path):
        write_bytes(h5_path, image)
    with no_space_is_data_error(pq_path):
        write_bytes(pq_path, commit)


def _commit_bytes(table: pa.Table, info: dict) -> bytes:
    table = table.replace_schema_metadata({SHARD_META_KEY: json.dumps(info).encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def write_commit(pq_path: Path, table: pa.Table, info: dict) -> None:
    """Rewrite a committed shard's Parquet file atomically (new metadata or info; the h5 file is untouched)."""
    commit = _commit_bytes(conform_metadata(table.replace_schema_metadata(None)), info)
    with no_space_is_data_error(pq_path):
        write_bytes(pq_path, commit)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        return "a symlink loop (the file links to itself)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).split("(")[0].strip() or type(exc).__name__


def read_shard_arrays(h5_path: Path, info: dict, n_tracks: int | None = None
                      ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, dict] | None, str | None]:
    """``((features, beats, offsets, attrs), None)`` of a shard's h5 file, or ``(None, reason)`` when it is damaged.

    The file is read whole, checked against the size and checksum its commit
    recorded (``info``; shards written before checksums skip that check),
    opened in memory refusing links or storage outside it
    (:func:`beatdbn.features.h5safe.check_file`), and its arrays must fit
    together (``n_tracks`` rows when given) and be finite. The reason is one
    short line without the file name.
    """
    name = Path(h5_path).name
    if Path(h5_path).is_symlink():
        try:
            Path(h5_path).resolve(strict=True)
        except (OSError, RuntimeError):
            return None, "a symlink loop or a link to nothing (beatdbn never writes links)"
    try:
        data = Path(h5_path).read_bytes()
    except OSError as exc:
        return None, f"cannot read ({_reason(exc)})"
    if "h5_bytes" in info and len(data) != info["h5_bytes"]:
        return None, f"{len(data):,} bytes, {info['h5_bytes']:,} at commit (truncated or replaced)"
    if "h5_blake2b" in info and checksum(data) != info["h5_blake2b"]:
        return None, "checksum differs from the one recorded at commit (damaged)"
    try:
        with h5py.File(io.BytesIO(data), "r") as h5:
            check_file(h5, name)
            feats, beats, offsets = h5["features"][()], h5["beats"][()], h5["offsets"][()]
            attrs = {k: (v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, "item") else v)
                     for k, v in h5.attrs.items()}
    except DataError as exc:
        return None, str(exc).removeprefix(f"{name}: ")
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        return None, f"unreadable ({_reason(exc)})"
    if feats.ndim != 2 or feats.shape[1] != N_DIMS or beats.ndim != 1 or len(beats) != len(feats):
        return None, f"features {feats.shape} and beats {beats.shape} do not fit (n, {N_DIMS})"
    n = len(offsets) - 1 if n_tracks is None else n_tracks
    if (offsets.ndim != 1 or len(offsets) != n + 1 or offsets[0] != 0 or offsets[-1] != len(feats)
            or (np.diff(offsets) < 0).any()):
        return None, f"offsets do not match the {n} tracks and {len(feats)} beats"
    if not (np.isfinite(feats).all() and np.isfinite(beats).all()):
        bad = int((~np.isfinite(feats)).any(axis=1).sum())
        return None, f"{bad} beats with non-finite feature values"
    return (feats, beats, offsets, attrs), None


def read_shard_table(pq_path: Path) -> tuple[pa.Table, dict]:
    """A committed shard's metadata table and its info (sources, skipped, checksum).

    Raises
    ------
    DataError
        The Parquet file is unreadable (truncated, garbage); the message names
        it and ``beatdbn check --repair``.
    """
    pq_path = Path(pq_path)
    try:
        table = pq.read_table(pq_path)
        info = json.loads((table.schema.metadata or {}).get(SHARD_META_KEY, b"{}"))
        return conform_metadata(table.replace_schema_metadata(None)), info
    except (OSError, ValueError, pa.ArrowException, KeyError, TypeError) as exc:
        store = pq_path.parent.parent
        raise DataError(f"{pq_path}: damaged shard ({type(exc).__name__}: {str(exc)[:200]}); run "
                        f"`beatdbn check {store} --repair`, then `beatdbn extract` to redo its inputs") from None
