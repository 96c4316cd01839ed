"""Table 1's experiments as independent jobs (every experiment x learning rate), on Dask.

``reproduce --scheduler local|tcp://HOST:PORT`` (``local``, a LocalCluster of one single-thread worker per
CPU, is the default on a CPU) hands the sweep to Dask: every (task, model, learning rate) is its own job,
naive Bayes one job per task, and once an experiment's rates are trained one more job assembles its
result (the very call the serial path makes: selection, ``model/``, plots, ``result.json``). The DBN's
plots are drawn by a job too. Workers must see the run folder and the store at the same paths.

**Each job is resumable and writes only its own files.** A rate trains in a scratch folder of its own,
``.job-lr-<v>/`` in the experiment's folder, held under an exclusive lock (``.job-lr-<v>.lock``,
released by the OS when a process dies), and its finished ``lr-<v>/`` folder is moved into place at the
end. Nothing two jobs write is shared, so a lost worker costs only its job: Dask reruns it on another
worker, where it resumes from the scratch folder's checkpoint; a killed ``reproduce`` resumes the same
way, and a rerun skips every finished rate. A job that fails does not stop the others: the sweep waits
for them, then raises the first error.

**Progress inside running jobs.** A job writes ``OUT/jobs/<task>.<model>.<lr-v>.json`` when it starts and after
every epoch (its epochs done, its own ETA, pid and host; atomically), on a worker or in this process; a thread
of the client reads the folder every ``poll_seconds`` (:func:`run_jobs`' ``running``), so ``reproduce`` shows
"2 running: key/convmlp_random lr=0.05 epoch 4/30 eta 2:10; ..." and counts the running jobs' epochs in its
ETA, not only the finished jobs (a sweep printed ``0/64, eta ?`` for 17 minutes while its first jobs trained).
The files live in the run folder, which the workers see at the same path (a LocalCluster, or a scheduler
address on a shared file system); a job removes its own, and the folder is removed when the sweep ends.

**Identical results.** Each job is seeded by the configuration alone and calls the trainers exactly as
the serial path does, so the numbers are those of a serial run with the same seeds. A job computes with
one torch intra-op thread wherever it runs (:func:`run_job` and :func:`assemble` set it, :func:`one_thread`:
on a worker, in this process while the cluster starts, in a job resumed after a lost worker), because a
threaded sum rounds differently on 1 and 2 threads and the weights would drift apart epoch by epoch; the
serial path and the pretraining compute with one thread too (:func:`~beatdbn.pipeline.reproduce.reproduce`).
A run's starting weights do not depend on the thread count either (the random control's statistics are
summed exactly), so a job rerun on another worker after a lost one resumes its own checkpoint and ends
as an uninterrupted run (tested: a SIGKILLed worker, then a rerun, gives the serial run's Table 1,
:mod:`tests.test_sweep`).

**Where the time went, and what is done about it** (bench_reproduce, ``--quick``, 2 busy cores; CPU
seconds per job, which the other work on the machine inflates less than wall time): each worker spent ~8 s
importing torch and beatdbn and 3.4 s more in its first optimizer (torch._dynamo); each job reloaded the
store, its task's splits and the DBN (0.3-0.9 s); a conv MLP rate job drew a learning-curve and a
confusion plot for a one-rate result that was thrown away (with the first figure's set-up, most of a
``--quick`` job); the serial pass re-assembled every experiment afterwards (~7 s); closing the cluster
took ~4 s. Now: the cluster starts in the background while the DBN is pretrained
(:class:`~beatdbn.utils.cluster.BackgroundClient`) and this process runs the DBN's plots and the longest
jobs itself until it is up; a LocalCluster's workers fork from one process that imported everything
once; every worker has one torch thread; a worker keeps the store, splits and DBN it loaded (keyed by
path and modification time); rate jobs draw no plots; experiments are assembled by jobs; jobs run longest
first (by their estimated cost), so that the workers finish together; the cluster closes in the
background while the report is written. Each job's info has its wall and CPU seconds by phase (loading,
training, moving the result into place). What remains is one import of torch and beatdbn (~10 s CPU)
for the workers, about the whole sweep at ``--quick`` sizes: on 2 cores Dask gains with the work, not there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from beatdbn.data.splits import load_split
from beatdbn.exceptions import BeatdbnError
from beatdbn.experiments import registry
from beatdbn.experiments.registry import TrainJob
from beatdbn.metrics.results import RESULT_FILE
from beatdbn.models.dbn import ConvDBN
from beatdbn.store.reader import INDEX_FILE, FeatureStore
from beatdbn.tasks.build import load_task
from beatdbn.tasks.selection import SPLITS
from beatdbn.train import rundir
from beatdbn.train.kinds import train
from beatdbn.utils.atomic import write_json
from beatdbn.utils.cluster import dask_client

__all__ = ["Job", "plan_jobs", "run_job", "assemble", "run_jobs", "one_thread", "WORKER_IMPORTS", "JOBS_DIR",
           "progress_path", "read_running", "running_message"]

#: Folder of the running jobs' progress files in the run folder (``OUT/jobs/<job>.json``, :func:`progress_path`).
JOBS_DIR = "jobs"

#: What every worker imports once (:func:`~beatdbn.utils.cluster.worker_setup`; a LocalCluster's fork server
#: once for all): this module pulls in torch, the trainers, scikit-learn and matplotlib; torch._dynamo is
#: imported by the first torch optimizer (3.4 s on 2 cores, paid in each worker's first job before).
WORKER_IMPORTS = ("beatdbn.pipeline.sweep", "torch._dynamo")


@dataclass(frozen=True)
class Job:
    """One unit of the sweep: an experiment's learning rate (``lr`` None: the whole experiment, for a kind that
    sweeps no rate, such as naive Bayes).

    ``cost`` (not compared) orders the jobs, longest first; any unit.
    """

    task: str
    model: str
    recipe: str | None
    lr: float | None
    cost: float = field(default=1.0, compare=False)

    @property
    def name(self) -> str:
        return f"{self.task}/{self.model}" + ("" if self.lr is None else f" lr={self.lr:g}")


def settings_of(model: str, config) -> Any:
    """The settings experiment ``model`` trains with in the run configuration ``config`` (its kind's)."""
    return registry.kind(model).settings(config, registry.variant(model))


def _rates(model: str, config) -> tuple[float | None, ...]:
    """The jobs' learning rates of experiment ``model`` (``(None,)``: one job trains it whole)."""
    return registry.kind(model).rates(settings_of(model, config)) or (None,)


def _done(out: Path, job: Job, config) -> bool:
    exp = out / "experiments" / job.task / job.model
    if (exp / RESULT_FILE).exists():
        return True  # the serial pass checks its settings
    if job.lr is None:
        return False
    return registry.kind(job.model).rate_done(rundir.lr_dir(exp, job.lr), settings_of(job.model, config))


def train_experiment(task: str, model: str, splits, out: Path, config, *, device: str = "cpu",
                     progress: Callable[[dict], None] | None = None, plots: bool = True,
                     dbn: Callable[[], Any] | None = None, lr: float | None = None):
    """Train experiment ``model`` of ``task`` into ``out`` with its kind's trainer (:mod:`beatdbn.train.kinds`):
    every learning rate, or only ``lr``. ``dbn``: gives the pretrained DBN (kinds that need it)."""
    settings = settings_of(model, config)
    if lr is not None:
        settings = dataclasses.replace(settings, learning_rates=(lr,))
    return train(TrainJob(task=task, variant=registry.variant(model), splits=tuple(splits), out=out,
                          settings=settings, device=device, progress=progress, plots=plots, dbn=dbn))


def plan_jobs(out: str | Path, task_names, experiments, config,
              cost: Callable[[str, str, str | None], float] | None = None) -> list[Job]:
    """The jobs still to run, in Table 1 order: ``experiments`` is ``[(model, recipe), ...]``;
    ``cost(task, model, recipe)``: an experiment's estimated cost, shared among its rates (``Job.cost``)."""
    out = Path(out)
    jobs = []
    for t in task_names:
        for m, r in experiments:
            rates = _rates(m, config)
            each = 1.0 if cost is None else cost(t, m, r) / len(rates)
            jobs.extend(Job(t, m, r, lr, each) for lr in rates)
    return [j for j in jobs if not _done(out, j, config)]


# ---------------------------------------------------------------------------
# what a worker keeps between jobs


_CACHES: dict[str, tuple[int, OrderedDict]] = {"store": (1, OrderedDict()), "dbn": (1, OrderedDict()),
                                                "splits": (2, OrderedDict())}


def _stamp(*paths: Path) -> tuple:
    """Path, modification time and size of each file (None when missing): a changed file is a new key."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((str(p), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(p), None, None))
    return tuple(out)


def _cached(kind: str, key: tuple, load: Callable[[], Any]) -> Any:
    """``load()``, kept in this process under ``key`` (the last few of each ``kind``: a worker runs many jobs of
    the same task and DBN; the serial path too shares one load among an experiment's rates)."""
    size, cache = _CACHES[kind]
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = load()
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)
    return value


def _store(store: str) -> FeatureStore:
    p = Path(store).resolve()
    return _cached("store", _stamp(p, p / INDEX_FILE, p / "shards"), lambda: FeatureStore.open(p))


def _splits(store: str, out: Path, task_name: str) -> list:
    fs = _store(store)
    d = out / "tasks" / task_name
    key = (str(fs.path), _stamp(Path(fs.path) / INDEX_FILE, Path(fs.path) / "shards"),
           _stamp(d / "classes.txt", *(d / f"{s}.tsv" for s in SPLITS)))
    return _cached("splits", key, lambda: [load_split(fs, load_task(out / "tasks", task_name), s) for s in SPLITS])


def _dbn(out: Path, device: str) -> ConvDBN:
    d = (out / "dbn").resolve()
    return _cached("dbn", (str(device), _stamp(d / "model.pt", d / "config.json")),
                   lambda: ConvDBN.load(d, device=device))


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (waits for a live holder; a dead one's lock is released by the OS)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------
# progress inside running jobs


def progress_path(out: str | Path, job: Job) -> Path:
    """The progress file of a running job: ``OUT/jobs/<task>.<model>.<lr-v | all>.json``."""
    rate = "all" if job.lr is None else f"lr-{job.lr:g}"
    return Path(out) / JOBS_DIR / f"{job.task}.{job.model}.{rate}.json"


class _JobProgress:
    """The trainers' progress callback inside a job: writes the job's progress file (atomically, so a reader
    never sees half a file) after every epoch: ``{"job", "step", "total", "epoch", "epochs", "seconds",
    "eta_seconds", "pid", "host", "message"}``. ``eta_seconds`` is this job's own, from the epochs it trained
    since its first report (None until it has two)."""

    def __init__(self, out: Path, job: Job) -> None:
        self.path, self.job = progress_path(out, job), job
        self.t0 = time.perf_counter()
        self.first: tuple[float, int] | None = None

    def __call__(self, info: dict) -> None:
        now, step, total = time.perf_counter(), int(info.get("step", 0)), int(info.get("total", 0))
        eta = None
        if self.first is None:
            self.first = (now, step)
        elif step > self.first[1]:
            eta = (now - self.first[0]) / (step - self.first[1]) * max(total - step, 0)
        rate = self.job.lr is not None  # a rate's trainer counts its epochs (one rate: total = epochs)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.path, {"job": self.job.name, "step": step, "total": total,
                                   "epoch": info.get("epoch", step) if rate else None,
                                   "epochs": total if rate else None,
                                   "seconds": now - self.t0, "eta_seconds": eta, "pid": os.getpid(),
                                   "host": socket.gethostname(), "message": str(info.get("message", ""))[:200]},
                       indent=None)
        except OSError:  # progress is a courtesy: a full or read-only disk must not fail the job
            pass

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def read_running(out: str | Path, *, skip: set[str] = frozenset()) -> list[dict]:
    """The progress of every job now running in ``out`` (its progress file), sorted by job name; jobs named in
    ``skip`` (finished or failed) left out. Unreadable files (being replaced) are skipped."""
    folder = Path(out) / JOBS_DIR
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and info.get("job") not in skip:
            found.append(info)
    return sorted(found, key=lambda i: str(i.get("job")))


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "eta ?"
    m, sec = divmod(int(round(seconds)), 60)
    return f"eta {m // 60}:{m % 60:02d}:{sec:02d}" if m >= 60 else f"eta {m}:{sec:02d}"


def running_message(running: Sequence[dict], *, show: int = 3) -> str:
    """``'3 running: key/convmlp_random lr=0.01 epoch 4/30 eta 2:10; ...'`` (the first ``show`` jobs)."""
    parts = []
    for info in running[:show]:
        if not info.get("total"):
            parts.append(f"{info['job']} starting")
        elif info.get("epochs"):
            parts.append(f"{info['job']} epoch {info.get('epoch')}/{info['epochs']} {_clock(info.get('eta_seconds'))}")
        else:
            parts.append(f"{info['job']} step {info.get('step')}/{info.get('total')}")
    more = f"; {len(running) - show} more" if len(running) > show else ""
    return f"{len(running)} running: " + "; ".join(parts) + more


class _Poller:
    """Reads the running jobs' progress files every ``every`` seconds (a thread of the client's process, so
    it also sees the jobs this process runs itself while a cluster starts) and calls ``running(info)`` when
    what it reads changes: ``{"running": [progress, ...], "fraction": sum of the running jobs' step/total,
    "message": running_message(...)}``."""

    def __init__(self, out: Path, running: Callable[[dict], None], every: float, skip: set[str]) -> None:
        self.out, self.running, self.every, self.skip = out, running, every, skip
        self.stop = threading.Event()
        self.last: Any = None
        self.thread = threading.Thread(target=self._loop, name="beatdbn-sweep-progress", daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            self.poll()

    def poll(self) -> None:
        now = read_running(self.out, skip=set(self.skip))
        seen = [(i.get("job"), i.get("step"), i.get("total")) for i in now]
        if seen == self.last or (not now and self.last is None):
            return
        self.last = seen
        fraction = sum(min(i.get("step", 0) / i["total"], 1.0) for i in now if i.get("total"))
        try:
            self.running({"running": now, "fraction": fraction, "message": running_message(now) if now else
                          "0 running"})
        except Exception:  # noqa: BLE001 - a progress display must never stop the sweep
            pass

    def __enter__(self) -> "_Poller":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()


# ---------------------------------------------------------------------------
# the jobs


def run_job(job: Job, store: str, out: str, config, device: str = "cpu") -> dict[str, Any]:
    """Run one job (in a Dask worker or in this process) with one torch thread (:func:`one_thread`); returns
    ``{"job", "kind", "seconds", "phases", "cpu_seconds", "pid"}`` (``phases``: seconds loading the splits and
    DBN, training, moving the result into place; ``cpu_seconds``: this process's CPU time, which a busy machine
    does not inflate)."""
    report = _JobProgress(Path(out), job)  # OUT/jobs/<job>.json while it trains (the client polls it)
    report({"step": 0, "total": 0, "message": "loading"})
    try:
        with one_thread():  # wherever it runs, and when it resumes another process's checkpoint
            return _run_job(job, store, out, config, device, report)
    finally:
        report.clear()


def _run_job(job: Job, store: str, out: str, config, device: str, report: Callable[[dict], None]) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    out_path = Path(out)
    splits = _splits(store, out_path, job.task)
    phases = {"load": time.perf_counter() - t0}
    exp = out_path / "experiments" / job.task / job.model

    def info() -> dict[str, Any]:
        return {"job": job, "kind": "rate", "seconds": time.perf_counter() - t0, "phases": phases,
                "cpu_seconds": time.process_time() - c0, "pid": os.getpid()}

    loads: list[float] = []  # the DBN's load time counts as loading, not training
    dbn = _dbn_loader(out_path, device, loads)
    if job.lr is None:
        t1 = time.perf_counter()
        train_experiment(job.task, job.model, splits, exp, config, device=device, progress=report, dbn=dbn)
        phases["train"] = time.perf_counter() - t1 - sum(loads)
        phases["load"] += sum(loads)
        return info()
    scratch = exp / f".job-lr-{job.lr:g}"
    final = rundir.lr_dir(exp, job.lr)
    with _exclusive(exp / f".job-lr-{job.lr:g}.lock"):
        if _done(out_path, job, config):  # another process ran it while this one waited for the lock
            shutil.rmtree(scratch, ignore_errors=True)
            (exp / f".job-lr-{job.lr:g}.lock").unlink(missing_ok=True)
            return info()
        mine = rundir.lr_dir(scratch, job.lr)
        if final.exists():  # an unfinished rate of a serial run: resume it from its checkpoint
            shutil.rmtree(mine, ignore_errors=True)
            scratch.mkdir(parents=True, exist_ok=True)
            os.replace(final, mine)
        scratch.mkdir(parents=True, exist_ok=True)  # kept from a killed job: resumed from its checkpoint
        t1 = time.perf_counter()
        # the one-rate result in the scratch folder is thrown away: its experiment's assembly draws the plots
        train_experiment(job.task, job.model, splits, scratch, config, device=device, progress=report,
                         plots=False, dbn=dbn, lr=job.lr)
        t2 = time.perf_counter()
        phases["train"] = t2 - t1 - sum(loads)
        phases["load"] += sum(loads)
        os.replace(mine, final)
        shutil.rmtree(scratch, ignore_errors=True)
        (exp / f".job-lr-{job.lr:g}.lock").unlink(missing_ok=True)
        phases["move"] = time.perf_counter() - t2
    return info()


def _dbn_loader(out: Path, device: str, seconds: list[float]) -> Callable[[], ConvDBN]:
    """A job's DBN, loaded (or taken from this process's cache) when its trainer asks; the load's seconds are
    appended to ``seconds``."""
    def load() -> ConvDBN:
        t0 = time.perf_counter()
        dbn = _dbn(out, device)
        seconds.append(time.perf_counter() - t0)
        return dbn

    return load


def assemble(task: str, model: str, recipe: str | None, store: str, out: str, config, device: str = "cpu",
             *trained: Any) -> dict[str, Any]:
    """Assemble one experiment whose rates are all trained (``trained``: their jobs' infos, for Dask's
    ordering): the call the serial path makes, which finds every rate done and writes the selection,
    ``model/``, the plots and ``result.json``. Returns ``{"task", "model", "kind", "seconds", "phases"}``.
    Computes with one torch thread, as :func:`run_job` (a rate whose last epoch is still to train is trained
    here). ``recipe`` is the experiment's (the registry knows it too: :func:`settings_of`)."""
    with one_thread():
        return _assemble(task, model, store, out, config, device)


def _assemble(task: str, model: str, store: str, out: str, config, device: str) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    out_path = Path(out)
    splits = _splits(store, out_path, task)
    exp = out_path / "experiments" / task / model
    loads: list[float] = [time.perf_counter() - t0]  # the splits', then the DBN's
    train_experiment(task, model, splits, exp, config, device=device, dbn=_dbn_loader(out_path, device, loads))
    load = sum(loads)
    total = time.perf_counter() - t0
    return {"task": task, "model": model, "kind": "assemble", "seconds": total,
            "phases": {"load": load, "assemble": total - load}, "cpu_seconds": time.process_time() - c0,
            "pid": os.getpid()}


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One torch intra-op thread for the block (the caller's count restored after it), as every worker has
    (:func:`~beatdbn.utils.cluster.worker_setup`): what the block computes does not depend on the thread count
    of the process that runs it. (The count is the process's: other Python threads see it meanwhile.)"""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _side(name: str, fn: Callable, args: tuple) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn(*args)
    return {"name": name, "kind": "side", "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0, "pid": os.getpid()}


def run_jobs(jobs: Sequence[Job], store: str, out: str, config, *, client=None, cluster=None,
             scheduler: str = "local", workers: int | None = None, device: str = "cpu",
             experiments: Sequence[tuple[str, str | None]] = (), side: Sequence[tuple[str, Callable, tuple]] = (),
             done: Callable[[dict], None] | None = None, running: Callable[[dict], None] | None = None,
             poll_seconds: float = 1.5) -> dict[str, Any]:
    """Run ``jobs`` on Dask, longest first (``Job.cost``); returns what ran.

    Where: ``client``, a Dask client; or ``cluster``, a
    :class:`~beatdbn.utils.cluster.BackgroundClient` still starting, in which case this process runs the
    side jobs and then the longest jobs itself until the cluster is up (its start, ~10 s of imports on 2
    busy cores, is then not time lost); without either a cluster is opened on ``scheduler`` ('local' or an
    address) for the call. ``experiments`` (``[(model, recipe), ...]``): once the jobs of one of these
    experiments are done, an assembly job (:func:`assemble`) writes its result; an experiment none of whose
    rates is among ``jobs`` is left to the caller. ``side``: ``(name, fn, args)`` run first, beside the jobs
    (the DBN's plots). ``done(info)`` after each job.

    ``running(info)``: progress inside the running jobs. Each job writes ``OUT/jobs/<job>.json`` after every
    epoch (:func:`progress_path`; atomically, wherever it runs: workers see the run folder at the same path);
    a thread of this process reads them every ``poll_seconds`` and calls ``running`` when they change, with
    ``{"running": [{"job", "step", "total", "epoch", "epochs", "seconds", "eta_seconds", ...}, ...],
    "fraction": sum of the running jobs' step/total, "message": "2 running: key/logreg lr=0.0005 epoch 3/30
    eta 0:41; ..."}`` (from a thread: ``running`` must be thread-safe), once more at the end (``"0
    running"``). The ``jobs/`` folder is removed when the sweep ends.

    Returns ``{"infos": [...], "assembled": {(task, model), ...}, "wall_seconds", "here": jobs run in this
    process}``.

    Raises
    ------
    Exception
        The first job's error (a BeatdbnError names the job), once every other job has finished.
    """
    t0 = time.perf_counter()
    result: dict[str, Any] = {"infos": [], "assembled": set(), "wall_seconds": 0.0, "here": 0}
    if not jobs and not side:
        return result
    order = sorted(range(len(jobs)), key=lambda i: (-jobs[i].cost, i))  # longest first; Table order on ties
    side = list(side)
    errors: list[tuple[str, BaseException]] = []

    over: set[str] = set()  # jobs finished or failed: their progress files are no longer read

    def finished(info: dict) -> None:
        if info["kind"] == "rate":
            over.add(info["job"].name)
        result["infos"].append(info)
        if info["kind"] == "assemble" or (info["kind"] == "rate" and info["job"].lr is None):
            job = info.get("job")
            result["assembled"].add((job.task, job.model) if job is not None else (info["task"], info["model"]))
        if done is not None:
            done(info)

    def sweep() -> None:
        nonlocal client
        touched = {(jobs[i].task, jobs[i].model) for i in order}
        failed: set[tuple[str, str]] = set()
        recipes = dict(experiments)
        whole = {(j.task, j.model) for j in jobs if j.lr is None}  # one job is the whole experiment
        # experiments to assemble once their rates are trained, in Table 1 order
        pending = [key for key in dict.fromkeys((jobs[i].task, jobs[i].model) for i in range(len(jobs)))
                   if key not in whole and key[1] in recipes]
        if cluster is not None:  # work here while the cluster starts (assemblies too, once the rates are done)
            while (side or order or pending) and not cluster.ready():
                if not side and not order:
                    task, model = pending.pop(0)
                    if (task, model) in failed:
                        continue
                    try:
                        finished(assemble(task, model, recipes[model], store, out, config, device))
                    except Exception as exc:  # noqa: BLE001 - raised once the other jobs are done
                        errors.append((f"{task}/{model} (assembly)", exc))
                        failed.add((task, model))
                elif side:
                    name, fn, args = side.pop(0)
                    try:
                        finished(_side(name, fn, args))
                    except Exception as exc:  # noqa: BLE001 - raised once the other jobs are done
                        errors.append((name, exc))
                else:
                    job = jobs[order.pop(0)]
                    try:  # with one thread, as on a worker (run_job): where a job runs must not change its numbers
                        finished(run_job(job, store, out, config, device))
                    except Exception as exc:  # noqa: BLE001 - raised once the other jobs are done
                        errors.append((job.name, exc))
                        failed.add((job.task, job.model))
                        over.add(job.name)
                result["here"] += 1
            if not side and not order and all(key in failed or key in result["assembled"] for key in pending):
                return  # everything ran here: no need to wait for the cluster
            client = cluster.client()
        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(dask_client(scheduler, workers, setup=WORKER_IMPORTS, saturation=1.0))
            from dask.distributed import as_completed  # heavy: only runs on Dask import it

            n = len(order) + len(side)
            names, waits_on = {}, {}
            futures = []
            for k, (name, fn, args) in enumerate(side):
                f = client.submit(_side, name, fn, args, pure=False, key=f"side-{k}-{name.replace(' ', '-')}",
                                  priority=n + 1)
                names[f.key] = name
                futures.append(f)
            by_experiment: dict[tuple[str, str], list] = {key: [] for key in touched}
            for rank, i in enumerate(order):
                j = jobs[i]
                f = client.submit(run_job, j, store, out, config, device, pure=False, priority=n - rank,
                                  key=f"job-{i}-{j.task}-{j.model}-{j.lr}")
                names[f.key] = j.name
                futures.append(f)
                by_experiment[(j.task, j.model)].append(f)
            for (task, model), deps in by_experiment.items():
                if ((task, model) in whole or model not in recipes or (task, model) in failed
                        or (task, model) in result["assembled"]):
                    continue  # a rate-less experiment's one job is all of it; a failed rate leaves it unassembled
                f = client.submit(assemble, task, model, recipes[model], store, out, config, device, *deps, pure=False,
                                  priority=0, key=f"assemble-{task}-{model}")
                names[f.key] = f"{task}/{model} (assembly)"
                waits_on[f.key] = deps
                futures.append(f)
            for future in as_completed(futures, loop=client.loop):
                if future.status != "finished":
                    if not any(d.status != "finished" for d in waits_on.get(future.key, ())):
                        errors.append((names[future.key], future.exception()))  # not one whose job failed
                    over.add(names[future.key])
                    continue
                finished(future.result())

    jobs_dir = Path(out) / JOBS_DIR
    shutil.rmtree(jobs_dir, ignore_errors=True)  # progress files of a killed sweep: none of its jobs runs now
    watch = (_Poller(Path(out), running, poll_seconds, over) if running is not None else contextlib.nullcontext())
    try:
        with watch:
            sweep()
        if running is not None:
            watch.poll()  # the last state: every job over
    finally:
        shutil.rmtree(jobs_dir, ignore_errors=True)
    result["wall_seconds"] = time.perf_counter() - t0
    if errors:
        name, exc = errors[0]
        more = f" ({len(errors) - 1} other jobs failed too)" if len(errors) > 1 else ""
        if isinstance(exc, BeatdbnError):
            try:
                named = type(exc)(f"{name}: {exc}{more}")
            except TypeError:  # an error type with other arguments: raised as it is
                raise exc from None
            raise named from exc
        raise exc
    return result
