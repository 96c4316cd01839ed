"""A label-efficiency curve as a picture: test accuracy against labelled tracks per class (log x).

One line per model (the mean over seeds) with a band (its 95 % interval) and each seed's point; chance is a
dashed line. It reads the plain ``curve.json`` dict (:mod:`beatdbn.pipeline.curve`).
"""

from __future__ import annotations

from pathlib import Path

from beatdbn.exceptions import ParameterError
from beatdbn.plots import new_figure, save_figure

__all__ = ["plot_curve"]


def plot_curve(curve: dict, path: str | Path) -> Path:
    """Draw ``curve['summary']`` (model -> rows of n, values, mean, low, high) to ``path`` (PNG); returns it.

    Raises
    ------
    ParameterError
        ``curve`` has no ``summary`` (not a curve.json).
    """
    if "summary" not in curve:
        raise ParameterError(f"plot_curve: expected the dict of a curve.json (with 'summary'), got keys {sorted(curve)[:6]}")
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    ns: set[int] = set()
    for i, (model, rows) in enumerate(curve["summary"].items()):
        if not rows:
            continue
        color = f"C{i}"
        x = [r["n"] for r in rows]
        ns.update(x)
        ax.plot(x, [100 * r["mean"] for r in rows], "-o", color=color, label=model, markersize=4)
        ax.fill_between(x, [100 * r["low"] for r in rows], [100 * r["high"] for r in rows], color=color, alpha=0.18,
                        linewidth=0)
        for r in rows:
            ax.plot([r["n"]] * len(r["values"]), [100 * v for v in r["values"]], ".", color=color, alpha=0.5,
                    markersize=3)
    if curve.get("chance"):
        ax.axhline(100 * curve["chance"], color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xscale("log")
    if ns:
        ax.set_xticks(sorted(ns), [str(n) for n in sorted(ns)])
    ax.set_xlabel("labelled training tracks per class")
    ax.set_ylabel("test accuracy (%)")
    seeds = curve.get("config", {}).get("seeds", [])
    ax.set_title(f"{curve.get('task', '')}: mean and 95 % interval over {len(seeds)} seed(s)")
    ax.legend(fontsize=8, loc="best")
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)
