"""pipeline/sweep: the Table 1 sweep as Dask jobs gives exactly the serial run's numbers; a failed or killed
job costs only itself."""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import shutil
import signal
import time

import pytest
import torch

from beatdbn.exceptions import DataError
from beatdbn.metrics.results import ExperimentResult
from beatdbn.models.dbn import DBNConfig
from beatdbn.pipeline.reproduce import EXPERIMENTS, ReproduceConfig, reproduce
from beatdbn.pipeline.sweep import Job, plan_jobs, run_job
from beatdbn.tasks.registry import TaskConfig
from beatdbn.train.baselines import BaselineConfig
from beatdbn.train.finetune import FinetuneConfig
from beatdbn.train.pretrain import PretrainConfig

SMALL = ReproduceConfig(
    tasks=TaskConfig(per_key=16, tasks=("key",), seed=0),
    dbn=DBNConfig(n_maps_1a=6, n_maps_1b=6, n_maps_3=6),
    pretrain=PretrainConfig(batch_size=64),
    finetune=FinetuneConfig(learning_rates=(0.05, 0.005), epochs=2, snapshot_epochs=(1, 2)),
    baselines=BaselineConfig(learning_rates=(5e-4, 5e-5), epochs=2),
    quick=True,
)


def _numbers(runs: list[dict]) -> str:
    """The rows without their wall times (which differ between any two runs)."""
    return json.dumps([{k: v for k, v in r.items() if k != "seconds"} for r in runs], sort_keys=True)


@pytest.mark.slow
def test_dask_sweep_matches_the_serial_run_exactly(demo_corpus, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers have one thread each: the serial run too, for bit-identical sums
    try:
        serial = reproduce(demo_corpus["store"], tmp_path / "serial", config=SMALL, scheduler="sync")
        stages = []
        dask = reproduce(demo_corpus["store"], tmp_path / "dask", config=SMALL, scheduler="local", workers=2,
                         progress=lambda p: stages.append(p["stage"]))
    finally:
        torch.set_num_threads(before)
    assert "sweep" in stages
    for model in EXPERIMENTS:
        a = ExperimentResult.load(tmp_path / "serial" / "experiments" / "key" / model)
        b = ExperimentResult.load(tmp_path / "dask" / "experiments" / "key" / model)
        assert _numbers(a.runs) == _numbers(b.runs), model
        assert b.extra["settings"] == a.extra["settings"]
    assert set(dask["timings"]) >= {f"key/{m}" for m in EXPERIMENTS}  # the jobs' seconds feed the projection
    assert not list((tmp_path / "dask" / "experiments").rglob(".job-*"))  # no scratch folder left
    # a rerun has nothing left to do
    assert plan_jobs(tmp_path / "dask", ["key"], [(m, None if not m.startswith("convmlp") else "paper")
                                                  for m in EXPERIMENTS], SMALL) == []


def test_jobs_are_every_experiment_times_its_learning_rates(tmp_path):
    jobs = plan_jobs(tmp_path, ["key"], [("naive_bayes", None), ("logreg", None), ("convmlp_random", "paper")],
                     SMALL)
    assert jobs == [Job("key", "naive_bayes", None, None), Job("key", "logreg", None, 5e-4),
                    Job("key", "logreg", None, 5e-5), Job("key", "convmlp_random", "paper", 0.05),
                    Job("key", "convmlp_random", "paper", 0.005)]


def _train_in_child(job, store, out, config):  # a worker that will be killed (spawned: must be importable)
    torch.set_num_threads(1)
    run_job(job, store, out, config)


@pytest.mark.slow
def test_a_failed_or_killed_job_costs_only_itself(demo_corpus, tmp_path):
    """One job fails (an unreadable checkpoint left in its rate's folder): the others finish and keep their
    files; the rerun runs that job alone. A job killed mid-training resumes from its own checkpoint."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path / "run"
    store = str(demo_corpus["store"])
    plan = [(m, "paper" if m.startswith("convmlp") else None) for m in EXPERIMENTS]
    bad = out / "experiments" / "key" / "convmlp_random" / "lr-0.005" / "checkpoint.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    try:
        with pytest.raises(DataError, match=r"key/convmlp_random lr=0\.005: .*unreadable checkpoint"):
            reproduce(store, out, config=SMALL, scheduler="local", workers=2)
        # every other job finished and wrote its files; only the failed one is left to run
        assert plan_jobs(out, ["key"], plan, SMALL) == [Job("key", "convmlp_random", "paper", 0.005)]
        results = {m: out / "experiments" / "key" / m / "result.json" for m in EXPERIMENTS}
        assert [m for m, p in results.items() if p.exists()] == [m for m in EXPERIMENTS if m != "convmlp_random"]
        kept = {p: p.stat().st_mtime_ns for p in (out / "experiments").rglob("*") if p.is_file()
                and "convmlp_random" not in p.parts}
        for p in (out / "experiments" / "key" / "convmlp_random").rglob("checkpoint.pt"):
            p.unlink()  # the user deletes the unreadable checkpoint, as the message says
        reproduce(store, out, config=SMALL, scheduler="local", workers=2)
        assert results["convmlp_random"].exists() and plan_jobs(out, ["key"], plan, SMALL) == []
        assert {p: p.stat().st_mtime_ns for p in kept} == kept  # nothing else was redone
        assert not list((out / "experiments").rglob(".job-*"))

        # a job killed after its first epoch (of 8): rerun, it resumes from the checkpoint in its scratch folder
        longer = dataclasses.replace(SMALL, finetune=FinetuneConfig(learning_rates=(0.05,), epochs=8,
                                                                    snapshot_epochs=(8,)))
        exp = out / "experiments" / "key" / "convmlp_pretrained"
        shutil.rmtree(exp)
        job = Job("key", "convmlp_pretrained", "paper", 0.05)
        child = multiprocessing.get_context("spawn").Process(target=_train_in_child, args=(job, store, str(out),
                                                                                             longer))
        child.start()
        checkpoint = exp / ".job-lr-0.05" / "lr-0.05" / "checkpoint.pt"
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and child.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert checkpoint.exists() and not (exp / "lr-0.05").exists()
        assert plan_jobs(out, ["key"], [("convmlp_pretrained", "paper")], longer) == [job]
        messages = []
        handler = logging.Handler()
        handler.emit = lambda record: messages.append(record.getMessage())
        logger = logging.getLogger("beatdbn.train.finetune")
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            run_job(job, store, str(out), longer)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        assert any("resuming after epoch" in m for m in messages), messages
        assert (exp / "lr-0.05" / "epoch-8" / "model.pt").exists() and not list(exp.glob(".job-*"))
    finally:
        torch.set_num_threads(before)
