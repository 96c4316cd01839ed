"""Drawing classes and tracks, and splitting them 80/10/10: the helpers every task module shares.

Every class is split into train/valid/test per class, so the splits are
balanced; a held-out split of a class gets ``n * 0.1`` tracks rounded half up,
at least one when the class has three or more. Classes of exactly two tracks
are pooled: each keeps one training track and gives the other to valid or
test, alternating over the classes in a seeded order. Each class's draw and
shuffle come from a generator seeded by (seed, task, class), so adding a class
or a task changes no other split.

**Artist filter** (:func:`split_by_artist`): every artist's tracks land in one
split (over all classes); the held-out quotas are filled as closely as whole
artists allow. MusicBrainz genre tags belong to the artist, so a random split
puts an artist's tracks on both sides and genre accuracy partly measures artist
recognition.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from beatdbn.exceptions import DataError

if TYPE_CHECKING:  # type hints only: the registry imports this module
    from beatdbn.tasks.registry import TaskConfig

__all__ = ["Task", "TaskScaleError", "SPLITS", "scale_text", "rng", "held_out", "targets", "split_random",
           "split_by_artist", "assemble", "sample", "choose_scale", "auto_report", "auto_balanced", "balanced_task", "try_auto"]

SPLITS = ("train", "valid", "test")
_TIMES = "\u00d7"


class TaskScaleError(DataError):
    """The corpus is too small for the requested task scale."""


def scale_text(classes: int, per_class: int) -> str:
    """``'20×250'``: classes × tracks per class."""
    return f"{classes}{_TIMES}{per_class}"


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


def rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def held_out(n: int, fraction: float) -> int:
    """Tracks of a class of ``n`` for a held-out split: ``n * fraction`` rounded half
    up, and at least one when the fraction is positive and the class has 3 or more."""
    k = int(np.floor(n * fraction + 0.5))
    return max(k, 1) if fraction > 0 and n >= 3 else k


def targets(chosen: dict[str, list[str]], config: TaskConfig, task: str) -> dict[str, dict[str, int]]:
    """Held-out tracks per split and class. Classes of 3+ tracks: :func:`held_out` each. Classes of
    exactly 2 (which per-class rounding would leave without held-out tracks) are pooled: each keeps
    one training track and gives one to valid or test, alternating in a seeded class order."""
    need = {"valid": {}, "test": {}}
    pooled = []
    for label, ids in chosen.items():
        n = len(ids)
        need["valid"][label] = held_out(n, config.valid_fraction)
        need["test"][label] = held_out(n, config.test_fraction)
        if n == 2 and need["valid"][label] + need["test"][label] == 0:
            pooled.append(label)
    sides = [s for s, f in (("valid", config.valid_fraction), ("test", config.test_fraction)) if f > 0]
    if sides:
        for i, j in enumerate(rng(config.seed, task, "pooled").permutation(len(pooled))):
            need[sides[i % len(sides)]][sorted(pooled)[j]] = 1
    return need


def split_random(chosen: dict[str, list[str]], config: TaskConfig, task: str) -> dict[str, dict[str, list[str]]]:
    need = targets(chosen, config, task)
    out = {}
    for label, ids in chosen.items():
        ids = list(rng(config.seed, task, label, "split").permutation(sorted(ids)))
        nv, nt = need["valid"][label], need["test"][label]
        out[label] = {"valid": ids[:nv], "test": ids[nv:nv + nt], "train": ids[nv + nt:]}
    return out


def split_by_artist(chosen: dict[str, list[str]], config: TaskConfig, task: str,
                     artist_of: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """Artist-filtered splits: every artist's tracks (over all classes) land in one split.

    Artists come in a seeded random order, smaller ones first (they fill the
    held-out quotas most exactly); each goes to test, then valid, when all its
    tracks fit within that split's remaining quota of their classes, else to
    train. A class whose artists are all too large for a quota stays short
    there (the counts are written to ``tasks.json``)."""
    need = targets(chosen, config, task)
    label_of = {t: label for label, ids in chosen.items() for t in ids}
    by_artist: dict[str, list[str]] = defaultdict(list)
    for t in sorted(label_of):
        by_artist[artist_of.get(t) or f"(no artist) {t}"].append(t)
    names = sorted(by_artist)
    order = [names[i] for i in rng(config.seed, task, "artists").permutation(len(names))]
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


def assemble(name: str, chosen: dict[str, list[str]], config: TaskConfig, classes: list[str], *,
              per_class: int, artist_of: dict[str, str] | None = None) -> Task:
    protocol = "artist-filtered" if artist_of is not None else "random"
    task = Task(name, classes, {s: [] for s in SPLITS}, per_class=per_class, scale=config.scale, protocol=protocol)
    parts = (split_by_artist(chosen, config, name, artist_of) if artist_of is not None
             else split_random(chosen, config, name))
    for label in classes:
        for split in SPLITS:
            task.splits[split].extend((t, label) for t in parts[label][split])
    return task


def sample(ids: list[str], n: int, config: TaskConfig, task: str, label: str) -> list[str]:
    ids = sorted(ids)
    if len(ids) <= n:
        return ids
    pick = rng(config.seed, task, label, "draw").choice(len(ids), size=n, replace=False)
    return [ids[i] for i in sorted(pick)]


def choose_scale(ranked: list[tuple[str, int]], *, most_classes: int, cap: int, floor: int,
                 more_classes: bool = True) -> tuple[int, int, list[dict]] | None:
    """The k largest classes and tracks per class that use the most tracks, and the alternatives rejected.

    ``ranked``: (class, tracks) largest first. For each k from 2 to ``most_classes``, p is the k-th class's
    size capped at ``cap``; a k whose k-th class has fewer than ``floor`` tracks is rejected (the reason
    names the class); of the others the largest k x p wins (ties: more classes, or with ``more_classes``
    False more tracks per class). None: no k reaches the floor.
    """
    options, rejected = [], []
    for k in range(2, min(most_classes, len(ranked)) + 1):
        name, n = ranked[k - 1]
        p = min(cap, n)
        if n < floor:
            rejected.append({"classes": k, "per_class": p, "tracks": k * p,
                             "reason": f"below the floor: {name} has {n} < {floor} tracks"})
        else:
            options.append((k, p))
    if not options:
        return None
    k, p = max(options, key=lambda kp: (kp[0] * kp[1], kp[0] if more_classes else kp[1]))
    rejected += [{"classes": j, "per_class": q, "tracks": j * q,
                  "reason": f"fewer tracks than {k * p}" if j * q < k * p else
                  f"as many tracks, {'fewer classes' if more_classes else 'fewer per class'}"}
                 for j, q in options if j != k]
    return k, p, sorted(rejected, key=lambda a: (-a["tracks"], -a["classes"]))


def auto_report(report: dict | None, config: TaskConfig, *, floor: int, classes: int, per_class: int,
                rejected: list[dict], below: dict[str, int]) -> None:
    """Fill ``report`` (a task's ``stats[...]["auto"]``, written to tasks.json and printed by ``beatdbn tasks``)
    with the rule, the floor, the choice, the alternatives rejected and the classes below the floor (the 20
    largest of them, and their number)."""
    if report is None or not config.is_auto:
        return
    largest = dict(sorted(below.items(), key=lambda kv: (-kv[1], kv[0]))[:20])
    report.clear()
    report.update(rule=config.scale, floor=floor, min_test_per_class=config.min_test_per_class,
                  classes=classes, per_class=per_class, tracks=classes * per_class, rejected=rejected,
                  below_floor=largest, below_floor_count=len(below))


def auto_balanced(name: str, counts: Counter, classes: list[str], config: TaskConfig,
                  pick_all: bool, *, fewer_hint: str = "; add tracks or lower --min-per-class",
                  report: dict | None = None) -> tuple[list[str], int]:
    """Classes and tracks per class at an automatic scale; ``report`` (when the scale is automatic) receives
    the rule, the floor, the choice and the alternatives it rejected (:func:`auto_report`).

    With ``pick_all`` the classes given must all reach the floor and take the smallest one's size. Otherwise,
    ``scale='auto'``: the k largest classes, k chosen to use the most tracks (k x the k-th largest class,
    capped; ties: more classes), each with at least :meth:`TaskConfig.auto_floor` tracks (:func:`choose_scale`);
    ``scale='auto-all-classes'`` (the earlier rule): every class with at least :meth:`TaskConfig.min_tracks`
    tracks, at the smallest one's size. ``scale='paper'`` (for the suggestion in its error): as ``'auto'``.
    """
    old_rule = config.scale == "auto-all-classes"
    floor = config.min_tracks(name) if old_rule else config.auto_floor(name)
    most_classes, cap = config.cap(name)
    rejected: list[dict] = []
    below = {c: counts.get(c, 0) for c in classes if counts.get(c, 0) < floor}
    if pick_all:
        if below:
            raise TaskScaleError(
                f"{name} task: --scale {config.scale if config.is_auto else 'auto'} needs at least {floor} tracks in "
                f"every class (--min-per-class, --min-test-per-class), but "
                f"{', '.join(f'{c}: {n}' for c, n in below.items())}" + fewer_hint)
        chosen = list(classes)
    else:
        ranked = sorted(((c, counts.get(c, 0)) for c in classes), key=lambda cn: (-cn[1], cn[0]))
        eligible = [c for c, n in ranked if n >= floor]
        if len(eligible) < 2:
            raise TaskScaleError(
                f"{name} task: --scale {config.scale if config.is_auto else 'auto'} needs two classes with at least "
                f"{floor} tracks each (--min-per-class, --min-test-per-class), but only {len(eligible)} has that "
                f"many (largest: {', '.join(f'{c}: {n}' for c, n in ranked[:5])})")
        if old_rule:
            k = len(eligible)
        else:
            k, _, rejected = choose_scale(ranked, most_classes=most_classes, cap=cap, floor=floor)
        keep = set(eligible[:k])
        chosen = [c for c in classes if c in keep]
    per_class = min(cap, min(counts[c] for c in chosen))
    auto_report(report, config, floor=floor, classes=len(chosen), per_class=per_class, rejected=rejected,
                below=below)
    return chosen, per_class


def balanced_task(name: str, labels: dict[str, str], classes: list[str], per_class: int, option: str,
                  config: TaskConfig, *, auto: tuple[list[str], int] | None = None, auto_error: str = "",
                  artist_of: dict[str, str] | None = None, ranked: bool = False) -> Task:
    """A balanced task: ``per_class`` tracks of each class (``ranked``: the first ones in the order of
    ``labels``, which the caller sorted; else a seeded random draw), split 80/10/10. At ``scale='auto'``
    the classes and count of ``auto`` (:func:`auto_balanced`) are used; a class too small raises
    :class:`TaskScaleError` naming ``option`` and what the corpus supports."""
    by_class: dict[str, list[str]] = defaultdict(list)
    for tid, label in labels.items():
        by_class[label].append(tid)
    if config.is_auto:
        if auto is None:
            raise TaskScaleError(auto_error)
        classes, per_class = auto
    short = {c: len(by_class.get(c, [])) for c in classes if len(by_class.get(c, [])) < per_class}
    if short:
        supported = min(len(by_class.get(c, [])) for c in classes)
        listing = ", ".join(f"{c}: {n}" for c, n in sorted(short.items(), key=lambda kv: kv[1]))
        options = [f"{option} {supported}"] if supported >= config.min_tracks(name) else []  # only what splits
        if auto is not None:
            options.append(f"--scale auto (it would choose {scale_text(len(auto[0]), auto[1])}: "
                           f"{', '.join(auto[0][:12])}{', ...' if len(auto[0]) > 12 else ''})")
        raise TaskScaleError(
            f"{name} task: {per_class} tracks per class asked, but {len(short)} of {len(classes)} classes have "
            f"fewer ({listing}). "
            + (f"The corpus supports {' or '.join(options)}" if options
               else f"The corpus cannot support all {len(classes)} classes ({auto_error})")
        )
    if ranked:
        chosen = {c: by_class[c][:per_class] for c in classes}
    else:
        chosen = {c: sample(by_class[c], per_class, config, name, c) for c in classes}
    return assemble(name, chosen, config, classes, per_class=per_class, artist_of=artist_of)


def try_auto(fn) -> tuple[object, str]:
    try:
        return fn(), ""
    except TaskScaleError as exc:
        return None, str(exc)
