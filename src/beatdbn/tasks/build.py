"""Build the registered tasks from a store's metadata, write them, read them back.

Which tasks exist, their labels, class selection, defaults and paper scale
live in the task registry (:mod:`beatdbn.tasks.registry`, one module per task
in :mod:`beatdbn.tasks.kinds`); the shared draws and 80/10/10 splits in
:mod:`beatdbn.tasks.selection`. This module runs them over a metadata table
and owns the on-disk layout.

**Scale that fits the corpus** (``TaskConfig.scale``). ``'paper'`` (the
default) asks for exactly each task's numbers; when the corpus cannot give
them, :class:`TaskScaleError` says what it supports, ``--scale auto``
included. ``'auto'`` takes, per task, the k largest classes
that use the most tracks (k × the k-th largest class), each class with at least
``min_test_per_class`` (2) test tracks, i.e. 20 tracks at 80/10/10; the numbers
are caps, and the alternatives it rejected (with why) are in ``tasks.json``
(``tasks.<name>.auto``) and printed by ``beatdbn tasks``. ``'auto-all-classes'``
is the earlier rule: every class above a floor of one train, one valid and one
test track, at the smallest one's size (one rare class shrinks them all). Known duplicates are dropped first.
A store that mixes representations still builds (``stats`` records the
counts), but a model should see one representation only.

On disk (``write_tasks``)::

    TASKS/tasks.json                  config, counts, chance levels, errors
    TASKS/<task>/classes.txt          one class name per line (index = line)
    TASKS/<task>/{train,valid,test}.tsv   track_id<TAB>label
    TASKS/exclude.txt                 pretraining exclusion: every task's valid
                                      and test tracks, and dropped duplicates
    TASKS/duplicates_dropped.txt      the dropped duplicates
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa

from beatdbn.exceptions import DataError
from beatdbn.labels import read_tagtraum
from beatdbn.tasks import registry
from beatdbn.tasks.duplicates import duplicates_to_drop, read_duplicates
from beatdbn.tasks.registry import SCALES, TaskConfig
from beatdbn.tasks.selection import SPLITS, Task, TaskScaleError, scale_text
from beatdbn.utils.atomic import write_json, write_text

__all__ = ["TaskConfig", "Task", "TaskScaleError", "build_tasks", "prepare_tasks", "write_tasks", "load_task",
           "check_tasks_in_store", "scale_text", "SPLITS", "SCALES"]


def _paper_scale(name: str) -> str:
    paper = registry.spec(name).paper
    return scale_text(paper.classes, paper.per_class) if paper else "\u2014"


def build_tasks(
    metadata: pa.Table,
    config: TaskConfig = TaskConfig(),
    *,
    drop: set[str] | frozenset = frozenset(),
    genre_labels: dict[str, str] | None = None,
) -> tuple[dict[str, Task], dict[str, str], dict]:
    """Build the configured tasks from a metadata table.

    Parameters
    ----------
    metadata : pyarrow.Table
        One row per track (``FeatureStore.metadata``).
    config : TaskConfig
    drop : set of str
        Track ids to leave out (known duplicates).
    genre_labels : dict, optional
        track_id -> genre (tagtraum); default: the MusicBrainz rule.

    Returns
    -------
    tasks : dict name -> Task
        The tasks that could be built.
    errors : dict name -> str
        Why the others could not (one line: the reason and the options that would work).
    stats : dict
        Corpus counts (tracks, dropped duplicates, genre ambiguity).

    Raises
    ------
    ParameterError
        A ``--genres`` name that is not a class of the genre labels (the
        message lists the available classes).
    """
    specs = registry.specs()
    cols = ["track_id", "representation", *dict.fromkeys(c for n in config.tasks for c in specs[n].columns)]
    present = [c for c in cols if c in metadata.column_names]  # a store older than a column lacks it
    raw = metadata.select(present).to_pydict()
    for c in cols:
        raw.setdefault(c, [None] * metadata.num_rows)
    seen: set[str] = set()
    keep = []
    for i, tid in enumerate(raw["track_id"]):
        if tid not in drop and tid not in seen:
            seen.add(tid)
            keep.append(i)
    rows = {c: [raw[c][i] for i in keep] for c in cols}
    stats = {"tracks": len(keep), "dropped_duplicates": len(drop & set(raw["track_id"])),
             "representations": dict(Counter(r or "echonest" for r in rows["representation"]))}
    context = {"genre_labels": genre_labels, "stats": stats}
    tasks, errors = {}, {}
    for name in config.tasks:
        try:
            tasks[name] = specs[name].build(rows, config, context)
        except TaskScaleError as exc:
            errors[name] = str(exc)
        if isinstance(stats.get(name), dict) and not stats[name].get("auto", True):
            del stats[name]["auto"]  # not an automatic scale, or it could not choose
        if stats.get(name) == {}:
            del stats[name]
    return tasks, errors, stats


def prepare_tasks(fs, config: TaskConfig = TaskConfig(), *, duplicates=None, genre_labels=None
                  ) -> tuple[dict[str, Task], dict[str, str], dict, set[str]]:
    """Read the duplicates and genre-label files, then :func:`build_tasks` on a store.

    Parameters
    ----------
    fs : FeatureStore
    config : TaskConfig
    duplicates : path, optional
        ``msd_duplicates.txt``: all but one track of each group is dropped.
    genre_labels : path, optional
        A tagtraum ``.cls`` file (:func:`~beatdbn.labels.read_tagtraum`).

    Returns
    -------
    tasks, errors, stats
        As :func:`build_tasks`; ``stats["genre_labels"]`` tells the label
        file's size, its track ids not in the store and its skipped lines.
    dropped : set of str
        The duplicates dropped.
    """
    dropped = duplicates_to_drop(read_duplicates(duplicates), fs.track_ids) if duplicates else set()
    notes: list[str] = []
    labels = read_tagtraum(genre_labels, notes=notes) if genre_labels else None
    built, errors, stats = build_tasks(fs.metadata, config, drop=dropped, genre_labels=labels)
    if labels is not None:
        stats["genre_labels"] = {"file": str(genre_labels), "labels": len(labels),
                                 "ids_not_in_store": len(set(labels) - set(fs.track_ids)), "notes": notes}
    return built, errors, stats, dropped


def _write_lines(path: Path, lines) -> None:
    write_text(path, "".join(f"{line}\n" for line in lines))


def write_tasks(out, tasks: dict[str, Task], *, config: TaskConfig, errors: dict, stats: dict,
                dropped: set[str], store: str = "") -> dict:
    """Write tasks, the exclusion list and ``tasks.json``; returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in errors:  # a task that failed this time must not leave an older version behind
        shutil.rmtree(out / name, ignore_errors=True)
    for task in tasks.values():
        d = out / task.name
        d.mkdir(exist_ok=True)
        _write_lines(d / "classes.txt", task.classes)
        for split in SPLITS:
            _write_lines(d / f"{split}.tsv", ["track_id\tlabel"] + [f"{t}\t{label}" for t, label in task.splits[split]])
    held_out = sorted({t for task in tasks.values() for s in ("valid", "test") for t in task.track_ids(s)})
    _write_lines(out / "exclude.txt", sorted(set(held_out) | set(dropped)))
    _write_lines(out / "duplicates_dropped.txt", sorted(dropped))
    summary = {
        "store": store,
        "config": config.to_dict(),
        "corpus": stats,
        "tasks": {
            t.name: {"classes": len(t.classes), "chance": 1.0 / len(t.classes), "counts": t.counts(),
                     "per_class": t.per_class, "scale": scale_text(len(t.classes), t.per_class),
                     "scale_rule": t.scale, "paper_scale": _paper_scale(t.name),
                     "protocol": t.protocol,
                     **({"auto": stats[t.name]["auto"]} if stats.get(t.name, {}).get("auto") else {})}
            for t in tasks.values()
        },
        "errors": errors,
        "excluded_from_pretraining": len(set(held_out) | set(dropped)),
    }
    write_json(out / "tasks.json", summary)
    return summary


def check_tasks_in_store(tasks_dir, track_ids, *, store: str = "") -> None:
    """Check that every track of every task in ``tasks_dir`` is in the store.

    Raises
    ------
    DataError
        Some are missing: the message says how many of how many, and that the
        tasks were likely built from another store.
    """
    tasks_dir = Path(tasks_dir)
    if not (tasks_dir / "tasks.json").exists():
        raise DataError(f"{tasks_dir}: no tasks.json; build tasks with `beatdbn tasks STORE --out {tasks_dir}`")
    have = set(track_ids)
    ids: set[str] = set()
    for name in registry.task_names():
        if (tasks_dir / name).is_dir():
            task = load_task(tasks_dir, name)
            ids.update(t for s in SPLITS for t in task.track_ids(s))
    missing = sorted(ids - have)
    if missing:
        raise DataError(f"{tasks_dir}: {len(missing):,} of the tasks' {len(ids):,} track ids are not in the store "
                        f"{store or ''} (e.g. {', '.join(missing[:3])}); were the tasks built from another store? "
                        f"Rebuild them with `beatdbn tasks STORE --out DIR` or pass the store they came from")


def load_task(tasks_dir, name: str) -> Task:
    """Read one task written by :func:`write_tasks`.

    Raises
    ------
    DataError
        The task, its class list or one of its splits is missing or malformed;
        the message names the file.
    """
    d = Path(tasks_dir) / name
    if not d.is_dir():
        raise DataError(f"{d}: no such task; build it with `beatdbn tasks STORE --out {tasks_dir}`")
    classes_file = d / "classes.txt"
    if not classes_file.exists():
        raise DataError(f"{classes_file}: missing class list")
    classes = [c for c in classes_file.read_text(encoding="utf-8-sig").splitlines() if c]  # a BOM is no class
    task = Task(name, classes, {})
    known = set(classes)
    for split in SPLITS:
        f = d / f"{split}.tsv"
        if not f.exists():
            raise DataError(f"{f}: missing {split} split of task {name!r}")
        pairs = []
        for n, line in enumerate(f.read_text(encoding="utf-8-sig").splitlines()[1:], 2):
            parts = line.split("\t")
            if len(parts) != 2 or parts[1] not in known:
                raise DataError(f"{f}:{n}: expected 'track_id<TAB>label' with a label from classes.txt, got {line!r}")
            pairs.append((parts[0], parts[1]))
        task.splits[split] = pairs
    return task
