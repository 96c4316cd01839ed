"""Verify a feature store and repair what can be repaired (``beatdbn check STORE [--repair]``).

Every committed shard is checked:

* its commit file (``shard-N.parquet``) reads;
* its h5 file has the size and BLAKE2b checksum recorded at commit time
  (shards written before checksums existed skip this one check);
* the h5 file reads (refusing links or storage outside it), holds
  ``features`` (n, 24), ``beats`` (n,) and ``offsets`` that agree with the
  metadata's row count and ``n_beats``, and every value is finite;
* **identity**: it carries the store's id (``store.json``'s ``store_id``) in
  its commit info and its h5 attributes, and its own number. A shard copied
  in from another store (or renamed from another number) is an error;
* **duplicate track ids**: a track id held by two shards (or twice by one)
  with *different* features is an error (reads would return one of them
  under the other's id); the same track read from two inputs (identical
  features, e.g. an MSD aggregate file and a per-track file, or two copies
  of one audio file) is a note, the first occurrence being the one read.

The index (``tracks.parquet``) must read, cover exactly the committed shards
and agree with each shard's checksum (a shard replaced after the index was
written is an error: the index would describe other tracks). Leftovers of
killed runs (temporary files, shards never committed) are listed.

**The store itself.** A ``shards/`` folder that is a symlink loop, a link to
nothing or a file is an error with one line; nothing is repaired from it
(the index is never rewritten as empty): restore the folder, then check
again. A ``store.json`` that is garbage (in a folder holding shards or an
index) is an error that ``--repair`` fixes: the bad file is kept in
``STORE/damaged/`` and a new manifest is written with the id the shards
carry. **A store written before ids** (no ``store_id``) is sound but
noted: shards copied in from elsewhere cannot be told apart; ``--repair``
stamps a new id into ``store.json`` and into every sound shard's commit
info (``"stamped": true``; the h5 file stays as it is, bound to its commit
by the checksum).

``repair=True`` (holding the store's lock) moves each broken shard's files
(symlinks included, as links) to ``STORE/damaged/``, so its inputs are no
longer "done" and the next ``beatdbn extract`` with the same sources redoes
exactly them; removes the leftovers; rewrites the manifest if needed and the
index from the remaining shards; stamps a store id if the store has none.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from beatdbn.exceptions import DataError
from beatdbn.store.lock import StoreLock
from beatdbn.store.reader import (INDEX_FILE, MANIFEST, _looks_like_store, _read_index, committed_shards,
                                  new_store_id, read_manifest, shards_problem, write_index, write_manifest)
from beatdbn.store.shard import H5_SHARD_ATTR, H5_STORE_ATTR, read_shard_arrays, read_shard_table, write_commit
from beatdbn.utils.atomic import TMP_MARK

__all__ = ["check_store", "CheckReport", "DAMAGED_DIR"]

DAMAGED_DIR = "damaged"


@dataclass
class CheckReport:
    """What :func:`check_store` found (and repaired)."""

    store: str
    shards: int = 0
    tracks: int = 0
    beats: int = 0
    broken: list[dict] = field(default_factory=list)  # {"shard", "files", "reason", "inputs"}
    index_problem: str | None = None
    manifest_problem: str | None = None  # store.json unreadable (repairable)
    shards_problem: str | None = None  # STORE/shards cannot be listed (not repairable here)
    store_id: str | None = None
    leftovers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    inputs_to_redo: int | None = 0  # None: unknown (a broken commit file no longer names its inputs)

    @property
    def ok(self) -> bool:
        return (not self.broken and self.index_problem is None and self.manifest_problem is None
                and self.shards_problem is None)

    def as_dict(self) -> dict:
        return dict(self.__dict__, ok=self.ok)


def _identity_problem(number: int, table, info: dict, attrs: dict, store_id: str | None) -> str | None:
    """Why a readable shard is not this store's shard number ``number``, else None."""
    shard_col = set(table.column("shard").to_pylist()) if table.num_rows else set()
    numbers = {int(x) for x in (info.get("shard"), attrs.get(H5_SHARD_ATTR)) if x is not None} | shard_col
    if numbers - {number}:
        return f"written as shard {min(numbers - {number})}, found as shard {number} (copied or renamed)"
    if store_id is None:
        return None
    ids = {x for x in (info.get("store_id"), attrs.get(H5_STORE_ATTR)) if x is not None}
    if not ids:
        return f"carries no store id (this store is {store_id}): copied in from a store written before ids"
    if ids != {store_id}:
        return f"belongs to another store (id {min(ids - {store_id})}; this store is {store_id}): copied in"
    return None


def _check_shard(number: int, pq_path: Path, store_id: str | None, dup_rows: set[int]
                 ) -> tuple[str | None, dict, int, int, dict[int, str]]:
    """(problem or None, the shard's info, tracks, beats, digest of each row in ``dup_rows``) of one shard."""
    try:
        table, info = read_shard_table(pq_path)
    except DataError as exc:
        return f"unreadable commit file ({str(exc).split('(', 1)[-1].split(')')[0]})", {}, 0, 0, {}
    h5_path = pq_path.with_suffix(".h5")
    n = table.num_rows
    if "tracks" in info and info["tracks"] != n:
        return f"commit file lists {info['tracks']} tracks but holds {n} rows", info, 0, 0, {}
    arrays, reason = read_shard_arrays(h5_path, info, n)
    if arrays is None:
        return f"{h5_path.name}: {reason}", info, 0, 0, {}
    feats, beats, offsets, attrs = arrays
    if not np.array_equal(np.diff(offsets), table.column("n_beats").to_numpy(zero_copy_only=False)):
        return f"{h5_path.name}: per-track beat counts differ from the metadata", info, 0, 0, {}
    problem = _identity_problem(number, table, info, attrs, store_id)
    if problem:
        return f"{h5_path.name}: {problem}", info, 0, 0, {}
    digests = {r: hashlib.blake2b(feats[offsets[r]:offsets[r + 1]].tobytes(), digest_size=16).hexdigest()
               for r in dup_rows}
    if "h5_blake2b" not in info:
        info = dict(info, _no_checksum=True)
    return None, info, n, len(feats), digests


def _leftovers(store: Path, committed: dict[int, Path]) -> list[Path]:
    out = []
    for folder in (store, store / "shards"):
        if folder.is_dir():
            out.extend(sorted(folder.glob(f"*{TMP_MARK}*")))
    shards = store / "shards"
    if shards.is_dir():
        for h5 in sorted(shards.glob("shard-*.h5")):
            try:
                if int(h5.stem.split("-")[1]) not in committed:
                    out.append(h5)
            except (IndexError, ValueError):
                continue
    return out


def check_store(path, *, repair: bool = False, wait: bool = False) -> CheckReport:
    """Verify every shard and the index of the store at ``path``; with ``repair``, fix what is broken.

    Raises
    ------
    DataError
        ``path`` is not a feature store (no manifest, nor shards or an index);
        another process writes it (``repair`` without ``wait``).
    """
    store = Path(path)
    if repair:
        _manifest_or_problem(store)  # not a store at all: stop before creating a lock file in it
        with StoreLock(store, wait=wait):
            return _check(store, repair=True)
    return _check(store, repair=False)


def _manifest_or_problem(store: Path) -> tuple[dict | None, str | None]:
    """(manifest, None), or (None, the one-line problem) for a store whose store.json is broken."""
    try:
        return read_manifest(store), None
    except DataError as exc:
        if _looks_like_store(store):  # a missing or garbage store.json beside shards: repairable
            return None, str(exc)
        raise


def _duplicate_rows(tables: dict[int, object]) -> tuple[dict[str, list[tuple[int, int]]], dict[int, set[int]]]:
    """Track ids held more than once: id -> [(shard, row), ...]; and shard -> its rows among them."""
    where: dict[str, list[tuple[int, int]]] = {}
    for number, table in tables.items():
        for row, tid in enumerate(table.column("track_id").to_pylist()):
            where.setdefault(tid, []).append((number, row))
    dups = {tid: places for tid, places in where.items() if len(places) > 1}
    rows: dict[int, set[int]] = {}
    for places in dups.values():
        for number, row in places:
            rows.setdefault(number, set()).add(row)
    return dups, rows


def _check(store: Path, *, repair: bool) -> CheckReport:
    report = CheckReport(store=str(store))
    manifest, report.manifest_problem = _manifest_or_problem(store)
    report.shards_problem = shards_problem(store)
    if report.shards_problem:
        report.shards_problem += ("; the store's shards cannot be read. Point STORE/shards at the real shards "
                                  "folder (or restore it), then run `beatdbn check` again (nothing was rewritten: "
                                  "the index is kept)")
        return report
    shards = committed_shards(store)
    report.shards = len(shards)
    recorded_ids = {}
    tables = {}
    for number, pq_path in shards.items():
        try:
            table, info = read_shard_table(pq_path)
        except DataError:
            continue
        tables[number] = table
        if info.get("store_id"):
            recorded_ids[number] = info["store_id"]
    if manifest is not None:
        report.store_id = manifest["store_id"]
    else:  # a broken store.json: the id the shards carry (the most common one), if any
        ids = list(recorded_ids.values())
        report.store_id = max(set(ids), key=ids.count) if ids else None
    dups, dup_rows = _duplicate_rows(tables)

    no_checksum = 0
    digests: dict[tuple[int, int], str] = {}
    infos: dict[int, dict] = {}
    for number, pq_path in shards.items():
        problem, info, n_tracks, n_beats, rows = _check_shard(number, pq_path, report.store_id,
                                                              dup_rows.get(number, set()))
        if problem is None:
            report.tracks += n_tracks
            report.beats += n_beats
            no_checksum += bool(info.get("_no_checksum"))
            infos[number] = info
            digests.update({(number, r): d for r, d in rows.items()})
            continue
        _add_broken(report, number, pq_path, problem, info.get("sources"))
    _check_duplicates(report, shards, dups, digests)
    if no_checksum:
        report.notes.append(f"{no_checksum} shards have no checksum (written by an older beatdbn): "
                            f"checked for readability, counts and finite values only")
    if report.store_id is None and manifest is not None:
        report.notes.append(f"{store} has no store id (written by an older beatdbn): shards copied in from another "
                            f"store cannot be told apart; run `beatdbn check {store} --repair` to stamp one")
    _check_index(store, shards, infos, report)
    report.leftovers = [str(p) for p in _leftovers(store, shards)]
    if repair:
        _repair(store, report, manifest)
    return report


def _add_broken(report: CheckReport, number: int, pq_path: Path, reason: str, inputs) -> None:
    if any(b["shard"] == number for b in report.broken):
        return
    report.broken.append({"shard": number, "files": [str(pq_path), str(pq_path.with_suffix(".h5"))],
                          "reason": reason, "inputs": len(inputs) if inputs is not None else None})
    if report.inputs_to_redo is not None:
        report.inputs_to_redo = None if inputs is None else report.inputs_to_redo + len(inputs)


def _check_duplicates(report: CheckReport, shards: dict[int, Path], dups: dict, digests: dict) -> None:
    """Track ids held more than once by sound shards: different features break the later shard, same is a note."""
    broken = {b["shard"] for b in report.broken}
    same = 0
    for tid, places in dups.items():
        places = [p for p in places if p[0] not in broken]
        if len(places) < 2:
            continue
        first = digests.get(places[0])
        for number, row in places[1:]:
            if digests.get((number, row)) == first:
                same += 1
                continue
            try:
                inputs = read_shard_table(shards[number])[1].get("sources")
            except DataError:
                inputs = None
            _add_broken(report, number, shards[number],
                        f"track {tid} (row {row}) is also in shard {places[0][0]} with other features "
                        f"(duplicate track id)", inputs)
    if same:
        report.notes.append(f"{same} tracks are held twice with identical features (the same track from two inputs); "
                            f"the first is read")


def _check_index(store: Path, shards: dict[int, Path], infos: dict[int, dict], report: CheckReport) -> None:
    index = store / INDEX_FILE
    if not index.exists():
        return
    try:
        import pyarrow.parquet as pq

        pq.read_metadata(index)
    except Exception as exc:  # any failure to parse it means the same: rebuild it
        report.index_problem = f"{index.name}: unreadable ({type(exc).__name__}); it is rebuilt from the shards"
        return
    cached = _read_index(index, shards)
    if cached is None:
        report.notes.append(f"{index.name}: stale (does not cover exactly the committed shards); "
                            f"readers rebuild it in memory")
        return
    replaced = [n for n, rec in cached[2].items()
                if n in infos and rec.get("h5_blake2b") and rec.get("h5_blake2b") != infos[n].get("h5_blake2b")]
    if replaced:
        report.index_problem = (f"{index.name}: shard {', '.join(map(str, replaced))} differs from the one the index "
                                f"recorded (replaced after the index was written); `--repair` rebuilds the index "
                                f"from the shards")


def _move_aside(store: Path, path: Path) -> None:
    """Move ``path`` (a file or a symlink, even a looping one) into ``STORE/damaged/``."""
    if os.path.lexists(path):
        damaged = store / DAMAGED_DIR
        damaged.mkdir(exist_ok=True)
        os.replace(path, damaged / path.name)


def _stamp_shard(pq_path: Path, store_id: str) -> None:
    """Write ``store_id`` into a sound shard's commit info (one atomic rename; the h5 file, bound to the commit
    by its checksum, is left as it is)."""
    table, info = read_shard_table(pq_path)
    write_commit(pq_path, table, dict(info, store_id=store_id, stamped=True))


def _repair(store: Path, report: CheckReport, manifest: dict | None) -> None:
    for b in report.broken:
        for f in map(Path, b["files"]):
            _move_aside(store, f)
        report.repaired.append(f"shard {b['shard']}: moved to {store / DAMAGED_DIR} ({b['reason']})")
    for p in map(Path, report.leftovers):
        p.unlink(missing_ok=True)
    if report.leftovers:
        report.repaired.append(f"removed {len(report.leftovers)} leftovers of interrupted runs")
    if report.manifest_problem:
        _move_aside(store, store / MANIFEST)
        write_manifest(store, store_id=report.store_id, replace=True)
        kept = f"the shards' id {report.store_id}" if report.store_id else "a new id"
        report.repaired.append(f"rewrote {MANIFEST} with {kept} (the broken one is in {store / DAMAGED_DIR})")
        manifest = {"store_id": report.store_id}  # no id: stamped below
    shards = committed_shards(store)
    if manifest is None or manifest.get("store_id") is None:
        store_id = new_store_id()
        for pq_path in shards.values():
            _stamp_shard(pq_path, store_id)
        write_manifest(store, store_id=store_id, replace=True)  # last: an interrupted stamp is redone whole
        report.store_id = store_id
        report.repaired.append(f"stamped store id {store_id} into {MANIFEST} and {len(shards)} shards")
    index = store / INDEX_FILE
    if report.broken or report.index_problem or index.exists() or shards:
        write_index(store, from_shards=True)
        report.repaired.append(f"rewrote {index.name} from {len(shards)} shards")
