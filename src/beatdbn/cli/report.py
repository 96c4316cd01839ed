"""Reproduction commands: reproduce (Table 1 end to end) and report."""

from __future__ import annotations

from pathlib import Path
import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from beatdbn.cli import command, console

__all__ = ["reproduce", "report"]


@command()
def reproduce(
    store: Path = typer.Argument(..., help="Feature store (from `beatdbn extract`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder; a rerun resumes and skips finished experiments."),
    quick: bool = typer.Option(False, help="Smoke run: 2 learning rates per sweep, a few epochs."),
    artists: int = typer.Option(50, help="Artist task: number of artists."),
    per_artist: int = typer.Option(100, help="Artist task: tracks per artist."),
    per_genre: int = typer.Option(250, help="Genre task: tracks per genre."),
    per_key: int = typer.Option(250, help="Key task: tracks per key."),
    seed: int = typer.Option(0, help="Seed of splits, weights, batch orders and samples."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
):
    """Run the paper's twelve experiments (tasks, pretraining, baselines, conv MLPs) and write Table 1 and a report."""
    from beatdbn.evaluate.table import Table1
    from beatdbn.tasks.build import TaskConfig
    from beatdbn.train.reproduce import ReproduceConfig, reproduce as run

    tasks = TaskConfig(artists=artists, per_artist=per_artist, per_genre=per_genre, per_key=per_key, seed=seed)
    config = ReproduceConfig.make(quick=quick, seed=seed, tasks=tasks)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        overall = bar.add_task("reproduce", total=1.0, info="")
        current = bar.add_task("tasks", total=1, info="")

        def advance(p: dict) -> None:
            bar.update(overall, completed=p["work_done"] / p["work_total"], info=f"now: {p['stage']}")
            bar.update(current, description=p["stage"], completed=p["step"], total=max(p["total"], 1),
                       info=p["message"][:60])

        record = run(store, out, config=config, device=device, progress=advance)
    console.print(Table1.from_run(out).to_rich())
    projected = record.get("projected", {}).get("total_seconds")
    if projected:
        console.print(f"projected wall time of the full protocol at the paper's scale on this machine: "
                      f"{projected / 3600:.1f} h")
    console.print(f"Table 1: {out / 'table.md'}\nreport:  {out / 'report.html'}")


@command()
def report(
    run_dir: Path = typer.Argument(..., help="A run folder written by `beatdbn reproduce`."),
    embed: bool = typer.Option(False, help="Embed the images in the HTML (one self-contained file)."),
):
    """(Re)write the report of a reproduction run: Table 1, curves, confusion matrices, filters."""
    from beatdbn.evaluate.report import write_report
    from beatdbn.evaluate.table import Table1

    Table1.from_run(run_dir).write(run_dir)
    console.print(f"report: {write_report(run_dir, embed_images=embed)}")
