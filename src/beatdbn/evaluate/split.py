"""Evaluate a finished run on one split of its task (``beatdbn evaluate``), through :mod:`beatdbn.inference`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from beatdbn.data.splits import load_split
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.inference.posteriors import predict_features
from beatdbn.inference.runs import Run, as_run
from beatdbn.metrics.scores import (KEY_SCORE_RULE, accuracy, chance_level, confusion_matrix, fifth_convention,
                                    per_class_accuracy, weighted_key_score)
from beatdbn.store.reader import FeatureStore, check_representations
from beatdbn.tasks.build import load_task

__all__ = ["evaluate_split"]


def evaluate_split(run_dir: Run | str | Path, store, tasks_dir, split: str = "test", *,
                   batch_size: int = 32) -> dict[str, Any]:
    """Accuracy of a run's selected model on one split of its task.

    Parameters
    ----------
    run_dir : path or Run
        A conv MLP or baseline run (or a model folder).
    store : FeatureStore or path
    tasks_dir : path
        The tasks folder; the task is the one the model was trained for.
    split : {'train', 'valid', 'test'}

    Returns
    -------
    dict
        ``{"run", "task", "split", "n_tracks", "accuracy", "chance",
        "per_class_accuracy": {label: accuracy or None}, "classes",
        "confusion": [[...]]}`` (rows: true class, columns: predicted); on a key
        task also ``"weighted_key_score"`` (MIREX, via mir_eval), ``"key_score_rule"``
        and ``"key_score_fifth"``.

    Raises
    ------
    DataError
        Task or split missing, a track missing from the store, classes that
        differ from the model's, or a split whose tracks mix representations
        (MSD and audio) or hold another one than the model was trained on.
    """
    run = as_run(run_dir)
    if not run.task:
        raise DataError(f"{run.path}: the model does not record its task; evaluate it with the library instead")
    if split not in ("train", "valid", "test"):
        raise ParameterError(f"split={split!r}: must be one of train, valid, test")
    fs = store if isinstance(store, FeatureStore) else FeatureStore.open(store)
    task = load_task(tasks_dir, run.task)
    model_classes = list(run.model.config.class_names) if run.answers_over_time else [str(c) for c in run.model.classes]
    if list(task.classes) != model_classes:
        raise DataError(f"{Path(tasks_dir) / run.task}: classes {task.classes[:5]}... differ from the model's "
                        f"{model_classes[:5]}...: were the tasks rebuilt since training?")
    data = load_split(fs, task, split)
    check_representations(fs.representations(data.track_ids), expected=run.representation,
                          what=f"the {split} tracks of task {run.task} in {fs.path}")
    post = predict_features(run, data.features, batch_size=batch_size)
    pred = post.argmax(axis=1)
    n = run.n_classes
    pca = per_class_accuracy(data.labels, pred, n)
    confusion = confusion_matrix(data.labels, pred, n)
    out = {"run": str(run.path), "task": run.task, "split": split, "n_tracks": len(data),
           "accuracy": accuracy(data.labels, pred), "chance": chance_level(data.labels, n),
           "per_class_accuracy": {lab: (None if math.isnan(a) else float(a)) for lab, a in zip(run.labels, pca)},
           "classes": run.labels, "confusion": confusion.tolist()}
    score = weighted_key_score(confusion, task.classes)
    if score is not None:  # a key task: the MIREX weighted score beside the accuracy
        out.update(weighted_key_score=score, key_score_rule=KEY_SCORE_RULE, key_score_fifth=fifth_convention())
    return out
