"""The curve command: label-efficiency curves (where pretraining pays)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console, err_console
from beatdbn.cli.options import check_options
from beatdbn.cli.tasks import TASK_HELP, with_task_options
from beatdbn.exceptions import ParameterError
from beatdbn.tasks.registry import TaskConfig

__all__ = ["curve"]


@command()
@with_task_options
def curve(
    store: Path = typer.Argument(..., help="Feature store (from `beatdbn extract`)."),
    out: Path = typer.Argument(..., help="Curve folder (curve.json, curve.png, curve.md); a rerun reuses finished points."),
    curve_task: str = typer.Option(..., "--task", help="The task of the curve (e.g. key, genre)."),
    per_class: str = typer.Option("1,2,5,10,20,50", help="Labelled training tracks per class, one point each."),
    seeds: int = typer.Option(3, help="Seeds 0..N-1: each its own split, subsets, initial weights and batch orders."),
    models: str = typer.Option(",".join(("convmlp_pretrained_beatdbn", "convmlp_random_beatdbn", "logreg",
                                         "naive_bayes")), help="Models, comma-separated."),
    epochs: Optional[int] = typer.Option(None, help="Conv MLP and logistic-regression epochs (default: the recipes')."),
    quick: bool = typer.Option(False, help="Smoke run: two learning rates each, 10 epochs."),
    duplicates: Optional[Path] = typer.Option(None, help=TASK_HELP["duplicates"]),
    genre_labels: Optional[Path] = typer.Option(None, help=TASK_HELP["genre_labels"]),
    pretrain_min_beats: int = typer.Option(
        0, help="Small corpora: pretrain with more passes until each layer has seen this many beats."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    task_config: TaskConfig = None,
):
    """Test accuracy against labelled tracks per class: one DBN pretrained once without labels (every seed's
    valid/test tracks left out), then for each n the conv MLP pretrained and random (beatdbn recipe), windowed
    logistic regression and naive Bayes trained on n tracks per class of the train split; mean and 95 % band
    over seeds.
    """
    from beatdbn.pipeline.curve import CurveConfig, label_curve  # reason: lazy, torch

    check_options(device=device, out=out)
    if seeds < 1:
        raise ParameterError(f"--seeds {seeds}: give 1 or more")
    config = CurveConfig(task=curve_task, per_class=per_class, seeds=tuple(range(seeds)), tasks=task_config,
                         models=tuple(m.strip() for m in models.split(",") if m.strip()), epochs=epochs,
                         quick=quick, genre_labels=str(genre_labels or ""), duplicates=str(duplicates or ""),
                         pretrain_min_beats=pretrain_min_beats)
    label_curve(store, out, config, device=device,
                progress=lambda line: err_console.print(line, highlight=False, soft_wrap=True, markup=False))
    console.print((out / "curve.md").read_text(), highlight=False, soft_wrap=True, markup=False)  # skipped points too
