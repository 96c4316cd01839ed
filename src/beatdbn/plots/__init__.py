"""Plots of a beatdbn run: learned filters, pretraining statistics, learning curves, confusion.

Every plot function draws on a fresh :class:`matplotlib.figure.Figure` (the
Agg canvas, no pyplot, no global state), writes one PNG (creating the parent
folder; the file is replaced atomically), and returns its path. Nothing stays
open: the figure is dropped when the function returns.

Public API
----------
:func:`plot_filters`
    The filters of each layer of a :class:`~beatdbn.models.dbn.ConvDBN`.
:func:`plot_pretraining`
    Reconstruction error, mean hidden activation and free energies per stage.
:func:`plot_learning_curves`
    Validation accuracy per epoch, pretrained (solid) vs random init (dashed).
:func:`plot_confusion`
    A (row-normalized) confusion matrix, readable up to 50+ classes.
:func:`read_csv_rows`
    A CSV file as a list of dicts, numbers parsed.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from beatdbn.utils.atomic import atomic_path

__all__ = ["plot_filters", "plot_pretraining", "plot_learning_curves", "plot_confusion",
           "read_csv_rows", "new_figure", "save_figure"]

#: Resolution of every PNG written here.
DPI = 110


def new_figure(width: float, height: float) -> Figure:
    """A fresh figure of ``width`` x ``height`` inches on an Agg canvas (no pyplot state)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, *, dpi: int = DPI) -> Path:
    """Write ``fig`` as a PNG to ``path`` (atomically, parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        fig.clear()
    return path


# submodules import new_figure / save_figure from here, so they come after them
from beatdbn.plots.confusion import plot_confusion  # noqa: E402
from beatdbn.plots.filters import plot_filters  # noqa: E402
from beatdbn.plots.training import plot_learning_curves, plot_pretraining, read_csv_rows  # noqa: E402
