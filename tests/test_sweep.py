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
from pathlib import Path

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
from beatdbn.utils.cluster import BackgroundClient

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


class _Killed(Exception):
    pass


def test_a_job_resumed_by_a_caller_on_two_threads_ends_as_one_run_through(demo_corpus, tmp_path, monkeypatch, caplog):
    """A conv MLP rate job stopped right after its first epoch's checkpoint (where a SIGKILL would leave it)
    and rerun in a process on 2 torch threads resumes that checkpoint and ends bit for bit as the same job run
    through on 1 thread: run_job computes with one thread wherever it runs (2 threads train other bits)."""
    from beatdbn.models.dbn import ConvDBN
    from beatdbn.train import rundir

    config = dataclasses.replace(SMALL, finetune=FinetuneConfig(learning_rates=(0.05,), epochs=3, snapshot_epochs=(3,)))
    job = Job("key", "convmlp_random", "paper", 0.05)
    runs = {}
    for name in ("through", "resumed"):
        out = tmp_path / name
        shutil.copytree(demo_corpus["tasks"], out / "tasks")
        ConvDBN(DBNConfig(n_maps_1a=6, n_maps_1b=6, n_maps_3=6, seed=1)).save(out / "dbn")
        runs[name] = out / "experiments" / "key" / job.model / "lr-0.05"
    write_metrics = rundir.write_metrics

    def killed_after_epoch_1(path, rows, columns=None):  # called just after each epoch's checkpoint
        if rows and rows[-1]["epoch"] == 1:
            raise _Killed()
        write_metrics(path, rows, columns)

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        run_job(job, str(demo_corpus["store"]), str(tmp_path / "through"), config)
        torch.set_num_threads(2)
        monkeypatch.setattr(rundir, "write_metrics", killed_after_epoch_1)
        with pytest.raises(_Killed):
            run_job(job, str(demo_corpus["store"]), str(tmp_path / "resumed"), config)
        monkeypatch.undo()
        scratch = runs["resumed"].parent / ".job-lr-0.05"
        assert (scratch / "lr-0.05" / "checkpoint.pt").exists() and not runs["resumed"].exists()
        with caplog.at_level(logging.INFO, logger="beatdbn.train.finetune"):
            run_job(job, str(demo_corpus["store"]), str(tmp_path / "resumed"), config)
        assert torch.get_num_threads() == 2  # the caller's count, restored
    finally:
        torch.set_num_threads(before)
    assert "resuming after epoch 1" in caplog.text
    assert not scratch.exists()

    def numbers(lr_dir):
        rows = rundir.read_metrics(lr_dir / "metrics.csv")
        return [{k: v for k, v in r.items() if k not in ("seconds", "beats_per_s")} for r in rows]

    assert len(numbers(runs["resumed"])) == 3 and numbers(runs["resumed"]) == numbers(runs["through"])
    a, b = (torch.load(runs[n] / "epoch-3" / "model.pt", weights_only=True) for n in ("through", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _rate_job_worker(psutil, out) -> int | None:
    """The pid of a worker (a process below this one) that holds a rate job's lock and whose job has written its
    first checkpoint: a worker killed now loses a job mid-run."""
    for proc in psutil.Process().children(recursive=True):
        try:
            held = [Path(f.path) for f in proc.open_files()]
        except psutil.Error:  # gone, or not readable: not the one
            continue
        for lock in held:
            scratch = lock.with_suffix("")  # experiments/<task>/<model>/.job-lr-<v>(.lock)
            if lock.suffix == ".lock" and scratch.name.startswith(".job-lr-") and any(scratch.rglob("checkpoint.pt")):
                return proc.pid
    return None


@pytest.mark.slow
def test_a_sigkilled_worker_then_a_rerun_gives_the_serial_table(tmp_path, monkeypatch):
    """The default LocalCluster loses the worker that runs a conv MLP rate (SIGKILL, after the rate's first
    checkpoint), with this process on 2 threads; the run (the job rerun on a worker, resuming that checkpoint),
    rerun if it failed, ends with the results and the Table 1 of a serial run whose caller had 1 thread:
    reproduce computes every number on one thread (the DBN pretrained here on 2 threads made both conv MLP
    experiments differ), wherever and after whatever interruption."""
    import threading

    psutil = pytest.importorskip("psutil")
    from beatdbn.store.extract import extract
    from beatdbn.synth.corpus import generate_corpus

    generate_corpus(tmp_path / "msd", 200, seed=0, n_artists=6)
    extract([tmp_path / "msd"], tmp_path / "store", scheduler="sync", shard_size=64)
    store = str(tmp_path / "store")
    config = dataclasses.replace(SMALL, tasks=TaskConfig(per_key=6, tasks=("key",), seed=0),
                                 finetune=FinetuneConfig(learning_rates=(0.05, 0.005), epochs=12, snapshot_epochs=(6, 12)))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        reproduce(store, tmp_path / "serial", config=config, scheduler="sync")
        torch.set_num_threads(2)
        out = tmp_path / "dask"
        errors = []

        def run():
            try:
                reproduce(store, out, config=config, scheduler="local", workers=2)
            except Exception as exc:  # noqa: BLE001 - a lost worker may fail the run: the rerun must finish it
                errors.append(exc)

        # the cluster is up before the sweep starts (as when the pretraining outlasts its start), so that the
        # workers, not this process, run the conv MLP rates; the rerun does not wait (this process runs jobs)
        monkeypatch.setattr(BackgroundClient, "ready", lambda self: self.client() is not None)
        sweep = threading.Thread(target=run)
        sweep.start()
        killed = None
        deadline = time.monotonic() + 120
        while sweep.is_alive() and killed is None and time.monotonic() < deadline:
            killed = _rate_job_worker(psutil, out / "experiments")
            if killed is not None:
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.01)
        sweep.join()
        monkeypatch.undo()
        assert killed is not None, "no worker was killed mid-job"
        if errors or plan_jobs(out, ["key"], [(m, None if not m.startswith("convmlp") else "paper")
                                               for m in EXPERIMENTS], config):
            reproduce(store, out, config=config, scheduler="local", workers=2)
        assert torch.get_num_threads() == 2  # the caller's count, restored
    finally:
        torch.set_num_threads(before)
    for model in EXPERIMENTS:
        a = ExperimentResult.load(tmp_path / "serial" / "experiments" / "key" / model)
        b = ExperimentResult.load(out / "experiments" / "key" / model)
        assert _numbers(a.runs) == _numbers(b.runs), model
    serial_table = json.loads((tmp_path / "serial" / "table.json").read_text())
    dask_table = json.loads((out / "table.json").read_text())
    assert json.dumps(serial_table.get("rows", serial_table), sort_keys=True) == \
        json.dumps(dask_table.get("rows", dask_table), sort_keys=True)


# ---------------------------------------------------------------------------
# progress inside running jobs (issue 25 item 3: a sweep printed "0/64, eta ?" while its first jobs trained)


class _NeverUp:
    """A cluster still starting for the whole sweep: this process runs every job (and assembly) itself."""

    def __init__(self, *args, **kwargs):
        self.closed = False

    def ready(self) -> bool:
        return False

    def client(self):
        return self

    def nthreads(self) -> dict:
        return {}

    def close(self) -> None:
        self.closed = True

    def join(self) -> None:
        self.close()


def _slow_epochs(monkeypatch, seconds: float = 0.1) -> None:
    """Each epoch of a job lasts ``seconds`` longer (after its progress file is written): the tiny jobs here train
    an epoch in ~20 ms, faster than a poll."""
    import beatdbn.pipeline.sweep as sweep

    write = sweep._JobProgress.__call__

    def slow(self, info):
        write(self, info)
        if info.get("total"):
            time.sleep(seconds)

    monkeypatch.setattr(sweep._JobProgress, "__call__", slow)


def test_running_jobs_report_their_epochs_before_any_job_finishes(demo_corpus, tmp_path, monkeypatch):
    from beatdbn.models.dbn import ConvDBN
    from beatdbn.pipeline.sweep import JOBS_DIR, run_jobs

    _slow_epochs(monkeypatch)

    out = tmp_path / "run"
    shutil.copytree(demo_corpus["tasks"], out / "tasks")
    ConvDBN(DBNConfig(n_maps_1a=4, n_maps_1b=4, n_maps_3=4)).save(out / "dbn")
    config = dataclasses.replace(SMALL, finetune=FinetuneConfig(learning_rates=(0.05,), epochs=4,
                                                                snapshot_epochs=(4,)),
                                 baselines=BaselineConfig(learning_rates=(5e-4,), epochs=3))
    (out / JOBS_DIR).mkdir()
    (out / JOBS_DIR / "key.logreg.lr-0.1.json").write_text('{"job": "a killed sweep\'s job"}')  # stale: removed
    events = []
    jobs = [Job("key", "logreg", None, 5e-4, cost=2.0), Job("key", "convmlp_random", "paper", 0.05, cost=1.0)]
    result = run_jobs(jobs, str(demo_corpus["store"]), str(out), config, cluster=_NeverUp(),
                      experiments=[("logreg", None), ("convmlp_random", "paper")], poll_seconds=0.02,
                      done=lambda info: events.append(("done", info)),
                      running=lambda info: events.append(("running", info)))
    assert result["here"] == 4 and result["assembled"] == {("key", "logreg"), ("key", "convmlp_random")}
    first_done = next(i for i, (kind, _) in enumerate(events) if kind == "done")
    before = [info for kind, info in events[:first_done] if kind == "running"]
    assert before, "no progress while the first job trained"
    assert any("1 running: key/logreg lr=0.0005 epoch 1/3" in info["message"] for info in before)
    assert all("a killed sweep" not in info["message"] for _, info in events if _ == "running")
    assert 0 < before[-1]["fraction"] <= 1 and before[-1]["running"][0]["epochs"] == 3
    assert any(i["running"] and i["running"][0]["eta_seconds"] is not None for i in before)  # from epoch 2
    convs = [info for kind, info in events if kind == "running" and "convmlp_random" in info["message"]]
    assert any("epoch 2/4" in info["message"] for info in convs)
    last = [info for kind, info in events if kind == "running"][-1]
    assert last["message"] == "0 running" and last["fraction"] == 0 and not (out / JOBS_DIR).exists()
    assert ExperimentResult.load(out / "experiments" / "key" / "convmlp_random").runs[0]["epoch"] == 4


def test_reproduce_passes_the_running_jobs_epochs_to_its_progress(demo_corpus, tmp_path, monkeypatch):
    """reproduce's progress on the 'local' path (the cluster still starting, so this process runs the jobs):
    'sweep' messages name the running job's epochs before the first job is done, and the work done grows
    with them."""
    import beatdbn.pipeline.reproduce as rep
    from beatdbn.models.dbn import ConvDBN

    def pretrain(fs, out, **kwargs):
        ConvDBN(DBNConfig(n_maps_1a=4, n_maps_1b=4, n_maps_3=4)).save(out)
        (out / "plots").mkdir()

    monkeypatch.setattr(rep, "pretrain", pretrain)
    monkeypatch.setattr(rep, "BackgroundClient", _NeverUp)
    monkeypatch.setattr(rep, "write_report", lambda run_dir: None)  # its figures: seconds, and not what is tested
    _slow_epochs(monkeypatch, 0.05)
    config = dataclasses.replace(SMALL, finetune=FinetuneConfig(learning_rates=(0.05,), epochs=3,
                                                                snapshot_epochs=(3,)),
                                 baselines=BaselineConfig(learning_rates=(5e-4,), epochs=3))
    seen = []
    record = rep.reproduce(demo_corpus["store"], tmp_path / "run", config=config, scheduler="local",
                           poll_seconds=0.02, progress=seen.append)
    sweep = [p for p in seen if p["stage"] == "sweep"]
    first_done = next(i for i, p in enumerate(sweep) if p["message"].endswith(" done"))
    early = [p for p in sweep[:first_done] if "epoch" in p["message"]]
    assert early and all(p["message"].startswith("1 running: key/") for p in early)
    assert early[-1]["work_done"] > early[0]["work_done"] > sweep[0]["work_done"]
    assert 0 < early[0]["step"] < early[-1]["step"] <= 1  # the first job's epochs, before it is done
    # each running job with its estimated cost, and the cost of the sweep left, for the CLI's ETA (issue 25)
    assert all(r["cost"] > 0 for p in early for r in p["running"])
    assert sweep[0]["sweep_left"] > early[0]["sweep_left"] > early[-1]["sweep_left"] > sweep[-1]["sweep_left"] >= 0
    assert sweep[-1]["sweep_left"] == pytest.approx(0.0, abs=1e-9)
    assert record["sweep"]["jobs_here"] == record["sweep"]["jobs"] + 3  # and the 3 assemblies
    for model in EXPERIMENTS:
        assert ExperimentResult.load(tmp_path / "run" / "experiments" / "key" / model).model == model
