"""Accuracy, per-class accuracy, confusion matrices and the MIREX key score of track-level predictions.

**MIREX weighted key score** (:func:`weighted_key_score`), computed with
``mir_eval.key.weighted_score``: same key 1.0, a perfect fifth 0.5, relative
major/minor 0.3, parallel major/minor 0.2, else 0. Which fifth counts is the
installed mir_eval's convention (:func:`fifth_convention`; mir_eval 0.8.2:
only the estimate a fifth *above* the reference, in the same mode). On the
24-key task (classes "C major" ... "B minor") every relation applies. On the
paper's 12-tonic task the prediction carries no mode: it is taken in the
reference's mode, so only "same" (1.0) and "fifth" (0.5) can score.

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
from beatdbn.labels import PITCH_CLASSES

__all__ = ["accuracy", "per_class_accuracy", "confusion_matrix", "chance_level", "mirex_keys",
           "weighted_key_score", "fifth_convention", "KEY_SCORE_RULE"]

_TONICS = PITCH_CLASSES
#: How :func:`weighted_key_score` treats the two kinds of key task (written beside the scores).
KEY_SCORE_RULE = ("MIREX weighted key score (mir_eval.key.weighted_score: same 1.0, fifth 0.5, relative 0.3, "
                  "parallel 0.2); on the 12-tonic task the predicted tonic is taken in the reference's mode")


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


def mirex_keys(classes) -> list[str] | None:
    """mir_eval key strings of a key task's classes, or None when the classes are not keys.

    12 tonic classes ("C" ... "B") become "<tonic> major" (the estimate takes
    the reference's mode, see the module docstring); 24-key classes are kept.

    Examples
    --------
    >>> mirex_keys(["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"])[:2]
    ['C major', 'C# major']
    >>> mirex_keys(["rock", "pop"]) is None
    True
    """
    classes = [str(c) for c in classes]
    if sorted(classes) == sorted(_TONICS):
        return [f"{c} major" for c in classes]
    names = {f"{t} {m}" for t in _TONICS for m in ("major", "minor")}
    if classes and len(set(classes)) == len(classes) and set(classes) <= names and len(classes) >= 2:
        return classes
    return None


def weighted_key_score(confusion, classes) -> float | None:
    """Mean MIREX weighted key score over the tracks of a confusion matrix (None: not a key task).

    Parameters
    ----------
    confusion : array-like [shape=(n_classes, n_classes)]
        ``C[i, j]`` tracks of true class ``i`` predicted as ``j``.
    classes : sequence of str
        The task's classes (12 tonics or 24 keys, see :func:`mirex_keys`).

    Examples
    --------
    >>> tonics = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    >>> c = np.zeros((12, 12), int); c[0, 0] = 1; c[0, 7] = 1   # one right, one a fifth above
    >>> weighted_key_score(c, tonics)
    0.75
    """
    keys = mirex_keys(classes)
    if keys is None:
        return None
    import mir_eval.key

    c = np.asarray(confusion, dtype=np.float64)
    if c.shape != (len(keys), len(keys)):
        raise ParameterError(f"confusion of shape {c.shape} does not match {len(keys)} classes")
    if c.sum() == 0:
        return float("nan")
    weights = np.array([[mir_eval.key.weighted_score(r, e) for e in keys] for r in keys])
    return float((c * weights).sum() / c.sum())


def fifth_convention() -> str:
    """Which fifth the installed ``mir_eval.key.weighted_score`` credits, found by asking it.

    Examples
    --------
    >>> fifth_convention().startswith("mir_eval")
    True
    """
    import mir_eval
    import mir_eval.key

    up = mir_eval.key.weighted_score("C major", "G major")
    down = mir_eval.key.weighted_score("C major", "F major")
    minor = mir_eval.key.weighted_score("A minor", "E minor")
    which = ("both directions (estimate a fifth above or below the reference)" if up == down == 0.5 else
             "ascending only (the estimate a perfect fifth above the reference)" if up == 0.5 else
             "descending only (the estimate a perfect fifth below the reference)" if down == 0.5 else "none")
    return f"mir_eval {mir_eval.__version__}: fifth = {which}, same mode" + ("" if minor == 0.5 else
                                                                                 ", major keys only")
