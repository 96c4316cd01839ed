"""The tasks command and the task options it shares with ``reproduce``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console, err_console

__all__ = ["tasks", "task_options", "print_task_summary", "TASK_HELP"]


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
