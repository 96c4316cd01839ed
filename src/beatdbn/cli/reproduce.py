"""Reproduction commands: reproduce (Table 1 end to end) and report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from beatdbn.cli import command, console
from beatdbn.cli.output import print_table
from beatdbn.cli.progress import progress_bar
from beatdbn.cli.options import check_options
from beatdbn.cli.tasks import TASK_HELP, with_task_options
from beatdbn.exceptions import ParameterError
from beatdbn.tasks.registry import TaskConfig

__all__ = ["reproduce", "report"]


@command()
@with_task_options
def reproduce(
    store: Path = typer.Argument(..., help="Feature store (from `beatdbn extract`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder; a rerun resumes and skips finished experiments."),
    quick: bool = typer.Option(False, help="Smoke run: 2 learning rates per sweep, 10 epochs (snapshot at 7)."),
    epochs: Optional[int] = typer.Option(
        None, help="Epochs of the conv MLPs (either recipe) and of windowed logistic regression (default: the "
                   "paper's 30, or 10 with --quick); the conv MLPs' earlier test snapshot scales as the paper's 20 "
                   "of 30 (--epochs 12: snapshots at 8 and 12). Recorded in config.json."),
    task: Optional[list[str]] = typer.Option(None, "--task", help=TASK_HELP["task"] + " Default: every task."),
    duplicates: Optional[Path] = typer.Option(None, help=TASK_HELP["duplicates"]),
    genre_labels: Optional[Path] = typer.Option(None, help=TASK_HELP["genre_labels"]),
    tasks_dir: Optional[Path] = typer.Option(None, "--tasks", help="Tasks built beforehand with `beatdbn tasks` (instead of the task options)."),
    recipe: str = typer.Option("paper", help="Conv MLP finetuning: 'paper' (section 6), 'beatdbn', or 'both' (extra Table 1 rows)."),
    pretrain_min_beats: int = typer.Option(
        0, help="Small corpora: pretrain with more passes until each layer has seen this many beats (e.g. 1000000); "
                "0: the paper's single pass."),
    seed: int = typer.Option(0, help="Seed of splits, weights, batch orders and samples."),
    seeds: Optional[int] = typer.Option(
        None, "--seeds", help="Run seeds 0..N-1, each a whole run (its own split, DBN, initial weights and batch "
                              "orders) in OUT/seed-<s>/; Table 1 in OUT over the seeds. A rerun with more seeds "
                              "reuses the finished ones."),
    seed_list: Optional[str] = typer.Option(None, "--seed-list", help="As --seeds, with these seeds (e.g. 3,7,9)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    scheduler: Optional[str] = typer.Option(
        None, help="Where the sweep runs: 'local' (a Dask LocalCluster, one single-thread worker per CPU; the "
                   "default on a CPU), 'sync' (this process; the default with --device cuda) or a Dask scheduler "
                   "address tcp://HOST:PORT (workers must see the same paths). Every experiment x learning rate "
                   "is one job, resumable; the results are those of a serial run."),
    workers: Optional[int] = typer.Option(None, help="--scheduler local: worker processes (default: one per CPU)."),
    task_config: TaskConfig = None,
):
    """Run the paper's experiments (tasks, pretraining, baselines, conv MLPs) and write Table 1 and a report.

    Every task the corpus can give is run; one it cannot give shows as a dash in Table 1, with the reason.
    With --seeds N (or --seed-list) each seed is a whole run in OUT/seed-<s>/ and OUT's Table 1 and report
    cover the finished seeds (OUT/seeds.json). A model that did not leave chance is named at the end, with
    what would help.
    """
    from beatdbn.evaluate.table import Table1  # reason: lazy, torch, matplotlib (fast --help)
    from beatdbn.pipeline.reproduce import (ReproduceConfig, parse_seeds, reproduce as run_reproduce,  # reason: lazy, torch
                                            reproduce_seeds)

    check_options(device=device, out=out, scheduler=scheduler,
                  workers=workers)  # one line for a bad --device, --scheduler, --workers or an unwritable --out
    seed_values = parse_seeds(seeds=seeds, seed_list=seed_list)
    if seed_values is not None and seed != 0:
        raise ParameterError(f"--seed {seed} with --seeds/--seed-list: --seed is a single run's; name the seeds "
                             f"with --seed-list (e.g. --seed-list {seed})")
    config = ReproduceConfig.make(quick=quick, seed=seed, tasks=task_config, recipe=recipe, genre_labels=genre_labels,
                                  pretrain_min_beats=pretrain_min_beats,
                                  duplicates=duplicates, tasks_dir=tasks_dir, epochs=epochs)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with progress_bar(console, columns=columns) as bar:  # plain lines off a terminal
        overall = bar.add_task("reproduce", total=1.0, info="")
        current = bar.add_task("tasks", total=1, info="")

        def advance(p: dict) -> None:
            bar.update(overall, completed=p["work_done"] / p["work_total"], info=f"now: {p['stage']}")
            bar.update(current, description=p["stage"], completed=p["step"], total=max(p["total"], 1),
                       info=p["message"], unit=_unit(p["stage"]))  # whole: a bar fits it, never cutting its last clause

        if seed_values is None:
            record = run_reproduce(store, out, config=config, device=device, progress=advance, scheduler=scheduler,
                                   workers=workers)
        else:
            record = reproduce_seeds(store, out, seeds=seed_values, config=config, device=device, progress=advance,
                                     scheduler=scheduler, workers=workers)
    table = Table1.from_run(out)
    # the paper's columns need a wide terminal; off a terminal the Markdown table, whole
    print_table(console, table.to_rich(paper=console.width >= 140), table.to_markdown(paper=True).split("\n\n", 1)[0])
    for note in table.footnotes[3:]:
        console.print(f"  {note}", highlight=False, soft_wrap=True)
    projected = record.get("projected", {})
    if projected.get("total_seconds"):
        pre = projected.get("pretrain_seconds")
        console.print(f"projected wall time of the full protocol at the paper's scale on this machine: "
                      f"{projected['total_seconds'] / 3600:.1f} h"
                      + (f" (pretraining pass over ~4.6e8 beats: {pre / 3600:.1f} h)" if pre else "")
                      + f"; {projected.get('machine', '')}", highlight=False, soft_wrap=True)
    if not console.is_terminal:  # on a terminal the table's caption has them
        for line in [f"paired: {c}" for c in table.comparison_lines] + [f"warning: {w}" for w in table.warnings]:
            console.print(line, highlight=False, soft_wrap=True)
    console.print(f"Table 1: {out / 'table.md'}\nreport:  {out / 'report.html'}")


@command()
def report(
    run_dir: Path = typer.Argument(..., help="A run folder written by `beatdbn reproduce`."),
    embed: bool = typer.Option(False, help="Embed the images in the HTML (one self-contained file)."),
):
    """(Re)write the report of a reproduction run: Table 1, curves, confusion matrices, filters."""
    from beatdbn.evaluate.report import write_report  # reason: lazy, matplotlib (fast --help)
    from beatdbn.evaluate.table import Table1  # reason: lazy, torch, matplotlib (fast --help)

    Table1.from_run(run_dir).write(run_dir)
    console.print(f"report: {write_report(run_dir, embed_images=embed)}")


def _unit(stage: str) -> str:
    """What a stage of ``reproduce`` counts, for its rate (``seed 1: sweep`` -> jobs)."""
    last = stage.rsplit(": ", 1)[-1]
    return {"sweep": "jobs", "pretrain": "tracks"}.get(last, "epochs" if "/" in last else "steps")
