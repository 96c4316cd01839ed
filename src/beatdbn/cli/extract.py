"""``beatdbn extract``: MSD files or audio into a feature store."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console, err_console
from beatdbn.cli.options import check_out, check_scheduler, check_workers
from beatdbn.cli.progress import progress_bar
from beatdbn.exceptions import ParameterError

__all__ = ["extract"]


@command()
def extract(
    sources: list[Path] = typer.Argument(..., help="MSD .h5 files, audio files (wav, flac, ogg, mp3, ...) or folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="The feature store folder (created or resumed)."),
    scheduler: str = typer.Option("local", help="'local' (a Dask LocalCluster), 'sync' (this process), or tcp://HOST:PORT."),
    workers: Optional[int] = typer.Option(None, help="Worker processes of the local cluster (default: CPU count)."),
    shard_size: int = typer.Option(256, help="Input files per shard."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV of audio labels: a 'path' column (relative to the CSV's folder) and any of artist, genre, key."),
    folder_labels: Optional[str] = typer.Option(None, "--folder-labels", help="Label audio by the first folder below each source folder: genre, artist or key (SRC/rock/song.mp3 -> rock)."),
    retry_skipped: bool = typer.Option(False, "--retry-skipped", help="Try every input an earlier run skipped again (by default only those whose size or modification time changed)."),
    wait: bool = typer.Option(False, "--wait", help="Wait for another process writing the same store instead of stopping."),
    allow_mixed: bool = typer.Option(False, "--allow-mixed", help="Let MSD files and audio files into one store (refused by default: their features share a layout, not a meaning)."),
):
    """Beat-align every input (MSD files or audio) into a sharded feature store; a rerun resumes.

    One writer at a time: a second extract on the same store stops with a line
    naming the first one's pid (or waits, with --wait). A rerun with corrected
    --labels updates the labels of tracks already in the store (features are
    not extracted again).
    """

    check_scheduler(scheduler)
    check_workers(workers)
    check_out(out)
    if shard_size < 1:
        raise ParameterError(f"--shard-size {shard_size}: expected 1 or more input files per shard")
    if scheduler != "sync":  # the progress bar is the user's view, not Dask's logs (set after Dask's own setup)
        import distributed  # noqa: F401  (configures its loggers on import)

        for name in ("distributed", "tornado", "asyncio"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if folder_labels is not None and folder_labels not in ("genre", "artist", "key"):
        raise ParameterError(f"--folder-labels {folder_labels!r}: choose genre, artist or key")
    from beatdbn.labels import read_label_csv  # reason: lazy, the CLI starts without the readers

    label_map = read_label_csv(labels) if labels else None

    with progress_bar(console) as bar:
        job = bar.add_task("extract", total=None, rate="")
        t0 = time.perf_counter()
        counts = {"files": 0, "tracks": 0, "beats": 0}

        def start(n_files: int, n_shards: int) -> None:
            bar.update(job, total=n_files)

        def step(info: dict) -> None:
            for k in counts:
                counts[k] += info[k]
            for s in info["skipped"]:
                err_console.print(f"[yellow]skipped[/yellow] {s['path']}: {s['reason']}", highlight=False, soft_wrap=True)
            dt = max(time.perf_counter() - t0, 1e-9)
            bar.update(job, completed=counts["files"],
                       rate=f"{counts['tracks']:,} tracks, {counts['beats']:,} beats, {counts['tracks'] / dt:,.0f} tracks/s")

        def waiting(pid) -> None:
            err_console.print(f"{out} is being written by another beatdbn process (pid {pid or 'unknown'}); "
                              f"waiting for it (--wait)", highlight=False, soft_wrap=True)

        from beatdbn.store.extract import extract as run_extract  # reason: lazy, h5py, Dask, ...
        report = run_extract(sources, out, shard_size=shard_size, scheduler=scheduler, workers=workers,
                             on_progress=step, on_start=start, labels=label_map, folder_label=folder_labels,
                             retry_skipped=retry_skipped, wait=wait, on_wait=waiting, allow_mixed=allow_mixed)
    for note in report.notes:
        console.print(note, highlight=False, soft_wrap=True)
    if report.retried:
        console.print(f"tried {report.retried:,} previously skipped inputs again "
                      f"({'--retry-skipped' if retry_skipped else 'changed since they were skipped'})")
    console.print(
        f"{out}: +{report.tracks_added:,} tracks ({report.beats_added:,} beats) in {report.seconds:.1f} s; "
        f"{report.already_done:,} inputs already done; store now {report.tracks_total:,} tracks, "
        f"{report.beats_total:,} beats; {len(report.skipped)} inputs skipped (see {out}/report.json)"
    )
    if label_map is not None or folder_labels:
        console.print(f"labels given for {report.labelled:,} of {report.inputs:,} inputs")
        if report.relabelled:
            console.print(f"labels changed for {report.relabelled:,} tracks already in the store: their metadata was "
                          f"updated (features kept)", highlight=False)
    if report.tracks_total == 0:
        err_console.print("[red]error:[/red] nothing could be read; the store is empty")
        raise typer.Exit(1)
