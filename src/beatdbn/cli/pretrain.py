"""Pretraining command: greedy layer-wise training of the convolutional DBN."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console
from beatdbn.cli.options import check_device, check_out
from beatdbn.cli.progress import progress_bar
from beatdbn.store.reader import FeatureStore

__all__ = ["pretrain"]


@command()
def pretrain(
    store: Path = typer.Argument(..., help="Feature store (from `beatdbn extract`)."),
    out: Path = typer.Option(..., "--out", "-o", help="DBN folder to write (model, statistics, plots); a rerun resumes."),
    exclude: Optional[Path] = typer.Option(
        None, help="Tasks folder (from `beatdbn tasks`): leave its valid/test tracks and duplicates out."),
    passes: int = typer.Option(1, help="Passes over the data per layer (the paper: 1)."),
    min_beats: int = typer.Option(
        0, "--min-beats", help="Small corpora: make more passes, until each layer has trained on at least this many "
                               "beats (e.g. 1000000; the paper's whole-MSD pass is 4.6e8). 0: exactly --passes."),
    batch_size: int = typer.Option(1, help="Tracks per CD-1 step (1: one update per track, as the paper)."),
    checkpoint_every: int = typer.Option(2000, help="Batches between checkpoints."),
    seed: int = typer.Option(0, help="Seed of the batch order, the initial weights and the hidden samples."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or mps (checked first)."),
    plots: bool = typer.Option(True, help="Plot the filters and training statistics when done."),
):
    """Pretrain the convolutional DBN (layers 1a, 1b, then 3) on a store, streaming; a rerun resumes."""
    from beatdbn.models.dbn import DBNConfig  # heavy: imports torch, only for this command
    from beatdbn.train.pretrain import PretrainConfig, pretrain as run, read_exclusion, write_plots  # heavy: torch

    check_device(device)  # before anything is created: a bad device leaves no empty --out behind
    check_out(out)
    config = PretrainConfig(batch_size=batch_size, passes=passes, min_beats=min_beats, checkpoint_every=checkpoint_every, seed=seed)
    excluded = read_exclusion(exclude, known_ids=FeatureStore.open(store).track_ids) if exclude else None
    with progress_bar(console) as bar:
        job = bar.add_task("pretrain", total=None, rate="")

        def advance(p: dict) -> None:
            bar.update(job, completed=p["tracks_done"], total=p["tracks_total"],
                       description=f"pretrain {p['phase']} pass {p['pass'] + 1}",
                       rate=f"{p['beats_per_s']:,.0f} beats/s")

        summary = run(store, out, exclude=excluded, config=config, dbn_config=DBNConfig(seed=seed),
                      device=device, progress=advance)
    for phase, info in summary["phases"].items():
        console.print(f"{phase}: {info['seconds']:.1f} s, {info['beats_per_s']:,.0f} beats/s")
    if plots:
        for path in write_plots(out):
            console.print(f"plot: {path}")
    console.print(f"pretrained DBN on {summary['n_tracks']:,} tracks ({summary['n_beats']:,} beats) in {out}")
