"""Where parallel work runs: a Dask ``LocalCluster`` of single-thread worker processes, a scheduler address
(a cluster the user already runs), or in this process (``sync``). Extraction, prediction and the Table 1
sweep all choose with the same ``--scheduler`` value.

:func:`dask_client` opens a client and closes it on exit. :class:`BackgroundClient` starts one in a
background thread, so that starting the cluster and setting up its workers (:func:`worker_setup`: one
torch thread, the heavy imports done once, ``gc.freeze``) overlaps the caller's own work; it is closed in
the background too. Measured on 2 cores: two spawned workers importing torch and beatdbn took ~8 s and
closing them ~3.7 s (their interpreters' teardown of torch's objects). With a setup, a LocalCluster's
workers are forked from a fork server that imported the modules once (one import for all workers, ~10 s
idle and up to ~20 s on a busy machine; a second cluster in the same process starts in 0.4 s), and they
close in 0.1 s.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
from typing import Any, Iterator, Sequence

from beatdbn.exceptions import ParameterError
from beatdbn.utils.heap import keep_heap
from beatdbn.utils.processes import die_with_parent, stop_on_signals
from beatdbn.utils.threads import apply_threads, available_cpus, cap_workers

__all__ = ["check_scheduler", "dask_client", "default_workers", "worker_setup", "quiet_dask", "dask_verbose",
           "VERBOSE_ENV", "BackgroundClient"]


def check_scheduler(scheduler: str) -> None:
    """Raise ParameterError unless ``scheduler`` is 'local', 'sync' or a Dask address."""
    if scheduler in ("local", "sync"):
        return
    if scheduler.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
        return
    host, _, port = scheduler.rpartition(":")
    if host and port.isdigit():
        return
    raise ParameterError(f"--scheduler {scheduler!r}: expected 'local', 'sync' or an address like tcp://HOST:8786")


def default_workers() -> int:
    """One worker per CPU this process may use (:func:`~beatdbn.utils.threads.available_cpus`; at most 8)."""
    return max(1, min(available_cpus(), 8))


#: Set (to anything but "", "0" or "false") to let Dask's own log lines through, as ``--verbose`` would.
VERBOSE_ENV = "BEATDBN_VERBOSE"


def dask_verbose() -> bool:
    """Whether Dask's INFO and WARNING lines should reach the user: ``BEATDBN_VERBOSE`` is set, or beatdbn's own
    logger is verbose (INFO or DEBUG enabled, as a ``--verbose`` flag sets it)."""
    if os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return True
    return logging.getLogger("beatdbn").isEnabledFor(logging.INFO)


def quiet_dask() -> bool:
    """Keep Dask's INFO and WARNING lines (scheduler, nanny, worker start and stop, "Port 8787 is already in
    use") off the user's terminal unless :func:`dask_verbose`; returns whether they are silenced. Errors
    still show."""
    if dask_verbose():
        return False
    logging.getLogger("distributed").setLevel(logging.ERROR)
    return True


def worker_setup(threads: int = 1, imports: Sequence[str] = ()) -> int:
    """What a worker process does once, before its first task: ``threads`` torch intra-op threads (one per
    Dask thread: the process-wide policy is set here, at the worker's entry, not in library code), the
    modules ``imports`` imported (torch and beatdbn take seconds), then ``gc.freeze()`` (the imported objects
    leave the garbage collector's scans; the process exits in 0.35 s instead of 1.4 s). Returns the threads set."""
    import gc
    import importlib

    die_with_parent()  # its parent (the fork server or nanny) killed outright: this worker goes too
    keep_heap()  # also on a worker that a user started (dask worker ...): see beatdbn.utils.heap
    n = apply_threads(threads)
    for name in imports:
        importlib.import_module(name)
    gc.freeze()
    return n


def _setup_plugin(threads: int, imports: Sequence[str]) -> Any:
    """A Dask WorkerPlugin running :func:`worker_setup` on every worker, also on one that joins or restarts later
    (defined here so that importing this module does not import Dask; Dask pickles it by value)."""
    from distributed import WorkerPlugin

    class BeatdbnWorkerSetup(WorkerPlugin):
        name = "beatdbn-worker-setup"

        def __init__(self, threads: int, imports: tuple[str, ...]):
            self.threads, self.imports = threads, imports

        def setup(self, worker) -> None:
            worker_setup(self.threads, self.imports)

    return BeatdbnWorkerSetup(threads, tuple(imports))


def _preload(modules: Sequence[str]) -> None:
    """Have the fork server import ``modules`` once (before it starts; a started one keeps its list): a worker
    forked from it starts with them imported, instead of importing them itself."""
    from distributed.utils import get_mp_context

    with __import__("dask").config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        ctx = get_mp_context()  # Dask's own preload list is set here, once; ours replaces it
    ctx.set_forkserver_preload(list(dict.fromkeys(modules)))


@contextlib.contextmanager
def dask_client(scheduler: str, workers: int | None = None, *, setup: Sequence[str] | None = None,
                saturation: float | None = None) -> Iterator:
    """A ``dask.distributed.Client``: on a new ``LocalCluster`` of ``workers`` single-thread processes
    (``'local'``), or connected to a running scheduler (an address); closed on exit.

    ``setup``: modules every worker imports once, with one torch thread and ``gc.freeze`` (:func:`worker_setup`,
    also on workers that join or restart later); None: no setup. With a setup, a LocalCluster's workers are
    forked from a fork server that imported those modules once (where the platform has one): N workers
    cost one import of torch and beatdbn instead of N, and start in a fraction of a second. ``saturation``: the LocalCluster scheduler's
    ``worker-saturation`` (1.0: a worker gets its next task only when it is free, so long jobs run in the
    order of their priorities; Dask's default 1.1 queues one more on each worker).

    Raises
    ------
    ParameterError
        A bad ``scheduler``, or an address that cannot be reached.
    """
    check_scheduler(scheduler)
    if scheduler == "sync":
        raise ParameterError("scheduler 'sync' runs in this process: no Dask client")
    with stop_on_signals():  # SIGTERM/SIGINT close the cluster; no worker or fork server is left behind
        yield from _client(scheduler, workers, setup=setup, saturation=saturation)


def _client(scheduler: str, workers: int | None, *, setup: Sequence[str] | None, saturation: float | None
            ) -> Iterator:
    import dask
    from dask.distributed import Client, LocalCluster  # heavy: only runs that use Dask import it

    cluster = None
    if scheduler == "local":
        settings = {} if saturation is None else {"distributed.scheduler.worker-saturation": saturation}
        if setup is not None and "forkserver" in multiprocessing.get_all_start_methods():
            settings["distributed.worker.multiprocessing-method"] = "forkserver"
            _preload(["distributed", *setup])
        quiet = quiet_dask()
        with dask.config.set(settings):
            # no dashboard, and the scheduler's HTTP server (always started) on a free port of localhost: never
            # "Port 8787 is already in use", never listening beyond this machine
            cluster = LocalCluster(n_workers=cap_workers(workers) or default_workers(), threads_per_worker=1,
                                   processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR if quiet else False,
                                   scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
        client = Client(cluster)
    else:
        quiet_dask()
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise ParameterError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc})") from None
    try:
        if setup is not None:
            client.register_plugin(_setup_plugin(1, setup))
        yield client
    finally:
        if cluster is not None:
            cluster.close()  # workers first, then the scheduler: no heartbeat errors
        client.close()


class BackgroundClient:
    """:func:`dask_client` started in a background thread: the cluster starts and its workers set up while
    the caller works; :meth:`client` waits for it. :meth:`close` closes it in the background (:meth:`join`
    waits); used as a context manager, leaving the block closes it and waits."""

    def __init__(self, scheduler: str, workers: int | None = None, **kwargs: Any):
        check_scheduler(scheduler)
        self._stack = contextlib.ExitStack()
        self._client = None
        self._error: BaseException | None = None
        self._closer: threading.Thread | None = None
        self._starter = threading.Thread(target=self._start, args=(scheduler, workers, kwargs), daemon=True,
                                         name="beatdbn-dask-start")
        self._starter.start()

    def _start(self, scheduler: str, workers: int | None, kwargs: dict) -> None:
        try:
            self._client = self._stack.enter_context(dask_client(scheduler, workers, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread by client()
            self._error = exc

    def ready(self) -> bool:
        """Whether :meth:`client` would return (or raise) at once."""
        return not self._starter.is_alive()

    def client(self):
        """The client, once the cluster is up and its workers set up.

        Raises
        ------
        ParameterError
            As :func:`dask_client` (and any error of the cluster's start).
        """
        self._starter.join()
        if self._error is not None:
            raise self._error
        return self._client

    def close(self) -> None:
        """Close the client and its cluster in a background thread (once)."""
        if self._closer is None:
            self._closer = threading.Thread(target=self._close, daemon=True, name="beatdbn-dask-close")
            self._closer.start()

    def _close(self) -> None:
        self._starter.join()
        try:
            self._stack.close()
        except Exception as exc:  # noqa: BLE001 - a cluster that fails to close must not fail the run
            logging.getLogger(__name__).warning("closing the Dask cluster: %s: %s", type(exc).__name__, exc)

    def join(self) -> None:
        """Wait until :meth:`close` is done (closes first when it was not asked)."""
        self.close()
        self._closer.join()

    def __enter__(self) -> "BackgroundClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.join()
