"""A track's posterior over time: one column per layer-4 step, one row per class, beats and bars on the x axes.

Each layer-4 step of the conv MLP reads 51 beats and the next one starts 16
beats later (about 4 bars of 4/4); the track's answer is the mean of the
steps' posteriors. The plot draws step ``t`` from its first beat to the next
step's (the last one to its end), so the x axis is the track's beats; a
second axis on top counts bars (4 beats).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from beatdbn.exceptions import ParameterError
from beatdbn.plots import new_figure, save_figure

__all__ = ["plot_posterior_over_time"]


def plot_posterior_over_time(posteriors: np.ndarray, beat_ranges: np.ndarray, labels: Sequence[str],
                             path: str | Path, *, true_label: str | None = None, title: str = "",
                             beats_per_bar: int = 4, max_classes: int = 8) -> Path:
    """Write the heat map of ``posteriors`` ``(n_steps, n_classes)`` to ``path``; returns the path.

    Rows: the ``max_classes`` classes with the highest mean posterior (the true
    class always among them, marked with ``*``), most probable on top.

    Raises
    ------
    ParameterError
        Shapes that do not agree.
    """
    p = np.asarray(posteriors, dtype=np.float64)
    r = np.asarray(beat_ranges, dtype=np.int64)
    if p.ndim != 2 or r.shape != (len(p), 2) or p.shape[1] != len(labels) or not len(p):
        raise ParameterError(f"posteriors {p.shape}, beat ranges {r.shape} and {len(labels)} labels do not agree")
    mean = p.mean(axis=0)
    order = list(np.argsort(-mean, kind="stable")[:max_classes])
    if true_label in labels and labels.index(true_label) not in order:
        order[-1] = labels.index(true_label)
    edges = np.append(r[:, 0], r[-1, 1]).astype(np.float64)  # step t spans [start_t, start_{t+1})
    fig = new_figure(7.2, 0.9 + 0.28 * len(order))
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(edges, np.arange(len(order) + 1), p[:, order].T, cmap="Blues", vmin=0, vmax=1,
                         shading="flat")
    names = [f"{labels[i]} *" if labels[i] == true_label else labels[i] for i in order]
    ax.set_yticks(np.arange(len(order)) + 0.5, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("beat (one step = 51 beats, a new step every 16 beats)", fontsize=8)
    ax.set_ylabel("class" + (" (* true)" if true_label else ""), fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    top = ax.secondary_xaxis("top", functions=(lambda b: b / beats_per_bar, lambda bar: bar * beats_per_bar))
    top.set_xlabel(f"bar ({beats_per_bar} beats)", fontsize=8)
    top.tick_params(labelsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    cb = fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.04)
    cb.ax.tick_params(labelsize=7)
    cb.set_label("posterior", fontsize=8)
    return save_figure(fig, path)
