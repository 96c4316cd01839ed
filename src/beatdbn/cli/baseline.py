"""Baseline commands: naive Bayes and windowed logistic regression."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console
from beatdbn.cli.output import print_table
from beatdbn.cli.options import check_options
from beatdbn.cli.progress import progress_bar
from beatdbn.exceptions import ParameterError
from beatdbn.tasks import registry

__all__ = ["baseline"]

MODELS = {"naive-bayes": "naive_bayes", "logreg": "logreg"}


@command()
def baseline(
    store: Path = typer.Argument(..., help="A feature store folder."),
    tasks: Path = typer.Argument(..., help="The task folder written by `beatdbn tasks`."),
    task: str = typer.Option(..., "--task", help="A task of the tasks folder: " + ", ".join(registry.task_names()) + "."),
    model: str = typer.Option(..., "--model", help="naive-bayes or logreg."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the result (a rerun resumes / skips finished work)."),
    lr: Optional[list[float]] = typer.Option(None, "--lr", help="Learning rate (repeatable); default: the paper's 5e-3 ... 5e-7."),
    epochs: int = typer.Option(30, help="Logistic-regression epochs."),
    window: int = typer.Option(32, help="Beats per window."),
    stride: int = typer.Option(32, help="Beats between window starts."),
    batch_size: int = typer.Option(100, help="Windows per SGD minibatch."),
    grad_norm: str = typer.Option("sum", help="Minibatch loss: 'sum' (default, the paper's rates) or 'mean' of the window losses."),
    seed: int = typer.Option(0, help="Seed of the minibatch order."),
    device: str = typer.Option("cpu", help="Torch device for logistic regression (cpu, cuda)."),
):
    """Train a window baseline (section 6) on one task; print valid/test accuracy and the chosen learning rate."""
    from beatdbn.data.splits import load_split  # reason: lazy, torch (fast --help)
    from beatdbn.train import rundir  # reason: lazy, torch (fast --help)
    from beatdbn.train.baselines import (PAPER_LEARNING_RATES, BaselineConfig, run_logreg,  # reason: lazy, torch, sklearn
                                         run_naive_bayes)

    check_options(device=device, out=out)  # one line for a bad --device or an unwritable --out
    from rich.table import Table

    registry.spec(task)  # an unknown task: one line naming the known ones
    if model not in MODELS:
        raise ParameterError(f"--model {model!r}: must be one of {sorted(MODELS)}")
    config = BaselineConfig(window=window, stride=stride, learning_rates=tuple(lr) if lr else PAPER_LEARNING_RATES,
                            epochs=epochs, batch_size=batch_size, grad_norm=grad_norm, seed=seed)
    with rundir.run_lock(out):  # a second run into --out fails at once, naming the holder
        from beatdbn.store.reader import FeatureStore  # reason: lazy, pyarrow (a fast start for every command)
        from beatdbn.tasks.build import load_task  # reason: lazy, beside the import above

        fs = FeatureStore.open(store)
        t = load_task(tasks, task)
        splits = [load_split(fs, t, s) for s in ("train", "valid", "test")]

        with progress_bar(console) as bar:
            job = bar.add_task(f"{task} {model}", total=None, rate="")
            t0 = time.perf_counter()

            def progress(info: dict) -> None:
                dt = max(time.perf_counter() - t0, 1e-9)
                bar.update(job, total=info["total"], completed=info["step"],
                           rate=f"{info['message']} ({info['step'] / dt:.1f}/s)")

            if model == "naive-bayes":
                result = run_naive_bayes(*splits, task=task, out=out, config=config, progress=progress)
            else:
                result = run_logreg(*splits, task=task, out=out, config=config, progress=progress, device=device)

    table = Table(title=f"{result.model} on {task} ({len(splits[0])} / {len(splits[1])} / {len(splits[2])} tracks, "
                        f"chance {result.chance:.1%})")
    for col in ("learning rate", "valid", "test", "valid (sum log)", "test (sum log)"):
        table.add_column(col, justify="right")
    for row in result.runs:
        rate = "-" if row["learning_rate"] is None else f"{row['learning_rate']:g}"
        table.add_row(rate, f"{row['valid_accuracy']:.1%}", f"{row['test_accuracy']:.1%}",
                      f"{row['valid_accuracy_sum_log']:.1%}", f"{row['test_accuracy_sum_log']:.1%}")
    print_table(console, table)
    best = result.select()
    chosen = "" if best["learning_rate"] is None else f" at learning rate {best['learning_rate']:g} (chosen on validation)"
    console.print(f"{result.model} on {task}: valid accuracy {best['valid_accuracy']:.1%}, "
                  f"test accuracy {best['test_accuracy']:.1%}{chosen}; mean of window posteriors; "
                  f"result in {out}/result.json")
