"""``beatdbn embed``: layer-4 features per step and pooled per track, for other tools."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console, err_console
from beatdbn.cli.options import check_model_task, check_options, model_and_inputs
from beatdbn.cli.progress import progress_bar
from beatdbn.exceptions import ParameterError

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
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="x.parquet or x.npz: every track in one file."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="A folder: one file per input, named after it "
                                                                   "(song.mp3 -> DIR/song.npz), as openl3 does."),
    fmt: Optional[str] = typer.Option(None, "--format", help="With --out-dir: npz (default) or parquet."),
    batch_size: int = typer.Option(16, help="Tracks encoded at a time (memory does not grow with the number of "
                                            "tracks)."),
):
    """Write every track's layer-4 features: per step (with the beats and seconds each covers) and pooled (mean, max).

    A feature store is embedded alone (not with files); a store or a run mixing MSD and audio tracks, or tracks
    of another kind than the model's, is refused (exit code 1); a damaged shard stops with one line.
    """
    if (out is None) == (out_dir is None):
        raise ParameterError("give --out FILE (.parquet or .npz: one file) or --out-dir DIR (one file per input), "
                             "one of the two")
    check_options(out_file=out, out=out_dir)
    if out is not None and fmt is not None:
        raise ParameterError(f"--format {fmt} goes with --out-dir; with --out the suffix says it ({out.name})")
    from beatdbn.inference.embed import embed as run_embed, embed_each, output_names  # reason: lazy, torch (fast --help)
    from beatdbn.inference.encoders import load_encoder  # reason: lazy, torch (fast --help)
    from beatdbn.inference.inputs import iter_inputs  # reason: lazy, beside the import above

    from beatdbn.inference.runs import shipped_model_dir  # reason: lazy, beside the import above

    model, inputs = model_and_inputs(paths, task, command="embed", model="DBN_OR_RUN")
    if out_dir is not None:
        fmt = fmt or "npz"
        output_names(inputs, out_dir, fmt)  # a bad --format, name clashes, a store: one line before any work
    encoder = load_encoder(shipped_model_dir(task) if model is None else model)
    if model is not None:
        check_model_task(model, getattr(encoder.model.config, "task", None), task)
    if len(inputs) == 1 and (inputs[0] / "store.json").exists():
        from beatdbn.store.reader import FeatureStore  # reason: lazy, pyarrow (a fast start for every command)

        total, unit = len(FeatureStore.open(inputs[0])), "tracks"
    else:
        total, unit = sum(1 for _ in iter_inputs(inputs)), "files"
    with progress_bar(err_console) as bar:
        job = bar.add_task("embed", total=total, rate="", unit=unit)
        shown = dict(batch_size=batch_size, progress=lambda n: bar.update(job, completed=n))
        summary = run_embed(encoder, inputs, out, **shown) if out is not None else \
            embed_each(encoder, inputs, out_dir, fmt=fmt, **shown)
    for line in summary["errors"]:
        err_console.print(f"[yellow]skipped:[/yellow] {line}", highlight=False, soft_wrap=True)
    where = summary["out"] if out is not None else f"{summary['out']} ({len(summary['files']):,} files)"
    console.print(f"{where}: {summary['tracks']:,} tracks, {summary['steps']:,} steps, "
                  f"{summary['n_features']} features per step (mean and max pooled per track); "
                  f"{summary['failed']:,} inputs skipped", highlight=False, soft_wrap=True)
    if summary["refused"]:
        err_console.print(f"[red]error:[/red] {summary['refused']:,} tracks refused (another representation, or a "
                          f"non-finite embedding); they are not in {summary['out']}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
