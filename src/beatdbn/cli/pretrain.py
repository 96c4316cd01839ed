"""Pretraining command: greedy layer-wise training of the convolutional DBN.

One process (the default), ``--workers N`` processes on this machine, or the
ranks of a ``torchrun`` launch (``--distributed``): see
:mod:`beatdbn.train.ranks` for how the ranks combine their updates and
:mod:`beatdbn.train.launch` for how they start. At one track per update the
kernels are small: each rank computes with one intra-op thread, and
processes, not threads, use the cores (``--batch-size`` above 1: the CPUs
shared among this machine's ranks; ``beatdbn --threads N`` overrides).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Optional

import typer

from beatdbn.cli import command, console, threads_given
from beatdbn.cli.options import check_device, check_out, check_workers
from beatdbn.cli.progress import progress_bar
from beatdbn.exceptions import ParameterError
from beatdbn.train.rank_settings import DEFAULT_COMBINE, SYNC_EVERY
from beatdbn.utils.threads import apply_threads, available_cpus

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
    workers: int = typer.Option(
        1, help="Processes on this machine (one intra-op thread each when there are as many CPUs): every "
                "process takes its own tracks, one CD-1 update each, and their parameters are combined every "
                "--sync-every steps. 1: the serial run."),
    sync_every: int = typer.Option(
        SYNC_EVERY, "--sync-every", help="With several processes or ranks: CD-1 steps each takes between two exchanges."),
    combine: str = typer.Option(
        DEFAULT_COMBINE, help="How the ranks' parameter changes are combined every --sync-every steps: capped-sum "
                           "(their mean x min(ranks, 2): the sum for 2 ranks), mean (parameter averaging) or sum "
                           "(diverged with 4 ranks). See beatdbn.train.ranks."),
    resident: str = typer.Option(
        "auto", help="Keep each phase's inputs in device memory and read the monitoring every --monitor-every "
                     "steps instead of every step: auto (on CUDA when they fit), on, off (stream from the store). "
                     "One track a step, one process; the same DBN either way (see beatdbn.train.resident)."),
    monitor_every: int = typer.Option(
        256, "--monitor-every", help="With a resident pass: CD-1 steps between two host reads of the statistics."),
    resident_budget: Optional[float] = typer.Option(
        None, "--resident-budget", help="With a resident pass: GiB a phase's inputs may take (default: 80 % of the "
                                        "free CUDA memory, half the available memory elsewhere); a phase over it "
                                        "streams."),
    distributed: bool = typer.Option(
        False, "--distributed", help="Be one rank of a torchrun launch across machines: `torchrun --nnodes M "
                                     "--nproc-per-node N --rdzv-endpoint HOST:PORT -m beatdbn pretrain STORE "
                                     "--out DBN --distributed` (gloo on CPU, NCCL on CUDA). Every machine needs "
                                     "the store; only rank 0 writes --out."),
):
    """Pretrain the convolutional DBN (layers 1a, 1b, then 3) on a store, streaming; a rerun resumes."""
    from beatdbn.models.dbn import DBNConfig  # reason: lazy, imports torch, only for this command
    from beatdbn.train.pretrain import PretrainConfig, pretrain as run, read_exclusion, write_plots  # reason: lazy, torch

    from beatdbn.train.launch import join_launch, launched_rank, run_local  # reason: lazy, torch.distributed
    from beatdbn.train.resident import ResidentConfig  # reason: lazy, imports torch, only for this command

    check_device(device)  # before anything is created: a bad device leaves no empty --out behind
    check_workers(workers)
    if sync_every < 1:
        raise ParameterError(f"--sync-every {sync_every}: expected 1 or more CD-1 steps")
    if distributed and workers != 1:
        raise ParameterError("--distributed with --workers: under torchrun, --nproc-per-node sets the processes "
                             "of each machine")
    if resident_budget is not None and not resident_budget >= 0:
        raise ParameterError(f"--resident-budget {resident_budget}: expected GiB >= 0")
    how = ResidentConfig(mode=resident, monitor_every=monitor_every,
                         budget_bytes=None if resident_budget is None else int(resident_budget * 2**30))
    ranks = None
    with launched_rank(str(out)) if distributed else contextlib.nullcontext():
        if distributed:
            ranks, device = join_launch(device, sync_every=sync_every, combine=combine)
        if ranks is None or ranks.lead:
            check_out(out)
        config = PretrainConfig(batch_size=batch_size, passes=passes, min_beats=min_beats, checkpoint_every=checkpoint_every, seed=seed)
        from beatdbn.store.reader import FeatureStore  # reason: lazy, pyarrow (a fast start for every command)

        excluded = read_exclusion(exclude, known_ids=FeatureStore.open(store).track_ids) if exclude else None
        kwargs = dict(store=str(store), out=str(out), exclude=excluded, config=config, dbn_config=DBNConfig(seed=seed),
                      device=device, resident=how)
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", 1)) if distributed else workers  # on this machine
        # one thread per rank at one track per update (tiny kernels: 2 threads ran at 0.82x of one on an idle
        # 2-core machine); larger batches get this machine's CPUs shared among its ranks; --threads N overrides
        per_rank = threads_given() or (1 if batch_size == 1 else max(1, available_cpus() // local_ranks))
        apply_threads(per_rank)  # this process's share (rank 0: as the workers it starts)
        if ranks is not None and not ranks.lead:  # other ranks of a launch: no progress, no files
            run(ranks=ranks, **kwargs)
            return
        with progress_bar(console) as bar:
            job = bar.add_task("pretrain", total=None, rate="")

            def advance(p: dict) -> None:
                bar.update(job, completed=p["tracks_done"], total=p["tracks_total"],
                           description=f"pretrain {p['phase']} pass {p['pass'] + 1}/{p['passes']}",
                           rate=f"{p['beats_per_s']:,.0f} beats/s")

            if ranks is not None:
                summary = run(ranks=ranks, progress=advance, **kwargs)
            else:
                summary = run_local(run, kwargs, lead_kwargs={"progress": advance}, workers=workers,
                                    sync_every=sync_every, combine=combine, threads=per_rank)
        for phase, info in summary["phases"].items():
            passes = summary["passes"]  # the progress lines' beats/s is this measure; they end on this figure
            console.print(f"{phase}: {passes} pass{'es' if passes > 1 else ''} over {summary['n_beats']:,} beats in "
                          f"{info['seconds']:.1f} s: {info['beats_per_s']:,.0f} beats/s")
        for phase, info in summary.get("pass", {}).get("phases", {}).items():
            console.print(f"{phase}: " + (f"resident on {info['device']} ({info['bytes'] / 2**20:,.1f} MiB, "
                                          f"statistics read every {info['monitor_every']} steps)"
                                          if info["resident"] else f"streamed from the store ({info['why']})"))
        if plots:
            for path in write_plots(out):
                console.print(f"plot: {path}")
        console.print(f"pretrained DBN on {summary['n_tracks']:,} tracks ({summary['n_beats']:,} beats) in {out}")
