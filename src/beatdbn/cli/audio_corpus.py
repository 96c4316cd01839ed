"""Audio corpus command: ``beatdbn synth-audio`` (a key corpus we synthesize and may redistribute)."""

from __future__ import annotations

from pathlib import Path

import typer

from beatdbn.cli import command, console
from beatdbn.cli.progress import counting_bar

__all__ = ["synth_audio"]


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
