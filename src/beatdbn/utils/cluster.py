"""Where parallel work runs: a Dask ``LocalCluster`` of single-thread worker processes, a scheduler address
(a cluster the user already runs), or in this process (``sync``). Extraction, prediction and the Table 1
sweep all choose with the same ``--scheduler`` value.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

from beatdbn.exceptions import ParameterError

__all__ = ["check_scheduler", "dask_client", "default_workers"]


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
    """One worker per CPU this process may use (at most 8)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


@contextlib.contextmanager
def dask_client(scheduler: str, workers: int | None = None) -> Iterator:
    """A ``dask.distributed.Client``: on a new ``LocalCluster`` of ``workers`` single-thread processes
    (``'local'``), or connected to a running scheduler (an address); closed on exit.

    Raises
    ------
    ParameterError
        A bad ``scheduler``, or an address that cannot be reached.
    """
    check_scheduler(scheduler)
    if scheduler == "sync":
        raise ParameterError("scheduler 'sync' runs in this process: no Dask client")
    from dask.distributed import Client, LocalCluster  # heavy: only runs that use Dask import it

    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise ParameterError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc})") from None
    try:
        yield client
    finally:
        if cluster is not None:
            cluster.close()  # workers first, then the scheduler: no heartbeat errors
        client.close()
