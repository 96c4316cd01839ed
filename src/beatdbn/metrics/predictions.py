"""Per-track test predictions in every result, for paired comparisons between models on the same tracks.

Every trainer (naive Bayes and windowed logistic regression, :mod:`beatdbn.train.baselines`; the conv MLP,
:mod:`beatdbn.train.finetune`) records, in the ``result.json`` it writes:

* on every run row that has a ``test_accuracy``: ``"test_predicted"``, the predicted class index of each
  test track (ints, indices into the result's ``classes``; for a 24-key task too);
* in ``extra``: ``"test_track_ids"``, the test tracks' ids, and ``"test_targets"``, their true class
  indices, in the same order as ``test_predicted``.

So ``mean(test_predicted == test_targets)`` is the row's ``test_accuracy`` exactly (:func:`check_predictions`),
and two results of one task and one split (same ``test_track_ids``) can be compared track by track
(McNemar, a paired bootstrap). A result written before these fields existed has none of them
(:func:`predictions_of` says so).

Examples
--------
>>> import numpy as np
>>> class Split:  # a SplitData's two fields used here
...     track_ids, labels = ["TRA", "TRB"], np.array([1, 0])
>>> targets_of(Split())
{'test_track_ids': ['TRA', 'TRB'], 'test_targets': [1, 0]}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from beatdbn.exceptions import DataError

__all__ = ["targets_of", "predicted", "predictions_of", "check_predictions"]


def targets_of(test) -> dict[str, list]:
    """``{"test_track_ids", "test_targets"}`` of a test split (a :class:`~beatdbn.data.splits.SplitData`), for
    a result's ``extra``."""
    return {"test_track_ids": [str(t) for t in test.track_ids],
            "test_targets": [int(v) for v in np.asarray(test.labels).tolist()]}


def predicted(pred) -> list[int]:
    """The predicted class indices as plain ints (a run row's ``test_predicted``)."""
    return [int(v) for v in np.asarray(pred).tolist()]


def predictions_of(result, row: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(track_ids, targets, predicted)`` of one run row of ``result`` (an ExperimentResult).

    Raises
    ------
    DataError
        The result has no per-track predictions (written before they were recorded: rerun the experiment
        in a new run folder), or their lengths disagree.
    """
    ids, targets = result.extra.get("test_track_ids"), result.extra.get("test_targets")
    pred = row.get("test_predicted")
    if ids is None or targets is None or pred is None:
        raise DataError(f"{result.model} on {result.task!r}: the result has no per-track test predictions "
                        f"(written by an older beatdbn); rerun the experiment into a new run folder")
    if not len(ids) == len(targets) == len(pred):
        raise DataError(f"{result.model} on {result.task!r}: {len(ids)} test track ids, {len(targets)} targets "
                        f"and {len(pred)} predictions; the result file is damaged, rerun the experiment")
    return list(ids), np.asarray(targets, dtype=np.int64), np.asarray(pred, dtype=np.int64)


def check_predictions(result) -> int:
    """Check that every row's ``test_predicted`` gives its ``test_accuracy`` exactly; returns the rows checked.

    Raises
    ------
    DataError
        A row without predictions, or whose predictions give another accuracy than recorded.
    """
    n = 0
    for row in result.runs:
        if row.get("test_accuracy") is None:
            continue
        _, targets, pred = predictions_of(result, row)
        got = float((pred == targets).sum()) / len(targets) if len(targets) else float("nan")
        if got != row["test_accuracy"]:
            raise DataError(f"{result.model} on {result.task!r}, lr={row.get('learning_rate')}, epoch "
                            f"{row.get('epoch')}: the predictions give a test accuracy of {got!r}, the row "
                            f"records {row['test_accuracy']!r}")
        n += 1
    return n
