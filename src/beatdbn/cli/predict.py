"""Inference commands: predict and evaluate."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console, err_console
from beatdbn.cli.progress import progress_bar

__all__ = ["predict", "evaluate"]


def _fmt(a) -> str:
    return "n/a" if a is None or (isinstance(a, float) and math.isnan(a)) else f"{a:.3f}"


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
