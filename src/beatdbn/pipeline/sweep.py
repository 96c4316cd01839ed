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
import os
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from beatdbn.data.splits import load_split
from beatdbn.exceptions import BeatdbnError
from beatdbn.metrics.results import RESULT_FILE
from beatdbn.models.dbn import ConvDBN
from beatdbn.store.reader import INDEX_FILE, FeatureStore
from beatdbn.tasks.build import load_task
from beatdbn.tasks.selection import SPLITS
from beatdbn.train import runner
from beatdbn.train.baselines import run_logreg, run_naive_bayes
from beatdbn.train.finetune import run_convmlp
from beatdbn.utils.cluster import dask_client

__all__ = ["Job", "plan_jobs", "run_job", "assemble", "run_jobs", "one_thread", "WORKER_IMPORTS"]

#: What every worker imports once (:func:`~beatdbn.utils.cluster.worker_setup`; a LocalCluster's fork server
#: once for all): this module pulls in torch, the trainers, scikit-learn and matplotlib; torch._dynamo is
#: imported by the first torch optimizer (3.4 s on 2 cores, paid in each worker's first job before).
WORKER_IMPORTS = ("beatdbn.pipeline.sweep", "torch._dynamo")


@dataclass(frozen=True)
class Job:
    """One unit of the sweep: an experiment's learning rate (``lr`` None: naive Bayes, which has none).

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
    # a conv MLP rate is trained when its last epoch's snapshot is saved (just before the last checkpoint: a
    # rate killed between the two trains its last epoch again in its experiment's assembly, on one thread too)
    return (lr_dir / f"epoch-{config.finetune_for(job.recipe).epochs}" / "model.pt").exists()


def plan_jobs(out: str | Path, task_names, experiments, config,
              cost: Callable[[str, str, str | None], float] | None = None) -> list[Job]:
    """The jobs still to run, in Table 1 order: ``experiments`` is ``[(model, recipe), ...]``;
    ``cost(task, model, recipe)``: an experiment's estimated cost, shared among its rates (``Job.cost``)."""
    out = Path(out)
    jobs = []
    for t in task_names:
        for m, r in experiments:
            rates = _rates(m, r, config)
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
# the jobs


def run_job(job: Job, store: str, out: str, config, device: str = "cpu") -> dict[str, Any]:
    """Run one job (in a Dask worker or in this process) with one torch thread (:func:`one_thread`); returns
    ``{"job", "kind", "seconds", "phases", "cpu_seconds", "pid"}`` (``phases``: seconds loading the splits and
    DBN, training, moving the result into place; ``cpu_seconds``: this process's CPU time, which a busy machine
    does not inflate)."""
    with one_thread():  # wherever it runs, and when it resumes another process's checkpoint
        return _run_job(job, store, out, config, device)


def _run_job(job: Job, store: str, out: str, config, device: str) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    out_path = Path(out)
    splits = _splits(store, out_path, job.task)
    phases = {"load": time.perf_counter() - t0}
    exp = out_path / "experiments" / job.task / job.model

    def info() -> dict[str, Any]:
        return {"job": job, "kind": "rate", "seconds": time.perf_counter() - t0, "phases": phases,
                "cpu_seconds": time.process_time() - c0, "pid": os.getpid()}

    if job.lr is None:
        t1 = time.perf_counter()
        run_naive_bayes(*splits, task=job.task, out=exp, config=config.baselines)
        phases["train"] = time.perf_counter() - t1
        return info()
    scratch = exp / f".job-lr-{job.lr:g}"
    final = runner.lr_dir(exp, job.lr)
    with _exclusive(exp / f".job-lr-{job.lr:g}.lock"):
        if _done(out_path, job, config):  # another process ran it while this one waited for the lock
            shutil.rmtree(scratch, ignore_errors=True)
            (exp / f".job-lr-{job.lr:g}.lock").unlink(missing_ok=True)
            return info()
        mine = runner.lr_dir(scratch, job.lr)
        if final.exists():  # an unfinished rate of a serial run: resume it from its checkpoint
            shutil.rmtree(mine, ignore_errors=True)
            scratch.mkdir(parents=True, exist_ok=True)
            os.replace(final, mine)
        scratch.mkdir(parents=True, exist_ok=True)  # kept from a killed job: resumed from its checkpoint
        t1 = time.perf_counter()
        if job.model == "logreg":
            run_logreg(*splits, task=job.task, out=scratch, device=device,
                       config=dataclasses.replace(config.baselines, learning_rates=(job.lr,)))
        else:
            ft = config.finetune_for(job.recipe)
            init = "pretrained" if job.model.startswith("convmlp_pretrained") else "random"
            dbn, seconds = _timed(lambda: _dbn(out_path, device))
            phases["load"] += seconds
            t1 = time.perf_counter()
            # the one-rate result in the scratch folder is thrown away: its experiment's assembly draws the plots
            run_convmlp(*splits, task=job.task, init=init, dbn=dbn, out=scratch, device=device, plots=False,
                        config=dataclasses.replace(ft, learning_rates=(job.lr,)))
        t2 = time.perf_counter()
        phases["train"] = t2 - t1
        os.replace(mine, final)
        shutil.rmtree(scratch, ignore_errors=True)
        (exp / f".job-lr-{job.lr:g}.lock").unlink(missing_ok=True)
        phases["move"] = time.perf_counter() - t2
    return info()


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def assemble(task: str, model: str, recipe: str | None, store: str, out: str, config, device: str = "cpu",
             *trained: Any) -> dict[str, Any]:
    """Assemble one experiment whose rates are all trained (``trained``: their jobs' infos, for Dask's
    ordering): the call the serial path makes, which finds every rate done and writes the selection,
    ``model/``, the plots and ``result.json``. Returns ``{"task", "model", "kind", "seconds", "phases"}``.
    Computes with one torch thread, as :func:`run_job` (a rate whose last epoch is still to train is trained
    here)."""
    with one_thread():
        return _assemble(task, model, recipe, store, out, config, device)


def _assemble(task: str, model: str, recipe: str | None, store: str, out: str, config,
              device: str) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    out_path = Path(out)
    splits = _splits(store, out_path, task)
    exp = out_path / "experiments" / task / model
    load = time.perf_counter() - t0
    if model == "naive_bayes":
        run_naive_bayes(*splits, task=task, out=exp, config=config.baselines)
    elif model == "logreg":
        run_logreg(*splits, task=task, out=exp, config=config.baselines, device=device)
    else:
        init = "pretrained" if model.startswith("convmlp_pretrained") else "random"
        dbn, seconds = _timed(lambda: _dbn(out_path, device))
        load += seconds
        run_convmlp(*splits, task=task, init=init, dbn=dbn, out=exp, config=config.finetune_for(recipe),
                    device=device)
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
             done: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run ``jobs`` on Dask, longest first (``Job.cost``); returns what ran.

    Where: ``client``, a Dask client; or ``cluster``, a
    :class:`~beatdbn.utils.cluster.BackgroundClient` still starting, in which case this process runs the
    side jobs and then the longest jobs itself until the cluster is up (its start, ~10 s of imports on 2
    busy cores, is then not time lost); without either a cluster is opened on ``scheduler`` ('local' or an
    address) for the call. ``experiments`` (``[(model, recipe), ...]``): once the jobs of one of these
    experiments are done, an assembly job (:func:`assemble`) writes its result; an experiment none of whose
    rates is among ``jobs`` is left to the caller. ``side``: ``(name, fn, args)`` run first, beside the jobs
    (the DBN's plots). ``done(info)`` after each job.

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

    def finished(info: dict) -> None:
        result["infos"].append(info)
        if info["kind"] == "assemble" or (info["kind"] == "rate" and info["job"].model == "naive_bayes"):
            job = info.get("job")
            result["assembled"].add((job.task, job.model) if job is not None else (info["task"], info["model"]))
        if done is not None:
            done(info)

    touched = {(jobs[i].task, jobs[i].model) for i in order}
    failed: set[tuple[str, str]] = set()
    if cluster is not None:  # work here while the cluster starts
        while (side or order) and not cluster.ready():
            if side:
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
            result["here"] += 1
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
        recipes = dict(experiments)
        for (task, model), deps in by_experiment.items():
            if model == "naive_bayes" or model not in recipes or (task, model) in failed:
                continue  # naive Bayes' one job is its whole experiment; a failed rate leaves it unassembled
            f = client.submit(assemble, task, model, recipes[model], store, out, config, device, *deps, pure=False,
                              priority=0, key=f"assemble-{task}-{model}")
            names[f.key] = f"{task}/{model} (assembly)"
            waits_on[f.key] = deps
            futures.append(f)
        for future in as_completed(futures, loop=client.loop):
            if future.status != "finished":
                if not any(d.status != "finished" for d in waits_on.get(future.key, ())):
                    errors.append((names[future.key], future.exception()))  # not one whose job failed
                continue
            finished(future.result())
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
