"""The Table 1 sweep: ``reproduce`` serially against the same run on a Dask LocalCluster of 2 workers.

A small demo store (600 tracks; 2,000 without ``--quick``) is built once under
``.bench-data/``; both runs use the same small configuration (key and genre
tasks, a small DBN, two learning rates, a few epochs) and one torch thread per
process, so their numbers are identical (``tests/test_sweep.py``) and only the
wall time differs. The tasks and the pretraining are shared work done once per
run in the main process; the figure is the whole ``reproduce`` wall time.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import torch

from benchmarks._common import demo_store, threads

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".bench-data"


def _config(quick: bool):
    from beatdbn.models.dbn import DBNConfig
    from beatdbn.pipeline.reproduce import ReproduceConfig
    from beatdbn.tasks.registry import TaskConfig
    from beatdbn.train.baselines import BaselineConfig
    from beatdbn.train.finetune import FinetuneConfig
    from beatdbn.train.pretrain import PretrainConfig

    epochs = 3 if quick else 6
    return ReproduceConfig(
        tasks=TaskConfig(per_key=16, per_genre=6, tasks=("genre", "key"), seed=0),
        dbn=DBNConfig(n_maps_1a=16, n_maps_1b=16, n_maps_3=16),
        pretrain=PretrainConfig(batch_size=16),
        finetune=FinetuneConfig(learning_rates=(0.05, 0.005), epochs=epochs, snapshot_epochs=(epochs,)),
        baselines=BaselineConfig(learning_rates=(5e-4, 5e-5), epochs=epochs),
        quick=True)


def run(results, quick: bool = False) -> None:
    from beatdbn.pipeline.reproduce import reproduce

    store = demo_store(600 if quick else 2000)
    config = _config(quick)
    times = {}
    with threads(1):
        for name, kw in (("serial", {}), ("dask", {"scheduler": "local", "workers": 2})):
            out = DATA / f"reproduce-{name}"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            reproduce(store, out, config=config, **kw)
            times[name] = time.perf_counter() - t0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results.add("reproduce sweep (genre + key, 6 experiments x 2 rates): wall time, Dask LocalCluster of 2 workers",
                times["dask"], "s", baseline="the same run serially", baseline_value=times["serial"],
                ratio=times["serial"] / times["dask"],
                note=f"ratio = serial / Dask (> 1: Dask faster); one torch thread per process; "
                     f"1-min load average {load:.2f} at the end; torch {torch.__version__}")
