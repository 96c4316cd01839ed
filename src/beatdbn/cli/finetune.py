"""The finetune command."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console
from beatdbn.cli.options import check_options
from beatdbn.cli.progress import progress_bar
from beatdbn.exceptions import ParameterError
from beatdbn.tasks import registry

__all__ = ["finetune"]


def _fmt(a) -> str:
    return "n/a" if a is None or (isinstance(a, float) and math.isnan(a)) else f"{a:.3f}"


@command()
def finetune(
    store: Path = typer.Argument(..., help="Feature store (from `beatdbn extract`)."),
    tasks: Path = typer.Argument(..., help="Tasks folder (from `beatdbn tasks`)."),
    task: str = typer.Option(..., "--task", "-t", help="A task of the tasks folder: " + ", ".join(registry.task_names()) + "."),
    init: str = typer.Option(..., "--init", help="A DBN folder (from `beatdbn pretrain`) to start from, or 'random'."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to write; a rerun resumes or returns the result."),
    recipe: str = typer.Option(
        "beatdbn", "--recipe", help="beatdbn (Adam, warm-up + cosine, >= 1500 updates, 128-beat crops, transposition "
                                    "for key: converges on small real corpora) or paper (section 6: plain SGD, "
                                    "batches of 16 whole tracks). The options below override it."),
    lr: Optional[list[float]] = typer.Option(None, "--lr", help="Learning rate (repeat for a sweep; default: the recipe's)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs per learning rate (default: the recipe's, 30)."),
    snapshot: Optional[list[int]] = typer.Option(None, "--snapshot", help="Epochs to keep and test (default 20 30)."),
    batch_size: Optional[int] = typer.Option(None, help="Tracks per update (default: the recipe's)."),
    min_updates: Optional[int] = typer.Option(
        None, help="Fewest updates a run makes (small tasks get more passes per epoch; default: the recipe's)."),
    seed: int = typer.Option(0, help="Seed of the initial weights, batch order, crops and transpositions."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    precision: str = typer.Option("fp32", help="fp32 or bf16 (bfloat16 autocast for training)."),
    augment: Optional[str] = typer.Option(
        None, help="none, transpose (key task: random chroma rotation, label shifted) or auto (transpose on key); "
                   "default: the recipe's."),
    dbn: Optional[Path] = typer.Option(
        None, "--dbn", help="With --init random: draw the random weights from this DBN's weight statistics "
                            "(the paper's control); without it, a plain random initialization."),
):
    """Finetune the conv MLP on a task over a learning-rate sweep; selects on valid, reports test."""
    from beatdbn.train import rundir  # reason: lazy, torch (fast --help)
    from beatdbn.train.finetune import FinetuneConfig, finetune as run  # reason: lazy, torch, matplotlib (fast --help)

    check_options(device=device, out=out)  # one line for a bad --device or an unwritable --out
    registry.spec(task)  # an unknown task: one line naming the known ones
    kw = {"seed": seed, "precision": precision}
    for name, value in (("learning_rates", tuple(lr or ())), ("snapshot_epochs", tuple(snapshot or ())),
                        ("epochs", epochs), ("batch_size", batch_size), ("augment", augment),
                        ("min_updates", min_updates)):
        if value is not None and value != ():
            kw[name] = value
    config = FinetuneConfig.for_recipe(recipe, **kw)
    epochs = config.epochs
    if snapshot and max(snapshot) > epochs:
        raise ParameterError(f"--snapshot {max(snapshot)}: beyond the {epochs} epochs trained (--epochs); a snapshot "
                             f"must be an epoch that is trained")
    if init == "random":
        mode, dbn_dir = "random", dbn
    else:
        if dbn is not None:
            raise ParameterError("--dbn is for --init random; with --init DBN_DIR the weights come from DBN_DIR")
        mode, dbn_dir = "pretrained", Path(init)
    with rundir.run_lock(out), progress_bar(console) as bar:  # a second run into --out fails at once
        job = bar.add_task(f"finetune {task}", total=len(config.learning_rates) * epochs, rate="")

        def advance(p: dict) -> None:
            bar.update(job, completed=p["step"], total=p["total"],
                       description=f"{task} lr={p['learning_rate']:g} epoch {p['epoch']}/{epochs}",
                       rate=f"{p['beats_per_s']:,.0f} beats/s, valid {p['valid_accuracy']:.3f}")

        t0 = time.perf_counter()
        result = run(store, tasks, task, init=mode, dbn_dir=dbn_dir, out=out, config=config, device=device,
                     progress=advance)
    for row in result.runs:
        console.print(f"lr={row['learning_rate']:g} epoch {row['epoch']}: valid {_fmt(row['valid_accuracy'])}, "
                      f"test {_fmt(row['test_accuracy'])}", highlight=False)
    for e in sorted({r["epoch"] for r in result.runs}):
        sel = result.select(e)
        console.print(f"epoch {e}: selected lr={sel['learning_rate']:g} (valid {_fmt(sel['valid_accuracy'])}) -> "
                      f"test accuracy {_fmt(sel['test_accuracy'])} (chance {_fmt(result.chance)})", highlight=False)
    console.print(f"{result.model} on {task}: run directory {out} ({time.perf_counter() - t0:.1f} s)", highlight=False)
