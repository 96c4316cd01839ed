"""Starting the ranks of a pretraining run: N processes on this machine, or joining a ``torchrun`` launch.

* :func:`run_local` (``beatdbn pretrain --workers N``): this process is rank
  0 (it writes the files and shows progress); N - 1 processes are spawned
  beside it (``torch.multiprocessing``, start method ``spawn``), each with
  ``threads`` intra-op threads (set in the worker's own setup: the library
  never changes a process's threads). They meet over gloo on a free
  localhost port. When a worker fails, the others stop and its message is
  raised here as one :class:`~beatdbn.exceptions.DataError`. ``workers`` is
  capped at the CPUs this process may use (one warning line). SIGTERM/SIGINT
  stop every worker, also one still starting
  (:func:`~beatdbn.utils.processes.stop_on_signals`), and a worker whose
  parent is killed outright dies with it.
* :func:`join_launch` (``torchrun --nnodes ... -m beatdbn pretrain --distributed``):
  reads the launcher's ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``
  and joins the process group (gloo on CPU, NCCL on CUDA; on CUDA each rank
  takes the GPU of its ``LOCAL_RANK``).

Every rank opens the store at its own path (each machine needs the same
store; :meth:`~beatdbn.train.ranks.Ranks.agree` stops the run, naming the
difference, when the ranks' tracks or settings differ); only rank 0 needs
the output folder.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from datetime import timedelta
from typing import Any, Callable, Iterator

import torch

from beatdbn.exceptions import BeatdbnError, DataError, ParameterError
from beatdbn.train.ranks import DEFAULT_COMBINE, Ranks
from beatdbn.utils.processes import die_with_parent, stop_on_signals
from beatdbn.utils.threads import cap_workers

__all__ = ["run_local", "join_launch", "in_launch", "launched_rank"]

#: How long a rank waits for the others at any meeting point before giving up.
TIMEOUT = timedelta(minutes=30)


def _worker(rank: int, world: int, port: int, sync_every: int, combine: str, threads: int, target: Callable,
            kwargs: dict, errors: Any) -> None:
    """A spawned rank: its own thread policy, the process group, then ``target`` (nothing returned)."""
    import torch.distributed as dist

    die_with_parent()  # rank 0 killed outright (kill -9): this worker goes too, not on as an orphan
    torch.set_num_threads(threads)  # the worker's setup: its process-wide policy
    try:
        store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=TIMEOUT)
        store.set(f"ready/{rank}", "1")  # rank 0 waits for these, watching for workers that died instead
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=TIMEOUT)
        target(ranks=Ranks(rank, world, sync_every=sync_every, combine=combine), **kwargs)
    except BeatdbnError as exc:
        errors.put((rank, str(exc)))
        raise SystemExit(1) from None
    except Exception as exc:  # noqa: BLE001 - reported to rank 0, which raises it as one line
        errors.put((rank, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        raise SystemExit(1) from None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_local(target: Callable[..., Any], kwargs: dict, *, workers: int, sync_every: int,
              combine: str = DEFAULT_COMBINE,
              threads: int = 1, lead_kwargs: dict | None = None) -> Any:
    """``target(ranks=..., **kwargs)`` on ``workers`` ranks of this machine; rank 0's result.

    ``target`` must be importable (a module-level function: the workers are
    spawned) and ``kwargs`` picklable. ``lead_kwargs`` go to rank 0 alone,
    which runs in this process: a ``progress`` callback may be a closure.

    Raises
    ------
    ParameterError
        ``workers`` or ``sync_every`` below 1.
    DataError
        A worker failed (its message), or could not start.
    """
    if not (isinstance(workers, int) and workers >= 1):
        raise ParameterError(f"--workers {workers}: must be 1 or more")
    if not (isinstance(sync_every, int) and sync_every >= 1):
        raise ParameterError(f"--sync-every {sync_every}: must be 1 or more")
    Ranks(0, 1, combine=combine)  # checks the rule before any process starts
    lead_kwargs = {**kwargs, **(lead_kwargs or {})}
    workers = cap_workers(workers)
    if workers == 1:
        return target(ranks=Ranks.solo(), **lead_kwargs)
    with stop_on_signals():  # SIGTERM/SIGINT: the workers are stopped, none is left behind
        return _run_ranks(target, kwargs, lead_kwargs, workers=workers, sync_every=sync_every, combine=combine,
                          threads=threads)


def _run_ranks(target: Callable[..., Any], kwargs: dict, lead_kwargs: dict, *, workers: int, sync_every: int,
               combine: str, threads: int) -> Any:
    """Spawn ranks 1..workers-1, run rank 0 here; the workers are stopped however this ends."""
    import torch.distributed as dist
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=TIMEOUT)
    port = store.port
    procs = [ctx.Process(target=_worker, daemon=True, name=f"beatdbn-rank-{rank}",
                         args=(rank, workers, port, sync_every, combine, threads, target, kwargs, errors))
             for rank in range(1, workers)]

    def worker_error() -> DataError | None:
        for p in procs:
            p.join(timeout=5 if p.exitcode is None else 0)
        if not errors.empty():
            rank, msg = errors.get()
            return DataError(f"pretraining worker {rank} failed: {msg}")
        dead = [p for p in procs if p.exitcode not in (None, 0)]
        if dead:
            return DataError(f"pretraining worker {dead[0].name} died (exit code {dead[0].exitcode})")
        return None

    stopping = False
    try:
        for p in procs:  # inside the try: a signal while they start stops the ones started
            p.start()
        ready = [f"ready/{rank}" for rank in range(1, workers)]
        while not store.check(ready):  # a worker that dies while starting (import error, ...) stops the run
            if any(p.exitcode is not None for p in procs):
                raise worker_error() or DataError("a pretraining worker stopped before it started")
            time.sleep(0.1)
        dist.init_process_group("gloo", store=store, rank=0, world_size=workers, timeout=TIMEOUT)
        return target(ranks=Ranks(0, workers, sync_every=sync_every, combine=combine), **lead_kwargs)
    except BeatdbnError:
        raise
    except RuntimeError as exc:  # a peer's connection closed: a worker failed; its message says why
        err = worker_error()
        if err is not None:
            raise err from None
        raise
    except BaseException:  # a signal (Stopped, KeyboardInterrupt): stop the workers now, not after waiting
        stopping = True
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        for p in procs:
            if stopping and p.pid is not None and p.is_alive():
                p.terminate()
        for p in procs:
            if p.pid is None:
                continue  # never started
            p.join(timeout=1 if stopping else 10)
            if p.is_alive():
                p.kill() if stopping else p.terminate()
                p.join()


def in_launch() -> bool:
    """True when this process was started by ``torchrun`` (or another launcher setting ``RANK``/``WORLD_SIZE``)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def join_launch(device: str, *, sync_every: int, combine: str = DEFAULT_COMBINE) -> tuple[Ranks, str]:
    """Join the process group of a ``torchrun`` launch; (the ranks, this rank's device).

    Raises
    ------
    ParameterError
        Not started by a launcher (no ``RANK``/``WORLD_SIZE``).
    """
    import torch.distributed as dist

    if not in_launch():
        raise ParameterError("--distributed: RANK and WORLD_SIZE are not set; start the ranks with torchrun "
                             "(e.g. `torchrun --nnodes 2 --nproc-per-node 1 --rdzv-endpoint HOST:29500 -m beatdbn "
                             "pretrain STORE --out DBN --distributed`), or use --workers N on one machine")
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", 0))
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method="env://", timeout=TIMEOUT)
    return Ranks.from_process_group(sync_every=sync_every, combine=combine), device


@contextlib.contextmanager
def launched_rank(out: str) -> Iterator[None]:
    """The life of one ``torchrun`` rank after :func:`join_launch`: a peer lost mid-pass is one
    :class:`DataError` line saying how to resume (not gloo's traceback), and the process group is destroyed on
    the way out, whatever happens (a group left to the interpreter's exit aborted a rank now and then, and its
    launcher hung)."""
    import torch.distributed as dist

    try:
        yield
    except BeatdbnError:
        raise
    except RuntimeError as exc:  # gloo/NCCL: "Connection closed by peer", a timeout, ...
        first = (str(exc).strip().splitlines() or ["no message"])[0][:200]
        rank = dist.get_rank() if dist.is_initialized() else os.environ.get("RANK", "?")
        raise DataError(f"rank {rank} lost the other ranks of the launch ({first}); start every launcher again "
                        f"with the same command: pretraining resumes from {out}/checkpoint.pt") from None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
