"""Reliability diagram: how often answers given with each confidence were right.

Bars are the accuracy of the answers in each confidence bin
(:func:`beatdbn.metrics.calibration.expected_calibration_error`), the diagonal
is perfect calibration, and the count of answers is written on each bar.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from beatdbn.plots import new_figure, save_figure

__all__ = ["plot_reliability"]


def plot_reliability(bins: Sequence[dict], path: str | Path, *, title: str = "reliability") -> Path:
    """Draw the reliability diagram of ``bins`` (``{"lo", "hi", "n", "confidence", "accuracy"}``) to ``path``."""
    fig = new_figure(4.8, 4.4)
    ax = fig.add_subplot()
    for b in bins:
        ax.bar(b["lo"], b["accuracy"], width=b["hi"] - b["lo"], align="edge", color="#4c78a8", alpha=0.8,
               edgecolor="white")
        ax.plot([b["confidence"]], [b["accuracy"]], "o", color="#e45756", ms=4)
        ax.text(b["lo"] + (b["hi"] - b["lo"]) / 2, min(b["accuracy"] + 0.02, 0.97), str(b["n"]), ha="center",
                fontsize=7)
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence shown")
    ax.set_ylabel("fraction right")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
