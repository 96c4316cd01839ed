"""How sure Table 1 can be: an accuracy's interval over seeds, and which differences between models are real.

**One model's accuracy** (:func:`summarize`). Over ``n >= 2`` seeds: the mean ± the sample standard
deviation of the seeds' test accuracies, and the 95 % *t-interval* over seeds, ``mean ± t(0.975, n-1) ·
sd / √n`` (clipped to [0, 1]): what a new seed would average to, each seed drawing its own split,
pretraining and initial weights, so the interval holds the training's variance as well as the test
set's. Two or three seeds of a few test tracks often agree exactly (9 of 11 twice: sd 0), and a t-interval
of width 0 would claim a certainty 11 tracks cannot give; so the interval is widened, where it is
narrower, to the Wilson interval of the seeds' test tracks pooled (``Summary.pooled``). With one seed
there is no spread over seeds to measure; the interval is then the 95 % *Wilson score interval* over that
seed's test tracks (``k`` right of ``n``), the binomial interval that keeps its coverage at the few test
tracks of these tasks (8 to 132) where the normal approximation does not.

**Within chance** (:func:`within_chance`): over seeds, the pooled Wilson interval (every seed's test
predictions together) contains the chance level; one seed, its Wilson interval does. Why not the
t-interval: under "the model guesses" every prediction is an independent draw that is right with the
chance probability, whatever the seed, so the pooled binomial interval is the test of that hypothesis,
while a t-interval over two seeds (t = 12.7) cannot tell 81 % from 8 %. A model *did not leave chance*
(:func:`left_chance` is False) when it is within chance or its mean accuracy is at most chance plus one
test track.

**Two models on the same test tracks** (:func:`paired_comparison`): an *exact McNemar test* on the
discordant pairs pooled over seeds. Within a seed both models answered the same test tracks; pooled over
seeds every (seed, track) is one pair. ``b``: pairs model A got right and B wrong, ``c``: the reverse;
under "no difference" ``b`` is Binomial(b + c, ½), and the two-sided p-value is
``min(1, 2 · P(X <= min(b, c)))``. The difference of accuracies is ``(b - c) / N`` over the ``N``
pooled pairs; its 95 % interval inverts the same exact test: the Clopper-Pearson interval of
``b / (b + c)``, mapped to ``(b + c) / N · (2π - 1)`` (conditional on the discordant count). So the
interval excludes 0 exactly when p < 0.05: the bold marks, the intervals and the p-values of Table 1
never disagree.

Why McNemar and not a paired bootstrap over tracks: it is exact at any test-set size (a bootstrap's
percentile interval over 8 or 15 tracks takes few distinct values and covers less than it says), it
needs no resampling seed (the report gives the same numbers every time it is written), and its p-value
is a textbook one a reader can check from ``b`` and ``c``. What it does not do: it treats the pooled
pairs as independent (a track drawn into the test sets of two seeds counts twice) and tests the
difference of these trained models on these tracks; the seeds' spread enters only through the pooling.

Examples
--------
>>> round(mcnemar_p(10, 2), 5)
0.03857
>>> s = summarize([0.60, 0.62, 0.64])
>>> round(s.mean, 2), round(s.sd, 2), s.method
(0.62, 0.02, 't over 3 seeds')
>>> [round(x, 3) for x in wilson_interval(5, 10)]
[0.237, 0.763]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from beatdbn.exceptions import ParameterError

__all__ = ["CONFIDENCE", "Summary", "Paired", "summarize", "t_interval", "wilson_interval", "mcnemar_p",
           "paired_comparison", "within_chance", "left_chance", "cluster_bootstrap_interval"]

#: Confidence of every interval here.
CONFIDENCE = 0.95


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ParameterError(f"confidence={confidence!r}: must be between 0 and 1 (e.g. 0.95)")
    return float(confidence)


def wilson_interval(successes: int, n: int, *, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n``.

    Raises
    ------
    ParameterError
        ``n < 1`` or ``successes`` outside ``0..n``.
    """
    _check_confidence(confidence)
    if n < 1 or not 0 <= successes <= n:
        raise ParameterError(f"wilson_interval({successes}, {n}): needs n >= 1 tracks and 0 <= successes <= n")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def t_interval(values: Sequence[float], *, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """``mean ± t(1 - α/2, n - 1) · sd / √n`` of ``values`` (n >= 2), clipped to [0, 1]."""
    _check_confidence(confidence)
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        raise ParameterError(f"t_interval of {x.size} value(s): needs 2 or more seeds (one seed: wilson_interval)")
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    mean = float(x.mean())
    return max(0.0, mean - half), min(1.0, mean + half)


def cluster_bootstrap_interval(values: Sequence[float], groups: Sequence, *, resamples: int = 2000, seed: int = 0,
                               confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` when whole ``groups`` are resampled.

    For scores whose items come in groups that are not independent, such as the two renderings of one
    composition: a piece's renderings are right or wrong together, so a bootstrap over tracks would
    claim twice the pieces there are. Each resample draws as many groups as there are, with
    replacement, and takes the mean over all their items (groups of unequal size weigh by their size,
    as in the plain mean). Seeded, so the same input gives the same interval.

    Examples
    --------
    >>> lo, hi = cluster_bootstrap_interval([1, 1, 0, 0, 1, 1, 1, 1], ["a", "a", "b", "b", "c", "c", "d", "d"])
    >>> lo <= 0.75 <= hi
    True
    """
    _check_confidence(confidence)
    x = np.asarray(values, dtype=float)
    g = np.asarray(groups)
    if x.ndim != 1 or x.size == 0 or g.shape != x.shape:
        raise ParameterError(f"cluster_bootstrap_interval: {x.size} values and {g.size} groups; "
                             "needs one group per value, at least one value")
    if not (isinstance(resamples, int) and resamples >= 1):
        raise ParameterError(f"resamples={resamples!r}: must be an int >= 1")
    _, inverse = np.unique(g, return_inverse=True)
    sums = np.bincount(inverse, weights=x)
    sizes = np.bincount(inverse).astype(float)
    draw = np.random.default_rng(seed).integers(0, sums.size, size=(resamples, sums.size))
    means = sums[draw].sum(1) / sizes[draw].sum(1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Summary:
    """One model's test accuracy over seeds (see the module docstring).

    Attributes
    ----------
    values : tuple of float
        Each seed's test accuracy.
    mean : float
    sd : float or None
        Sample standard deviation over seeds (None with one seed).
    low, high : float
        The 95 % interval shown.
    method : str
        ``'t over 3 seeds'``, ``'t over 3 seeds, widened to Wilson over 33 pooled test tracks'`` or
        ``'Wilson over 30 test tracks'``.
    tracks : int or None
        Test tracks of one seed (the first's), when known.
    pooled : tuple of float or None
        The Wilson interval over every seed's test tracks pooled (None when their numbers are unknown).
    """

    values: tuple[float, ...]
    mean: float
    sd: float | None
    low: float
    high: float
    method: str
    tracks: int | None = None
    pooled: tuple[float, float] | None = None

    @property
    def n(self) -> int:
        """Number of seeds."""
        return len(self.values)

    def contains(self, x: float) -> bool:
        """Whether ``x`` lies in the interval (ends included, to a hair of float noise)."""
        return self.low - 1e-12 <= x <= self.high + 1e-12


def summarize(values: Iterable[float], *, tracks: int | Sequence[int] | None = None,
              confidence: float = CONFIDENCE) -> Summary:
    """Mean, sd and interval of one model's per-seed test accuracies.

    Parameters
    ----------
    values : iterable of float
        Test accuracy of each seed (in [0, 1]).
    tracks : int or sequence of int, optional
        Test tracks of each seed (one int: the same for every seed); needed for one seed (its Wilson
        interval), else for the pooled interval.

    Raises
    ------
    ParameterError
        No value, a value outside [0, 1], tracks of another number of seeds, or one seed without ``tracks``.
    """
    x = tuple(float(v) for v in values)
    if not x or not all(0.0 <= v <= 1.0 for v in x):
        raise ParameterError(f"summarize({list(x)}): expected one or more accuracies in [0, 1]")
    per_seed = None if tracks is None else ([int(tracks)] * len(x) if isinstance(tracks, (int, np.integer))
                                             else [int(t) for t in tracks])
    if per_seed is not None and (len(per_seed) != len(x) or min(per_seed) < 1):
        raise ParameterError(f"summarize: tracks={tracks!r} for {len(x)} seed(s); give each seed's number of test "
                             f"tracks (>= 1)")
    pooled = None
    if per_seed is not None:
        k = sum(int(round(v * n)) for v, n in zip(x, per_seed))
        pooled = wilson_interval(k, sum(per_seed), confidence=confidence)
    first = per_seed[0] if per_seed else None
    if len(x) >= 2:
        low, high = t_interval(x, confidence=confidence)
        method = f"t over {len(x)} seeds"
        if pooled is not None and (pooled[0] < low or pooled[1] > high):
            low, high = min(low, pooled[0]), max(high, pooled[1])
            method += f", widened to Wilson over {sum(per_seed)} pooled test tracks"
        return Summary(x, float(np.mean(x)), float(np.std(x, ddof=1)), low, high, method, first, pooled)
    if pooled is None:
        raise ParameterError(f"summarize of one seed ({x[0]!r}) needs its test tracks (tracks={tracks!r}) for a "
                             f"Wilson interval")
    return Summary(x, x[0], None, pooled[0], pooled[1], f"Wilson over {first} test tracks", first, pooled)


def within_chance(summary: Summary, chance: float | None) -> bool:
    """The pooled Wilson interval contains the chance level (without it, the interval shown); False when chance
    is unknown."""
    if chance is None or not math.isfinite(chance):
        return False
    if summary.pooled is not None:
        return summary.pooled[0] - 1e-12 <= chance <= summary.pooled[1] + 1e-12
    return summary.contains(chance)


def left_chance(summary: Summary, chance: float | None) -> bool:
    """Not within chance, and the mean is above chance plus one test track (True when chance is unknown)."""
    if chance is None or not math.isfinite(chance):
        return True
    track = 1.0 / summary.tracks if summary.tracks else 0.0
    return not within_chance(summary, chance) and summary.mean > chance + track + 1e-12


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value of ``b`` and ``c`` discordant pairs: ``min(1, 2 · P(X <= min(b, c)))``,
    X ~ Binomial(b + c, ½); 1.0 without discordant pairs.

    Examples
    --------
    >>> mcnemar_p(10, 2) == 2 * (1 + 12 + 66) / 4096
    True
    """
    if b < 0 or c < 0:
        raise ParameterError(f"mcnemar_p({b}, {c}): counts of discordant pairs must be >= 0")
    if b + c == 0:
        return 1.0
    return min(1.0, 2.0 * float(stats.binom.cdf(min(b, c), b + c, 0.5)))


@dataclass(frozen=True)
class Paired:
    """Model A against model B on the same test tracks, pooled over seeds (see the module docstring).

    Attributes
    ----------
    pairs : int
        Pooled (seed, track) pairs N.
    a_only, b_only : int
        Pairs only A got right (b) and only B got right (c).
    difference : float
        Accuracy of A minus accuracy of B over the pooled pairs, ``(b - c) / N``.
    low, high : float
        Its 95 % interval (the exact test inverted).
    p_value : float
        Exact two-sided McNemar p-value.
    seeds : int
        Seeds pooled.
    """

    pairs: int
    a_only: int
    b_only: int
    difference: float
    low: float
    high: float
    p_value: float
    seeds: int

    @property
    def real(self) -> bool:
        """The interval excludes 0 (equivalently p < 0.05)."""
        return self.low > 0.0 or self.high < 0.0

    def text(self) -> str:
        """``'+6.06 points [+0.29, +8.71], p = 0.039 (McNemar, 10 vs 2 of 132 pairs)'``: A right and B wrong on 10
        of 132 tracks, the reverse on 2."""
        return (f"{100 * self.difference:+.2f} points [{100 * self.low:+.2f}, {100 * self.high:+.2f}], "
                f"p {_p_text(self.p_value)} (McNemar, {self.a_only} vs {self.b_only} of {self.pairs} pairs"
                + (f", {self.seeds} seeds" if self.seeds > 1 else "") + ")")

    def to_dict(self) -> dict:
        return {"pairs": self.pairs, "a_only": self.a_only, "b_only": self.b_only, "difference": self.difference,
                "low": self.low, "high": self.high, "p_value": self.p_value, "seeds": self.seeds,
                "real": self.real, "test": "exact McNemar, discordant pairs pooled over seeds"}


def _p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def paired_comparison(seeds: Iterable[tuple[Sequence[int], Sequence[int], Sequence[int]]], *,
                      confidence: float = CONFIDENCE) -> Paired:
    """Exact McNemar test of model A against model B, pairs pooled over seeds.

    Parameters
    ----------
    seeds : iterable of (targets, predicted_a, predicted_b)
        One triple per seed, over that seed's test tracks (the same tracks for A and B).

    Raises
    ------
    ParameterError
        No pair, or a seed whose three sequences differ in length.
    """
    alpha = 1.0 - _check_confidence(confidence)
    n = b = c = k = 0
    for targets, pa, pb in seeds:
        t, pa, pb = (np.asarray(v, dtype=np.int64).ravel() for v in (targets, pa, pb))
        if not t.size == pa.size == pb.size:
            raise ParameterError(f"paired_comparison: seed {k} has {t.size} targets, {pa.size} and {pb.size} "
                                 f"predictions; both models must answer the same test tracks")
        ra, rb = pa == t, pb == t
        n += t.size
        b += int((ra & ~rb).sum())
        c += int((~ra & rb).sum())
        k += 1
    if n == 0:
        raise ParameterError("paired_comparison: no test track to compare on")
    d = b + c
    if d == 0:
        lo_pi = hi_pi = 0.5
    else:
        lo_pi = 0.0 if b == 0 else float(stats.beta.ppf(alpha / 2, b, c + 1))
        hi_pi = 1.0 if c == 0 else float(stats.beta.ppf(1 - alpha / 2, b + 1, c))
    scale = d / n
    return Paired(pairs=n, a_only=b, b_only=c, difference=(b - c) / n, low=scale * (2 * lo_pi - 1),
                  high=scale * (2 * hi_pi - 1), p_value=mcnemar_p(b, c), seeds=k)
