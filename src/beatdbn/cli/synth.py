"""Corpus commands: ``beatdbn synth`` (synthetic MSD-format files) and ``beatdbn synth-audio`` (a key corpus we
synthesize and may redistribute)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console
from beatdbn.cli.options import check_out
from beatdbn.cli.progress import counting_bar, progress_bar

__all__ = ["synth", "synth_audio"]


@command()
def synth(
    out: Path = typer.Argument(..., help="Folder to write the synthetic MSD-format .h5 files into."),
    tracks: int = typer.Option(1000, "--tracks", "-n", help="Number of tracks."),
    artists: Optional[int] = typer.Option(None, help="Number of artists (default: tracks // 25)."),
    seed: int = typer.Option(0, help="Random seed."),
):
    """Write a synthetic demo corpus in the MSD track-file format (not real music)."""
    check_out(out, "OUT")

    with progress_bar(console) as bar:
        job = bar.add_task("synth", total=tracks, rate="")
        t0 = time.perf_counter()

        def advance(done: int) -> None:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar.update(job, completed=done, rate=f"{rate:,.0f} tracks/s")

        from beatdbn.synth.corpus import generate_corpus  # reason: lazy, the CLI starts without it
        paths = generate_corpus(out, tracks, seed=seed, n_artists=artists, progress=advance)
    console.print(f"wrote {len(paths)} synthetic tracks (not real music) to {out}")




@command("synth-audio")
def synth_audio(
    out: Path = typer.Argument(..., help="Folder to write audio/ and labels.csv into (a rerun resumes)."),
    pieces: int = typer.Option(408, "--pieces", "-n", help="Number of pieces (multiples of 24 balance the keys)."),
    seed: int = typer.Option(0, help="Corpus seed; different seeds give disjoint corpora."),
    fmt: str = typer.Option("flac", "--format", help="flac, ogg or wav."),
    workers: int = typer.Option(1, help="Processes rendering in parallel."),
):
    """Synthesize tonal pieces with known keys as audio, plus labels.csv (path, key) for `extract --labels`."""
    from beatdbn.synth.audio_keys import write_corpus  # reason: lazy, scipy and the audio stack (fast --help)

    with counting_bar(console, "synth-audio", pieces, unit="pieces", fmt=",.2f") as advance:
        labels = write_corpus(out, pieces=pieces, seed=seed, fmt=fmt, workers=workers, progress=advance)
    console.print(f"wrote {pieces} synthesized pieces and {labels} "
                  f"(next: beatdbn extract {out / 'audio'} --out STORE --labels {labels})")
