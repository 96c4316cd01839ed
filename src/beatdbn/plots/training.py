"""Training plots: pretraining statistics per stage, and supervised learning curves.

:func:`plot_pretraining` reads the rows the pretraining loop logs (one per
logged batch; columns ``stage`` ('1a', '1b', '3'), ``pass``, ``batch``,
``tracks``, ``beats``, ``reconstruction_error``, ``mean_hidden``,
``free_energy_data``, ``free_energy_recon``, ``seconds``; the free energies
are NaN for the Gaussian layer 1b) and draws, for each stage, against the
tracks seen: the reconstruction error, the mean hidden activation with its
sparsity target, and the free energy of data vs reconstructions.

``tracks`` is read as *tracks seen so far in the stage* when it is strictly
increasing within the stage; otherwise (e.g. a per-batch count, or a count
that restarts every pass) the x axis is its running sum.

:func:`plot_learning_curves` draws the validation accuracy (and the training
loss) per epoch of several runs, one line each: pretrained runs solid, random
initializations dashed, one colour per learning rate, so the paper's claim
(pretraining converges faster: section 7, the 20-epoch rows of Table 1) can be
seen at a glance. Epochs 20 and 30 are marked.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.plots import new_figure, save_figure

__all__ = ["plot_pretraining", "plot_learning_curves", "read_csv_rows", "SPARSITY_TARGETS"]

#: Sparsity targets of the paper (section 5.2.1), drawn as reference lines.
SPARSITY_TARGETS = {"1a": 0.05, "1b": 0.05, "3": 0.1}

_STAGE_TITLES = {"1a": "1a chroma (binary)", "1b": "1b timbre (Gaussian)", "3": "3 (binary, pooled 1a+1b)"}


def _number(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return float("nan")
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return value
    return value


def read_csv_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a CSV file with a header into a list of dicts, numbers parsed.

    Integers become ``int``, other numbers (``nan``, ``1e-3``) ``float``,
    empty cells NaN; anything else stays a string.

    Raises
    ------
    DataError
        The file cannot be read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.csv"
    >>> _ = p.write_text("epoch,valid_accuracy,stage\\n1,0.5,1a\\n")
    >>> read_csv_rows(p)
    [{'epoch': 1, 'valid_accuracy': 0.5, 'stage': '1a'}]
    """
    path = Path(path)
    try:
        with path.open(newline="") as f:
            return [{k: _number(v) for k, v in row.items() if k is not None} for row in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from None


def _floats(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    out = np.full(len(rows), np.nan)
    for i, row in enumerate(rows):
        try:
            out[i] = float(row.get(key, math.nan))
        except (TypeError, ValueError):
            pass
    return out


def _smooth(y: np.ndarray) -> np.ndarray:
    """Moving average over ~2% of the points (NaN-aware); unchanged for short series."""
    k = max(1, len(y) // 50)
    if k == 1:
        return y
    ok = np.isfinite(y)
    kernel = np.ones(k)
    num = np.convolve(np.where(ok, y, 0.0), kernel, mode="same")
    den = np.convolve(ok.astype(float), kernel, mode="same")
    return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)


def _tracks_axis(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    t = _floats(rows, "tracks")
    if not np.isfinite(t).all():
        return np.arange(1, len(rows) + 1, dtype=float)  # no usable count: batches
    if len(t) > 1 and np.all(np.diff(t) > 0):
        return t
    return np.cumsum(t)


def plot_pretraining(rows: Iterable[Mapping[str, Any]] | str | Path, path: str | Path, *,
                     targets: Mapping[str, float] | None = None) -> Path:
    """Draw pretraining statistics per stage against the tracks seen.

    Parameters
    ----------
    rows : iterable of dict, or str or Path
        The logged rows (see the module docstring), or the CSV file holding them.
    path : str or Path
        The PNG to write.
    targets : dict, optional
        Sparsity target per stage for the reference line (default
        :data:`SPARSITY_TARGETS`: 0.05 for 1a/1b, 0.1 for 3).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    DataError
        No rows, or no row with a ``stage``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rows = [{"stage": "1a", "tracks": 32 * i, "reconstruction_error": 1 / i, "mean_hidden": 0.05,
    ...          "free_energy_data": -3.0, "free_energy_recon": -2.9} for i in range(1, 5)]
    >>> plot_pretraining(rows, pathlib.Path(tempfile.mkdtemp()) / "p.png").suffix
    '.png'
    """
    if isinstance(rows, (str, Path)):
        rows = read_csv_rows(rows)
    rows = list(rows)
    targets = dict(SPARSITY_TARGETS if targets is None else targets)
    by_stage: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        stage = row.get("stage")
        if stage is None or (isinstance(stage, float) and math.isnan(stage)):
            continue
        by_stage.setdefault(str(stage), []).append(row)
    if not by_stage:
        raise DataError("plot_pretraining: no rows with a 'stage' column to plot")
    stages = [s for s in ("1a", "1b", "3") if s in by_stage] + sorted(set(by_stage) - {"1a", "1b", "3"})

    fig = new_figure(3.6 * len(stages) + 0.6, 7.2)
    axes = fig.subplots(3, len(stages), squeeze=False, sharex="col")
    for j, stage in enumerate(stages):
        srows = by_stage[stage]
        x = _tracks_axis(srows)
        passes = _floats(srows, "pass")
        col = axes[:, j]
        # reconstruction error
        y = _floats(srows, "reconstruction_error")
        col[0].plot(x, y, color="C0", alpha=0.3, linewidth=0.7)
        col[0].plot(x, _smooth(y), color="C0", linewidth=1.4)
        col[0].set_title(f"stage {_STAGE_TITLES.get(stage, stage)}", fontsize=9)
        # mean hidden activation vs target
        y = _floats(srows, "mean_hidden")
        col[1].plot(x, y, color="C2", alpha=0.3, linewidth=0.7)
        col[1].plot(x, _smooth(y), color="C2", linewidth=1.4, label="mean P(h=1)")
        if stage in targets:
            col[1].axhline(targets[stage], color="k", linestyle=":", linewidth=1.0,
                           label=f"sparsity target {targets[stage]:g}")
        col[1].legend(fontsize=7, loc="best")
        # free energies
        fd, fr = _floats(srows, "free_energy_data"), _floats(srows, "free_energy_recon")
        if np.isfinite(fd).any() or np.isfinite(fr).any():
            col[2].plot(x, _smooth(fd), color="C3", linewidth=1.2, label="F(data)")
            col[2].plot(x, _smooth(fr), color="C1", linewidth=1.2, linestyle="--", label="F(reconstruction)")
            col[2].legend(fontsize=7, loc="best")
        else:
            col[2].text(0.5, 0.5, "free energy not logged\n(Gaussian visible units)", ha="center",
                        va="center", fontsize=8, color="0.4", transform=col[2].transAxes)
        col[2].set_xlabel("tracks seen")
        # pass boundaries
        if np.isfinite(passes).all() and len(passes) > 1:
            for k in np.nonzero(np.diff(passes))[0]:
                for ax in col:
                    ax.axvline(x[k + 1], color="0.6", linewidth=0.6, linestyle="--")
        for ax in col:
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.25)
    axes[0, 0].set_ylabel("reconstruction error\n(MSE per visible unit)", fontsize=8)
    axes[1, 0].set_ylabel("mean hidden activation", fontsize=8)
    axes[2, 0].set_ylabel("free energy per\nvisible time step", fontsize=8)
    fig.suptitle("DBN pretraining (thin: per logged batch; thick: moving average)", fontsize=10)
    return save_figure(fig, path)


_LR = re.compile(r"lr\s*=\s*([-+0-9.eE]+)")


def _init_kind(label: str) -> str:
    low = label.lower()
    if "pretrain" in low:
        return "pretrained"
    if "random" in low:
        return "random"
    return "other"


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    e, y = _floats(rows, "epoch"), _floats(rows, key)
    ok = np.isfinite(e) & np.isfinite(y)
    order = np.argsort(e[ok], kind="stable")
    return e[ok][order], y[ok][order]


def plot_learning_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path, *,
                         title: str | None = None, chance: float | None = None,
                         marks: Sequence[int] = (20, 30)) -> Path:
    """Draw validation accuracy and training loss per epoch, one line per run.

    Parameters
    ----------
    curves : dict
        Label -> per-epoch rows ``{"epoch", "train_loss", "train_accuracy",
        "valid_accuracy"}`` (extra keys ignored, missing values skipped). A
        label containing ``pretrain`` is drawn solid, one containing
        ``random`` dashed (others solid); labels sharing ``lr=<value>`` share
        a colour, e.g. ``"pretrained lr=0.005"`` and ``"random lr=0.005"``.
    path : str or Path
        The PNG to write.
    title : str, optional
    chance : float, optional
        Chance accuracy, drawn as a grey line.
    marks : sequence of int
        Epochs marked with a vertical line and a dot on every curve (the
        paper reports epochs 20 and 30); marks past the last epoch are skipped.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        ``curves`` is empty.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rows = [{"epoch": e, "train_loss": 1 / e, "valid_accuracy": 0.1 * e} for e in range(1, 4)]
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "c.png"
    >>> plot_learning_curves({"pretrained lr=0.05": rows}, out).name
    'c.png'
    """
    if not curves:
        raise ParameterError("plot_learning_curves: curves is empty; give at least one label -> rows")
    labels = list(curves)
    lr_keys: list[str] = []
    for label in labels:
        m = _LR.search(label)
        key = m.group(1) if m else label
        if key not in lr_keys:
            lr_keys.append(key)
    try:  # colours by numeric learning rate, largest first
        lr_keys.sort(key=lambda k: -float(k))
    except ValueError:
        pass
    colour = {k: f"C{i % 10}" for i, k in enumerate(lr_keys)}
    style = {"pretrained": "-", "random": "--", "other": "-"}

    has_loss = any(np.isfinite(_series(rows, "train_loss")[1]).any() for rows in curves.values())
    fig = new_figure(10.5 if has_loss else 6.5, 3.8)
    axes = fig.subplots(1, 2 if has_loss else 1, squeeze=False)[0]
    last_epoch = 0.0
    for label in labels:
        rows = curves[label]
        m = _LR.search(label)
        c = colour[m.group(1) if m else label]
        ls = style[_init_kind(label)]
        for ax, key in zip(axes, ("valid_accuracy", "train_loss")):
            e, y = _series(rows, key)
            if not len(e):
                continue
            last_epoch = max(last_epoch, float(e.max()))
            ax.plot(e, y, color=c, linestyle=ls, linewidth=1.5, label=label)
            at = np.isin(e, list(marks))
            ax.plot(e[at], y[at], "o", color=c, markersize=4)
    for ax in axes:
        for mark in marks:
            if mark <= last_epoch:
                ax.axvline(mark, color="0.5", linestyle=":", linewidth=0.9)
                ax.text(mark, 1.0, f" epoch {mark}", transform=ax.get_xaxis_transform(), fontsize=7,
                        color="0.4", va="top", ha="left")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.25)
        ax.tick_params(labelsize=8)
    if chance is not None and math.isfinite(chance):
        axes[0].axhline(chance, color="0.5", linewidth=1.0, label=f"chance {chance:.1%}")
    axes[0].set_ylabel("validation accuracy")
    axes[0].yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    axes[0].legend(fontsize=7, loc="lower right")
    if has_loss:
        axes[1].set_ylabel("training loss")
        axes[1].set_title("training loss", fontsize=9)
    axes[0].set_title("validation accuracy (solid: pretrained, dashed: random init)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
