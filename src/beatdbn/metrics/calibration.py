"""Calibration of class posteriors: temperature, expected calibration error, reliability bins.

A confidence is calibrated when answers given with confidence ``c`` are right
a fraction ``c`` of the time. :func:`expected_calibration_error` measures the
gap (Naeini et al. 2015; Guo et al. 2017): answers are put in equal-width
confidence bins, and ``ECE = sum_b (n_b / n) |accuracy_b - confidence_b|``.
:func:`apply_temperature` rescales posteriors as temperature scaling does, here
on a track posterior (the mean of step posteriors): ``softmax(log(p) / T)``.
"""

from __future__ import annotations

import numpy as np

from beatdbn.exceptions import ParameterError

__all__ = ["apply_temperature", "expected_calibration_error"]


def apply_temperature(posteriors, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)`` row by row (``T = 1``: unchanged); ``(n, n_classes)`` float64.

    Examples
    --------
    >>> apply_temperature([[0.8, 0.2]], 2.0).round(3)
    array([[0.667, 0.333]])
    """
    p = np.asarray(posteriors, dtype=np.float64)
    if not (np.isfinite(temperature) and temperature > 0):
        raise ParameterError(f"temperature={temperature!r}: must be a finite number > 0")
    if temperature == 1.0 or p.size == 0:
        return p
    logp = np.log(np.clip(p, 1e-12, None)) / temperature
    logp -= logp.max(axis=-1, keepdims=True)
    q = np.exp(logp)
    return q / q.sum(axis=-1, keepdims=True)


def expected_calibration_error(confidence, correct, *, n_bins: int = 10) -> tuple[float, list[dict]]:
    """ECE of answers given with ``confidence`` that were ``correct``, and the reliability bins.

    Parameters
    ----------
    confidence : array-like [shape=(n,)]
        The probability shown with each answer, in [0, 1].
    correct : array-like [shape=(n,)], bool
    n_bins : int
        Equal-width bins over [0, 1].

    Returns
    -------
    ece : float
    bins : list of dict
        ``{"lo", "hi", "n", "confidence", "accuracy"}`` per non-empty bin.

    Examples
    --------
    >>> ece, bins = expected_calibration_error([0.9, 0.9, 0.6, 0.6], [1, 1, 1, 0])
    >>> round(ece, 3), [b["n"] for b in bins]
    (0.1, [2, 2])
    """
    c = np.asarray(confidence, dtype=np.float64).ravel()
    y = np.asarray(correct, dtype=np.float64).ravel()
    if c.shape != y.shape:
        raise ParameterError(f"confidence ({c.shape}) and correct ({y.shape}) differ in length")
    if not (isinstance(n_bins, int) and n_bins >= 1):
        raise ParameterError(f"n_bins={n_bins!r}: must be an int >= 1")
    if len(c) == 0:
        return float("nan"), []
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(c, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        m = which == b
        if not m.any():
            continue
        conf, acc = float(c[m].mean()), float(y[m].mean())
        ece += m.sum() / len(c) * abs(acc - conf)
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()), "confidence": conf,
                     "accuracy": acc})
    return float(ece), bins
