"""The tasks command and the task options it shares with ``reproduce``."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console, err_console
from beatdbn.cli.output import print_table
from beatdbn.tasks import registry
from beatdbn.tasks.registry import MIN_TEST_PER_CLASS, TaskConfig

__all__ = ["tasks", "with_task_options", "print_task_summary", "TASK_HELP"]


def with_task_options(fn):
    """Give a Typer command one flag per option of every registered task (``--per-genre``, ``--artists``,
    ``--per-decade``, ...) plus ``--scale``, ``--min-per-class``, ``--min-test-per-class`` and ``--seed``; the command receives them
    as ``task_config`` (a :class:`~beatdbn.tasks.registry.TaskConfig`, built with its ``task`` list when it
    has a ``task`` parameter). A new task module's options appear here without editing this file."""
    sig = inspect.signature(fn)
    keep = [p for p in sig.parameters.values() if p.name != "task_config"]
    names = {p.name for p in keep}
    extra = []
    for name, (spec, opt) in registry.all_options().items():
        if isinstance(opt.default, bool):
            default = typer.Option(opt.default, f"{opt.flag}/--no-{opt.flag[2:]}", help=opt.help)
        else:
            default = typer.Option(opt.default, opt.flag, help=opt.help)
        extra.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                       annotation=type(opt.default)))
    shared = [("scale", "paper", str, TASK_HELP["scale"]), ("min_per_class", 0, int, TASK_HELP["min_per_class"]),
              ("min_test_per_class", MIN_TEST_PER_CLASS, int, TASK_HELP["min_test_per_class"])]
    for name, value, kind, text in shared:
        extra.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                       default=typer.Option(value, "--" + name.replace("_", "-"), help=text),
                                       annotation=kind))
    option_names = [p.name for p in extra]

    @functools.wraps(fn)
    def run(*args, **kwargs):
        values = {n: kwargs.pop(n) for n in option_names}
        chosen = kwargs.get("task") if "task" in names else None
        config = TaskConfig(seed=kwargs.get("seed", 0), tasks=tuple(chosen) if chosen else None, **values)
        return fn(*args, task_config=config, **kwargs)

    run.__signature__ = sig.replace(parameters=[*keep, *extra])
    return run


#: Help texts of the shared task options.
TASK_HELP = {
    "scale": "'paper' (each task's paper scale: 20x250 genre, 50x100 artist, 12x250 key); 'auto': the classes "
             "that use the most tracks (k classes x the k-th largest, each class with 2+ test tracks: 20+ tracks at "
             "80/10/10; the alternatives are printed); 'auto-all-classes': every class above the floor at the "
             "smallest one's size (the earlier 'auto').",
    "min_per_class": "--scale auto: fewest tracks a class needs (0: from --min-test-per-class; with "
                     "auto-all-classes each task's own floor, by default one valid + one test + one train track).",
    "min_test_per_class": "--scale auto: fewest test tracks a class needs (default 2: 20 tracks per class at "
                          "80/10/10).",
    "task": "Build only this task (repeatable): " + ", ".join(registry.task_names()) + ".",
    "duplicates": "msd_duplicates.txt: keep one track per group.",
    "genre_labels": "tagtraum genre file (e.g. msd_tagtraum_cd1.cls: track_id<TAB>genre) instead of MusicBrainz tags.",
}


def auto_scale_lines(stats: dict) -> list[str]:
    """One line per task built at an automatic scale: the rule, the floor, the choice and the best alternatives
    it rejected, with why (all of them are in tasks.json)."""
    lines = []
    for name, task_stats in stats.items():
        auto = task_stats.get("auto") if isinstance(task_stats, dict) else None
        if not auto:
            continue
        text = (f"{name}: --scale {auto['rule']} chose {auto['classes']} x {auto['per_class']} = {auto['tracks']:,} "
                f"tracks (a class needs {auto['floor']}+ tracks)")
        if auto["rejected"]:
            shown = auto["rejected"][:4]
            more = len(auto["rejected"]) - len(shown)
            text += "; rejected: " + "; ".join(f"{a['classes']} x {a['per_class']} = {a['tracks']:,} ({a['reason']})"
                                               for a in shown) + (f"; {more} more in tasks.json" if more else "")
        elif auto["below_floor_count"]:
            few = list(auto["below_floor"].items())[:6]
            text += (f"; {auto['below_floor_count']} classes below the floor: " + ", ".join(f"{c} ({n})" for c, n in few)
                     + (", ..." if auto["below_floor_count"] > len(few) else ""))
        lines.append(text)
    return lines


def print_task_summary(summary: dict, errors: dict, stats: dict, *, out: Path, dropped: int) -> None:
    """The tasks table (scale beside the paper's, split protocol), label notes and one line per failed task."""
    from rich.table import Table

    table = Table(title=f"tasks in {out} ({stats['tracks']:,} tracks, {dropped:,} duplicates dropped)")
    for col in ("task", "scale", "paper", "split", "train", "valid", "test", "chance"):
        table.add_column(col, justify="left" if col in ("task", "split") else "right", no_wrap=True)
    for name, t in summary["tasks"].items():
        c = t["counts"]
        table.add_row(name, f"{t['scale']} ({t['scale_rule']})", t["paper_scale"], t["protocol"], str(c["train"]),
                      str(c["valid"]), str(c["test"]), f"{t['chance']:.1%}")
    if summary["tasks"]:
        print_table(console, table)  # off a terminal: a Markdown table, never cut
    for line in auto_scale_lines(stats):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"pretraining exclusion list: {out}/exclude.txt ({summary['excluded_from_pretraining']:,} tracks)")
    labels = stats.get("genre_labels")
    if labels:
        console.print(f"genre labels: {labels['file']}: {labels['labels']:,} labels, {labels['ids_not_in_store']:,} "
                      f"for track ids not in the store (unknown ids), {stats.get('genre', {}).get('labelled', 0):,} "
                      f"tracks of the store labelled", highlight=False, soft_wrap=True)
        for note in labels["notes"]:
            err_console.print(f"[yellow]warning:[/yellow] {note}", highlight=False, soft_wrap=True)
    reps = stats.get("representations", {})
    if len(reps) > 1:
        err_console.print(f"[yellow]warning:[/yellow] the store mixes feature representations ({', '.join(f'{k}: {v:,}' for k, v in reps.items())}); "
                          "Echo Nest (MSD) and audio-front-end features differ in scale, so train on one kind only",
                          highlight=False, soft_wrap=True)
    for name, message in errors.items():
        err_console.print(f"[red]not built:[/red] {message}", highlight=False, soft_wrap=True)


@command()
@with_task_options
def tasks(
    store: Path = typer.Argument(..., help="A feature store folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the task splits."),
    task: Optional[list[str]] = typer.Option(None, "--task", help=TASK_HELP["task"]),
    duplicates: Optional[Path] = typer.Option(None, help=TASK_HELP["duplicates"]),
    genre_labels: Optional[Path] = typer.Option(None, help=TASK_HELP["genre_labels"]),
    seed: int = typer.Option(0, help="Seed of the draws and splits."),
    task_config: TaskConfig = None,
):
    """Build every task the corpus allows (balanced 80/10/10 splits) and the pretraining exclusion list.

    Exits 0 when at least one task was built; each task that could not be built gets one line with the reason and
    the options that would work.
    """
    from beatdbn.store.reader import FeatureStore  # reason: lazy, pyarrow (a fast start for every command)
    from beatdbn.tasks.build import prepare_tasks, write_tasks  # reason: lazy, beside the import above

    fs = FeatureStore.open(store)
    config = task_config
    built, errors, stats, dropped = prepare_tasks(fs, config, duplicates=duplicates, genre_labels=genre_labels)
    summary = write_tasks(out, built, config=config, errors=errors, stats=stats, dropped=dropped, store=str(store))
    print_task_summary(summary, errors, stats, out=out, dropped=len(dropped))
    if not built:
        err_console.print("[red]error:[/red] no task could be built", highlight=False)
        raise typer.Exit(1)
