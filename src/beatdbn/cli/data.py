"""Data commands: synth, extract, info, tasks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console, err_console
from beatdbn.cli.progress import progress_bar

__all__ = ["synth", "extract", "info", "tasks", "task_options", "print_task_summary", "TASK_HELP"]


@command()
def synth(
    out: Path = typer.Argument(..., help="Folder to write the synthetic MSD-format .h5 files into."),
    tracks: int = typer.Option(1000, "--tracks", "-n", help="Number of tracks."),
    artists: Optional[int] = typer.Option(None, help="Number of artists (default: tracks // 25)."),
    seed: int = typer.Option(0, help="Random seed."),
):
    """Write a synthetic demo corpus in the MSD track-file format (not real music)."""
    from beatdbn.synth.corpus import generate_corpus

    with progress_bar(console) as bar:
        job = bar.add_task("synth", total=tracks, rate="")
        t0 = time.perf_counter()

        def advance(done: int) -> None:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar.update(job, completed=done, rate=f"{rate:,.0f} tracks/s")

        paths = generate_corpus(out, tracks, seed=seed, n_artists=artists, progress=advance)
    console.print(f"wrote {len(paths)} synthetic tracks (not real music) to {out}")


@command()
def extract(
    sources: list[Path] = typer.Argument(..., help="MSD .h5 files, audio files (wav, flac, ogg, mp3, ...) or folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="The feature store folder (created or resumed)."),
    scheduler: str = typer.Option("local", help="'local' (a Dask LocalCluster), 'sync' (this process), or tcp://HOST:PORT."),
    workers: Optional[int] = typer.Option(None, help="Worker processes of the local cluster (default: CPU count)."),
    shard_size: int = typer.Option(256, help="Input files per shard."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV of audio labels: a 'path' column (relative to the CSV's folder) and any of artist, genre, key."),
    folder_labels: Optional[str] = typer.Option(None, "--folder-labels", help="Label audio by the first folder below each source folder: genre, artist or key (SRC/rock/song.mp3 -> rock)."),
    throttle: float = typer.Option(0.0, hidden=True, help="Seconds each shard waits before writing (tests)."),
):
    """Beat-align every input (MSD files or audio) into a sharded feature store; a rerun resumes."""
    from beatdbn.exceptions import ParameterError
    from beatdbn.store.extract import extract as run_extract
    from beatdbn.labels import read_label_csv

    if folder_labels is not None and folder_labels not in ("genre", "artist", "key"):
        raise ParameterError(f"--folder-labels {folder_labels!r}: choose genre, artist or key")
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
                       rate=f"{counts['tracks']:,} tracks, {counts['tracks'] / dt:,.0f} tracks/s")

        report = run_extract(sources, out, shard_size=shard_size, scheduler=scheduler, workers=workers,
                             on_progress=step, on_start=start, throttle=throttle, labels=label_map,
                             folder_label=folder_labels)
    console.print(
        f"{out}: +{report.tracks_added:,} tracks ({report.beats_added:,} beats) in {report.seconds:.1f} s; "
        f"{report.already_done:,} inputs already done; store now {report.tracks_total:,} tracks, "
        f"{report.beats_total:,} beats; {len(report.skipped)} inputs skipped (see {out}/report.json)"
    )
    if label_map is not None or folder_labels:
        console.print(f"labels given for {report.labelled:,} of {report.inputs:,} inputs")
    if report.tracks_total == 0:
        err_console.print("[red]error:[/red] nothing could be read; the store is empty")
        raise typer.Exit(1)


@command()
def info(
    store: Path = typer.Argument(..., help="A feature store folder."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object (tracks, beats, ...)."),
):
    """Summarize a feature store: tracks, beats, shards, skipped inputs."""
    from beatdbn.store.reader import FeatureStore

    summary = FeatureStore.open(store).summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"feature store {store}", show_header=False)
    bpt = summary["beats_per_track"]
    for key, value in [
        ("tracks", f"{summary['tracks']:,}"),
        ("beats", f"{summary['beats']:,}"),
        ("beats per track", f"min {bpt['min']}, median {bpt['median']:.0f}, max {bpt['max']}"),
        ("artists", f"{summary['artists']:,}"),
        ("shards", f"{summary['shards']:,}"),
        ("repeated track ids", f"{summary['repeated_track_ids']:,}"),
        ("skipped inputs", f"{len(summary['skipped']):,}"),
    ]:
        table.add_row(key, value)
    console.print(table)
    for s in summary["skipped"][:20]:
        console.print(f"  skipped {s['path']}: {s['reason']}", highlight=False)
    if len(summary["skipped"]) > 20:
        console.print(f"  ... and {len(summary['skipped']) - 20} more (see {store}/report.json)")


def task_options(artists: int, per_artist: int, per_genre: int, per_key: int, seed: int, scale: str,
                 min_per_class: int, genres: Optional[str], key_classes: int, artist_filter: bool,
                 task: Optional[list[str]] = None):
    """The :class:`~beatdbn.tasks.build.TaskConfig` of the task options shared by ``tasks`` and ``reproduce``."""
    from beatdbn.tasks.build import TASK_NAMES, TaskConfig

    return TaskConfig(artists=artists, per_artist=per_artist, per_genre=per_genre, per_key=per_key, seed=seed,
                      tasks=tuple(task) if task else TASK_NAMES, scale=scale, min_per_class=min_per_class,
                      genres=genres or "", key_classes=key_classes, artist_filter=artist_filter)


#: Help texts of the task options (``tasks`` and ``reproduce`` share them).
TASK_HELP = {
    "artists": "Artist task: number of artists (those with the most tracks); a cap with --scale auto.",
    "per_artist": "Artist task: tracks per artist; a cap with --scale auto.",
    "per_genre": "Genre task: tracks per genre; a cap with --scale auto.",
    "per_key": "Key task: tracks per key (highest key confidence); a cap with --scale auto.",
    "scale": "'paper' (20x250 genre, 50x100 artist, 12x250 key) or 'auto': the largest balanced scale the corpus supports.",
    "min_per_class": "--scale auto: fewest tracks a class needs (0: 3 for genre and key, one valid + one test + one train; 2 for artist).",
    "genres": "Genre classes: all (default), 'top:N' (the N largest) or a list 'rock,pop,jazz'.",
    "key_classes": "Key task: 12 tonics (the paper) or 24 major/minor keys (needs the mode).",
    "artist_filter": "Genre task: all of an artist's tracks in one split (against the artist effect).",
    "duplicates": "msd_duplicates.txt: keep one track per group.",
    "genre_labels": "tagtraum genre file (e.g. msd_tagtraum_cd1.cls: track_id<TAB>genre) instead of MusicBrainz tags.",
}


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
        console.print(table)
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
def tasks(
    store: Path = typer.Argument(..., help="A feature store folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the task splits."),
    artists: int = typer.Option(50, help=TASK_HELP["artists"]),
    per_artist: int = typer.Option(100, help=TASK_HELP["per_artist"]),
    per_genre: int = typer.Option(250, help=TASK_HELP["per_genre"]),
    per_key: int = typer.Option(250, help=TASK_HELP["per_key"]),
    scale: str = typer.Option("paper", help=TASK_HELP["scale"]),
    min_per_class: int = typer.Option(0, help=TASK_HELP["min_per_class"]),
    genres: Optional[str] = typer.Option(None, help=TASK_HELP["genres"]),
    key_classes: int = typer.Option(12, help=TASK_HELP["key_classes"]),
    artist_filter: bool = typer.Option(False, "--artist-filter", help=TASK_HELP["artist_filter"]),
    task: Optional[list[str]] = typer.Option(None, "--task", help="Build only this task (repeatable): artist, genre, key."),
    duplicates: Optional[Path] = typer.Option(None, help=TASK_HELP["duplicates"]),
    genre_labels: Optional[Path] = typer.Option(None, help=TASK_HELP["genre_labels"]),
    seed: int = typer.Option(0, help="Seed of the draws and splits."),
):
    """Build every task the corpus allows (balanced 80/10/10 splits) and the pretraining exclusion list.

    Exits 0 when at least one task was built; each task that could not be built gets one line with the reason and
    the options that would work.
    """
    from beatdbn.store.reader import FeatureStore
    from beatdbn.tasks.build import prepare_tasks, write_tasks

    fs = FeatureStore.open(store)
    config = task_options(artists, per_artist, per_genre, per_key, seed, scale, min_per_class, genres, key_classes,
                          artist_filter, task)
    built, errors, stats, dropped = prepare_tasks(fs, config, duplicates=duplicates, genre_labels=genre_labels)
    summary = write_tasks(out, built, config=config, errors=errors, stats=stats, dropped=dropped, store=str(store))
    print_task_summary(summary, errors, stats, out=out, dropped=len(dropped))
    if not built:
        err_console.print("[red]error:[/red] no task could be built", highlight=False)
        raise typer.Exit(1)
