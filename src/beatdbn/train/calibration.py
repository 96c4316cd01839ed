"""Fitting what makes a key model's answers trustworthy, on the validation split: a temperature and the
"no key" threshold.

* :func:`fit_temperature` -- the ``T`` that minimises the negative log-likelihood of the validation
  labels under ``softmax(log(p) / T)`` (temperature scaling, Guo et al. 2017, applied to the track
  posterior; :func:`beatdbn.metrics.calibration.apply_temperature`).
* :func:`choose_tonal_threshold` -- the ``P(no key)`` at or above which the model answers "no key":
  the lowest threshold that refuses at most ``max_tonal_refused`` of the tonal validation tracks, so
  as many keyless clips as possible are refused at that cost.
* :func:`fit_end_weights` -- the weights of :mod:`beatdbn.models.key_ends` (the network's log posterior and
  the chords of a recording's ends), by maximum likelihood on labelled tonal recordings.
"""

from __future__ import annotations

import numpy as np

from beatdbn.exceptions import ParameterError
from beatdbn.metrics.calibration import apply_temperature
from beatdbn.models.key_ends import score_terms

__all__ = ["fit_temperature", "choose_tonal_threshold", "fit_end_weights"]


def fit_temperature(posteriors, labels, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature minimising the NLL of ``labels`` (class indices) under the rescaled ``posteriors``.

    Examples
    --------
    >>> p = np.array([[0.99, 0.01], [0.99, 0.01], [0.99, 0.01], [0.01, 0.99]])
    >>> fit_temperature(p, [0, 0, 1, 1]) > 1   # overconfident: one in four of the 0.99s is wrong
    True
    """
    from scipy.optimize import minimize_scalar

    p = np.asarray(posteriors, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p.ndim != 2 or len(p) != len(y) or len(y) == 0:
        raise ParameterError(f"posteriors {p.shape} and labels {y.shape}: need (n, n_classes) and (n,), n >= 1")

    def nll(log_t: float) -> float:
        q = apply_temperature(p, float(np.exp(log_t)))
        return float(-np.mean(np.log(np.clip(q[np.arange(len(y)), y], 1e-12, None))))

    res = minimize_scalar(nll, bounds=tuple(np.log(bounds)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def choose_tonal_threshold(p_no_key_tonal, *, max_tonal_refused: float = 0.01) -> float:
    """The ``P(no key)`` threshold: refuse (``p >= t``) at most ``max_tonal_refused`` of the tonal tracks.

    Among the thresholds meeting that bound the lowest is taken (the most keyless clips refused); it is
    never above 0.5, so a clip the model thinks more likely keyless than not is always refused.

    Examples
    --------
    >>> choose_tonal_threshold([0.0, 0.01, 0.02, 0.3], max_tonal_refused=0.25)
    0.3
    """
    tonal = np.sort(np.asarray(p_no_key_tonal, dtype=np.float64))
    if len(tonal) == 0:
        raise ParameterError("no tonal tracks to choose the 'no key' threshold on")
    if not 0 <= max_tonal_refused < 1:
        raise ParameterError(f"max_tonal_refused={max_tonal_refused!r}: must be in [0, 1)")
    allowed = int(np.floor(max_tonal_refused * len(tonal)))  # tonal tracks that may be refused
    # refusing p >= t refuses the tonal tracks at or above t: t just above the (allowed+1)-th largest
    t = float(np.nextafter(tonal[len(tonal) - allowed - 1], 1.0)) if allowed < len(tonal) else 0.0
    if allowed and tonal[len(tonal) - allowed] > tonal[len(tonal) - allowed - 1]:
        t = float(tonal[len(tonal) - allowed])  # the allowed ones refused exactly
    return float(min(max(t, 1e-6), 0.5))


def fit_end_weights(tonal_post, ends, keys, *, l2: float = 1e-3) -> list[float]:
    """``[w_model, w_end, w_start]`` maximising the likelihood of ``keys`` under :func:`key_ends.fuse
    <beatdbn.models.key_ends.fuse>` (L-BFGS; ``l2`` on the two end weights).

    Parameters
    ----------
    tonal_post : array-like [shape=(n, 24)]
        The network's calibrated key posteriors, canonical order (C..B major, C..B minor).
    ends : array-like [shape=(n, 2, 12)]
        Each recording's start and end chroma (:func:`beatdbn.features.audio.chroma_ends`).
    keys : array-like [shape=(n,)], int
        The true keys, canonical indices 0-23.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> keys = rng.integers(0, 24, 200)
    >>> from beatdbn.models.key_ends import triad_templates
    >>> ends = np.repeat(triad_templates()[keys][:, None, :], 2, axis=1) * 3   # ends on the tonic triad
    >>> post = np.full((200, 24), 1 / 24)                                       # a network that cannot tell
    >>> w = fit_end_weights(post, ends, keys)
    >>> w[1] > 1 and w[2] > 1
    True
    """
    from scipy.optimize import minimize

    p = np.asarray(tonal_post, dtype=np.float64)
    y = np.asarray(keys, dtype=np.int64)
    if p.ndim != 2 or p.shape[1] != 24 or len(p) != len(y) or len(y) == 0 or not ((0 <= y) & (y < 24)).all():
        raise ParameterError(f"tonal_post {p.shape} and keys {y.shape}: need (n, 24) and (n,) keys in 0..23, n >= 1")
    terms = score_terms(p, ends)  # (n, 24, 3), computed once for every step of the search

    def nll(w: np.ndarray) -> float:
        z = terms @ w
        z = z - z.max(axis=1, keepdims=True)
        log_q = z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))
        return float(-log_q.mean() + l2 * (w[1:] ** 2).sum())

    return [float(v) for v in minimize(nll, np.array([1.0, 0.0, 0.0]), method="L-BFGS-B").x]
