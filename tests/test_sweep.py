"""pipeline/sweep: the Table 1 sweep as Dask jobs gives exactly the serial run's numbers."""

from __future__ import annotations

import json

import pytest
import torch

from beatdbn.metrics.results import ExperimentResult
from beatdbn.models.dbn import DBNConfig
from beatdbn.pipeline.reproduce import EXPERIMENTS, ReproduceConfig, reproduce
from beatdbn.pipeline.sweep import Job, plan_jobs
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
        serial = reproduce(demo_corpus["store"], tmp_path / "serial", config=SMALL)
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
