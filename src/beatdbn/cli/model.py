"""Model commands: finetune, evaluate, predict."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console, err_console
from beatdbn.cli.progress import progress_bar

__all__ = ["finetune", "predict", "evaluate"]


def _fmt(a) -> str:
    return "n/a" if a is None or (isinstance(a, float) and math.isnan(a)) else f"{a:.3f}"


@command()
def finetune(
    store: Path = typer.Argument(..., help="Feature store (from `beatdbn extract`)."),
    tasks: Path = typer.Argument(..., help="Tasks folder (from `beatdbn tasks`)."),
    task: str = typer.Option(..., "--task", "-t", help="artist, genre or key."),
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
    from beatdbn.exceptions import ParameterError
    from beatdbn.train.finetune import FinetuneConfig, finetune as run

    if task not in ("artist", "genre", "key"):
        raise ParameterError(f"--task {task!r}: must be artist, genre or key")
    kw = {"seed": seed, "precision": precision}
    for name, value in (("learning_rates", tuple(lr or ())), ("snapshot_epochs", tuple(snapshot or ())),
                        ("epochs", epochs), ("batch_size", batch_size), ("augment", augment),
                        ("min_updates", min_updates)):
        if value is not None and value != ():
            kw[name] = value
    config = FinetuneConfig.for_recipe(recipe, **kw)
    epochs = config.epochs
    if init == "random":
        mode, dbn_dir = "random", dbn
    else:
        if dbn is not None:
            raise ParameterError("--dbn is for --init random; with --init DBN_DIR the weights come from DBN_DIR")
        mode, dbn_dir = "pretrained", Path(init)
    with progress_bar(console) as bar:
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


@command()
def predict(
    paths: list[Path] = typer.Argument(..., metavar="[RUN_DIR] FILES...",
                                       help="A run directory from `beatdbn finetune` (or a model folder), then the "
                                            "files to classify (MSD .h5 or audio). With --task and no RUN_DIR, all "
                                            "are files and the model shipped for the task is used."),
    task: Optional[str] = typer.Option(None, "--task", "-t",
                                       help="key: without a RUN_DIR, use the shipped audio key model; with one, "
                                            "check that its model is for this task."),
    top_k: int = typer.Option(3, "--top-k", "-k", help="Labels listed per track (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list, one object per track or unreadable file."),
):
    """Classify tracks with a finetuned model (or the shipped key model): top-k labels with probabilities."""
    from beatdbn.evaluate.predict import load_run, predict_files, shipped_model
    from beatdbn.exceptions import ParameterError

    first = paths[0]
    is_run = first.is_dir() or first.name in ("model.pt", "config.json")
    if task is None:
        if not is_run:
            raise ParameterError(f"{first}: not a run directory; give `beatdbn predict RUN_DIR FILES...`, or "
                                 f"`beatdbn predict --task key FILES...` for the shipped key model")
        if len(paths) < 2:
            raise ParameterError("no files to classify: give `beatdbn predict RUN_DIR FILES...`")
        run, files = load_run(first), paths[1:]
    elif is_run:
        run, files = load_run(first), paths[1:]
        if not files:
            raise ParameterError(f"no files to classify after the run directory {first}")
        if run.task and run.task != task:
            raise ParameterError(f"{first}: its model is for task {run.task!r}, not --task {task!r}")
    else:
        run, files = shipped_model(task), paths
    answers = predict_files(run, files, top_k=top_k)
    if as_json:
        typer.echo(json.dumps(answers, indent=2, allow_nan=False))
    else:
        for a in answers:
            if "error" in a:
                err_console.print(f"[red]error:[/red] {a['error']}", highlight=False, soft_wrap=True)
                continue
            probs = ", ".join(f"{lab} {p:.3f}" for lab, p in a["probabilities"].items())
            console.print(f"{a['file']} {a['track_id']}: [bold]{a['label']}[/bold]  ({probs})", highlight=False,
                          soft_wrap=True)
    if answers and all("error" in a for a in answers):
        raise typer.Exit(1)


@command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="Run directory from `beatdbn finetune` (or a model folder)."),
    store: Path = typer.Argument(..., help="Feature store."),
    tasks: Path = typer.Argument(..., help="Tasks folder."),
    split: str = typer.Option("test", help="train, valid or test."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Accuracy and per-class accuracy of a run's selected model on a split of its task."""
    from beatdbn.evaluate.predict import evaluate_split

    res = evaluate_split(run_dir, store, tasks, split)
    if as_json:
        typer.echo(json.dumps(res, indent=2))
        return
    console.print(f"{res['task']} {res['split']}: accuracy {_fmt(res['accuracy'])} on {res['n_tracks']} tracks "
                  f"(chance {_fmt(res['chance'])})", highlight=False)
    for lab, a in res["per_class_accuracy"].items():
        console.print(f"  {lab:>12}  {_fmt(a)}", highlight=False)
