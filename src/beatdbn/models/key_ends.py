"""A key model's answer, told where the piece sets out and where it comes to rest.

Tonal pieces mostly begin and end on their tonic chord. The conv MLP cannot use that: it max-pools over time,
and most short pieces are one layer-4 step, so it keeps which chords occur, not where (a loop ``I-V-vi-IV`` and
its relative minor's ``vi-IV-I-V`` look alike to it; a piece that visits its dominant can end up named after
it). This late fusion adds the chords of the ends to the network's answer, as a conditional logit over the
24 keys::

    score_k = w_model * log P(k | tonal) + w_end * r_end(k) + w_start * r_start(k)
    P(k | tonal) <- softmax_k(score_k)          P(no key) stays the network's

``r_end(k)`` is the Pearson correlation of ``log1p`` of the mean chroma energy of the recording's last tenth
(:func:`beatdbn.features.audio.chroma_ends`) with the tonic triad of key ``k`` (tonic 2, third 1, fifth 1);
``r_start(k)`` the same for its first tenth. The three weights are fitted by maximum likelihood on rendered
pieces of a seed that neither training nor the held-out check uses (``scripts/train_key_model.py``; the
figures are in the model's ``PROVENANCE.json``); ``w_model`` also recalibrates the network's confidence.

The 24 keys are in one canonical order here: C..B major (0-11), then C..B minor (12-23).
"""

from __future__ import annotations

import numpy as np

__all__ = ["N_KEYS", "N_TERMS", "triad_templates", "end_terms", "score_terms", "scores", "fuse"]

#: Keys in the canonical order: tonic 0-11 major, then tonic 0-11 minor.
N_KEYS = 24
#: Terms of the score: the network's log posterior, the end's and the start's triad correlations.
N_TERMS = 3


def triad_templates() -> np.ndarray:
    """``(24, 12)`` tonic-triad templates: key k's tonic 2, its third (major or minor) 1, its fifth 1.

    Examples
    --------
    >>> t = triad_templates()
    >>> t[0].nonzero()[0].tolist(), t[12 + 9].nonzero()[0].tolist()  # C major; A minor
    ([0, 4, 7], [0, 4, 9])
    """
    major, minor = np.zeros(12), np.zeros(12)
    major[[0, 4, 7]] = minor[[0, 3, 7]] = [2.0, 1.0, 1.0]
    return np.stack([np.roll(major, k) for k in range(12)] + [np.roll(minor, k) for k in range(12)])


def _correlations(chroma: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``log1p(chroma)`` ``(n, 12)`` with each template: ``(n, 24)``."""
    c = np.log1p(np.asarray(chroma, dtype=np.float64))
    c = c - c.mean(axis=1, keepdims=True)
    t = triad_templates()
    t = t - t.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(c, axis=1, keepdims=True) * np.linalg.norm(t, axis=1)[None, :]
    return np.divide(c @ t.T, norm, out=np.zeros((len(c), N_KEYS)), where=norm > 0)  # a flat chroma: 0


def end_terms(ends: np.ndarray) -> np.ndarray:
    """``(n, 24, 2)``: the end's and the start's triad correlations of ``ends`` ``(n, 2, 12)`` (start, end)."""
    ends = np.asarray(ends, dtype=np.float64)
    if ends.ndim != 3 or ends.shape[1:] != (2, 12):
        raise ValueError(f"ends of shape {ends.shape}: expected (n, 2, 12) (start, end chroma)")
    return np.stack([_correlations(ends[:, 1]), _correlations(ends[:, 0])], axis=2)


def score_terms(tonal_post: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``(n, 24, 3)``: the network's log posterior, the end's and the start's triad correlations, per key; the
    scores are these terms times the weights (:func:`scores`; the fit weighs them the same way)."""
    log_p = np.log(np.maximum(np.asarray(tonal_post, dtype=np.float64), 1e-12))
    return np.concatenate([log_p[:, :, None], end_terms(ends)], axis=2)


def scores(tonal_post: np.ndarray, ends: np.ndarray, weights) -> np.ndarray:
    """The fused scores ``(n, 24)`` (see the module docstring)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (N_TERMS,):
        raise ValueError(f"weights {w.tolist()}: expected {N_TERMS} (model, end, start)")
    return score_terms(tonal_post, ends) @ w


def fuse(tonal_post: np.ndarray, ends: np.ndarray, weights) -> np.ndarray:
    """``P(key | tonal)`` ``(n, 24)`` after the ends: each row sums to 1.

    Parameters
    ----------
    tonal_post : np.ndarray [shape=(n, 24)]
        The network's key posteriors (canonical order; any positive scale per row).
    ends : np.ndarray [shape=(n, 2, 12)]
        Mean chroma energy of each recording's first and last tenth.
    weights : sequence of 3 floats
        ``w_model, w_end, w_start``.

    Examples
    --------
    >>> p = np.full((1, 24), 1 / 24)                 # the network cannot tell
    >>> ends = np.zeros((1, 2, 12)); ends[0, :, [7, 11, 2]] = [[4, 4], [2, 2], [2, 2]]   # G major chords
    >>> int(fuse(p, ends, [1.0, 3.0, 2.0]).argmax())  # G major
    7
    """
    z = scores(tonal_post, ends, weights)
    z -= z.max(axis=1, keepdims=True)
    q = np.exp(z)
    return q / q.sum(axis=1, keepdims=True)
