"""Build the paper's three classification tasks from a store's metadata.

Section 4 of the paper, with its scale as options (:class:`TaskConfig`):

* **artist**: the ``artists`` (50) artists with the most tracks, ``per_artist``
  (100) tracks each, drawn at random (seeded) from each artist's tracks;
* **genre**: the 20 MusicBrainz genre tags (see :mod:`beatdbn.labels`
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

**Scale that fits the corpus** (``TaskConfig.scale``). ``'paper'`` (the
default) asks for exactly the numbers above; when the corpus cannot give them,
:class:`TaskScaleError` says what it supports, ``--scale auto`` included.
``'auto'`` takes, per task, the largest balanced scale the corpus supports,
the numbers above being caps (the paper's 50 x 100, 250, 250 by default):

* genre: the classes with at least ``min_per_class`` tracks (default: enough
  for one valid, one test and one training track: 3 at 80/10/10), or the
  classes ``genres`` names (``'top:N'``: the N largest; ``'rock,pop'``: a
  list, each of which must reach the floor); tracks per class: the smallest
  chosen class's count;
* artist: the k artists with the most tracks and p tracks each (p: the k-th
  artist's count) that give the most tracks k * p (ties: more per artist),
  each artist with at least ``min_per_class`` tracks (default 2);
* key: the 12 keys (24 with ``key_classes=24``), the smallest key's count.

**Classes of 24 keys** (``key_classes=24``): "C major" ... "B minor" from the
MSD ``key`` and ``mode``; tracks of unknown mode are left out.

Known duplicates are dropped first. Every class is split 80/10/10 into
train/valid/test (per class, so the splits are balanced; a held-out split of
a class gets ``n * 0.1`` tracks rounded half up, at least one when the class
has three or more). Classes of exactly two tracks are pooled: each keeps one
training track and gives the other to valid or test, alternating over the
classes in a seeded order. Each class's draw and shuffle come from a
generator seeded by (seed, task, class), so adding a class or a task changes
no other split.

**Artist filter** (``artist_filter=True``, genre task only). MusicBrainz tags
belong to the artist, so a random split puts an artist's tracks on both sides
and genre accuracy partly measures artist recognition. With the filter every
artist's tracks land in one split (over all classes); the held-out quotas are
filled as closely as whole artists allow (:func:`_split_by_artist`).
``tasks.json`` records each task's scale and protocol.

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
from beatdbn.tasks.duplicates import duplicates_to_drop, read_duplicates
from beatdbn.labels import GENRES, KEY_NAMES, KEY_NAMES_24, genre_from_mbtags, normalize_tag, read_tagtraum

__all__ = ["TaskConfig", "Task", "TaskScaleError", "build_tasks", "prepare_tasks", "write_tasks", "load_task",
           "check_tasks_in_store", "scale_text", "SPLITS", "TASK_NAMES", "PAPER_SCALE", "SCALES"]

SPLITS = ("train", "valid", "test")
TASK_NAMES = ("artist", "genre", "key")
#: The paper's scale of each task: (classes, tracks per class).
PAPER_SCALE = {"genre": (20, 250), "artist": (50, 100), "key": (12, 250)}
SCALES = ("paper", "auto")
_TIMES = "\u00d7"


class TaskScaleError(DataError):
    """The corpus is too small for the requested task scale."""


def scale_text(classes: int, per_class: int) -> str:
    """``'20×250'``: classes × tracks per class."""
    return f"{classes}{_TIMES}{per_class}"


@dataclass(frozen=True)
class TaskConfig:
    """Scale, classes, split protocol and seed of the tasks (paper defaults).

    With ``scale='auto'`` the four scale numbers are caps (the paper's by
    default) and each task takes the largest balanced scale the corpus
    supports (see the module docstring).
    """

    artists: int = 50  # artist task: how many artists (those with the most tracks); a cap with scale='auto'
    per_artist: int = 100  # tracks per artist; a cap with scale='auto'
    per_genre: int = 250  # tracks per genre; a cap with scale='auto'
    per_key: int = 250  # tracks per key (highest key_confidence); a cap with scale='auto'
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    tasks: tuple[str, ...] = TASK_NAMES
    scale: str = "paper"  # 'paper': the numbers above exactly | 'auto': the largest the corpus supports
    min_per_class: int = 0  # scale='auto': fewest tracks a class needs (0: per task, see min_tracks)
    genres: str = ""  # genre classes: '' all | 'top:N' the N largest | 'rock,pop,...' a named list
    key_classes: int = 12  # 12 tonics (the paper) | 24 major/minor keys
    artist_filter: bool = False  # genre splits: all of an artist's tracks in one split

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))
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
        if self.scale not in SCALES:
            raise ParameterError(f"scale {self.scale!r}: choose 'paper' (the paper's sizes, the default) or 'auto' "
                                 f"(the largest balanced scale the corpus supports)")
        if not isinstance(self.min_per_class, int) or self.min_per_class < 0:
            raise ParameterError(f"min_per_class={self.min_per_class!r}: must be an int >= 0 (0: the default)")
        if self.key_classes not in (12, 24):
            raise ParameterError(f"key_classes={self.key_classes!r}: choose 12 (tonics, the paper) or 24 "
                                 f"(major and minor keys)")
        _parse_genres(self.genres)

    def min_tracks(self, task: str) -> int:
        """Fewest tracks a class needs at ``scale='auto'``: ``min_per_class`` when set; else, for genre and
        key, enough for one valid, one test and one training track (3 at 80/10/10), and for artist two
        (one to train on, one held out: the tracks of two-track classes are pooled, see the module docstring)."""
        if self.min_per_class:
            return self.min_per_class
        if task == "artist":
            return 2
        n = 1
        while not (_held_out(n, self.valid_fraction) >= (self.valid_fraction > 0)
                   and _held_out(n, self.test_fraction) >= (self.test_fraction > 0)
                   and n - _held_out(n, self.valid_fraction) - _held_out(n, self.test_fraction) >= 1):
            n += 1
        return n

    def cap(self, task: str) -> tuple[int, int]:
        """(classes, tracks per class) asked for (``scale='paper'``) or allowed at most (``'auto'``)."""
        if task == "artist":
            return self.artists, self.per_artist
        if task == "genre":
            return PAPER_SCALE["genre"][0], self.per_genre
        return self.key_classes, self.per_key


def _parse_genres(spec: str) -> tuple[str, object]:
    """``('all', None)``, ``('top', N)`` or ``('names', [...])`` from a ``--genres`` value."""
    spec = (spec or "").strip()
    if not spec:
        return "all", None
    if spec.lower().startswith("top:"):
        value = spec[4:].strip()
        if not value.isdigit() or int(value) < 2:
            raise ParameterError(f"--genres {spec!r}: 'top:N' needs a whole number N >= 2, e.g. top:10")
        return "top", int(value)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if len(names) < 2:
        raise ParameterError(f"--genres {spec!r}: name two or more genres separated by commas "
                             f"(e.g. rock,pop,jazz), or use top:N")
    return "names", names


@dataclass
class Task:
    """A labelled task: class names and (track_id, label) pairs per split.

    ``per_class`` is the number of tracks drawn per class, ``scale`` how it was
    chosen ('paper' or 'auto') and ``protocol`` how the splits were drawn
    ('random' or 'artist-filtered').
    """

    name: str
    classes: list[str]
    splits: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    per_class: int = 0
    scale: str = "paper"
    protocol: str = "random"

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


def _targets(chosen: dict[str, list[str]], config: TaskConfig, task: str) -> dict[str, dict[str, int]]:
    """Held-out tracks per split and class. Classes of 3+ tracks: :func:`_held_out` each. Classes of
    exactly 2 (which per-class rounding would leave without held-out tracks) are pooled: each keeps
    one training track and gives one to valid or test, alternating in a seeded class order."""
    need = {"valid": {}, "test": {}}
    pooled = []
    for label, ids in chosen.items():
        n = len(ids)
        need["valid"][label] = _held_out(n, config.valid_fraction)
        need["test"][label] = _held_out(n, config.test_fraction)
        if n == 2 and need["valid"][label] + need["test"][label] == 0:
            pooled.append(label)
    sides = [s for s, f in (("valid", config.valid_fraction), ("test", config.test_fraction)) if f > 0]
    if sides:
        for i, j in enumerate(_rng(config.seed, task, "pooled").permutation(len(pooled))):
            need[sides[i % len(sides)]][sorted(pooled)[j]] = 1
    return need


def _split_random(chosen: dict[str, list[str]], config: TaskConfig, task: str) -> dict[str, dict[str, list[str]]]:
    need = _targets(chosen, config, task)
    out = {}
    for label, ids in chosen.items():
        ids = list(_rng(config.seed, task, label, "split").permutation(sorted(ids)))
        nv, nt = need["valid"][label], need["test"][label]
        out[label] = {"valid": ids[:nv], "test": ids[nv:nv + nt], "train": ids[nv + nt:]}
    return out


def _split_by_artist(chosen: dict[str, list[str]], config: TaskConfig, task: str,
                     artist_of: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """Artist-filtered splits: every artist's tracks (over all classes) land in one split.

    Artists come in a seeded random order, smaller ones first (they fill the
    held-out quotas most exactly); each goes to test, then valid, when all its
    tracks fit within that split's remaining quota of their classes, else to
    train. A class whose artists are all too large for a quota stays short
    there (the counts are written to ``tasks.json``)."""
    need = _targets(chosen, config, task)
    label_of = {t: label for label, ids in chosen.items() for t in ids}
    by_artist: dict[str, list[str]] = defaultdict(list)
    for t in sorted(label_of):
        by_artist[artist_of.get(t) or f"(no artist) {t}"].append(t)
    names = sorted(by_artist)
    order = [names[i] for i in _rng(config.seed, task, "artists").permutation(len(names))]
    order.sort(key=lambda a: len(by_artist[a]))  # stable: seeded order within a size
    out = {label: {s: [] for s in SPLITS} for label in chosen}
    for artist in order:
        tracks = by_artist[artist]
        per_label = Counter(label_of[t] for t in tracks)
        split = next((s for s in ("test", "valid")
                      if all(need[s][lab] >= n for lab, n in per_label.items())), "train")
        for lab, n in per_label.items():
            if split != "train":
                need[split][lab] -= n
        for t in tracks:
            out[label_of[t]][split].append(t)
    return out


def _assemble(name: str, chosen: dict[str, list[str]], config: TaskConfig, classes: list[str], *,
              per_class: int, artist_of: dict[str, str] | None = None) -> Task:
    protocol = "artist-filtered" if artist_of is not None else "random"
    task = Task(name, classes, {s: [] for s in SPLITS}, per_class=per_class, scale=config.scale, protocol=protocol)
    parts = (_split_by_artist(chosen, config, name, artist_of) if artist_of is not None
             else _split_random(chosen, config, name))
    for label in classes:
        for split in SPLITS:
            task.splits[split].extend((t, label) for t in parts[label][split])
    return task


def _sample(ids: list[str], n: int, config: TaskConfig, task: str, label: str) -> list[str]:
    ids = sorted(ids)
    if len(ids) <= n:
        return ids
    pick = _rng(config.seed, task, label, "draw").choice(len(ids), size=n, replace=False)
    return [ids[i] for i in sorted(pick)]


def _auto_artists(counts: list[int], config: TaskConfig) -> tuple[int, int] | None:
    """(artists, tracks each) of the most tracks in all, at most the caps, each artist at least
    :meth:`TaskConfig.min_tracks` tracks; ties go to more tracks per artist. None: not two artists."""
    floor = config.min_tracks("artist")
    best = None
    for k in range(2, min(config.artists, len(counts)) + 1):
        p = min(counts[k - 1], config.per_artist)
        if p >= floor and (best is None or (k * p, p) > (best[0] * best[1], best[1])):
            best = (k, p)
    return best


def _artist_task(rows: dict, config: TaskConfig) -> Task:
    by_artist: dict[str, list[str]] = defaultdict(list)
    names: dict[str, str] = {}
    for tid, aid, aname in zip(rows["track_id"], rows["artist_id"], rows["artist_name"]):
        if not aid:  # an audio file with no artist label
            continue
        by_artist[aid].append(tid)
        names.setdefault(aid, aname or aid)
    ranked = sorted(by_artist, key=lambda a: (-len(by_artist[a]), a))
    counts = [len(by_artist[a]) for a in ranked]
    auto = _auto_artists(counts, config)
    if config.scale == "auto":
        if auto is None:
            raise TaskScaleError(
                f"artist task: --scale auto needs two artists with at least {config.min_tracks('artist')} tracks "
                f"each, but the corpus has {len(ranked)} artists (the largest have "
                f"{', '.join(map(str, counts[:5])) or 'no'} tracks); lower --min-per-class or add tracks")
        n_artists, per_artist = auto
    else:
        n_artists, per_artist = config.artists, config.per_artist
        enough = sum(1 for c in counts if c >= per_artist)
        if enough < n_artists:
            k = min(n_artists, len(ranked))
            nth = counts[k - 1] if k else 0
            options = []
            if enough >= 2:
                options.append(f"--artists {enough} --per-artist {per_artist}")
            if k >= 2 and nth >= 1:
                options.append(f"--artists {k} --per-artist {nth}")
            if auto is not None:
                options.append(f"--scale auto (it would choose {scale_text(*auto)}: the {auto[0]} artists with "
                               f"the most tracks, {auto[1]} each)")
            raise TaskScaleError(
                f"artist task: {n_artists} artists x {per_artist} tracks asked, but only {enough} "
                f"artists have {per_artist} tracks ({len(ranked)} artists in all; the largest have "
                f"{', '.join(map(str, counts[:5]))} tracks). "
                + (f"The corpus supports {' or '.join(options)}" if options else "The corpus is too small for this task")
            )
    top = ranked[:n_artists]
    label_of = {}
    name_counts = Counter(names[a] for a in top)
    for a in top:  # class names are artist names, made unique by id where two artists share one
        label_of[a] = names[a] if name_counts[names[a]] == 1 else f"{names[a]} ({a})"
    chosen = {label_of[a]: _sample(by_artist[a], per_artist, config, "artist", a) for a in top}
    return _assemble("artist", chosen, config, [label_of[a] for a in top], per_class=per_artist)


def _pick_genres(counts: Counter, classes: list[str], config: TaskConfig, source: str) -> list[str]:
    """The genre classes ``--genres`` names (all, the N largest, or a list), in ``classes`` order."""
    kind, value = _parse_genres(config.genres)
    if kind == "all":
        return list(classes)
    if kind == "top":
        ranked = sorted(classes, key=lambda c: (-counts.get(c, 0), c))[:value]
        return [c for c in classes if c in ranked]
    lookup = {normalize_tag(c): c for c in classes}
    unknown = [n for n in value if normalize_tag(n) not in lookup]
    if unknown:
        listing = ", ".join(f"{c} ({counts.get(c, 0)})" for c in sorted(classes, key=lambda c: (-counts.get(c, 0), c)))
        raise ParameterError(f"--genres: {', '.join(repr(u) for u in unknown)} not among the {source} genre "
                             f"classes; available (tracks in this corpus): {listing}")
    wanted = {lookup[normalize_tag(n)] for n in value}
    return [c for c in classes if c in wanted]


def _auto_balanced(name: str, counts: Counter, classes: list[str], config: TaskConfig,
                   pick_all: bool) -> tuple[list[str], int]:
    """Classes and tracks per class at ``scale='auto'``: with ``pick_all`` the classes given must all
    reach the floor; otherwise the classes that do. Per class: the smallest chosen class, capped."""
    floor = config.min_tracks(name)
    cap = config.cap(name)[1]
    if pick_all:
        short = [c for c in classes if counts.get(c, 0) < floor]
        if short:
            raise TaskScaleError(
                f"{name} task: --scale auto needs at least {floor} tracks in every class (--min-per-class), but "
                f"{', '.join(f'{c}: {counts.get(c, 0)}' for c in short)}"
                + ("; choose fewer genres with --genres top:N or a list" if name == "genre"
                   else "; add tracks or lower --min-per-class"))
        chosen = list(classes)
    else:
        chosen = [c for c in classes if counts.get(c, 0) >= floor]
        if len(chosen) < 2:
            ranked = sorted(classes, key=lambda c: (-counts.get(c, 0), c))[:5]
            raise TaskScaleError(
                f"{name} task: --scale auto needs two classes with at least {floor} tracks each "
                f"(--min-per-class), but only {len(chosen)} has that many (largest: "
                f"{', '.join(f'{c}: {counts.get(c, 0)}' for c in ranked)})")
    return chosen, min(cap, min(counts[c] for c in chosen))


def _balanced_task(name: str, labels: dict[str, str], classes: list[str], per_class: int, option: str,
                   config: TaskConfig, *, auto: tuple[list[str], int] | None = None, auto_error: str = "",
                   artist_of: dict[str, str] | None = None) -> Task:
    by_class: dict[str, list[str]] = defaultdict(list)
    for tid, label in labels.items():
        by_class[label].append(tid)
    if config.scale == "auto":
        if auto is None:
            raise TaskScaleError(auto_error)
        classes, per_class = auto
    short = {c: len(by_class.get(c, [])) for c in classes if len(by_class.get(c, [])) < per_class}
    if short:
        supported = min(len(by_class.get(c, [])) for c in classes)
        listing = ", ".join(f"{c}: {n}" for c, n in sorted(short.items(), key=lambda kv: kv[1]))
        options = [f"{option} {supported}"] if supported >= 1 else []
        if auto is not None:
            options.append(f"--scale auto (it would choose {scale_text(len(auto[0]), auto[1])}: "
                           f"{', '.join(auto[0][:12])}{', ...' if len(auto[0]) > 12 else ''})")
        raise TaskScaleError(
            f"{name} task: {per_class} tracks per class asked, but {len(short)} of {len(classes)} classes have "
            f"fewer ({listing}). "
            + (f"The corpus supports {' or '.join(options)}" if options
               else f"The corpus cannot support all {len(classes)} classes ({auto_error})")
        )
    if name == "key":  # the tracks of highest key confidence (ranked by the caller)
        chosen = {c: by_class[c][:per_class] for c in classes}
    else:
        chosen = {c: _sample(by_class[c], per_class, config, name, c) for c in classes}
    return _assemble(name, chosen, config, classes, per_class=per_class, artist_of=artist_of)


def _genre_labels(rows: dict, tagtraum: dict[str, str] | None) -> tuple[dict[str, str], list[str], dict]:
    stats = {"ambiguous": 0, "untagged": 0}
    if tagtraum is not None:
        labels = {t: tagtraum[t] for t in rows["track_id"] if t in tagtraum}
        stats["untagged"] = len(rows["track_id"]) - len(labels)
        stats["label_ids_not_in_corpus"] = len(set(tagtraum) - set(rows["track_id"]))
        return labels, sorted(set(tagtraum.values())), stats
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


def _key_label(key, mode, key_classes: int) -> str | None:
    if key is None or not 0 <= key < 12:
        return None
    if key_classes == 12:
        return KEY_NAMES[key]
    return KEY_NAMES_24[key + 12 * (mode == 0)] if mode in (0, 1) else None


def _try_auto(fn) -> tuple[object, str]:
    try:
        return fn(), ""
    except TaskScaleError as exc:
        return None, str(exc)


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
    cols = ["track_id", "artist_id", "artist_name", "mbtags", "mbtags_count", "key", "key_confidence",
            "representation", "genre", "mode"]
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
                counts = Counter(labels.values())
                classes = _pick_genres(counts, classes, config, source)
                if len(classes) < 2:
                    raise TaskScaleError("genre task: fewer than two genres among the labelled tracks")
                pick_all = _parse_genres(config.genres)[0] != "all"
                auto, why = _try_auto(lambda: _auto_balanced("genre", counts, classes, config, pick_all))
                artist_of = dict(zip(rows["track_id"], rows["artist_id"])) if config.artist_filter else None
                tasks[name] = _balanced_task("genre", labels, classes, config.per_genre, "--per-genre", config,
                                             auto=auto, auto_error=why, artist_of=artist_of)
            else:
                order = sorted(range(len(keep)), key=lambda i: _key_rank(rows, i, config.seed))
                labels = {}
                for i in order:
                    label = _key_label(rows["key"][i], rows["mode"][i], config.key_classes)
                    if label is not None:
                        labels[rows["track_id"][i]] = label
                classes = list(KEY_NAMES if config.key_classes == 12 else KEY_NAMES_24)
                counts = Counter(labels.values())
                auto, why = _try_auto(lambda: _auto_balanced("key", counts, classes, config, True))
                tasks[name] = _balanced_task("key", labels, classes, config.per_key, "--per-key", config,
                                             auto=auto, auto_error=why)
        except TaskScaleError as exc:
            errors[name] = str(exc)
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
            t.name: {"classes": len(t.classes), "chance": 1.0 / len(t.classes), "counts": t.counts(),
                     "per_class": t.per_class, "scale": scale_text(len(t.classes), t.per_class),
                     "scale_rule": t.scale, "paper_scale": scale_text(*PAPER_SCALE[t.name]),
                     "protocol": t.protocol}
            for t in tasks.values()
        },
        "errors": errors,
        "excluded_from_pretraining": len(set(held_out) | set(dropped)),
    }
    tmp = out / ".tasks.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out / "tasks.json")
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
    for name in TASK_NAMES:
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
