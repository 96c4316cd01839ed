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
one, and each file where they differ is named in ``ExtractReport.notes``.
Label rows naming files that do not exist, or are not among the inputs, are
counted and the first few named there too.

**Changed labels are applied on a rerun.** A rerun given labels compares,
for every audio track of its inputs already in the store, the labels given
now with the metadata stored (``artist_name``/``artist_id``, ``genre``,
``key``, ``mode``) and rewrites the differing shards' commit files (the
metadata table only: features are not extracted again; the h5 file and its
checksum are untouched). ``ExtractReport.relabelled`` counts the tracks.
A label left out of the new file is not removed from the store (give the
corrected value instead).

**One representation per store.** A store holds MSD (Echo Nest) tracks or
audio tracks, not both: the two share a layout, not a meaning. Inputs of
the other kind than the store's (or a mix of both in one run) stop the run
before anything is written, unless ``allow_mixed=True`` (``--allow-mixed``);
``tasks``, ``finetune``, ``evaluate`` and ``embed`` refuse a mix in what
they use.

**Identity.** A new store gets a random id in ``store.json``; every shard
carries it (:mod:`beatdbn.store.shard`). A store written before ids gets no
id from ``extract`` (its report notes says so): ``beatdbn check --repair``
stamps one.

A file that cannot be read is skipped with a one-line reason and listed in
the store's report; the rest of the run completes. A killed run leaves only
whole shards, and a rerun processes just the inputs no committed shard holds,
plus the skipped inputs whose size, modification time or status-change time
changed since (a fixed file, a permission fix; ``retry_skipped=True`` retries
every skipped input).

One writer at a time: a run holds the store's lock (:class:`StoreLock`, an
OS-level ``flock`` that dies with its process); a second run stops with one
line naming the holder's pid, or waits (``wait=True``). Leftovers of killed
runs (temporary files, uncommitted shards) are removed under the lock, and a
temporary file whose writer (the pid in its name) still runs is never touched.

Folders are searched recursively; symlinked sub-folders are followed (each
real folder once, so a link loop ends; ``ExtractReport.notes`` says which
links were followed). The output store is never read as input, even when it
lies inside a source folder. A full disk stops the run with one line ("no
space left on device while writing ...") and leaves the committed shards
intact.

Scheduler: ``"local"`` (default) starts a Dask ``LocalCluster`` of worker
processes; ``"sync"`` runs in this process; ``"tcp://HOST:PORT"`` uses an
existing Dask scheduler (workers must see the same paths).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from beatdbn.exceptions import BeatdbnError, DataError, ParameterError
from beatdbn.features.sources import (INPUT_SUFFIXES, MSD_SUFFIXES, REPRESENTATION_AUDIO, REPRESENTATION_MSD,
                                     _artist_id, is_msd_file, read_features)
from beatdbn.labels import folder_labels, parse_key
from beatdbn.store.lock import StoreLock, pid_alive
from beatdbn.store.reader import FeatureStore, committed_shards, read_manifest, write_index, write_manifest
from beatdbn.store.shard import ShardData, no_space_is_data_error, read_shard_table, write_commit, write_shard
from beatdbn.utils.cluster import check_scheduler, dask_client
from beatdbn.utils.atomic import TMP_MARK, write_json

__all__ = ["extract", "find_inputs", "ExtractReport", "extract_shard", "check_scheduler", "MSD_SUFFIXES",
           "INPUT_SUFFIXES"]

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
    retried: int = 0  # skipped inputs of earlier runs tried again (changed files, or --retry-skipped)
    relabelled: int = 0  # tracks already in the store whose labels changed (metadata rewritten, features kept)
    notes: list[str] = field(default_factory=list)  # symlinked folders followed, loops, the store left out

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _walk(root: Path, suffixes: Sequence[str], notes: list[str], seen: set) -> list[Path]:
    """Files under ``root`` with a wanted suffix, following symlinked folders, each real folder once."""
    found = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        here = Path(folder)
        try:
            st = here.stat()
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:  # a link back into a folder already searched: a loop or an alias
            notes.append(f"{here}: already searched (symlink loop or second link to {here.resolve()}); not again")
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        if here.is_symlink():
            notes.append(f"followed symlinked folder {here} -> {here.resolve()}")
        dirs.sort()
        found.extend(here / n for n in names if Path(n).suffix.lower() in suffixes)
    return [q for q in found if q.is_file()]


def find_inputs(sources: Iterable, *, suffixes: Sequence[str] = INPUT_SUFFIXES, exclude=None
                ) -> tuple[list[str], list[dict], list[str]]:
    """Expand files and folders into a sorted list of input files.

    Folders are searched recursively for files whose suffix is in
    ``suffixes``, following symlinked sub-folders (each real folder once, so
    a link loop ends); files named directly are taken whatever their suffix
    (and skipped later if unreadable). Nothing under ``exclude`` (the output
    store) is taken. Returns ``(files, problems, notes)``: ``problems`` lists
    sources that gave nothing (missing path, empty folder), ``notes`` the
    symlinks followed, loops cut and excluded files.
    """
    files, problems, notes = set(), [], []
    skip = Path(exclude).resolve() if exclude is not None else None
    n_excluded = 0
    for src in sources:
        p = Path(src)
        if p.is_dir():
            found = [str(q.resolve()) for q in _walk(p, suffixes, notes, set())]  # each source searched whole
            if skip is not None:
                kept = [q for q in found if not Path(q).is_relative_to(skip)]
                n_excluded += len(found) - len(kept)
                found = kept
            if not found:
                problems.append({"path": str(p), "reason": f"no {'/'.join(suffixes)} files in this folder"})
            files.update(found)
        elif p.is_file():
            files.add(str(p.resolve()))
        else:
            problems.append({"path": str(p), "reason": "no such file or folder"})
    if n_excluded:
        notes.append(f"left out {n_excluded} files inside the output store {skip}")
    return sorted(files), problems, notes


def _stat(path: str) -> dict:
    """Size, modification and status-change time of an input (recorded with a skip, so a changed file is retried;
    the status-change time moves on a permission fix too)."""
    try:
        st = os.stat(path)
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}
    except OSError:
        return {}


def _changed(path: str, skip: dict) -> bool:
    """True when ``path`` differs from what was recorded when it was skipped (never, for an unrecorded skip)."""
    recorded = {k: skip[k] for k in ("size", "mtime_ns", "ctime_ns") if k in skip}
    if not recorded:
        return False
    now = _stat(path)
    return any(now.get(k) != v for k, v in recorded.items())


def extract_shard(store: str, shard: int, files: list[str], labels: dict[str, dict] | None = None,
                  store_id: str | None = None) -> dict:
    """Read, align and write one shard (runs on a Dask worker).

    ``labels`` maps input paths to their labels (audio). Returns the shard's
    info dict: tracks, beats and skipped inputs; or, when the shard could not
    be written (no space left on the device: nothing partial is left behind),
    ``{"shard", "error"}`` with the one-line reason (returned, not raised, so
    a Dask worker logs no traceback; :func:`extract` raises it).
    """
    labels = labels or {}
    data = ShardData(shard=shard, store_id=store_id, labels=dict(labels))
    for path in files:
        data.sources.append(path)
        n_before = len(data.meta)
        try:
            for meta, feats, beats in read_features(path, labels=labels.get(path)):
                try:
                    data.add(meta, feats, beats)
                except DataError as exc:
                    raise DataError(f"track {meta.get('track_id')}: {exc}") from None
        except BeatdbnError as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            data.skipped.append({"path": path, "reason": reason, **_stat(path)})
        except Exception as exc:  # a damaged file must not stop the batch
            data.skipped.append({"path": path, "reason": f"{type(exc).__name__}: {exc}", **_stat(path)})
        else:
            continue
        # drop what a half-read aggregate file had added
        del data.meta[n_before:], data.features[n_before:], data.beats[n_before:]
    try:
        write_shard(Path(store), data)
    except DataError as exc:
        return {"shard": shard, "error": str(exc)}
    return {"shard": shard, "files": len(files), "tracks": len(data.meta), "beats": data.n_beats,
            "skipped": data.skipped}


def _some(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _merge_labels(files: list[str], sources: list, labels: dict[str, dict] | None,
                  folder_label: str | None, notes: list[str] | None = None) -> dict[str, dict]:
    """Each input's labels: folder names first, the label file's entries over them.

    ``notes`` gets one line for label rows naming files that do not exist or
    are not among the inputs, and one for files whose folder label the label
    file overrides with another value (each with a count and the first few).
    """
    notes = [] if notes is None else notes
    merged: dict[str, dict] = {}
    if folder_label:
        roots = [Path(s).resolve() for s in sources if Path(s).is_dir()]
        merged = folder_labels(files, roots, field=folder_label)
    inputs = set(files)
    missing, elsewhere, overridden = [], [], []
    for path, entry in (labels or {}).items():
        key = str(Path(path).resolve())
        if key not in inputs:
            (elsewhere if Path(key).is_file() else missing).append(key)
            continue
        if entry:
            old = merged.get(key, {})
            overridden += [f"{key}: {f} {old[f]!r} (folder) -> {entry[f]!r} (label file)"
                           for f in entry if f in old and old[f] != entry[f]]
            merged[key] = {**old, **entry}
    if missing:
        notes.append(f"{len(missing)} label rows name files that do not exist: {_some(missing)}")
    if elsewhere:
        notes.append(f"{len(elsewhere)} label rows name files that are not among the inputs: {_some(elsewhere)}")
    if overridden:
        notes.append(f"the label file overrides {len(overridden)} folder labels: {_some(overridden)}")
    wanted = {f for f in files if Path(f).suffix.lower() not in MSD_SUFFIXES}  # MSD files carry their own
    return {p: e for p, e in merged.items() if p in wanted and e}


def _label_columns(entry: dict) -> dict:
    """The metadata columns the labels ``entry`` sets (as :func:`~beatdbn.features.sources.read_audio_features`)."""
    cols: dict = {}
    if entry.get("artist"):
        cols.update(artist_name=entry["artist"], artist_id=_artist_id(entry["artist"]))
    if entry.get("genre"):
        cols["genre"] = entry["genre"]
    if entry.get("key") is not None and entry.get("key") != "":
        key, mode = parse_key(entry["key"])
        if entry.get("mode") is not None and mode == -1:
            mode = int(entry["mode"])
        cols.update(key=key, mode=mode)
    return cols


def _relabel(store: Path, file_labels: dict[str, dict]) -> int:
    """Apply changed labels to tracks already in the store (metadata only); the number of tracks changed."""
    changed = 0
    for pq_path in committed_shards(store).values():
        table, info = read_shard_table(pq_path)
        rows = table.to_pylist()
        touched = 0
        for row in rows:
            entry = file_labels.get(row["source"])
            if not entry or (row["representation"] or REPRESENTATION_MSD) != REPRESENTATION_AUDIO:
                continue
            cols = _label_columns(entry)
            if any(row.get(k) != v for k, v in cols.items()):
                row.update(cols)
                touched += 1
        if touched:
            labels = dict(info.get("labels") or {})
            labels.update({r["source"]: file_labels[r["source"]] for r in rows if r["source"] in file_labels})
            write_commit(pq_path, type(table).from_pylist(rows, schema=table.schema), dict(info, labels=labels))
            changed += touched
    return changed


def _check_one_representation(store: Path, files: list[str], allow_mixed: bool) -> None:
    """Refuse inputs whose representation differs from each other's or from the store's (unless ``allow_mixed``)."""
    if allow_mixed:
        return
    kinds: dict[str, list[str]] = {}
    for f in files:
        kinds.setdefault(REPRESENTATION_MSD if is_msd_file(f) else REPRESENTATION_AUDIO, []).append(f)
    have = FeatureStore.open(store).representations() if committed_shards(store) else {}
    if len(set(kinds) | set(have)) <= 1:
        return
    if len(kinds) > 1:
        raise DataError(f"the inputs mix MSD files ({len(kinds[REPRESENTATION_MSD]):,}, e.g. "
                        f"{kinds[REPRESENTATION_MSD][0]}) and audio files ({len(kinds[REPRESENTATION_AUDIO]):,}, e.g. "
                        f"{kinds[REPRESENTATION_AUDIO][0]}); their features share a layout, not a meaning: extract "
                        f"them into separate stores, or pass --allow-mixed")
    new = next(iter(kinds))
    old = next(k for k in have if k != new)
    raise DataError(f"{store} holds {have[old]:,} {old} tracks and these {len(kinds[new]):,} inputs are "
                    f"{'MSD files' if new == REPRESENTATION_MSD else 'audio files'} (e.g. {kinds[new][0]}); "
                    f"extract them into another store, or pass --allow-mixed")


def _subset(labels: dict[str, dict], chunk: list[str]) -> dict[str, dict]:
    return {p: labels[p] for p in chunk if p in labels}


def _done_inputs(store: Path, retry_skipped: bool) -> tuple[set[str], int]:
    """Inputs the committed shards hold, less the skipped ones to try again; and how many those are.

    A skipped input is tried again when ``retry_skipped``, or when its size,
    modification time or status-change time (a permission fix) differs from
    the ones recorded with the skip.
    """
    latest: dict[str, dict | None] = {}
    for p in committed_shards(store).values():
        _, info = read_shard_table(p)
        for src in info.get("sources", []):
            latest[src] = None
        for entry in info.get("skipped", []):
            latest[entry["path"]] = entry
    done, retry = set(), 0
    for src, skip in latest.items():
        if skip is not None and (retry_skipped or _changed(src, skip)):
            retry += 1
            continue
        done.add(src)
    return done, retry


def _writer_pid(p: Path) -> int | None:
    try:
        return int(p.name.rsplit(TMP_MARK, 1)[1])
    except (IndexError, ValueError):
        return None


def _clean_leftovers(store: Path) -> int:
    """Remove what a killed run left: temporary files and shards never committed.

    Call it holding the store's lock. A temporary file whose writer (the pid in
    its name) still runs is left alone.
    """
    stale = []
    for folder in (store, store / "shards"):
        if folder.is_dir():
            for tmp in folder.glob(f"*{TMP_MARK}*"):
                pid = _writer_pid(tmp)
                if pid is None or pid == os.getpid() or not pid_alive(pid):
                    stale.append(tmp)
    shards = store / "shards"
    if shards.is_dir():
        committed = set(committed_shards(store))
        for h5 in shards.glob("shard-*.h5"):
            try:
                if int(h5.stem.split("-")[1]) not in committed:
                    stale.append(h5)
            except (IndexError, ValueError):
                continue
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def extract(
    sources: Iterable,
    out,
    *,
    shard_size: int = 256,
    scheduler: str = "local",
    workers: int | None = None,
    on_progress: Callable[[dict], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    labels: dict[str, dict] | None = None,
    folder_label: str | None = None,
    retry_skipped: bool = False,
    wait: bool = False,
    on_wait: Callable[[int | None], None] | None = None,
    allow_mixed: bool = False,
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
    labels : dict, optional
        Resolved input path -> ``{"artist", "genre", "key", "mode"}`` (any of
        them) for audio files, e.g. from :func:`beatdbn.labels.read_label_csv`.
    folder_label : {"genre", "artist", "key"}, optional
        Label each file with the name of the first folder below the source
        folder it was found in (``SRC/rock/song.mp3`` -> genre "rock").
    retry_skipped : bool
        Try every input skipped by an earlier run again (by default only those
        whose size or modification time changed).
    wait : bool
        Wait for another writer of the store instead of stopping.
    on_wait : callable, optional
        Called with the other writer's pid before waiting.
    allow_mixed : bool
        Let MSD files and audio files into one store (refused by default).

    Raises
    ------
    DataError
        No input file at all; another process writes the store (``wait``
        False); no space left on the device; a damaged shard; inputs of
        another representation than the store's (without ``allow_mixed``).
    ParameterError
        A bad ``shard_size``, ``workers`` or ``scheduler``.
    """
    if shard_size < 1:
        raise ParameterError(f"shard_size must be >= 1, got {shard_size}")
    if workers is not None and workers < 1:
        raise ParameterError(f"--workers {workers}: expected 1 or more worker processes")
    check_scheduler(scheduler)
    t0 = time.perf_counter()
    store = Path(out)
    sources = list(sources)
    files, problems, notes = find_inputs(sources, exclude=store)
    report = ExtractReport(store=str(store), inputs=len(files), skipped=list(problems), notes=notes)
    if not files:
        where = ", ".join(p["path"] for p in problems) or "the given sources"
        raise DataError(f"{where}: no input files found")
    file_labels = _merge_labels(files, sources, labels, folder_label, report.notes)
    report.labelled = len(file_labels)
    with StoreLock(store, wait=wait, on_wait=on_wait):
        _extract_locked(store, files, file_labels, report, shard_size=shard_size, scheduler=scheduler,
                        workers=workers, on_progress=on_progress, on_start=on_start, retry_skipped=retry_skipped,
                        allow_mixed=allow_mixed, relabel=labels is not None or folder_label is not None)
    report.seconds = time.perf_counter() - t0
    return report


def _extract_locked(store: Path, files: list[str], file_labels: dict, report: ExtractReport, *, shard_size: int,
                    scheduler: str, workers: int | None, on_progress, on_start, retry_skipped: bool,
                    allow_mixed: bool = False, relabel: bool = False) -> None:
    """The part of :func:`extract` that writes: runs holding the store's lock."""
    write_manifest(store)
    store_id = read_manifest(store)["store_id"]
    if store_id is None:
        report.notes.append(f"{store} has no store id (written by an older beatdbn): shards copied in from another "
                            f"store cannot be told apart; run `beatdbn check {store} --repair` to stamp one")
    _check_one_representation(store, files, allow_mixed)
    if _clean_leftovers(store):
        log.info("removed leftovers of an interrupted run in %s", store)
    if relabel and file_labels:
        report.relabelled = _relabel(store, file_labels)
    done, report.retried = _done_inputs(store, retry_skipped)
    todo = [f for f in files if f not in done]
    report.already_done = len(files) - len(todo)
    next_shard = max(committed_shards(store), default=-1) + 1
    chunks = [todo[i : i + shard_size] for i in range(0, len(todo), shard_size)]
    jobs = [(next_shard + k, chunk) for k, chunk in enumerate(chunks)]
    if on_start:
        on_start(len(todo), len(jobs))

    def finished(info: dict) -> None:
        if "error" in info:
            raise DataError(info["error"])
        report.shards_written += 1
        report.tracks_added += info["tracks"]
        report.beats_added += info["beats"]
        report.skipped.extend(info["skipped"])
        for s in info["skipped"]:  # the caller shows them (on_progress); a log line only for debugging
            log.debug("skipped %s: %s", s["path"], s["reason"])
        if on_progress:
            on_progress(info)

    if scheduler == "sync" or len(jobs) <= 1:
        for shard, chunk in jobs:
            finished(extract_shard(str(store), shard, chunk, _subset(file_labels, chunk), store_id))
    elif jobs:
        from dask.distributed import as_completed  # heavy: only runs that use Dask import it

        with dask_client(scheduler, workers) as client:
            futures = []
            try:
                futures = [client.submit(extract_shard, str(store), shard, chunk, _subset(file_labels, chunk),
                                         store_id, key=f"beatdbn-shard-{shard}", pure=False)
                           for shard, chunk in jobs]
                for future in as_completed(futures):
                    finished(future.result())
            finally:
                client.cancel(futures)  # after a failure: stop the shards still running before the workers go

    write_index(store, from_shards=bool(report.relabelled))  # relabelled commits: the index is rebuilt
    opened = FeatureStore.open(store)
    report.tracks_total, report.beats_total = len(opened), opened.n_beats
    summary = report.as_dict()
    summary["skipped_all_runs"] = opened.skipped
    with no_space_is_data_error(store / "report.json"):
        write_json(store / "report.json", summary)
