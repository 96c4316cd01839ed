"""Parallel, resumable extraction of input files into a feature store.

Flow::

    SRC files/folders --find_inputs--> sorted input list (MSD .h5 and audio files)
        minus inputs already in committed shards (resume)
        --chunks of `shard_size` files--> one Dask task per shard:
            read each file (every song of an .h5; one audio file through the
            audio front-end, with its labels) -> beat-align -> write the shard atomically
        --> tracks.parquet index + report.json (skipped inputs with reasons)

Labels for audio (artist, genre, key) come from ``labels`` (path -> dict, e.g.
:func:`beatdbn.labels.read_label_csv`) and/or ``folder_label`` (the
first folder below a source folder names it); the CSV wins where both give
one. Labels are read when a file is extracted: a resumed run does not relabel
files already in the store.

A file that cannot be read is skipped with a one-line reason and listed in
the store's report; the rest of the run completes. A killed run leaves only
whole shards, and a rerun processes just the inputs no committed shard holds.

Scheduler: ``"local"`` (default) starts a Dask ``LocalCluster`` of worker
processes; ``"sync"`` runs in this process; ``"tcp://HOST:PORT"`` uses an
existing Dask scheduler (workers must see the same paths).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from beatdbn.exceptions import BeatdbnError, DataError, ParameterError
from beatdbn.features.sources import INPUT_SUFFIXES, MSD_SUFFIXES, read_features
from beatdbn.store.reader import FeatureStore, committed_shards, write_index, write_manifest
from beatdbn.store.shard import ShardData, read_shard_table, write_shard

__all__ = ["extract", "find_inputs", "ExtractReport", "extract_shard", "MSD_SUFFIXES", "INPUT_SUFFIXES"]

log = logging.getLogger(__name__)


@dataclass
class ExtractReport:
    """What an extraction run did."""

    store: str
    inputs: int = 0
    already_done: int = 0
    shards_written: int = 0
    tracks_added: int = 0
    beats_added: int = 0
    skipped: list[dict] = field(default_factory=list)
    tracks_total: int = 0
    beats_total: int = 0
    seconds: float = 0.0
    labelled: int = 0  # inputs given labels (audio)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def find_inputs(sources: Iterable, *, suffixes: Sequence[str] = INPUT_SUFFIXES) -> tuple[list[str], list[dict]]:
    """Expand files and folders into a sorted list of input files.

    Folders are searched recursively for files whose suffix is in
    ``suffixes``; files named directly are taken whatever their suffix (and
    skipped later if unreadable). Returns ``(files, problems)`` where
    ``problems`` lists sources that gave nothing (missing path, empty folder).
    """
    files, problems = set(), []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            found = [q for q in p.rglob("*") if q.suffix.lower() in suffixes and q.is_file()]
            if not found:
                problems.append({"path": str(p), "reason": f"no {'/'.join(suffixes)} files in this folder"})
            files.update(str(q.resolve()) for q in found)
        elif p.is_file():
            files.add(str(p.resolve()))
        else:
            problems.append({"path": str(p), "reason": "no such file or folder"})
    return sorted(files), problems


def extract_shard(store: str, shard: int, files: list[str], throttle: float = 0.0,
                  labels: dict[str, dict] | None = None) -> dict:
    """Read, align and write one shard (runs on a Dask worker).

    ``labels`` maps input paths to their labels (audio). Returns the shard's
    info dict: tracks, beats and skipped inputs.
    """
    data = ShardData(shard=shard)
    labels = labels or {}
    for path in files:
        data.sources.append(path)
        n_before = len(data.meta)
        try:
            for meta, feats, beats in read_features(path, labels=labels.get(path)):
                data.add(meta, feats, beats)
        except BeatdbnError as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            data.skipped.append({"path": path, "reason": reason})
        except Exception as exc:  # a damaged file must not stop the batch
            data.skipped.append({"path": path, "reason": f"{type(exc).__name__}: {exc}"})
        else:
            continue
        # drop what a half-read aggregate file had added
        del data.meta[n_before:], data.features[n_before:], data.beats[n_before:]
    if throttle:
        time.sleep(throttle)
    write_shard(Path(store), data)
    return {"shard": shard, "files": len(files), "tracks": len(data.meta), "beats": data.n_beats,
            "skipped": data.skipped}


def _merge_labels(files: list[str], sources: list, labels: dict[str, dict] | None,
                  folder_label: str | None) -> dict[str, dict]:
    """Each input's labels: folder names first, the label file's entries over them."""
    from beatdbn.labels import folder_labels

    merged: dict[str, dict] = {}
    if folder_label:
        roots = [Path(s).resolve() for s in sources if Path(s).is_dir()]
        merged = folder_labels(files, roots, field=folder_label)
    for path, entry in (labels or {}).items():
        key = str(Path(path).resolve())
        if entry:
            merged[key] = {**merged.get(key, {}), **entry}
    wanted = {f for f in files if Path(f).suffix.lower() not in MSD_SUFFIXES}  # MSD files carry their own
    return {p: e for p, e in merged.items() if p in wanted and e}


def _subset(labels: dict[str, dict], chunk: list[str]) -> dict[str, dict]:
    return {p: labels[p] for p in chunk if p in labels}


def _done_inputs(store: Path) -> set[str]:
    done = set()
    for p in committed_shards(store).values():
        _, info = read_shard_table(p)
        done.update(info.get("sources", []))
    return done


def _clean_leftovers(store: Path) -> int:
    """Remove what a killed run left: temporary files and shards never committed."""
    shards = store / "shards"
    if not shards.is_dir():
        return 0
    committed = set(committed_shards(store))
    stale = list(shards.glob(".*.tmp-*"))
    for h5 in shards.glob("shard-*.h5"):
        try:
            if int(h5.stem.split("-")[1]) not in committed:
                stale.append(h5)
        except (IndexError, ValueError):
            continue
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def _client(scheduler: str, workers: int | None):
    from dask.distributed import Client, LocalCluster

    for name in ("distributed", "tornado", "asyncio"):  # the progress bar is the user's view, not Dask's logs
        logging.getLogger(name).setLevel(logging.ERROR)
    if scheduler == "local":
        n = workers or max(1, min(os.cpu_count() or 1, 8))
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        return Client(cluster), cluster
    if scheduler.startswith(("tcp://", "tls://", "ucx://")) or ":" in scheduler:
        try:
            return Client(scheduler, timeout="10s"), None
        except OSError as exc:
            raise ParameterError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc})") from None
    raise ParameterError(f"--scheduler {scheduler!r}: expected 'local', 'sync' or an address like tcp://HOST:8786")


def extract(
    sources: Iterable,
    out,
    *,
    shard_size: int = 256,
    scheduler: str = "local",
    workers: int | None = None,
    on_progress: Callable[[dict], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    throttle: float = 0.0,
    labels: dict[str, dict] | None = None,
    folder_label: str | None = None,
) -> ExtractReport:
    """Extract every input into the store at ``out`` (created if needed).

    Parameters
    ----------
    sources : iterable of path
        Files and folders (searched recursively for ``.h5`` and audio files,
        see :data:`INPUT_SUFFIXES`).
    out : path
        The store folder.
    shard_size : int
        Input files per shard (an aggregate file counts as one).
    scheduler : str
        ``"local"``, ``"sync"`` or a Dask scheduler address.
    workers : int, optional
        Worker processes of the local cluster (default: the CPU count, max 8).
    on_progress : callable, optional
        Called with each finished shard's info dict.
    on_start : callable, optional
        Called with (files to do, shards to do) before work starts.
    throttle : float
        Seconds each shard task sleeps before writing (tests use it to kill a
        run mid-way); 0 in normal use.
    labels : dict, optional
        Resolved input path -> ``{"artist", "genre", "key", "mode"}`` (any of
        them) for audio files, e.g. from :func:`beatdbn.labels.read_label_csv`.
    folder_label : {"genre", "artist", "key"}, optional
        Label each file with the name of the first folder below the source
        folder it was found in (``SRC/rock/song.mp3`` -> genre "rock").

    Raises
    ------
    DataError
        No input file at all.
    """
    if shard_size < 1:
        raise ParameterError(f"shard_size must be >= 1, got {shard_size}")
    t0 = time.perf_counter()
    store = Path(out)
    sources = list(sources)
    files, problems = find_inputs(sources)
    report = ExtractReport(store=str(store), inputs=len(files), skipped=list(problems))
    if not files:
        where = ", ".join(p["path"] for p in problems) or "the given sources"
        raise DataError(f"{where}: no input files found")
    file_labels = _merge_labels(files, sources, labels, folder_label)
    report.labelled = len(file_labels)
    write_manifest(store)
    if _clean_leftovers(store):
        log.info("removed leftovers of an interrupted run in %s", store)
    done = _done_inputs(store)
    todo = [f for f in files if f not in done]
    report.already_done = len(files) - len(todo)
    next_shard = max(committed_shards(store), default=-1) + 1
    chunks = [todo[i : i + shard_size] for i in range(0, len(todo), shard_size)]
    jobs = [(next_shard + k, chunk) for k, chunk in enumerate(chunks)]
    if on_start:
        on_start(len(todo), len(jobs))

    def finished(info: dict) -> None:
        report.shards_written += 1
        report.tracks_added += info["tracks"]
        report.beats_added += info["beats"]
        report.skipped.extend(info["skipped"])
        for s in info["skipped"]:
            log.warning("skipped %s: %s", s["path"], s["reason"])
        if on_progress:
            on_progress(info)

    if scheduler == "sync" or len(jobs) <= 1:
        for shard, chunk in jobs:
            finished(extract_shard(str(store), shard, chunk, throttle, _subset(file_labels, chunk)))
    elif jobs:
        from dask.distributed import as_completed

        client, cluster = _client(scheduler, workers)
        try:
            futures = [client.submit(extract_shard, str(store), shard, chunk, throttle, _subset(file_labels, chunk),
                                     key=f"beatdbn-shard-{shard}", pure=False) for shard, chunk in jobs]
            for future in as_completed(futures):
                finished(future.result())
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    write_index(store)
    opened = FeatureStore.open(store)
    report.tracks_total, report.beats_total = len(opened), opened.n_beats
    report.seconds = time.perf_counter() - t0
    summary = report.as_dict()
    summary["skipped_all_runs"] = opened.skipped
    tmp = store / ".report.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(store / "report.json")
    return report
