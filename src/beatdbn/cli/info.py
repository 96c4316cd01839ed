"""``beatdbn info``: summarize a feature store."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from beatdbn.cli import command, console

__all__ = ["info"]


@command()
def info(
    store: Path = typer.Argument(..., help="A feature store folder."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object (tracks, beats, ...)."),
):
    """Summarize a feature store: tracks, beats, shards, skipped inputs."""
    from beatdbn.store.reader import FeatureStore  # reason: lazy, pyarrow and h5py only for this command
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
