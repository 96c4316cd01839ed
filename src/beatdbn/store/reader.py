"""Read a feature store: random access by track id and streaming in batches.

A store is a folder::

    STORE/store.json          format marker and the feature column names
    STORE/shards/shard-*.h5   ragged features + beat times (see ``shard.py``)
    STORE/shards/shard-*.parquet   per-shard metadata (the commit files)
    STORE/tracks.parquet      all shards' metadata in one table (an index;
                              rebuilt in memory when stale or unreadable)
    STORE/.lock               the writers' lock (see ``lock.py``)
    STORE/report.json         the last extraction's summary and skipped inputs

Examples
--------
>>> import beatdbn
>>> store = beatdbn.FeatureStore.open("demo/store")      # doctest: +SKIP
>>> len(store), store.n_beats                             # doctest: +SKIP
(1200, 480313)
>>> rec = store["TRAXLZU12903D05F94"]                     # doctest: +SKIP
>>> rec.features.shape, rec.meta["artist_name"]           # doctest: +SKIP
((397, 24), 'Rick Astley')
>>> for batch in store.iter_batches(256):                 # doctest: +SKIP
...     pass
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.store.shard import (METADATA_SCHEMA, SHARD_META_KEY, conform_metadata, no_space_is_data_error,
                                 read_shard_table)
from beatdbn.utils.atomic import atomic_path, write_json

__all__ = ["FeatureStore", "TrackRecord", "FEATURE_NAMES", "STORE_FORMAT"]

STORE_FORMAT = "beatdbn-feature-store"
FEATURE_NAMES = [f"chroma_{p}" for p in ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")] + [
    f"timbre_{i:02d}" for i in range(12)
]
INDEX_FILE = "tracks.parquet"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackRecord:
    """One track of a store.

    Attributes
    ----------
    features : np.ndarray [shape=(n_beats, 24), dtype=float32]
        12 chroma then 12 timbre per beat, as stored (no normalization).
    beats : np.ndarray [shape=(n_beats,)]
        Beat start times in seconds.
    meta : dict
        The track's metadata row (track_id, artist_name, key, ...).
    """

    track_id: str
    features: np.ndarray = field(repr=False)
    beats: np.ndarray = field(repr=False)
    meta: dict = field(repr=False)

    @property
    def chroma(self) -> np.ndarray:
        return self.features[:, :12]

    @property
    def timbre(self) -> np.ndarray:
        return self.features[:, 12:]


def write_manifest(path: Path) -> None:
    """Create ``store.json`` (idempotent)."""
    manifest = Path(path) / "store.json"
    if not manifest.exists():
        Path(path).mkdir(parents=True, exist_ok=True)
        with no_space_is_data_error(manifest):
            write_json(manifest, {"format": STORE_FORMAT, "version": 1, "features": FEATURE_NAMES})


def committed_shards(path: Path) -> dict[int, Path]:
    """Shard number -> Parquet path, for every committed shard of a store."""
    out = {}
    for p in (Path(path) / "shards").glob("shard-*.parquet"):
        try:
            out[int(p.stem.split("-")[1])] = p
        except (IndexError, ValueError):
            continue
    return dict(sorted(out.items()))


def current_skipped(infos: Iterable[dict]) -> list[dict]:
    """The skipped inputs of shard infos in commit order, each input's latest outcome only.

    An input skipped by one shard and read by a later one (a retry after the
    file was fixed) is no longer skipped; skipped twice, the later reason wins.
    """
    latest: dict[str, dict | None] = {}
    for info in infos:
        for src in info.get("sources", []):
            latest.pop(src, None)
            latest[src] = None
        for entry in info.get("skipped", []):
            latest.pop(entry["path"], None)
            latest[entry["path"]] = entry
    return [e for e in latest.values() if e is not None]


def _read_index(index: Path, shards: dict[int, Path]) -> tuple[pa.Table, list[dict]] | None:
    """``tracks.parquet`` when it is readable and covers exactly ``shards``, else None."""
    if not index.exists():
        return None
    try:
        table = pq.read_table(index)
        info = json.loads((table.schema.metadata or {}).get(SHARD_META_KEY, b"{}"))
        if info.get("shards") != list(shards):
            return None
        return conform_metadata(table).replace_schema_metadata(None), info.get("skipped", [])
    except (OSError, ValueError, TypeError, KeyError, pa.ArrowException) as exc:
        log.warning("%s: unreadable index (%s); rebuilt from the shards (`beatdbn check %s --repair` rewrites it)",
                    index, type(exc).__name__, index.parent)
        return None


def load_index(path: Path) -> tuple[pa.Table, list[dict]]:
    """All shards' metadata in one table and the skipped inputs.

    Uses ``tracks.parquet`` when it is readable and covers exactly the
    committed shards, else concatenates the shards' own tables.

    Raises
    ------
    DataError
        A shard's Parquet file is damaged (the message names it and
        ``beatdbn check --repair``).
    """
    shards = committed_shards(path)
    cached = _read_index(Path(path) / INDEX_FILE, shards)
    if cached is not None:
        return cached
    tables, infos = [], []
    for p in shards.values():
        table, info = read_shard_table(p)
        tables.append(table)
        infos.append(info)
    table = pa.concat_tables(tables) if tables else METADATA_SCHEMA.empty_table()
    return table, current_skipped(infos)


def write_index(path: Path) -> pa.Table:
    """Consolidate the shards' metadata into ``tracks.parquet`` (atomically)."""
    shards = committed_shards(path)
    table, skipped = load_index(path)
    meta = {SHARD_META_KEY: json.dumps({"shards": list(shards), "skipped": skipped}).encode()}
    index = Path(path) / INDEX_FILE
    with no_space_is_data_error(index), atomic_path(index) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)
    return table


class FeatureStore:
    """A read-only view of a feature store folder.

    Open with :meth:`FeatureStore.open`. Records come back as
    :class:`TrackRecord`; ``store[track_id]`` reads one track,
    :meth:`iter_batches` streams many, one shard in memory at a time.
    """

    def __init__(self, path: Path, table: pa.Table, skipped: list[dict], *, cache_shards: int = 8):
        self.path = Path(path)
        self.metadata = table
        self.skipped = skipped
        ids = table.column("track_id").to_pylist()
        self._shard = table.column("shard").to_numpy()
        self._row = table.column("row").to_numpy()
        self._index: dict[str, int] = {}
        for i, tid in enumerate(ids):  # first occurrence wins on a repeated track id
            self._index.setdefault(tid, i)
        self.n_repeated = len(ids) - len(self._index)
        self._ids = ids
        self._cache: OrderedDict[int, tuple] = OrderedDict()
        self._cache_size = cache_shards

    # -- construction --------------------------------------------------------------------
    @classmethod
    def open(cls, path) -> "FeatureStore":
        """Open the store at ``path``.

        Raises
        ------
        DataError
            ``path`` is not a beatdbn feature store.
        """
        path = Path(path)
        cls.check_manifest(path)
        table, skipped = load_index(path)
        return cls(path, table, skipped)

    @staticmethod
    def check_manifest(path) -> None:
        """Raise DataError unless ``path`` holds a beatdbn store manifest."""
        path = Path(path)
        manifest = path / "store.json"
        if not manifest.exists():
            raise DataError(f"{path}: not a beatdbn feature store (no store.json); create one with `beatdbn extract`")
        try:
            fmt = json.loads(manifest.read_text()).get("format")
        except (OSError, ValueError, AttributeError):
            fmt = None
        if fmt != STORE_FORMAT:
            raise DataError(f"{manifest}: not a beatdbn feature store manifest")

    # -- container protocol --------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, track_id) -> bool:
        return track_id in self._index

    def __getitem__(self, track_id: str) -> TrackRecord:
        try:
            i = self._index[track_id]
        except KeyError:
            raise KeyError(f"{track_id!r} is not in the store {self.path}") from None
        return self._record(i)

    def __iter__(self) -> Iterator[TrackRecord]:
        for batch in self.iter_batches():
            yield from batch

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, tracks={len(self)}, beats={self.n_beats})"

    @property
    def track_ids(self) -> list[str]:
        """Unique track ids in store order."""
        return list(self._index)

    @property
    def n_beats(self) -> int:
        """Total beats over the unique tracks."""
        rows = np.fromiter(self._index.values(), dtype=np.int64, count=len(self._index))
        return int(self.metadata.column("n_beats").to_numpy()[rows].sum()) if len(rows) else 0

    def meta(self, track_id: str) -> dict:
        """The metadata row of one track, without reading its features."""
        return self.metadata.slice(self._index[track_id], 1).to_pylist()[0]

    # -- reading -------------------------------------------------------------------------
    def _load_shard(self, shard: int):
        if shard in self._cache:
            self._cache.move_to_end(shard)
            return self._cache[shard]
        h5_path = self.path / "shards" / f"shard-{shard:06d}.h5"
        try:
            with h5py.File(h5_path, "r") as h5:
                data = (h5["features"][()], h5["beats"][()], h5["offsets"][()])
        except (OSError, KeyError, ValueError) as exc:
            reason = str(exc).split("(")[0].strip() or type(exc).__name__
            raise DataError(f"{h5_path}: damaged shard ({reason}); run `beatdbn check {self.path} --repair`, "
                            f"then `beatdbn extract` to redo its inputs") from None
        self._cache[shard] = data
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return data

    def _record(self, i: int, shard_data=None) -> TrackRecord:
        feats, beats, offsets = shard_data or self._load_shard(int(self._shard[i]))
        r = int(self._row[i])
        a, b = offsets[r], offsets[r + 1]
        meta = self.metadata.slice(i, 1).to_pylist()[0]
        return TrackRecord(meta["track_id"], feats[a:b], beats[a:b], meta)

    def select_rows(self, track_ids: Iterable[str] | None = None, *,
                    exclude: Iterable[str] | None = None) -> np.ndarray:
        """Row numbers (into :attr:`metadata`) of ``track_ids`` (default: every unique track) minus ``exclude``.

        Raises
        ------
        KeyError
            A wanted track id is not in the store (the first is named).
        """
        if track_ids is None:
            rows = np.fromiter(self._index.values(), dtype=np.int64, count=len(self._index))
        else:
            wanted = list(track_ids)
            missing = [t for t in wanted if t not in self._index]
            if missing:
                raise KeyError(f"{missing[0]!r} (and {len(missing) - 1} more) not in the store {self.path}")
            rows = np.array([self._index[t] for t in wanted], dtype=np.int64)
        if exclude is not None:
            drop = {self._index[t] for t in exclude if t in self._index}
            rows = rows[~np.isin(rows, np.fromiter(drop, dtype=np.int64, count=len(drop)))]
        return rows

    def shard_of(self, rows: np.ndarray) -> np.ndarray:
        """Shard number of each row."""
        return self._shard[np.asarray(rows, dtype=np.int64)]

    def read_features(self, rows: Iterable[int]) -> list[np.ndarray]:
        """Features ``(n_beats, 24)`` of the given rows, without metadata (fast streaming).

        Rows of one shard should come together: shards are cached LRU
        (``cache_shards``), so memory stays a few shards.
        """
        out = []
        for i in rows:
            feats, _, offsets = self._load_shard(int(self._shard[i]))
            r = int(self._row[i])
            out.append(feats[offsets[r]:offsets[r + 1]])
        return out

    def iter_batches(
        self,
        batch_size: int = 256,
        *,
        track_ids: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        shuffle: bool = False,
        seed: int = 0,
    ) -> Iterator[list[TrackRecord]]:
        """Stream records in lists of ``batch_size``, one shard in memory at a time.

        Parameters
        ----------
        batch_size : int
            Records per yielded list (the last may be shorter).
        track_ids : iterable of str, optional
            Only these tracks (unknown ids raise ``KeyError`` naming the first).
        exclude : iterable of str, optional
            Leave these tracks out (e.g. a task's valid/test tracks).
        shuffle : bool
            Visit shards in a random order and tracks within each shard in a
            random order (seeded by ``seed``); memory stays one shard.
        """
        if batch_size < 1:
            raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
        rows = self.select_rows(track_ids, exclude=exclude)
        rng = np.random.default_rng(seed)
        shards = np.unique(self._shard[rows]) if len(rows) else np.array([], dtype=np.int64)
        if shuffle:
            shards = rng.permutation(shards)
        batch: list[TrackRecord] = []
        for shard in shards:
            in_shard = rows[self._shard[rows] == shard]
            in_shard = rng.permutation(in_shard) if shuffle else np.sort(in_shard)
            data = self._load_shard(int(shard))
            for i in in_shard:
                batch.append(self._record(int(i), data))
                if len(batch) == batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def summary(self) -> dict:
        """Totals for ``beatdbn info``."""
        n_beats = self.metadata.column("n_beats").to_numpy() if len(self.metadata) else np.zeros(0)
        return {
            "path": str(self.path),
            "tracks": len(self),
            "beats": self.n_beats,
            "shards": len(committed_shards(self.path)),
            "artists": int(pc.count_distinct(self.metadata.column("artist_id")).as_py()) if len(self.metadata) else 0,
            "beats_per_track": {
                "min": int(n_beats.min()) if len(n_beats) else 0,
                "median": float(np.median(n_beats)) if len(n_beats) else 0.0,
                "max": int(n_beats.max()) if len(n_beats) else 0,
            },
            "repeated_track_ids": self.n_repeated,
            "skipped": self.skipped,
        }
