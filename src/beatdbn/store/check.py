"""Verify a feature store and repair what can be repaired (``beatdbn check STORE [--repair]``).

Every committed shard is checked:

* its commit file (``shard-N.parquet``) reads;
* its h5 file has the size and BLAKE2b checksum recorded at commit time
  (shards written before checksums existed skip this one check);
* the h5 file reads, holds ``features`` (n, 24), ``beats`` (n,) and
  ``offsets`` that agree with the metadata's row count and ``n_beats``;
* every feature value and beat time is finite.

The index (``tracks.parquet``) must read and cover exactly the committed
shards. Leftovers of killed runs (temporary files, shards never committed)
are listed.

``repair=True`` (holding the store's lock) moves each broken shard's files to
``STORE/damaged/``, so its inputs are no longer "done" and the next
``beatdbn extract`` with the same sources redoes exactly them; removes the
leftovers; and rewrites the index from the remaining shards.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from beatdbn.exceptions import DataError
from beatdbn.store.lock import StoreLock
from beatdbn.store.reader import INDEX_FILE, FeatureStore, _read_index, committed_shards, write_index
from beatdbn.store.shard import N_DIMS, checksum, read_shard_table
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
    leftovers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    inputs_to_redo: int | None = 0  # None: unknown (a broken commit file no longer names its inputs)

    @property
    def ok(self) -> bool:
        return not self.broken and self.index_problem is None

    def as_dict(self) -> dict:
        return dict(self.__dict__, ok=self.ok)


def _check_shard(number: int, pq_path: Path) -> tuple[str | None, dict, int, int]:
    """(problem or None, the shard's info, tracks, beats) of one committed shard."""
    try:
        table, info = read_shard_table(pq_path)
    except DataError as exc:
        return f"unreadable commit file ({str(exc).split('(', 1)[-1].split(')')[0]})", {}, 0, 0
    h5_path = pq_path.with_suffix(".h5")
    try:
        data = h5_path.read_bytes()
    except OSError as exc:
        return f"{h5_path.name}: cannot read ({exc.strerror or exc})", info, 0, 0
    if "h5_bytes" in info and len(data) != info["h5_bytes"]:
        return f"{h5_path.name}: {len(data):,} bytes, {info['h5_bytes']:,} at commit (truncated or replaced)", info, 0, 0
    if "h5_blake2b" in info and checksum(data) != info["h5_blake2b"]:
        return f"{h5_path.name}: checksum differs from the one recorded at commit (damaged)", info, 0, 0
    try:
        with h5py.File(io.BytesIO(data), "r") as h5:
            feats, beats, offsets = h5["features"][()], h5["beats"][()], h5["offsets"][()]
    except (OSError, KeyError, ValueError) as exc:
        return f"{h5_path.name}: unreadable ({str(exc).split('(')[0].strip() or type(exc).__name__})", info, 0, 0
    n = table.num_rows
    if feats.ndim != 2 or feats.shape[1] != N_DIMS or len(beats) != len(feats):
        return f"{h5_path.name}: features {feats.shape} and beats {beats.shape} do not fit (n, {N_DIMS})", info, 0, 0
    if len(offsets) != n + 1 or offsets[0] != 0 or offsets[-1] != len(feats) or (np.diff(offsets) < 0).any():
        return f"{h5_path.name}: offsets do not match the {n} tracks and {len(feats)} beats", info, 0, 0
    if not np.array_equal(np.diff(offsets), table.column("n_beats").to_numpy(zero_copy_only=False)):
        return f"{h5_path.name}: per-track beat counts differ from the metadata", info, 0, 0
    if "tracks" in info and info["tracks"] != n:
        return f"commit file lists {info['tracks']} tracks but holds {n} rows", info, 0, 0
    if not (np.isfinite(feats).all() and np.isfinite(beats).all()):
        bad = int((~np.isfinite(feats)).any(axis=1).sum())
        return f"{h5_path.name}: {bad} beats with non-finite feature values", info, 0, 0
    if "h5_blake2b" not in info:
        return None, dict(info, _no_checksum=True), n, len(feats)
    return None, info, n, len(feats)


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
        ``path`` is not a feature store; another process writes it (``repair``
        without ``wait``).
    """
    store = Path(path)
    FeatureStore.check_manifest(store)
    if repair:
        with StoreLock(store, wait=wait):
            return _check(store, repair=True)
    return _check(store, repair=False)


def _check(store: Path, *, repair: bool) -> CheckReport:
    report = CheckReport(store=str(store))
    shards = committed_shards(store)
    report.shards = len(shards)
    no_checksum = 0
    for number, pq_path in shards.items():
        problem, info, n_tracks, n_beats = _check_shard(number, pq_path)
        if problem is None:
            report.tracks += n_tracks
            report.beats += n_beats
            no_checksum += bool(info.get("_no_checksum"))
            continue
        inputs = info.get("sources")
        report.broken.append({"shard": number, "files": [str(pq_path), str(pq_path.with_suffix(".h5"))],
                              "reason": problem, "inputs": len(inputs) if inputs is not None else None})
        if report.inputs_to_redo is not None:
            report.inputs_to_redo = None if inputs is None else report.inputs_to_redo + len(inputs)
    if no_checksum:
        report.notes.append(f"{no_checksum} shards have no checksum (written by an older beatdbn): "
                            f"checked for readability, counts and finite values only")
    index = store / INDEX_FILE
    if index.exists():
        try:
            import pyarrow.parquet as pq

            pq.read_metadata(index)
        except Exception as exc:  # any failure to parse it means the same: rebuild it
            report.index_problem = f"{index.name}: unreadable ({type(exc).__name__}); it is rebuilt from the shards"
        else:
            if _read_index(index, shards) is None:
                report.notes.append(f"{index.name}: stale (does not cover exactly the committed shards); "
                                    f"readers rebuild it in memory")
    report.leftovers = [str(p) for p in _leftovers(store, shards)]
    if not repair:
        return report

    damaged = store / DAMAGED_DIR
    for b in report.broken:
        damaged.mkdir(exist_ok=True)
        for f in map(Path, b["files"]):
            if f.exists():
                os.replace(f, damaged / f.name)
        report.repaired.append(f"shard {b['shard']}: moved to {damaged} ({b['reason']})")
    for p in map(Path, report.leftovers):
        p.unlink(missing_ok=True)
    if report.leftovers:
        report.repaired.append(f"removed {len(report.leftovers)} leftovers of interrupted runs")
    if report.broken or report.index_problem or index.exists() or shards:
        if report.index_problem:
            index.unlink(missing_ok=True)
        write_index(store)
        report.repaired.append(f"rewrote {index.name} from {len(committed_shards(store))} shards")
    return report
