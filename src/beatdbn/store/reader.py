"""Read a feature store: random access by track id and streaming in batches.

A store is a folder::

    STORE/store.json          format marker, the feature column names and the
                              store's id (``store_id``, a UUID every shard carries)
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

Every shard read is verified: its size and checksum against the ones its
commit (or the index) recorded, its store id against the store's, its
values finite (:func:`beatdbn.store.shard.read_shard_arrays`); a damaged,
replaced or foreign shard gives one :class:`DataError` line naming it and
``beatdbn check --repair``, never wrong or non-finite features.

**Stores written before ids** (no ``store_id`` in ``store.json``) stay
readable; only the identity check is skipped, and ``beatdbn check`` says so
and offers ``--repair`` to stamp one. **A broken ``shards/`` folder** (a
symlink loop, a link to nothing, a file) and **a garbage ``store.json``**
give one line saying what is wrong and how to repair it; nothing is
rewritten from them (the index is never replaced by an empty one).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.labels import PITCH_CLASSES
from beatdbn.store.shard import (H5_SHARD_ATTR, H5_STORE_ATTR, METADATA_SCHEMA, SHARD_META_KEY, conform_metadata,
                                 no_space_is_data_error, read_shard_arrays, read_shard_table)
from beatdbn.utils.atomic import atomic_path, write_json

__all__ = ["FeatureStore", "TrackRecord", "FEATURE_NAMES", "STORE_FORMAT", "read_manifest", "shards_problem",
           "check_representations", "new_store_id", "MANIFEST"]

STORE_FORMAT = "beatdbn-feature-store"
FEATURE_NAMES = [f"chroma_{p}" for p in PITCH_CLASSES] + [
    f"timbre_{i:02d}" for i in range(12)
]
INDEX_FILE = "tracks.parquet"
MANIFEST = "store.json"
#: Fields of a shard's commit info the index keeps, so a read can verify the shard (and see it was replaced).
_VERIFY_KEYS = ("h5_bytes", "h5_blake2b", "store_id")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackRecord:
    """One track of a store.

    Attributes
    ----------
    features : np.ndarray [shape=(n_beats, 24), dtype=float32]
        12 chroma then 12 timbre per beat, as stored (no normalization). Its own copy (as ``beats``): holding
        a record does not keep its shard in memory.
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


def new_store_id() -> str:
    """A fresh store id (a random UUID, hex)."""
    return uuid.uuid4().hex


def write_manifest(path: Path, *, store_id: str | None = None, replace: bool = False) -> None:
    """Create ``store.json`` with a new store id (idempotent unless ``replace``: then ``store_id`` is written).

    A folder that already holds shards or an index but lost its manifest gets none here (a new id would make
    its own shards look foreign): :func:`read_manifest` then names ``beatdbn check --repair``.
    """
    manifest = Path(path) / MANIFEST
    if replace or not (manifest.exists() or manifest.is_symlink() or _looks_like_store(Path(path))):
        Path(path).mkdir(parents=True, exist_ok=True)
        with no_space_is_data_error(manifest):
            write_json(manifest, {"format": STORE_FORMAT, "version": 1, "features": FEATURE_NAMES,
                                  "store_id": store_id or new_store_id()})


def _looks_like_store(path: Path) -> bool:
    """True when ``path`` holds what a store is made of (an index or a shards folder), whatever its manifest."""
    return (path / INDEX_FILE).is_file() or os.path.lexists(path / "shards")


def read_manifest(path) -> dict:
    """The parsed ``store.json`` of the store at ``path`` (``store_id`` None for a store written before ids).

    Raises
    ------
    DataError
        No manifest (not a store); a manifest that is not a beatdbn one:
        when the folder holds shards or an index, the message says so and
        names ``beatdbn check STORE --repair``, which rewrites it.
    """
    path = Path(path)
    manifest = path / MANIFEST
    if not (manifest.exists() or manifest.is_symlink()) and _looks_like_store(path):
        raise DataError(f"{manifest}: missing, but {path} holds a feature store's shards/index; run "
                        f"`beatdbn check {path} --repair` to rewrite store.json (the shards and index are kept)")
    if not (manifest.exists() or manifest.is_symlink()):
        raise DataError(f"{path}: not a beatdbn feature store (no store.json); create one with `beatdbn extract`")
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        problem = None if isinstance(doc, dict) and doc.get("format") == STORE_FORMAT else "not a beatdbn manifest"
    except OSError as exc:
        doc, problem = None, f"unreadable ({'a symlink loop' if exc.errno == errno.ELOOP else exc.strerror or exc})"
    except ValueError:
        doc, problem = None, "not JSON (garbage)"
    if problem is None:
        sid = doc.get("store_id")
        if sid is not None and not (isinstance(sid, str) and len(sid) == 32 and all(c in "0123456789abcdef" for c in sid)):
            problem = f"store_id {str(sid)[:40]!r} is not a store id"
        else:
            return dict(doc, store_id=sid)
    if _looks_like_store(path):
        raise DataError(f"{manifest}: {problem}, but {path} holds a feature store's shards/index; run "
                        f"`beatdbn check {path} --repair` to rewrite store.json (the shards and index are kept)")
    raise DataError(f"{manifest}: {problem}; not a beatdbn feature store manifest")


def shards_problem(path) -> str | None:
    """Why ``STORE/shards`` cannot be listed (a symlink loop, a link to nothing, not a folder), else None."""
    shards = Path(path) / "shards"
    if not os.path.lexists(shards):
        return None
    if shards.is_symlink():
        try:
            target = os.readlink(shards)
            shards.resolve(strict=True)
        except RuntimeError:
            return f"{shards} is a symlink loop (-> {target})"
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return f"{shards} is a symlink loop (-> {target})"
            return f"{shards} is a symlink to {target}, which does not exist"
    try:
        if not shards.is_dir():
            return f"{shards} is not a folder"
        os.listdir(shards)
    except OSError as exc:
        return f"{shards}: cannot be listed ({'a symlink loop' if exc.errno == errno.ELOOP else exc.strerror})"
    return None


def committed_shards(path: Path) -> dict[int, Path]:
    """Shard number -> Parquet path, for every committed shard of a store.

    Raises
    ------
    DataError
        ``STORE/shards`` is a symlink loop, a link to nothing or not a folder
        (:func:`shards_problem`): the store's shards cannot be seen, which
        must never read as "no shards".
    """
    problem = shards_problem(path)
    if problem:
        raise DataError(f"{problem}; the store's shards cannot be read. Point STORE/shards at the real shards "
                        f"folder (or restore it), then run `beatdbn check {path}`")
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


def _read_index(index: Path, shards: dict[int, Path]) -> tuple[pa.Table, list[dict], dict[int, dict]] | None:
    """``tracks.parquet`` (table, skipped, what it recorded of each shard) when it is readable and covers
    exactly ``shards``, else None."""
    if not index.exists():
        return None
    try:
        table = pq.read_table(index)
        info = json.loads((table.schema.metadata or {}).get(SHARD_META_KEY, b"{}"))
        if info.get("shards") != list(shards):
            return None
        verify = {int(k): v for k, v in (info.get("verify") or {}).items()}
        return conform_metadata(table).replace_schema_metadata(None), info.get("skipped", []), verify
    except (OSError, ValueError, TypeError, KeyError, pa.ArrowException) as exc:
        log.warning("%s: unreadable index (%s); rebuilt from the shards (`beatdbn check %s --repair` rewrites it)",
                    index, type(exc).__name__, index.parent)
        return None


def load_index(path: Path) -> tuple[pa.Table, list[dict]]:
    """All shards' metadata in one table and the skipped inputs (see :func:`load_index_verified`)."""
    table, skipped, _ = load_index_verified(path)
    return table, skipped


def load_index_verified(path: Path, *, from_shards: bool = False) -> tuple[pa.Table, list[dict], dict[int, dict]]:
    """All shards' metadata in one table, the skipped inputs, and each shard's size, checksum and store id.

    Uses ``tracks.parquet`` when it is readable and covers exactly the
    committed shards (unless ``from_shards``), else concatenates the shards'
    own tables.

    Raises
    ------
    DataError
        A shard's Parquet file is damaged (the message names it and
        ``beatdbn check --repair``).
    """
    shards = committed_shards(path)
    cached = None if from_shards else _read_index(Path(path) / INDEX_FILE, shards)
    if cached is not None:
        table, skipped, verify = cached
        for n in set(shards) - set(verify):  # an index written before it recorded them: from the commit files
            info = read_shard_table(shards[n])[1]
            verify[n] = {k: info[k] for k in _VERIFY_KEYS if k in info}
        return table, skipped, verify
    tables, infos = [], []
    for p in shards.values():
        table, info = read_shard_table(p)
        tables.append(table)
        infos.append(info)
    table = pa.concat_tables(tables) if tables else METADATA_SCHEMA.empty_table()
    verify = {n: {k: info[k] for k in _VERIFY_KEYS if k in info} for n, info in zip(shards, infos)}
    return table, current_skipped(infos), verify


def write_index(path: Path, *, from_shards: bool = False) -> pa.Table:
    """Consolidate the shards' metadata into ``tracks.parquet`` (atomically).

    The index also records each shard's size, checksum and store id, so a
    shard replaced after the index was written is seen (by reads and by
    ``beatdbn check``). ``from_shards`` rebuilds it from the shards' own
    commit files even when the current index covers them.
    """
    shards = committed_shards(path)
    index = Path(path) / INDEX_FILE
    table, skipped, verify = load_index_verified(path, from_shards=from_shards)
    meta = {SHARD_META_KEY: json.dumps({"shards": list(shards), "skipped": skipped,
                                        "verify": {str(k): v for k, v in verify.items()}}).encode()}
    with no_space_is_data_error(index), atomic_path(index) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)
    return table


class FeatureStore:
    """A read-only view of a feature store folder.

    Open with :meth:`FeatureStore.open`. Records come back as
    :class:`TrackRecord`; ``store[track_id]`` reads one track,
    :meth:`iter_batches` streams many, one shard in memory at a time.
    """

    def __init__(self, path: Path, table: pa.Table, skipped: list[dict], *, cache_shards: int = 8,
                 verify: dict[int, dict] | None = None, store_id: str | None = None):
        self.path = Path(path)
        self.metadata = table
        self.skipped = skipped
        self.store_id = store_id  # None: a store written before ids (no identity check)
        self._verify = dict(verify or {})
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
        manifest = read_manifest(path)
        table, skipped, verify = load_index_verified(path)
        return cls(path, table, skipped, verify=verify, store_id=manifest["store_id"])

    @staticmethod
    def check_manifest(path) -> None:
        """Raise DataError unless ``path`` holds a beatdbn store manifest (see :func:`read_manifest`)."""
        read_manifest(path)

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

    def representations(self, track_ids: Iterable[str] | None = None) -> dict[str, int]:
        """How many of the (unique) tracks, or of ``track_ids``, have each representation ("echonest", "audio").

        A track without one (a store older than the column) counts as "echonest".
        """
        rows = self.select_rows(track_ids) if track_ids is not None else self.select_rows()
        kinds = self.metadata.column("representation").to_pylist() if len(self.metadata) else []
        out: dict[str, int] = {}
        for i in rows:
            kind = kinds[int(i)] or "echonest"
            out[kind] = out.get(kind, 0) + 1
        return out

    def meta(self, track_id: str) -> dict:
        """The metadata row of one track, without reading its features."""
        return self.metadata.slice(self._index[track_id], 1).to_pylist()[0]

    # -- reading -------------------------------------------------------------------------
    def _load_shard(self, shard: int):
        if shard in self._cache:
            self._cache.move_to_end(shard)
            return self._cache[shard]
        h5_path = self.path / "shards" / f"shard-{shard:06d}.h5"
        if shard not in self._verify:  # a store opened from parts: what the commit recorded
            try:
                info = read_shard_table(h5_path.with_suffix(".parquet"))[1]
            except DataError:
                info = {}
            self._verify[shard] = {k: info[k] for k in _VERIFY_KEYS if k in info}
        expect = self._verify[shard]
        arrays, reason = read_shard_arrays(h5_path, expect)
        if arrays is not None:
            # a shard stamped by `check --repair` carries the id in its commit only (bound to the h5 by the checksum)
            have_id = arrays[3].get(H5_STORE_ATTR) or expect.get("store_id")
            have_shard = arrays[3].get(H5_SHARD_ATTR)
            if self.store_id is not None and have_id != self.store_id:
                reason = (f"it belongs to another store (id {have_id})" if have_id else
                          "it carries no store id: copied in from another store")
            elif have_shard is not None and int(have_shard) != shard:
                reason = f"it was written as shard {int(have_shard)} (copied or renamed)"
        if reason is not None:
            raise DataError(f"{h5_path}: damaged shard ({reason}); run `beatdbn check {self.path} --repair`, "
                            f"then `beatdbn extract` to redo its inputs")
        data = arrays[:3]
        self._cache[shard] = data
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return data

    def _record(self, i: int, shard_data=None) -> TrackRecord:
        feats, beats, offsets = shard_data or self._load_shard(int(self._shard[i]))
        r = int(self._row[i])
        a, b = offsets[r], offsets[r + 1]
        meta = self.metadata.slice(i, 1).to_pylist()[0]
        # copies: a view would keep its whole shard alive for as long as the caller holds the track
        return TrackRecord(meta["track_id"], feats[a:b].copy(), beats[a:b].copy(), meta)

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
        (``cache_shards``), so memory stays a few shards. Each array is a copy of its beats, never a view
        into the shard: a caller that keeps 3,000 tracks spread over 50 shards holds 3,000 tracks, not
        50 shards.
        """
        out = []
        for i in rows:
            feats, _, offsets = self._load_shard(int(self._shard[i]))
            r = int(self._row[i])
            out.append(feats[offsets[r]:offsets[r + 1]].copy())
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


#: How each representation is named in messages.
_KIND_NAMES = {"echonest": "Echo Nest features (MSD .h5 files)", "audio": "audio analysed by beatdbn's front-end"}


def check_representations(found: dict[str, int], *, expected: str | None = None, what: str = "the tracks") -> str:
    """The one representation of ``found`` (counts, e.g. :meth:`FeatureStore.representations`).

    Parameters
    ----------
    found : dict
        Representation -> number of tracks.
    expected : str, optional
        The representation a model was trained on (e.g. a pretrained DBN's,
        or a run's); tracks of another kind are refused.
    what : str
        What the tracks are, for the message ("the train split of key").

    Raises
    ------
    DataError
        ``found`` mixes representations, or holds another one than
        ``expected``: the two share a layout, not a meaning, so a model must
        see one kind only. The message gives the counts and the fix.
    """
    kinds = {k: v for k, v in found.items() if v}
    listing = ", ".join(f"{v:,} {_KIND_NAMES.get(k, k)}" for k, v in sorted(kinds.items()))
    if len(kinds) > 1:
        raise DataError(f"{what} mix feature representations ({listing}); a model must see one kind only: extract "
                        f"MSD files and audio into separate stores")
    if expected and kinds and next(iter(kinds)) != expected:
        raise DataError(f"{what} hold {listing}, but the model was trained on {_KIND_NAMES.get(expected, expected)}; "
                        f"use a model trained on the same kind of features")
    return next(iter(kinds), expected or "echonest")
