"""Reproduction commands: reproduce (Table 1 end to end) and report.

While ``reproduce`` runs it prints each run's tasks as built (:func:`task_scale_lines`: the scale that
``--scale auto`` chose, the test tracks per class, the classes) before any training, and gives the sweep an
honest ETA (:class:`SweepEta`); at the end, Table 1 with its legend (:func:`print_table1`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from beatdbn.cli import command, console
from beatdbn.cli.output import print_table
from beatdbn.cli.progress import progress_bar
from beatdbn.cli.options import check_options
from beatdbn.cli.tasks import TASK_HELP, with_task_options
from beatdbn.exceptions import ParameterError
from beatdbn.tasks.registry import TaskConfig

__all__ = ["reproduce", "report", "task_scale_lines", "SweepEta", "print_table1", "PAPER_WIDTH"]

#: The terminal width from which Table 1 shows the paper's columns beside this run's.
PAPER_WIDTH = 140


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
    models: str = typer.Option("", help="Add opt-in models to the default ones, each with a '+' (e.g. +meanstd_lr: "
                                        "logistic regression on each track's feature mean and std); extra Table 1 rows."),
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
    from beatdbn.pipeline.reproduce import (ReproduceConfig, parse_models, parse_seeds,  # reason: lazy, torch
                                            reproduce as run_reproduce, reproduce_seeds, seed_dir)

    check_options(device=device, out=out, scheduler=scheduler,
                  workers=workers)  # one line for a bad --device, --scheduler, --workers or an unwritable --out
    seed_values = parse_seeds(seeds=seeds, seed_list=seed_list)
    if seed_values is not None and seed != 0:
        raise ParameterError(f"--seed {seed} with --seeds/--seed-list: --seed is a single run's; name the seeds "
                             f"with --seed-list (e.g. --seed-list {seed})")
    config = ReproduceConfig.make(quick=quick, seed=seed, tasks=task_config, recipe=recipe, genre_labels=genre_labels,
                                  pretrain_min_beats=pretrain_min_beats,
                                  duplicates=duplicates, tasks_dir=tasks_dir, epochs=epochs, models=parse_models(models))
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    sweep_eta = SweepEta()
    shown_tasks: dict[Path, list[str]] = {}  # run folder -> the scale lines printed for it
    with progress_bar(console, columns=columns) as bar:  # plain lines off a terminal
        overall = bar.add_task("reproduce", total=1.0, info="")
        current = bar.add_task("tasks", total=1, info="")

        def advance(p: dict) -> None:
            if p["stage"].rsplit(": ", 1)[-1] != "tasks":  # the tasks are built: say what was chosen, once a run
                _print_tasks_once(out if "seed" not in p else seed_dir(out, p["seed"]), p.get("seed"), shown_tasks)
            stage_eta = sweep_eta(p)
            bar.update(overall, completed=p["work_done"] / p["work_total"], info=f"now: {p['stage']}",
                       **sweep_eta.overall(p, stage_eta))
            bar.update(current, description=p["stage"], completed=p["step"], total=max(p["total"], 1),
                       info=p["message"], unit=_unit(p["stage"]),  # whole: a bar fits it, never cutting its last clause
                       **stage_eta)

        if seed_values is None:
            record = run_reproduce(store, out, config=config, device=device, progress=advance, scheduler=scheduler,
                                   workers=workers)
        else:
            record = reproduce_seeds(store, out, seeds=seed_values, config=config, device=device, progress=advance,
                                     scheduler=scheduler, workers=workers)
    table = Table1.from_run(out)
    print_table1(console, table, out=out)
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
    curves: list[Path] = typer.Option([], "--curve", help="A `beatdbn curve` folder to show in the report "
                                      "(its figure, accuracies and paired comparisons); repeatable."),
):
    """(Re)write the report of a reproduction run: Table 1, curves, confusion matrices, filters."""
    from beatdbn.evaluate.report import write_report  # reason: lazy, matplotlib (fast --help)
    from beatdbn.evaluate.table import Table1  # reason: lazy, torch, matplotlib (fast --help)

    Table1.from_run(run_dir).write(run_dir)
    missing = [str(c) for c in curves if not (Path(c) / "curve.json").is_file()]
    if missing:
        raise ParameterError(f"--curve {missing[0]}: no curve.json there; give the OUT folder of `beatdbn curve`")
    console.print(f"report: {write_report(run_dir, embed_images=embed, curves=curves)}")


def _unit(stage: str) -> str:
    """What a stage of ``reproduce`` counts, for its rate (``seed 1: sweep`` -> jobs)."""
    last = stage.rsplit(": ", 1)[-1]
    return {"sweep": "jobs", "pretrain": "tracks"}.get(last, "epochs" if "/" in last else "steps")


def print_table1(console, table, *, out: Path) -> None:
    """Table 1 on ``console`` with its legend: the table (rich on a terminal, its paper columns from
    :data:`PAPER_WIDTH` columns; off a terminal the Markdown table of ``table.md``, whole), then every footnote of
    ``table.md`` (:attr:`~beatdbn.evaluate.table.Table1.footnotes`: how to read a cell, what bold means, chance,
    the paper's columns, ≈chance, ▲/▼ against windowed logistic regression, ...)."""
    paper = console.width >= PAPER_WIDTH or not console.is_terminal
    print_table(console, table.to_rich(paper=paper), table.to_markdown(paper=True).split("\n\n", 1)[0])
    for note in table.footnotes:
        console.print(f"  {note}", markup=False, highlight=False, soft_wrap=True)
    if not paper:
        console.print(f"  (the paper's columns need a terminal of {PAPER_WIDTH} columns; {out / 'table.md'} has them)",
                      markup=False, highlight=False, soft_wrap=True)


def task_scale_lines(tasks_dir: Path, *, show_classes: int = 8) -> list[str]:
    """One line per task of ``tasks_dir/tasks.json`` (as ``beatdbn tasks`` or ``reproduce`` wrote it): its scale
    (classes × tracks per class, and the rule that chose it: ``auto`` is ``--scale auto``), the tracks per split
    and the test tracks per class, its classes (the first ``show_classes``); then one line per task not built,
    with why. [] when the tasks are not written yet.

    Examples
    --------
    >>> import json, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "genre").mkdir(), (d / "genre" / "classes.txt").write_text("Rock\\nPop\\n")
    >>> _ = (d / "tasks.json").write_text(json.dumps({"tasks": {"genre": {"classes": 2, "per_class": 20,
    ...     "scale_rule": "auto", "paper_scale": "20×250", "counts": {"train": 32, "valid": 4, "test": 4}}},
    ...     "errors": {"artist": "artist task: no artist has 20 tracks"}}))
    >>> print("\\n".join(task_scale_lines(d)))
    genre: 2 classes × 20 tracks (--scale auto; paper 20×250): train 32, valid 4, test 4 (2 per class); Rock, Pop
    not built: artist task: no artist has 20 tracks
    """
    try:
        summary = json.loads((Path(tasks_dir) / "tasks.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    lines = []
    for name, t in (summary.get("tasks") or {}).items():
        k, c = t["classes"], t["counts"]
        per_test = c["test"] / k if k else 0
        try:
            classes = [x for x in (Path(tasks_dir) / name / "classes.txt").read_text(encoding="utf-8-sig").splitlines()
                       if x]
        except OSError:
            classes = []
        named = ", ".join(classes[:show_classes]) + (f", … ({len(classes) - show_classes} more)"
                                                     if len(classes) > show_classes else "")
        rule = t.get("scale_rule", "")
        lines.append(f"{name}: {k} classes × {t['per_class']} tracks ("
                     + (f"--scale {rule}" if rule else "scale") + f"; paper {t.get('paper_scale', '—')}): "
                     f"train {c['train']}, valid {c['valid']}, test {c['test']} ({per_test:.3g} per class)"
                     + (f"; {named}" if named else ""))
    lines += [f"not built: {why}" for why in (summary.get("errors") or {}).values()]
    return lines


def _print_tasks_once(run: Path, seed: int | None, shown: dict[Path, list[str]]) -> None:
    """Print the tasks of ``run`` (:func:`task_scale_lines`) the first time they are there; a later seed whose
    scales and classes are those of the seed before says so in one line."""
    if run in shown:
        return
    lines = task_scale_lines(run / "tasks")
    if not lines:
        return
    shown[run] = lines
    before = [v for k, v in shown.items() if k != run]
    who = "tasks" if seed is None else f"seed {seed}: tasks"
    if before and before[-1] == lines:
        console.print(f"{who}: the same scales and classes as the seed before (each seed its own split)",
                      markup=False, highlight=False, soft_wrap=True)
        return
    console.print(f"{who} ({run / 'tasks' / 'tasks.json'}):", markup=False, highlight=False, soft_wrap=True)
    for line in lines:
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


class SweepEta:
    """The ETA fields (``eta``, ``eta_basis``: :func:`beatdbn.cli.progress.eta_text`) of reproduce's stage line.

    Why the count's own ETA misled: a sweep's ETA was its jobs left over the jobs done per second so far. Its
    48 jobs differ a hundredfold (a key conv MLP's learning rate against a genre naive Bayes) and run longest
    first, and its first seconds are the workers' start: 15 s into a real sweep, 0.1 of a job was done, so
    the line said ``eta 3:04:44``; the sweep took 16 minutes (``make real``, 878 tracks, 2 workers).

    So, in a sweep stage (any other stage keeps the count's ETA):

    * when the running jobs carry their estimated ``cost`` and the progress its ``sweep_left`` (the cost of the
      sweep not yet done, same units): the cost left over the rate at which the running jobs get through
      cost, from their measured epoch rates (each job's ``eta_seconds``, which leaves out its start);
      ``eta_basis`` says so; until a running job has two epochs, "after the first epochs";
    * else (a sweep that gives no costs), "after the first job" until one is done; then the count's ETA,
      marked as an upper bound (the longest jobs run first).

    The whole run's line (:meth:`overall`) says the same in a sweep: the sweep's ETA from rates, plus, with
    several seeds, each seed still to come as long as this one (its time so far and its sweep's ETA).
    """

    RATES = "from the running jobs' epoch rates"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.stage: str | None = None
        self.finished = 0
        self.workers = 0  # the most jobs seen running at once in this sweep
        self.running: list[dict] = []
        self.last: tuple[float, float] | None = None  # (when, seconds): the last estimate from rates
        self.seed_start: dict[int, float] = {}

    def __call__(self, p: dict) -> dict:
        stage = str(p.get("stage", ""))
        if p.get("seed") is not None:
            self.seed_start.setdefault(int(p["seed"]), self.clock())
        if stage.rsplit(": ", 1)[-1] != "sweep":
            self.stage = None
            return {"eta": None, "eta_basis": None}
        if stage != self.stage:
            self.stage, self.finished, self.workers, self.running, self.last = stage, 0, 0, [], None
        message = str(p.get("message", ""))
        if "running" in p:
            self.running = list(p["running"] or [])
            self.workers = max(self.workers, len(self.running))
        elif message.endswith(" done"):  # one job finished (its line comes between two polls)
            self.finished += 1
            name = message[:-len(" done")]
            self.running = [r for r in self.running if r.get("job") != name]
        # every worker holds a job while jobs are left (a finished job's worker takes the next at once)
        self.busy = min(self.workers, max(int(p.get("total") or 0) - self.finished, len(self.running)))
        seconds = self._from_rates(p.get("sweep_left"))
        now = self.clock()
        if seconds is not None:
            self.last = (now, seconds)
            return {"eta": seconds, "eta_basis": self.RATES}
        if self.last is not None:  # between two measurements (a job just started): the last one, counted down
            return {"eta": max(self.last[1] - (now - self.last[0]), 0.0), "eta_basis": self.RATES}
        if p.get("sweep_left") is not None:
            return {"eta": "after the first epochs", "eta_basis": None}
        if self.finished == 0:
            return {"eta": "after the first job", "eta_basis": None}
        return {"eta": None, "eta_basis": "at most: the longest jobs run first"}

    def _from_rates(self, left) -> float | None:
        """Seconds to get through ``left`` at the running jobs' measured rate (cost per second), or None."""
        if left is None or not self.running:
            return None
        rates = []
        for r in self.running:
            total, step, eta, cost = r.get("total"), r.get("step", 0), r.get("eta_seconds"), r.get("cost")
            if not total or cost is None or eta is None or step >= total or eta <= 0:
                continue
            rates.append(cost * (total - step) / total / eta)  # its cost per second: what is left of it, over its eta
        if not rates:
            return None
        # each busy worker (one whose job has no measured rate yet too) as fast as the measured ones
        per_second = sum(rates) / len(rates) * max(self.busy, len(rates))
        return max(float(left), 0.0) / per_second if per_second > 0 else None

    def overall(self, p: dict, stage: dict) -> dict:
        """The whole run's ETA fields, given this stage's (:meth:`__call__`): in a sweep with an ETA from rates,
        that ETA, plus each seed after this one as long as this seed (its time so far and that ETA); in a sweep
        still waiting for its first job or epochs, the same words; elsewhere, the count's own (None)."""
        eta = stage.get("eta")
        if eta is None or isinstance(eta, str):
            return {"eta": eta, "eta_basis": None}
        seed, total, done = p.get("seed"), p.get("work_total"), p.get("work_done")
        later = max(int(total) - int(done) - 1, 0) if seed is not None and total and done is not None else 0
        if not later:
            return {"eta": eta, "eta_basis": f"the sweep, {self.RATES}"}
        this_seed = self.clock() - self.seed_start.get(int(seed), self.clock()) + eta
        return {"eta": eta + later * this_seed,
                "eta_basis": f"the sweep, {self.RATES}; {later} more seed{'s' if later > 1 else ''} as long"}
