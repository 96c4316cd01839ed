"""The Table 1 sweep: ``reproduce`` serially (``--scheduler sync``) against a Dask LocalCluster of 2
single-thread workers, measured in the same run.

A small demo store (600 tracks; 2,000 without ``--quick``) is built once under ``.bench-data/``; both runs
use the same small configuration with ``quick=True`` (key and genre tasks where the corpus gives them, a
small DBN, two learning rates, a few epochs) and one torch thread in the main process (``beatdbn --threads
1``; the workers have one each), so their numbers are identical (``tests/test_sweep.py``) and only the wall
time differs. Each run is a fresh process, as a command would be (so the Dask run pays for starting its
cluster, and nothing is warm from the run before); the figure is that process's wall time, start to exit.
The runs alternate, serial first, ``ROUNDS`` times each, and the best of each is kept: the load of other
work on the machine changes from minute to minute. The 1-minute load average is sampled every second
while they run; its mean and maximum are in the note (a figure measured beside other work understates
what Dask gains on an idle machine, and overstates nothing it does not say).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from benchmarks._common import demo_store

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".bench-data"
ROUNDS = 2

_DRIVER = """
import json, sys, time
from beatdbn.utils.threads import apply_threads
from benchmarks.bench_reproduce import _config
from beatdbn.pipeline.reproduce import reproduce

if __name__ == "__main__":
    apply_threads(1)  # as `beatdbn --threads 1`
    store, out, quick, scheduler = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
    t0 = time.perf_counter()
    record = reproduce(store, out, config=_config(quick), scheduler=scheduler, workers=2)
    print(json.dumps({"reproduce_seconds": time.perf_counter() - t0, "sweep": record.get("sweep")}))
"""


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


class _LoadSampler:
    """The 1-minute load average, every second, in a background thread."""

    def __init__(self):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            if hasattr(os, "getloadavg"):
                self.samples.append(os.getloadavg()[0])
            self._stop.wait(1.0)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _one(store: Path, quick: bool, scheduler: str) -> dict:
    out = DATA / f"reproduce-{'serial' if scheduler == 'sync' else 'dask'}"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _DRIVER, str(store), str(out), "1" if quick else "0", scheduler],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"reproduce --scheduler {scheduler} failed:\n{done.stderr[-2000:]}")
    return {"seconds": seconds, **json.loads(done.stdout.strip().splitlines()[-1])}


def run(results, quick: bool = False) -> None:
    store = demo_store(600 if quick else 2000)
    runs: dict[str, list[dict]] = {"sync": [], "local": []}
    with _LoadSampler() as load:
        for _ in range(ROUNDS):
            for scheduler in ("sync", "local"):
                runs[scheduler].append(_one(store, quick, scheduler))
                print(f"  reproduce --scheduler {scheduler}: {runs[scheduler][-1]['seconds']:.1f} s "
                      f"(1-min load average {os.getloadavg()[0]:.2f})", flush=True)
    serial = min(r["seconds"] for r in runs["sync"])
    dask = min(runs["local"], key=lambda r: r["seconds"])
    avg = (f"mean {sum(load.samples) / len(load.samples):.2f}, max {max(load.samples):.2f}" if load.samples
           else "unknown")
    sweep = dask.get("sweep") or {}
    each = {k: ", ".join(f"{r['seconds']:.1f}" for r in v) for k, v in runs.items()}
    print(f"  serial {serial:.1f} s, Dask {dask['seconds']:.1f} s: {serial / dask['seconds']:.2f}x; "
          f"1-min load average during the runs: {avg} on {os.cpu_count()} CPUs", flush=True)
    results.add(f"reproduce --quick ({store.name}; key + genre, 6 experiments x 2 rates): wall time, Dask "
                f"LocalCluster of 2 single-thread workers",
                dask["seconds"], "s", baseline="the same run serially (--scheduler sync, 1 thread)",
                baseline_value=serial, ratio=serial / dask["seconds"],
                note=f"ratio = serial / Dask (> 1: Dask faster); whole process, best of {ROUNDS} alternating runs "
                     f"each (serial: {each['sync']} s; Dask: {each['local']} s; Dask's sweep "
                     f"{sweep.get('wall_seconds', float('nan')):.1f} s, {sweep.get('jobs_here', 0)} of "
                     f"{sweep.get('jobs', 0)} jobs in the main process while the cluster started); 1-min load "
                     f"average during the runs: {avg} on {os.cpu_count()} CPUs; torch {torch.__version__}")
