"""``beatdbn embed``: layer-4 features per step and pooled per track, for other tools."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console, err_console
from beatdbn.cli.progress import progress_bar
from beatdbn.exceptions import ParameterError
from beatdbn.store.reader import FeatureStore

__all__ = ["embed"]


@command()
def embed(
    paths: list[Path] = typer.Argument(..., metavar="[DBN_OR_RUN] FILES|FOLDER|STORE",
                                       help="A pretrained DBN folder (`beatdbn pretrain --out`) or a finetuned conv "
                                            "MLP run (or model folder), then MSD .h5 / audio files, folders "
                                            "(recursive), or one feature store. With --task, all are inputs and the "
                                            "model shipped for the task is used."),
    task: Optional[str] = typer.Option(None, "--task", "-t",
                                       help="key: embed with the shipped audio key model (no DBN_OR_RUN)."),
    out: Path = typer.Option(..., "--out", "-o", help="x.parquet or x.npz."),
    batch_size: int = typer.Option(16, help="Tracks encoded at a time (memory does not grow with the number of "
                                            "tracks)."),
):
    """Write every track's layer-4 features: per step (with the beats and seconds each covers) and pooled (mean, max).

    A feature store is embedded alone (not with files); a store or a run mixing MSD and audio tracks, or tracks
    of another kind than the model's, is refused (exit code 1); a damaged shard stops with one line.
    """
    from beatdbn.inference.embed import embed as run_embed  # lazy: torch (fast --help)
    from beatdbn.inference.encoders import load_encoder  # lazy: torch (fast --help)
    from beatdbn.inference.inputs import iter_inputs  # lazy: beside the above

    from beatdbn.inference.runs import shipped_model_dir  # lazy: beside the above

    if task is not None:
        model, inputs = shipped_model_dir(task), paths
    else:
        model, inputs = paths[0], paths[1:]
        if not inputs:
            raise ParameterError(f"no inputs after {model}: give `beatdbn embed DBN_OR_RUN FILES...`, or "
                                 f"`beatdbn embed --task key FILES...` for the shipped key model")
    encoder = load_encoder(model)
    if len(inputs) == 1 and (inputs[0] / "store.json").exists():
        total = len(FeatureStore.open(inputs[0]))
    else:
        total = sum(1 for _ in iter_inputs(inputs))
    with progress_bar(err_console) as bar:
        job = bar.add_task("embed", total=total, rate="")
        summary = run_embed(encoder, inputs, out, batch_size=batch_size,
                            progress=lambda n: bar.update(job, completed=n))
    for line in summary["errors"]:
        err_console.print(f"[yellow]skipped:[/yellow] {line}", highlight=False, soft_wrap=True)
    console.print(f"{summary['out']}: {summary['tracks']:,} tracks, {summary['steps']:,} steps, "
                  f"{summary['n_features']} features per step (mean and max pooled per track); "
                  f"{summary['failed']:,} inputs skipped", highlight=False, soft_wrap=True)
    if summary["refused"]:
        err_console.print(f"[red]error:[/red] {summary['refused']:,} tracks refused (another representation, or a "
                          f"non-finite embedding); they are not in {summary['out']}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
