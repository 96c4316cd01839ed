"""Inference commands: predict and evaluate.

Exit codes of ``beatdbn predict``:

* 0: every input was classified (without ``--strict``: at least one was);
* 1: no input could be classified, or (``--strict``) at least one failed, or
  the run, the options or ``--out`` are unusable (one line on stderr);
* 2: a command-line usage error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

from rich.markup import escape

from beatdbn.cli import command, console, err_console
from beatdbn.cli.options import check_model_task, check_options, model_and_inputs
from beatdbn.cli.progress import progress_bar
from beatdbn.exceptions import ParameterError
from beatdbn.utils.cluster import check_scheduler

# beatdbn.inference and beatdbn.evaluate load torch: they are imported inside the commands, so that `--help` and
# the other commands start without it (tests/test_cli_start.py)

__all__ = ["predict", "evaluate", "key_line"]


def _fmt(a) -> str:
    return "n/a" if a is None or (isinstance(a, float) and math.isnan(a)) else f"{a:.3f}"


def _read_ahead(paths: list[Path], workers: int, scheduler: Optional[str]):
    """The reading of the first input file, begun before torch (or anything heavy) is imported: a one-song
    predict is mostly the song's analysis and the command's start, and they overlap on two cores
    (:mod:`beatdbn.features.read_ahead`: a forked process on Linux, else a thread). None when inputs are read
    elsewhere (workers).

    One 3-minute song, a whole ``beatdbn predict --task key`` process (``make bench``, ``cli:`` row; 2 idle
    cores, 2026-12-05): with torch's model, read ahead in a thread 3.01 and 3.14 s wall, in a forked process
    2.09 s; with the numpy forward (no torch) 0.94-1.00 s, the song's analysis then the critical path. Essentia's
    KeyExtractor in a script: 0.88-0.91 s. With several files only the first is read ahead."""
    if workers != 1 or scheduler not in (None, "sync"):
        return None
    from beatdbn.features import read_ahead  # reason: lazy, only predict reads ahead (the module is light)

    first = next((p for p in paths if p.is_file() and p.name not in ("model.pt", "model.npz", "config.json")), None)
    if first is None:
        return None
    return read_ahead.start(first)


#: Audio files below which `--workers N` (a local Dask cluster) does not pay: the cluster's start (workers
#: importing torch and librosa) costs about 8-10 s on 2 busy cores, while the front-end analyses a minute of
#: audio in about 0.15 s. Measured 2026-12-05 (6 real clips: 3.0 s serial, 5.5-8.4 s with 2 workers; 24: 5.7 s
#: against 13.1 s; 96 clips, 101 minutes of audio: 16.8 s against 15.9 s). MSD .h5 files cost milliseconds to
#: read: they never pay.
WORKERS_PAY_FROM = 96


def _workers_that_pay(files: list[Path], workers: int, scheduler: Optional[str]) -> int:
    """``workers``, or 1 (with a line saying why) when a local cluster would cost more than it saves; a
    ``--scheduler`` given is always used."""
    if workers == 1 or scheduler is not None:
        return workers
    from beatdbn.features.sources import MSD_SUFFIXES  # reason: lazy, the reader alone (no torch)

    n_audio = sum(1 for f in files if f.suffix.lower() not in MSD_SUFFIXES)
    if n_audio >= WORKERS_PAY_FROM:
        return workers
    err_console.print(f"--workers {workers}: {len(files):,} inputs ({n_audio:,} audio) are read faster in this "
                      f"process: a local Dask cluster costs more to start than it saves below about "
                      f"{WORKERS_PAY_FROM} audio files (--scheduler local forces it)", highlight=False,
                      soft_wrap=True)
    return 1


def _run_and_inputs(paths: list[Path], task: Optional[str]):
    from beatdbn.inference import load_run, shipped_model  # reason: lazy, torch (fast --help)

    model_dir, inputs = model_and_inputs(paths, task, command="predict")
    if model_dir is None:
        return shipped_model(task), inputs
    run = load_run(model_dir)
    check_model_task(model_dir, run.task, task)
    return run, inputs


def key_line(a: dict) -> str:
    """The text line of a key answer: ``song.mp3  B♭ major (6B)  0.91``, then the next keys (those that show as
    0.01 or more); or ``song.mp3  no key (no tonal centre: ...)``. An MSD file's track id follows its name."""
    where = a["file"] + (f" {a['track_id']}" if a.get("track_id") and Path(a["file"]).suffix.lower()
                         in (".h5", ".hdf5") else "")
    if not a["tonal"]:
        return f"{where}  no key ({a['reason']})"
    shown = f"{a['key']} ({a['camelot']})" if a.get("camelot") else a["key"]
    rest = [x for x in a.get("alternatives") or [] if x["key"] != a["key"] and x["probability"] >= 0.005]
    others = ", ".join(f"{x['key']} {x['probability']:.2f}" for x in rest)
    return f"{where}  {shown}  {a['confidence']:.2f}" + (f"   next: {others}" if others else "")


def _print_answer(a: dict) -> None:
    if "error" in a:
        err_console.print(f"[red]error:[/red] {escape(a['error'])}", highlight=False, soft_wrap=True)
        return
    if "key" in a:
        console.print(key_line(a), markup=False, highlight=False, soft_wrap=True)
    else:
        probs = ", ".join(f"{lab} {p:.3f}" for lab, p in a["probabilities"].items())
        console.print(f"{escape(a['file'])} {escape(a['track_id'])}: [bold]{escape(a['label'])}[/bold]  "
                      f"({escape(probs)})", highlight=False, soft_wrap=True)
    steps = a.get("over_time")
    if steps:
        labels = steps["labels"]
        tops = [labels[max(range(len(p)), key=p.__getitem__)] for p in steps["posteriors"]]
        console.print(f"  over time ({len(tops)} steps of ~4 bars, beats {steps['beats'][0][0]}-"
                      f"{steps['beats'][-1][1]}): {' '.join(tops)}", highlight=False, soft_wrap=True)


@command()
def predict(
    paths: list[Path] = typer.Argument(..., metavar="[RUN_DIR] FILES_OR_FOLDERS...",
                                       help="A run directory from `beatdbn finetune`/`baseline` (or a model folder), "
                                            "then the files to classify (MSD .h5 or audio) or folders (searched "
                                            "recursively). With --task and no RUN_DIR, all are inputs and the "
                                            "model shipped for the task is used."),
    task: Optional[str] = typer.Option(None, "--task", "-t",
                                       help="key: without a RUN_DIR, use the shipped audio key model; with one, "
                                            "check that its model is for this task."),
    top_k: int = typer.Option(3, "--top-k", "-k", help="Labels listed per track (a key model: the alternative keys) (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list, one object per track or failed input."),
    over_time: bool = typer.Option(False, "--over-time",
                                   help="Add the posterior of every layer-4 step (~4 bars) with the beats and "
                                        "seconds it covers (JSON: \"over_time\")."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Write one row per track to FILE.jsonl (everything --json shows) or "
                                            "FILE.csv (file, track_id, label, probability, a key model's key fields, "
                                            "a p:CLASS column per class: all filled with --top-k 0; error). "
                                            "--over-time needs .jsonl."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any input fails (default: only when all do)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Processes reading and analysing inputs in parallel "
                                                            "(a local Dask cluster when > 1; used from about 96 "
                                                            "audio files, where it pays, unless --scheduler is "
                                                            "given)."),
    scheduler: Optional[str] = typer.Option(None, help="'sync', 'local' (Dask, --workers processes) or an existing "
                                                       "Dask scheduler's address, as for `beatdbn extract`."),
):
    """Classify tracks with a finished model (or the shipped key model): top-k labels with probabilities.

    Exit codes: 0 every input classified (without --strict: at least one); 1 no input classified, or with --strict
    any input failed, or an unusable run/option; 2 usage error.
    """
    check_options(out_file=out, workers=workers)  # one line for an unwritable --out or --workers < 1
    if workers < 1:
        raise ParameterError(f"--workers {workers}: must be >= 1")
    if scheduler is not None:
        check_scheduler(scheduler)
    # the first file's analysis starts now, in a child process (or a thread), and overlaps torch's import and the
    # model's loading
    ahead = _read_ahead(paths, workers, scheduler) if out is None or not over_time else None
    from beatdbn.inference import iter_inputs, iter_predictions, row_writer  # reason: lazy, torch (fast --help)
    from beatdbn.inference.key_answer import key_classes  # reason: lazy, beside the import above
    from beatdbn.inference.rows import check_output  # reason: lazy, beside the import above

    if out is not None:
        check_output(out, over_time=over_time)  # e.g. --over-time into a CSV file: refused before any work
    run, inputs = _run_and_inputs(paths, task)
    files = list(iter_inputs(inputs))
    if not files:
        raise ParameterError(f"no input files in {', '.join(map(str, inputs))} (looked for .h5 and audio files)")
    workers = _workers_that_pay(files, workers, scheduler)
    bar = job = None

    def progress(n: int) -> None:
        if job is not None:
            bar.update(job, completed=n)

    # checked here, before anything is printed (e.g. --over-time with a model without steps): a JSON list is
    # either whole or not started
    answers = iter_predictions(run, files, top_k=top_k, over_time_steps=over_time, workers=workers,
                               scheduler=scheduler, progress=progress,
                               ahead=ahead if ahead is not None and files[0] == ahead.path else None)
    is_key = run.task == "key" and key_classes(run.labels) is not None
    writer = row_writer(out, classes=run.labels, key=is_key, over_time=over_time) if out is not None else _no_writer()
    n_ok = n_failed = 0
    with writer as write, progress_bar(err_console) as bar:
        job = bar.add_task("predict", total=len(files), rate="", unit="files") if len(files) > 1 else None
        first = True
        if as_json:
            typer.echo("[")
        try:
            for a in answers:
                if "error" in a:
                    n_failed += 1
                else:
                    n_ok += 1
                if write is not None:
                    write(a)
                if as_json:
                    typer.echo(("" if first else ",\n") + json.dumps(a, indent=2, allow_nan=False, ensure_ascii=False),
                               nl=False)
                    first = False
                elif out is None:
                    _print_answer(a)
        finally:
            if as_json:  # the list is closed even when a failure stops the command: stdout stays valid JSON
                typer.echo("\n]")
    if out is not None:
        err_console.print(f"{out}: {n_ok:,} tracks classified, {n_failed:,} failed", highlight=False)
    if n_ok == 0 or (strict and n_failed):
        raise typer.Exit(1)


class _no_writer:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="Run directory from `beatdbn finetune` (or a model folder)."),
    store: Path = typer.Argument(..., help="Feature store."),
    tasks: Path = typer.Argument(..., help="Tasks folder."),
    split: str = typer.Option("test", help="train, valid or test."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Accuracy and per-class accuracy of a run's selected model on a split of its task."""
    from beatdbn.evaluate.split import evaluate_split  # reason: lazy, torch (fast --help)

    res = evaluate_split(run_dir, store, tasks, split)
    if as_json:
        typer.echo(json.dumps(res, indent=2, allow_nan=False))
        return
    console.print(f"{res['task']} {res['split']}: accuracy {_fmt(res['accuracy'])} on {res['n_tracks']} tracks "
                  f"(chance {_fmt(res['chance'])})", highlight=False)
    for lab, a in res["per_class_accuracy"].items():
        console.print(f"  {lab:>12}  {_fmt(a)}", highlight=False)
