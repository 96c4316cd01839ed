"""Confusion-matrix plot, readable from 2 to 50+ classes.

Rows are true classes, columns predicted classes. With ``normalize=True``
(default) each row is divided by its total, so a cell is the fraction of the
class's tracks predicted as the column's class and the diagonal is the
per-class accuracy (recall); a row with no tracks stays 0. Up to
:data:`MAX_ANNOTATED` classes each cell is written out; above that only the
colours are drawn and the tick labels shrink with the number of classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from beatdbn.exceptions import ParameterError
from beatdbn.plots import new_figure, save_figure

__all__ = ["plot_confusion", "normalize_rows", "MAX_ANNOTATED"]

#: Largest number of classes whose cells get their value written in.
MAX_ANNOTATED = 20


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Divide each row by its sum (rows summing to 0 stay 0).

    Examples
    --------
    >>> normalize_rows(np.array([[1, 3], [0, 0]]))
    array([[0.25, 0.75],
           [0.  , 0.  ]])
    """
    m = np.asarray(matrix, dtype=np.float64)
    totals = m.sum(axis=1, keepdims=True)
    return np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)


def plot_confusion(matrix, classes: Sequence[str], path: str | Path, *, title: str | None = None,
                   normalize: bool = True) -> Path:
    """Draw a confusion matrix (true classes down, predicted across) as a PNG.

    Parameters
    ----------
    matrix : array-like [shape=(n_classes, n_classes)]
        Counts; ``matrix[i, j]`` = tracks of class ``i`` predicted as ``j``.
    classes : sequence of str [length n_classes]
    path : str or Path
        The PNG to write.
    title : str, optional
        Drawn above, followed by the overall accuracy (trace / total).
    normalize : bool
        Show row fractions (default) instead of counts.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        ``matrix`` is not square, does not match ``classes``, or holds
        negative or non-finite values.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "cm.png"
    >>> plot_confusion([[5, 1], [2, 4]], ["C", "D"], out).name
    'cm.png'
    """
    m = np.asarray(matrix, dtype=np.float64)
    classes = [str(c) for c in classes]
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ParameterError(f"confusion matrix has shape {m.shape}: expected (n_classes, n_classes)")
    if m.shape[0] != len(classes):
        raise ParameterError(
            f"confusion matrix is {m.shape[0]}x{m.shape[1]} but {len(classes)} class names were given")
    if m.shape[0] == 0:
        raise ParameterError("confusion matrix is empty")
    if not np.isfinite(m).all() or (m < 0).any():
        raise ParameterError("confusion matrix holds negative or non-finite values: expected counts")
    n = m.shape[0]
    total = m.sum()
    acc = float(np.trace(m) / total) if total > 0 else float("nan")
    shown = normalize_rows(m) if normalize else m

    side = float(np.clip(2.5 + 0.19 * n, 4.0, 13.0))
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    vmax = 1.0 if normalize else max(float(shown.max()), 1.0)
    im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    fontsize = float(np.clip(220.0 / n, 5.0, 9.0))
    ticks = np.arange(n)
    ax.set_xticks(ticks, classes, rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, classes, fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= MAX_ANNOTATED:
        cell_font = float(np.clip(130.0 / n, 5.0, 9.0))
        for i in range(n):
            for j in range(n):
                v = shown[i, j]
                if v == 0:
                    continue
                text = f"{v:.2f}".lstrip("0") if normalize else f"{int(round(v))}"
                ax.text(j, i, text, ha="center", va="center", fontsize=cell_font,
                        color="white" if v > 0.6 * vmax else "black")
    head = f"{title} \u2014 " if title else ""
    ax.set_title(f"{head}accuracy {acc:.1%} ({int(total)} tracks)", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.7,
                 label="fraction of the true class" if normalize else "tracks")
    return save_figure(fig, path)
