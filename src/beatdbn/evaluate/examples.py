"""Example test tracks of a run: for each task, one track the model gets right and one it gets wrong.

The report shows their posteriors over time (:mod:`beatdbn.plots.posterior`).
The model is the run's conv MLP experiment (pretrained first); the tracks are
the first of the test split, read from the run's feature store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beatdbn.data.splits import load_split
from beatdbn.exceptions import DataError
from beatdbn.inference.answer import track_answer
from beatdbn.inference.runs import load_run
from beatdbn.inference.steps import step_beat_ranges
from beatdbn.store.reader import FeatureStore
from beatdbn.tasks.build import load_task

__all__ = ["Example", "task_examples", "MODEL_PREFERENCE"]

#: Which experiment's model shows the examples, first found wins.
MODEL_PREFERENCE = ("convmlp_pretrained", "convmlp_pretrained_beatdbn", "convmlp_random", "convmlp_random_beatdbn")


@dataclass
class Example:
    task: str
    model: str
    track_id: str
    true_label: str
    predicted: str
    correct: bool
    posteriors: np.ndarray  # (n_steps, n_classes)
    beat_ranges: np.ndarray  # (n_steps, 2)
    labels: list[str]


def _store_of(run_dir: Path) -> Path:
    for f, keys in ((run_dir / "config.json", ("store",)), (run_dir / "tasks" / "tasks.json", ("store",))):
        if f.is_file():
            try:
                cfg = json.loads(f.read_text(encoding="utf-8"))
            except ValueError:
                continue
            for k in keys:
                if isinstance(cfg, dict) and cfg.get(k):
                    return Path(cfg[k])
    raise DataError(f"{run_dir}: config.json does not name the feature store")


def task_examples(run_dir: str | Path, task: str, *, max_tracks: int = 64) -> list[Example]:
    """Up to two examples for ``task`` (the first correct and the first wrong test track), in that order.

    Raises
    ------
    DataError
        No conv MLP model for the task, or the store/tasks cannot be read.
    """
    run_dir = Path(run_dir)
    exp = next((run_dir / "experiments" / task / m for m in MODEL_PREFERENCE
                if (run_dir / "experiments" / task / m / "model" / "model.pt").is_file()), None)
    if exp is None:
        raise DataError(f"{task}: no conv MLP model in experiments/{task}/")
    run = load_run(exp)
    t = load_task(run_dir / "tasks", task)
    data = load_split(FeatureStore.open(_store_of(run_dir)), t, "test")
    n = min(len(data), max_tracks)
    post = run.predict_proba(data.features[:n], over_time=True)
    picked: dict[bool, Example] = {}
    for i, (p, s) in enumerate(zip(post.tracks, post.steps)):
        answer = track_answer(run, p, top_k=1)
        if "error" in answer:
            continue
        true = run.labels[int(data.labels[i])]
        correct = answer["label"] == true
        if correct in picked:
            continue
        picked[correct] = Example(task, exp.name, data.track_ids[i], true, answer["label"], correct, s,
                                  step_beat_ranges(len(data.features[i]), len(s), run.model.config.dbn_config),
                                  list(run.labels))
        if len(picked) == 2:
            break
    return [picked[k] for k in (True, False) if k in picked]
