"""The learned filters of a convolutional DBN, one PNG per layer.

A CRBM's weights have shape ``(n_maps, n_visible, width)``
(:class:`~beatdbn.models.crbm.ConvRBM`): one filter per feature map, an image
of ``n_visible`` rows by ``width`` time steps. :func:`plot_filters` draws the
filters of each stage as a mosaic of such images:

* ``1a`` (chroma): 12 rows labelled with the pitch classes C (bottom) .. B
  (top), by 8 beats;
* ``1b`` (timbre): 12 rows, Echo Nest timbre coefficients 1 (bottom) .. 12,
  by 8 beats;
* ``3``: ``n_maps_1a + n_maps_1b`` (200) rows, the pooled chroma maps (bottom)
  then the pooled timbre maps, by 8 pooled steps (bars); a line marks the
  boundary.

Filters are shown in order of decreasing L2 norm (the strongest first), each
labelled with its map index, at most ``max_filters`` of them. The colormap is
diverging and centred at 0 (red positive, blue negative); by default each
filter is scaled by its own largest absolute weight (``scale='filter'``),
since the shape of a filter is what the plot is for; ``scale='layer'`` uses
one scale for the whole layer (then weak filters look pale).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np

from beatdbn.exceptions import ParameterError
from beatdbn.labels import PITCH_CLASSES
from beatdbn.plots import new_figure, save_figure

__all__ = ["plot_filters", "PITCH_CLASSES", "filter_mosaic"]  # PITCH_CLASSES: the rows of the chroma filters

_TITLES = {"1a": "Layer 1a (chroma)", "1b": "Layer 1b (timbre)", "3": "Layer 3 (pooled 1a + 1b maps)"}
_CMAP = "RdBu_r"


def _weights(dbn, stage: str) -> np.ndarray:
    w = dbn.layer(stage).weight.detach().to("cpu").float().numpy()
    return np.asarray(w, dtype=np.float64)


def filter_mosaic(weights: np.ndarray, *, ncols: int, max_filters: int = 100, scale: str = "filter",
                  vgap: int = 1) -> tuple[np.ndarray, np.ndarray, float]:
    """Arrange filters ``(n_maps, rows, width)`` into one image, strongest first.

    Parameters
    ----------
    weights : np.ndarray [shape=(n_maps, rows, width)]
    ncols : int
        Tiles per mosaic row.
    max_filters : int
        Keep the ``max_filters`` filters of largest L2 norm.
    scale : {'filter', 'layer'}
        Divide each filter by its own max ``|w|`` or all by the layer's.
    vgap : int
        Empty pixel rows between tile rows (columns are one pixel apart).

    Returns
    -------
    mosaic : np.ndarray [shape=(n_tile_rows * (rows + vgap) - vgap, ncols * (width + 1) - 1)]
        Values in ``[-1, 1]``; NaN in the gaps and empty tiles. Tile
        rows are flipped so that row 0 of a filter is at the bottom of its tile.
    order : np.ndarray [shape=(n_shown,)]
        Map index of each tile, in reading order.
    max_abs : float
        The layer's largest absolute weight.

    Examples
    --------
    >>> m, order, _ = filter_mosaic(np.ones((3, 2, 4)) * [[[1]], [[3]], [[2]]], ncols=2)
    >>> m.shape, order.tolist()
    ((5, 9), [1, 2, 0])
    """
    if weights.ndim != 3:
        raise ParameterError(f"weights has shape {weights.shape}: expected (n_maps, rows, width)")
    if scale not in ("filter", "layer"):
        raise ParameterError(f"scale={scale!r}: must be 'filter' or 'layer'")
    if not (isinstance(max_filters, int) and max_filters >= 1):
        raise ParameterError(f"max_filters={max_filters!r}: must be an int >= 1")
    n, rows, width = weights.shape
    norms = np.sqrt((weights ** 2).sum(axis=(1, 2)))
    order = np.argsort(-norms, kind="stable")[:max_filters]
    shown = weights[order]
    max_abs = float(np.abs(weights).max()) if weights.size else 0.0
    if scale == "filter":
        denom = np.abs(shown).max(axis=(1, 2), keepdims=True)
    else:
        denom = np.full((len(order), 1, 1), max_abs)
    shown = np.divide(shown, denom, out=np.zeros_like(shown), where=denom > 0)
    nrows = max(1, math.ceil(len(order) / ncols))
    mosaic = np.full((nrows * (rows + vgap) - vgap, ncols * (width + 1) - 1), np.nan)
    for i, tile in enumerate(shown):
        r, c = divmod(i, ncols)
        y, x = r * (rows + vgap), c * (width + 1)
        mosaic[y:y + rows, x:x + width] = tile[::-1]
    return mosaic, order, max_abs


def _plot_stage(dbn, stage: str, path: Path, *, max_filters: int, scale: str) -> Path:
    w = _weights(dbn, stage)
    n, rows, width = w.shape
    shown = min(n, max_filters)
    tall = stage == "3"
    ncols = min(shown, 20) if tall else max(1, math.ceil(math.sqrt(shown)))
    vgap = max(1, rows // 12)
    step = rows + vgap
    mosaic, order, max_abs = filter_mosaic(w, ncols=ncols, max_filters=max_filters, scale=scale, vgap=vgap)
    nrows = max(1, math.ceil(shown / ncols))
    if tall:
        fig = new_figure(min(16.0, 2.0 + 0.65 * ncols), 1.5 + 2.4 * nrows)
    else:
        fig = new_figure(min(14.0, 4.0 + 1.0 * ncols), min(14.0, 1.5 + 1.15 * nrows))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps[_CMAP].with_extremes(bad="white")
    im = ax.imshow(mosaic, cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest",
                   aspect="auto" if tall else "equal")
    # map index above each tile
    small = 5 if shown > 36 else 7
    for i, m in enumerate(order):
        r, c = divmod(i, ncols)
        ax.text(c * (width + 1) - 0.5, r * step - 0.6, str(int(m)), fontsize=small,
                va="bottom", ha="left", color="0.3")
    # row labels on the left of every tile row (row 0 of a filter at the bottom of its tile)
    if stage in ("1a", "1b"):
        names = PITCH_CLASSES if stage == "1a" else tuple(str(k + 1) for k in range(rows))
        if len(names) != rows:
            names = tuple(str(k) for k in range(rows))
        ticks, labels = [], []
        for r in range(nrows):
            for k in range(rows):
                ticks.append(r * step + (rows - 1 - k))
                labels.append(names[k])
        ax.set_yticks(ticks, labels, fontsize=4.5 if nrows > 4 else 6)
        ax.set_ylabel("pitch class" if stage == "1a" else "timbre coefficient")
    else:
        n1a = dbn.config.n_maps_1a
        ticks, labels = [], []
        for r in range(nrows):
            top = r * step
            # rows are flipped: visible channel k sits at top + rows - 1 - k
            boundary = top + rows - n1a - 0.5
            ax.hlines(boundary, -0.5, mosaic.shape[1] - 0.5, colors="0.2", linewidth=0.4)
            ticks += [top + rows - 1 - n1a / 2, top + (rows - n1a) / 2]
            labels += ["1a", "1b"]
        ax.set_yticks(ticks, labels, fontsize=6)
        ax.set_ylabel("input maps: 1a chroma (bottom) / 1b timbre (top)")
    ax.set_xticks([])
    unit = "bars" if tall else "beats"
    ax.set_xlabel(f"{width} {unit} per filter (time \u2192); number above = map index")
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    how = "each scaled to its own max |w|" if scale == "filter" else "one scale for the layer"
    ax.set_title(f"{_TITLES[stage]} filters: {shown} of {n} maps\nby decreasing L2 norm, {how};\n"
                 f"layer max |w| = {max_abs:.3g}", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.4, label="w / max|w|")
    return save_figure(fig, path)


def plot_filters(dbn, path: str | Path, *, max_filters: int = 100, scale: str = "filter",
                 stages: tuple[str, ...] = ("1a", "1b", "3")) -> dict[str, Path]:
    """Draw the filters of each layer of a convolutional DBN, one PNG per layer.

    Parameters
    ----------
    dbn : beatdbn.models.dbn.ConvDBN or str or Path
        The model, or a directory written by :meth:`ConvDBN.save` (loaded on CPU).
    path : str or Path
        Output folder: writes ``filters_1a.png``, ``filters_1b.png``, ``filters_3.png``.
    max_filters : int
        Most filters drawn per layer (those of largest L2 norm).
    scale : {'filter', 'layer'}
        Colour scale per filter (default) or one per layer; centred at 0 either way.
    stages : tuple of str
        Which of ``'1a'``, ``'1b'``, ``'3'`` to draw.

    Returns
    -------
    dict
        Stage -> path of its PNG.

    Raises
    ------
    ParameterError
        ``max_filters < 1``, an unknown stage or scale.

    Examples
    --------
    >>> import tempfile
    >>> from beatdbn.models.dbn import ConvDBN, DBNConfig
    >>> dbn = ConvDBN(DBNConfig(n_maps_1a=4, n_maps_1b=4, n_maps_3=4))
    >>> sorted(plot_filters(dbn, tempfile.mkdtemp()))
    ['1a', '1b', '3']
    """
    if not (isinstance(max_filters, int) and not isinstance(max_filters, bool) and max_filters >= 1):
        raise ParameterError(f"max_filters={max_filters!r}: must be an int >= 1")
    if scale not in ("filter", "layer"):
        raise ParameterError(f"scale={scale!r}: must be 'filter' or 'layer'")
    for stage in stages:
        if stage not in _TITLES:
            raise ParameterError(f"stage={stage!r}: must be one of {tuple(_TITLES)}")
    if isinstance(dbn, (str, Path)):
        from beatdbn.models.dbn import ConvDBN  # reason: lazy, models loads torch; only a path given needs it

        dbn = ConvDBN.load(dbn)
    out = Path(path)
    return {stage: _plot_stage(dbn, stage, out / f"filters_{stage}.png", max_filters=max_filters, scale=scale)
            for stage in stages}
