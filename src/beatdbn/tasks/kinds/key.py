"""Key recognition (the paper's section 4): the 12 tonics, the tracks of highest key confidence.

``per_key`` (250) tracks of each key, those of highest ``key_confidence``
(ties broken by track id). A track without a key confidence (NaN: audio has
none) is ranked after every track with one, and among themselves such
tracks come in a seeded random order, so an audio key task draws ``per_key``
of each key's labelled tracks at random. ``key_classes=24``: "C major" ...
"B minor" from the MSD ``key`` and ``mode``; tracks of unknown mode are left
out. Scored by accuracy and the MIREX weighted key score.
"""

from __future__ import annotations

import zlib
from collections import Counter

import numpy as np

from beatdbn.exceptions import ParameterError
from beatdbn.labels import KEY_NAMES, KEY_NAMES_24
from beatdbn.tasks.registry import PaperColumn, TaskConfig, TaskOption, TaskSpec
from beatdbn.tasks.selection import Task, auto_balanced, balanced_task, try_auto


def _key_rank(rows: dict, i: int, seed: int) -> tuple:
    """Sort key of track ``i``: by confidence (highest first), then the tracks without one (NaN or
    missing) in a seeded random order, ties by track id."""
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


def _check_classes(value) -> None:
    if value not in (12, 24):
        raise ParameterError(f"key_classes={value!r}: choose 12 (tonics, the paper) or 24 (major and minor keys)")


def build(rows: dict, config: TaskConfig, context: dict) -> Task:
    order = sorted(range(len(rows["track_id"])), key=lambda i: _key_rank(rows, i, config.seed))
    labels = {}
    for i in order:
        label = _key_label(rows["key"][i], rows["mode"][i], config.key_classes)
        if label is not None:
            labels[rows["track_id"][i]] = label
    classes = list(KEY_NAMES if config.key_classes == 12 else KEY_NAMES_24)
    counts = Counter(labels.values())
    auto, why = try_auto(lambda: auto_balanced("key", counts, classes, config, True,
                                               report=context["stats"].setdefault("key", {}).setdefault("auto", {})))
    return balanced_task("key", labels, classes, config.per_key, "--per-key", config, auto=auto, auto_error=why,
                         ranked=True)


TASK = TaskSpec(
    name="key",
    title="key",
    order=30,
    build=build,
    cap=lambda c: (c.key_classes, c.per_key),
    options=(
        TaskOption("per_key", 250, "Key task: tracks per key (highest key confidence); a cap with --scale auto.",
                   minimum=1),
        TaskOption("key_classes", 12, "Key task: 12 tonics (the paper) or 24 major/minor keys (needs the mode).",
                   check=_check_classes),
    ),
    columns=("key", "key_confidence", "mode"),
    help="key recognition: the tracks of highest key confidence",
    paper=PaperColumn(classes=12, per_class=250, train_tracks=2400, results={
        ("naive_bayes", "final"): (0.7374, None), ("logreg", "final"): (0.8653, 5e-5),
        ("convmlp_random", "final"): (0.8384, 0.05), ("convmlp_pretrained", "final"): (0.8384, 0.005),
        ("convmlp_random", "early"): (0.8384, 0.05), ("convmlp_pretrained", "early"): (0.8451, 0.005)}),
    key_scores=True,
    unit="tracks per key",
)
