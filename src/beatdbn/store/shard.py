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

Both are written under a temporary name and renamed into place; the Parquet
file is renamed last and is the commit: a shard without its Parquet file is
a leftover of a killed run, ignored by readers and rewritten by a rerun.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["ShardData", "write_shard", "read_shard_table", "shard_paths", "conform_metadata", "SHARD_META_KEY",
           "METADATA_SCHEMA"]

SHARD_META_KEY = b"beatdbn.shard"
N_DIMS = 24

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

    def add(self, meta: dict, features: np.ndarray, beats: np.ndarray) -> None:
        meta = dict(meta, n_beats=len(features), shard=self.shard, row=len(self.meta))
        self.meta.append(meta)
        self.features.append(np.asarray(features, dtype=np.float32))
        self.beats.append(np.asarray(beats, dtype=np.float64))

    @property
    def n_beats(self) -> int:
        return int(sum(len(f) for f in self.features))


def shard_paths(store: Path, shard: int) -> tuple[Path, Path]:
    """The (h5, parquet) paths of shard number ``shard``."""
    base = Path(store) / "shards" / f"shard-{shard:06d}"
    return base.with_suffix(".h5"), base.with_suffix(".parquet")


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_shard(store: Path, data: ShardData) -> None:
    """Write a shard atomically (h5 first, then the Parquet commit file)."""
    h5_path, pq_path = shard_paths(store, data.shard)
    h5_path.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.zeros(len(data.features) + 1, dtype=np.int64)
    np.cumsum([len(f) for f in data.features], out=offsets[1:])
    feats = np.concatenate(data.features) if data.features else np.zeros((0, N_DIMS), np.float32)
    beats = np.concatenate(data.beats) if data.beats else np.zeros(0)
    tmp = _tmp(h5_path)
    try:
        with h5py.File(tmp, "w") as h5:
            rows = min(len(feats), 8192)
            packed = {"compression": "lzf", "shuffle": True} if rows else {}  # an empty shard stays contiguous
            h5.create_dataset("features", data=feats, chunks=(rows, N_DIMS) if rows else None, **packed)
            h5.create_dataset("beats", data=beats, chunks=(rows,) if rows else None, **packed)
            h5.create_dataset("offsets", data=offsets)
        os.replace(tmp, h5_path)

        columns = {name: [m.get(name) for m in data.meta] for name in METADATA_SCHEMA.names}
        table = pa.Table.from_pydict(columns, schema=METADATA_SCHEMA)
        info = {"shard": data.shard, "sources": data.sources, "skipped": data.skipped,
                "tracks": len(data.meta), "beats": int(offsets[-1])}
        table = table.replace_schema_metadata({SHARD_META_KEY: json.dumps(info).encode()})
        tmp = _tmp(pq_path)
        pq.write_table(table, tmp)
        os.replace(tmp, pq_path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_shard_table(pq_path: Path) -> tuple[pa.Table, dict]:
    """A committed shard's metadata table and its info (sources, skipped)."""
    table = pq.read_table(pq_path)
    info = json.loads((table.schema.metadata or {}).get(SHARD_META_KEY, b"{}"))
    return conform_metadata(table.replace_schema_metadata(None)), info
