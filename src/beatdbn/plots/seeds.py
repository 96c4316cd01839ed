"""Table 1 over seeds as a picture: each seed's test accuracy, the mean and its 95 % interval, per cell.

:func:`plot_seeds` draws one panel per task; each row of a panel is one row of Table 1 (model and epoch
block), top to bottom in the table's order. A row shows every seed's accuracy as a small dot (one colour
per seed, the same in every panel, just above the row), the mean as a diamond and the interval as a horizontal bar (t over
seeds; one seed: Wilson over its test tracks). The task's chance level is a dashed vertical line; a row
that did not leave chance is drawn grey, and a bold cell of the table has a filled black diamond.

It knows nothing of Table 1 itself: the caller (:mod:`beatdbn.evaluate.report`) passes plain
:class:`SeedRow` values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beatdbn.exceptions import ParameterError
from beatdbn.plots import new_figure, save_figure

__all__ = ["SeedRow", "plot_seeds"]


@dataclass(frozen=True)
class SeedRow:
    """One cell of Table 1: its label, each seed's accuracy, the mean and the interval (fractions in [0, 1]).

    Attributes
    ----------
    label : str
        The row's name (``'conv. MLP, pretrained (20 ep.)'``).
    values : sequence of float
        Each seed's test accuracy.
    seeds : sequence of int
        The seeds, in the order of ``values`` (colours); empty for a single run.
    mean, low, high : float
    at_chance : bool
        Did not leave chance (drawn grey).
    best : bool
        Bold in the table (filled marker).
    """

    label: str
    values: Sequence[float]
    seeds: Sequence[int]
    mean: float
    low: float
    high: float
    at_chance: bool = False
    best: bool = False


def plot_seeds(panels: Mapping[str, Sequence[SeedRow]], path: str | Path, *,
               chance: Mapping[str, float | None] | None = None, title: str = "Table 1 over seeds") -> Path:
    """One panel per task: each row's seeds, mean and 95 % interval; chance dashed. Returns ``path`` (PNG).

    Raises
    ------
    ParameterError
        No panel has a row, or a row without values.
    """
    panels = {task: list(rows) for task, rows in panels.items() if rows}
    if not panels:
        raise ParameterError("plot_seeds: no Table 1 cell to draw (no task has a result)")
    for task, rows in panels.items():
        for r in rows:
            if len(r.values) == 0:
                raise ParameterError(f"plot_seeds: {task} / {r.label} has no seed value")
    chance = dict(chance or {})
    n_rows = max(len(rows) for rows in panels.values())
    fig = new_figure(3.4 * len(panels) + 2.2, 0.42 * n_rows + 1.4)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    all_seeds = sorted({s for rows in panels.values() for r in rows for s in r.seeds})
    colours = {s: f"C{i % 10}" for i, s in enumerate(all_seeds)}
    labels = [r.label for r in max(panels.values(), key=len)]
    for ax, (task, rows) in zip(axes, panels.items()):
        for i, r in enumerate(rows):
            y = -i
            grey = "0.6" if r.at_chance else "black"
            ax.plot([100 * r.low, 100 * r.high], [y, y], color=grey, lw=2.2, solid_capstyle="butt", zorder=1)
            n = len(r.values)
            offsets = np.linspace(0.14, 0.34, n) if n > 1 else np.full(1, 0.2)  # above the mean's diamond
            for k, v in enumerate(r.values):
                c = colours.get(r.seeds[k], "C0") if k < len(r.seeds) else "C0"
                ax.plot(100 * v, y + offsets[k], "o", ms=4.5, color=c, alpha=0.85, zorder=2)
            ax.plot(100 * r.mean, y, "D", ms=7, zorder=3, markeredgecolor=grey,
                    markerfacecolor=grey if r.best else "white")
        c = chance.get(task)
        known = c is not None and np.isfinite(c)
        if known:
            ax.axvline(100 * c, color="tab:red", ls="--", lw=1)
        ax.set_title(f"{task} (chance {100 * c:.1f}%, dashed)" if known else task, fontsize=9.5)
        ax.set_xlabel("test accuracy (%)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=7)
        lo = min(min(100 * r.low, *(100 * v for v in r.values)) for r in rows)
        hi = max(max(100 * r.high, *(100 * v for v in r.values)) for r in rows)
        if c is not None and np.isfinite(c):
            lo, hi = min(lo, 100 * c), max(hi, 100 * c)
        pad = max(2.0, 0.06 * (hi - lo))
        ax.set_xlim(max(0.0, lo - pad), min(100.0, hi + pad))
    axes[0].set_yticks([-i for i in range(len(labels))], labels, fontsize=7.5)
    axes[0].set_ylim(-len(labels) + 0.5, 0.6)
    seeds_text = (f"{len(all_seeds)} seed{'s' if len(all_seeds) != 1 else ''} ("
                  + ", ".join(map(str, all_seeds)) + ")") if all_seeds else "one run"
    fig.suptitle(f"{title}: {seeds_text}; dots: each seed, diamond: mean (filled: bold in the table), "
                 f"bar: 95 % interval, grey: did not leave chance", fontsize=8.5)
    return save_figure(fig, path)
