"""Accuracy, per-class accuracy and confusion matrices of track-level predictions.

Examples
--------
>>> import numpy as np
>>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 2).tolist()
[[1, 0], [1, 1]]
>>> accuracy(np.array([0, 1, 1]), np.array([0, 1, 0]))
0.6666666666666666
"""

from __future__ import annotations

import numpy as np

from beatdbn.exceptions import ParameterError

__all__ = ["accuracy", "per_class_accuracy", "confusion_matrix", "chance_level"]


def _check(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ParameterError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal-length vectors")
    return y_true, y_pred


def accuracy(y_true, y_pred) -> float:
    """Fraction of tracks whose predicted class is the true one (NaN when empty)."""
    y_true, y_pred = _check(y_true, y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """``C[i, j]`` = tracks of true class ``i`` predicted as ``j``."""
    y_true, y_pred = _check(y_true, y_pred)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_accuracy(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Recall of each class (NaN for a class with no tracks)."""
    c = confusion_matrix(y_true, y_pred, n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(c) / c.sum(axis=1)


def chance_level(y_train, n_classes: int) -> float:
    """Accuracy of always answering the most frequent training class (1/n for balanced tasks)."""
    counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes)
    return float(counts.max() / counts.sum()) if counts.sum() else 1.0 / n_classes
