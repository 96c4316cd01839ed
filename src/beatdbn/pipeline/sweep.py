"""Table 1's experiments as independent jobs (every experiment x learning rate), on Dask.

``reproduce --scheduler local|tcp://HOST:PORT`` hands the sweep to Dask once
the tasks are built and the DBN is pretrained: every (task, model, learning
rate) is its own job, naive Bayes one job per task. A job reads the splits
from the store itself (workers must see the run folder and the store at the
same paths), trains its one learning rate in a scratch folder of its own, and
moves the finished ``lr-<v>/`` folder into the experiment's folder. Nothing
two jobs write is shared, so a lost worker costs only its job, and a rerun
skips every finished learning rate (an unfinished one resumes from its
checkpoint). The serial pass of :func:`~beatdbn.pipeline.reproduce.reproduce`
then finds every rate trained and only assembles each experiment's result,
selection, model and plots: the numbers are those of a serial run with the
same seeds (each job is seeded by the configuration alone; tested with one
thread per process).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from beatdbn.data.splits import load_split
from beatdbn.metrics.results import RESULT_FILE
from beatdbn.models.dbn import ConvDBN
from beatdbn.store.reader import FeatureStore
from beatdbn.tasks.build import load_task
from beatdbn.tasks.selection import SPLITS
from beatdbn.train import runner
from beatdbn.train.baselines import run_logreg, run_naive_bayes
from beatdbn.train.finetune import run_convmlp
from beatdbn.utils.cluster import dask_client

__all__ = ["Job", "plan_jobs", "run_job", "run_jobs"]


@dataclass(frozen=True)
class Job:
    """One unit of the sweep: an experiment's learning rate (``lr`` None: naive Bayes, which has none)."""

    task: str
    model: str
    recipe: str | None
    lr: float | None

    @property
    def name(self) -> str:
        return f"{self.task}/{self.model}" + ("" if self.lr is None else f" lr={self.lr:g}")


def _rates(model: str, recipe: str | None, config) -> tuple[float, ...]:
    if model == "naive_bayes":
        return (None,)
    if model == "logreg":
        return config.baselines.learning_rates
    return config.finetune_for(recipe).learning_rates


def _done(out: Path, job: Job, config) -> bool:
    exp = out / "experiments" / job.task / job.model
    if (exp / RESULT_FILE).exists():
        return True  # the serial pass checks its settings
    if job.lr is None:
        return False
    lr_dir = runner.lr_dir(exp, job.lr)
    if job.model == "logreg":
        return (lr_dir / RESULT_FILE).exists()
    # a conv MLP rate is trained when its last epoch's snapshot is saved (written with the last checkpoint)
    return (lr_dir / f"epoch-{config.finetune_for(job.recipe).epochs}" / "model.pt").exists()


def plan_jobs(out: str | Path, task_names, experiments, config) -> list[Job]:
    """The jobs still to run, in Table 1 order: ``experiments`` is ``[(model, recipe), ...]``."""
    out = Path(out)
    jobs = [Job(t, m, r, lr) for t in task_names for m, r in experiments for lr in _rates(m, r, config)]
    return [j for j in jobs if not _done(out, j, config)]


def run_job(job: Job, store: str, out: str, config, device: str = "cpu") -> dict[str, Any]:
    """Run one job (in a Dask worker or in this process); returns ``{"job", "seconds"}``."""
    t0 = time.perf_counter()
    out_path = Path(out)
    fs = FeatureStore.open(store)
    task = load_task(out_path / "tasks", job.task)
    splits = [load_split(fs, task, s) for s in SPLITS]
    exp = out_path / "experiments" / job.task / job.model
    if job.lr is None:
        run_naive_bayes(*splits, task=job.task, out=exp, config=config.baselines)
        return {"job": job, "seconds": time.perf_counter() - t0}
    scratch = exp / f".job-lr-{job.lr:g}-{os.getpid()}"
    final = runner.lr_dir(exp, job.lr)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    if final.exists():  # an unfinished rate of an earlier run: resume it from its checkpoint
        os.replace(final, runner.lr_dir(scratch, job.lr))
    try:
        if job.model == "logreg":
            run_logreg(*splits, task=job.task, out=scratch, device=device,
                       config=dataclasses.replace(config.baselines, learning_rates=(job.lr,)))
        else:
            ft = config.finetune_for(job.recipe)
            init = "pretrained" if job.model.startswith("convmlp_pretrained") else "random"
            dbn = ConvDBN.load(out_path / "dbn", device=device)
            run_convmlp(*splits, task=job.task, init=init, dbn=dbn, out=scratch, device=device,
                        config=dataclasses.replace(ft, learning_rates=(job.lr,)))
        os.replace(runner.lr_dir(scratch, job.lr), final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"job": job, "seconds": time.perf_counter() - t0}


def run_jobs(jobs: list[Job], store: str, out: str, config, *, scheduler: str, workers: int | None = None,
             device: str = "cpu", done: Callable[[dict], None] | None = None) -> list[dict]:
    """Run ``jobs`` on Dask (``scheduler``: 'local' or an address); ``done(info)`` after each finishes."""
    results = []
    if not jobs:
        return results
    from dask.distributed import as_completed  # heavy: only runs on Dask import it

    with dask_client(scheduler, workers) as client:
        futures = [client.submit(run_job, j, store, out, config, device, pure=False, key=f"job-{i}-{j.task}-{j.model}")
                   for i, j in enumerate(jobs)]
        for future in as_completed(futures):
            info = future.result()
            results.append(info)
            if done is not None:
                done(info)
    return results
