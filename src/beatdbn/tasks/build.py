"""Build the paper's three classification tasks from a store's metadata.

Section 4 of the paper, with its scale as options (:class:`TaskConfig`):

* **artist**: the ``artists`` (50) artists with the most tracks, ``per_artist``
  (100) tracks each, drawn at random (seeded) from each artist's tracks;
* **genre**: the 20 MusicBrainz genre tags (see :mod:`beatdbn.tasks.labels`
  for the rule), or the genres of a tagtraum file, ``per_genre`` (250) each;
* **key**: the 12 keys, the ``per_key`` (250) tracks of highest
  ``key_confidence`` each (ties broken by track id).

**Audio corpora** (``representation == "audio"``, labels from
``beatdbn extract --labels`` or folder names): the artist task counts only
tracks with an artist; when any track has a ``genre`` label, the genre task's
classes are those labels as given (the MusicBrainz rule is for MSD tags); a
track without a key confidence (NaN: audio has none) is ranked after every
track with one, and among themselves such tracks come in a seeded random
order, so an audio key task draws ``per_key`` of each key's labelled tracks
at random. A store that mixes representations still builds (``stats``
records the counts), but a model should see one representation only.

Known duplicates are dropped first. Every class is split 80/10/10 into
train/valid/test (per class, so the splits are balanced; a held-out split of
a class gets ``n * 0.1`` tracks rounded half up, at least one when the class
has three or more); each class's draw
and shuffle come from a generator seeded by (seed, task, class), so adding a
class or a task changes no other split. When the corpus cannot give the
requested scale, :class:`TaskScaleError` says what it can support.

On disk (``write_tasks``)::

    TASKS/tasks.json                  config, counts, chance levels, errors
    TASKS/<task>/classes.txt          one class name per line (index = line)
    TASKS/<task>/{train,valid,test}.tsv   track_id<TAB>label
    TASKS/exclude.txt                 pretraining exclusion: every task's valid
                                      and test tracks, and dropped duplicates
    TASKS/duplicates_dropped.txt      the dropped duplicates
"""

from __future__ import annotations

import json
import shutil
import zlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.tasks.labels import GENRES, KEY_NAMES, genre_from_mbtags, normalize_tag

__all__ = ["TaskConfig", "Task", "TaskScaleError", "build_tasks", "write_tasks", "load_task", "SPLITS", "TASK_NAMES"]

SPLITS = ("train", "valid", "test")
TASK_NAMES = ("artist", "genre", "key")


class TaskScaleError(DataError):
    """The corpus is too small for the requested task scale."""


@dataclass(frozen=True)
class TaskConfig:
    """Scale and seed of the tasks (paper defaults)."""

    artists: int = 50  # artist task: how many artists (those with the most tracks)
    per_artist: int = 100  # tracks per artist
    per_genre: int = 250  # tracks per genre
    per_key: int = 250  # tracks per key (highest key_confidence)
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    tasks: tuple[str, ...] = TASK_NAMES

    def __post_init__(self):
        for name in ("artists", "per_artist", "per_genre", "per_key"):
            if getattr(self, name) < 1:
                raise ParameterError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1
                and self.valid_fraction + self.test_fraction < 1):
            raise ParameterError(
                f"valid/test fractions {self.valid_fraction}/{self.test_fraction} must be in [0, 1) and sum below 1"
            )
        unknown = [t for t in self.tasks if t not in TASK_NAMES]
        if unknown:
            raise ParameterError(f"unknown task {unknown[0]!r}; choose from {', '.join(TASK_NAMES)}")


@dataclass
class Task:
    """A labelled task: class names and (track_id, label) pairs per split."""

    name: str
    classes: list[str]
    splits: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def track_ids(self, split: str) -> list[str]:
        return [t for t, _ in self.splits[split]]

    def labels(self, split: str) -> np.ndarray:
        """Class indices of a split, in the order of :meth:`track_ids`."""
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[label] for _, label in self.splits[split]], dtype=np.int64)

    def counts(self) -> dict[str, int]:
        return {s: len(self.splits.get(s, [])) for s in SPLITS}


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def _held_out(n: int, fraction: float) -> int:
    """Tracks of a class of ``n`` for a held-out split: ``n * fraction`` rounded half
    up, and at least one when the fraction is positive and the class has 3 or more."""
    k = int(np.floor(n * fraction + 0.5))
    return max(k, 1) if fraction > 0 and n >= 3 else k


def _split_class(ids: list[str], config: TaskConfig, task: str, label: str) -> dict[str, list[str]]:
    ids = list(_rng(config.seed, task, label, "split").permutation(ids))
    n = len(ids)
    n_valid, n_test = (_held_out(n, f) for f in (config.valid_fraction, config.test_fraction))
    return {"valid": ids[:n_valid], "test": ids[n_valid : n_valid + n_test], "train": ids[n_valid + n_test :]}


def _assemble(name: str, chosen: dict[str, list[str]], config: TaskConfig, classes: list[str]) -> Task:
    task = Task(name, classes, {s: [] for s in SPLITS})
    for label in classes:
        for split, ids in _split_class(sorted(chosen[label]), config, name, label).items():
            task.splits[split].extend((t, label) for t in ids)
    return task


def _sample(ids: list[str], n: int, config: TaskConfig, task: str, label: str) -> list[str]:
    ids = sorted(ids)
    if len(ids) <= n:
        return ids
    pick = _rng(config.seed, task, label, "draw").choice(len(ids), size=n, replace=False)
    return [ids[i] for i in sorted(pick)]


def _artist_task(rows: dict, config: TaskConfig) -> Task:
    by_artist: dict[str, list[str]] = defaultdict(list)
    names: dict[str, str] = {}
    for tid, aid, aname in zip(rows["track_id"], rows["artist_id"], rows["artist_name"]):
        if not aid:  # an audio file with no artist label
            continue
        by_artist[aid].append(tid)
        names.setdefault(aid, aname or aid)
    ranked = sorted(by_artist, key=lambda a: (-len(by_artist[a]), a))
    enough = sum(1 for a in ranked if len(by_artist[a]) >= config.per_artist)
    if enough < config.artists:
        k = min(config.artists, len(ranked))
        nth = len(by_artist[ranked[k - 1]]) if k else 0
        options = []
        if enough >= 2:
            options.append(f"--artists {enough} --per-artist {config.per_artist}")
        if k >= 2 and nth >= 1:
            options.append(f"--artists {k} --per-artist {nth}")
        raise TaskScaleError(
            f"artist task: {config.artists} artists x {config.per_artist} tracks asked, but only {enough} "
            f"artists have {config.per_artist} tracks ({len(ranked)} artists in all; the largest have "
            f"{', '.join(str(len(by_artist[a])) for a in ranked[:5])} tracks). "
            + (f"The corpus supports {' or '.join(options)}" if options else "The corpus is too small for this task")
        )
    top = ranked[: config.artists]
    label_of = {}
    name_counts = Counter(names[a] for a in top)
    for a in top:  # class names are artist names, made unique by id where two artists share one
        label_of[a] = names[a] if name_counts[names[a]] == 1 else f"{names[a]} ({a})"
    chosen = {label_of[a]: _sample(by_artist[a], config.per_artist, config, "artist", a) for a in top}
    return _assemble("artist", chosen, config, [label_of[a] for a in top])


def _balanced_task(name: str, labels: dict[str, str], classes: list[str], per_class: int, option: str,
                   config: TaskConfig) -> Task:
    by_class: dict[str, list[str]] = defaultdict(list)
    for tid, label in labels.items():
        by_class[label].append(tid)
    short = {c: len(by_class.get(c, [])) for c in classes if len(by_class.get(c, [])) < per_class}
    if short:
        supported = min(len(by_class.get(c, [])) for c in classes)
        listing = ", ".join(f"{c}: {n}" for c, n in sorted(short.items(), key=lambda kv: kv[1]))
        raise TaskScaleError(
            f"{name} task: {per_class} tracks per class asked, but {len(short)} of {len(classes)} classes have "
            f"fewer ({listing}). "
            + (f"The corpus supports {option} {supported}" if supported >= 1
               else f"The corpus cannot support all {len(classes)} classes")
        )
    if name == "key":  # the tracks of highest key confidence (ranked by the caller)
        chosen = {c: by_class[c][:per_class] for c in classes}
    else:
        chosen = {c: _sample(by_class[c], per_class, config, name, c) for c in classes}
    return _assemble(name, chosen, config, classes)


def _genre_labels(rows: dict, tagtraum: dict[str, str] | None) -> tuple[dict[str, str], list[str], dict]:
    stats = {"ambiguous": 0, "untagged": 0}
    if tagtraum is not None:
        labels = {t: tagtraum[t] for t in rows["track_id"] if t in tagtraum}
        stats["untagged"] = len(rows["track_id"]) - len(labels)
        return labels, sorted(set(labels.values())), stats
    given = {t: g.strip() for t, g in zip(rows["track_id"], rows["genre"]) if g and g.strip()}
    if given:  # genre labels given with audio: used as they are
        stats.update(untagged=len(rows["track_id"]) - len(given), from_labels=True)
        return given, sorted(set(given.values())), stats
    labels = {}
    for tid, tags, counts in zip(rows["track_id"], rows["mbtags"], rows["mbtags_count"]):
        genre = genre_from_mbtags(tags or [], counts or [])
        if genre is not None:
            labels[tid] = genre
        elif any(normalize_tag(t) in GENRES for t in tags or []):
            stats["ambiguous"] += 1
        else:
            stats["untagged"] += 1
    return labels, list(GENRES), stats


def _key_rank(rows: dict, i: int, seed: int) -> tuple:
    """Sort key of track ``i`` for the key task: by confidence (highest first), then the tracks
    without one (NaN or missing) in a seeded random order, ties by track id."""
    conf, tid = rows["key_confidence"][i], rows["track_id"][i]
    if conf is not None and np.isfinite(conf):
        return (0, -conf, tid)
    return (1, zlib.crc32(f"{seed}:{tid}".encode()), tid)


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
        Why the others could not (the scale the corpus supports).
    stats : dict
        Corpus counts (tracks, dropped duplicates, genre ambiguity).
    """
    cols = ["track_id", "artist_id", "artist_name", "mbtags", "mbtags_count", "key", "key_confidence",
            "representation", "genre"]
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
    tasks, errors = {}, {}
    for name in config.tasks:
        try:
            if name == "artist":
                tasks[name] = _artist_task(rows, config)
            elif name == "genre":
                labels, classes, gstats = _genre_labels(rows, genre_labels)
                source = "tagtraum" if genre_labels else "labels" if gstats.pop("from_labels", False) else "musicbrainz"
                stats["genre"] = dict(gstats, labelled=len(labels), source=source)
                if len(classes) < 2:
                    raise TaskScaleError("genre task: fewer than two genres among the labelled tracks")
                tasks[name] = _balanced_task("genre", labels, classes, config.per_genre, "--per-genre", config)
            else:
                order = sorted(range(len(keep)), key=lambda i: _key_rank(rows, i, config.seed))
                labels = {rows["track_id"][i]: KEY_NAMES[rows["key"][i]] for i in order
                          if rows["key"][i] is not None and 0 <= rows["key"][i] < 12}
                tasks[name] = _balanced_task("key", labels, list(KEY_NAMES), config.per_key, "--per-key", config)
        except TaskScaleError as exc:
            errors[name] = str(exc)
    return tasks, errors, stats


def _write_lines(path: Path, lines) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    tmp.replace(path)


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
        "config": asdict(config),
        "corpus": stats,
        "tasks": {
            t.name: {"classes": len(t.classes), "chance": 1.0 / len(t.classes), "counts": t.counts()}
            for t in tasks.values()
        },
        "errors": errors,
        "excluded_from_pretraining": len(set(held_out) | set(dropped)),
    }
    tmp = out / ".tasks.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out / "tasks.json")
    return summary


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
    classes = [c for c in classes_file.read_text(encoding="utf-8").splitlines() if c]
    task = Task(name, classes, {})
    known = set(classes)
    for split in SPLITS:
        f = d / f"{split}.tsv"
        if not f.exists():
            raise DataError(f"{f}: missing {split} split of task {name!r}")
        pairs = []
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines()[1:], 2):
            parts = line.split("\t")
            if len(parts) != 2 or parts[1] not in known:
                raise DataError(f"{f}:{n}: expected 'track_id<TAB>label' with a label from classes.txt, got {line!r}")
            pairs.append((parts[0], parts[1]))
        task.splits[split] = pairs
    return task
