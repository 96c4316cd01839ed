"""``beatdbn check STORE [--repair]``: verify a feature store, repair what can be repaired."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from beatdbn.cli import command, console, err_console

__all__ = ["check"]


@command()
def check(
    store: Path = typer.Argument(..., help="A feature store folder."),
    repair: bool = typer.Option(False, "--repair", help="Move broken or foreign shards to STORE/damaged/ (the next "
                                                        "extract redoes their inputs), remove leftovers, rewrite a "
                                                        "garbage store.json and the index, stamp a store id."),
    wait: bool = typer.Option(False, "--wait", help="With --repair: wait for another process writing the store."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead of lines."),
):
    """Verify every shard (readable, row counts, finite values, commit-time checksum, store id, duplicate track
    ids) and the index.

    Exit code 0 when the store is sound (or was repaired), 1 when a problem
    remains (run again with --repair; a broken shards/ folder must be restored by hand).
    """
    from beatdbn.store.check import check_store  # reason: lazy, the CLI starts without h5py

    report = check_store(store, repair=repair, wait=wait)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for problem in (report.shards_problem, report.manifest_problem):
            if problem:
                err_console.print(f"[red]error:[/red] {problem}", highlight=False, soft_wrap=True)
        for b in report.broken:
            err_console.print(f"broken shard {b['shard']}: {b['reason']}", highlight=False, soft_wrap=True)
        if report.index_problem:
            err_console.print(f"index: {report.index_problem}", highlight=False, soft_wrap=True)
        for p in report.leftovers:
            console.print(f"leftover of an interrupted run: {p}", highlight=False, soft_wrap=True)
        for note in report.notes:
            console.print(note, highlight=False, soft_wrap=True)
        for r in report.repaired:
            console.print(f"repaired: {r}", highlight=False, soft_wrap=True)
        console.print(f"{store}: {report.shards} shards, {report.tracks:,} tracks, {report.beats:,} beats in sound "
                      f"shards; {len(report.broken)} broken; index {'unreadable' if report.index_problem else 'ok'}",
                      highlight=False)
        if report.broken and repair:
            redo = ("their inputs" if report.inputs_to_redo is None else f"their {report.inputs_to_redo:,} inputs")
            console.print(f"re-run `beatdbn extract` with the same sources to redo {redo}", highlight=False)
    if report.shards_problem:
        raise typer.Exit(1)
    if not report.ok and not repair:
        if not as_json and not report.manifest_problem:
            err_console.print(f"[red]error:[/red] {store} is damaged; run `beatdbn check {store} --repair`",
                              highlight=False, soft_wrap=True)
        raise typer.Exit(1)
