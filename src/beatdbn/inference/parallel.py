"""Reading inputs in parallel on Dask (the same setup as ``beatdbn extract``), results in input order.

``scheduler``: ``"sync"`` (this process), ``"local"`` (a local Dask cluster of
``workers`` processes) or the address of an existing Dask scheduler (its
workers must see the same paths). A bounded window of inputs is in flight at
a time, so memory does not grow with the number of inputs.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable, Iterable, Iterator

from beatdbn.exceptions import ParameterError
from beatdbn.store.extract import check_scheduler

__all__ = ["map_inputs"]


def map_inputs(fn: Callable[[Any], Any], items: Iterable[Any], *, scheduler: str = "sync", workers: int = 1,
               ahead: int | None = None) -> Iterator[Any]:
    """``fn(item)`` for every item, in order; on Dask when ``scheduler`` is not ``"sync"``.

    Raises
    ------
    ParameterError
        A bad ``scheduler`` or an unreachable Dask scheduler.
    """
    check_scheduler(scheduler)
    if scheduler == "sync":
        yield from map(fn, items)
        return
    from dask.distributed import Client, LocalCluster  # heavy: only parallel runs import Dask

    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise ParameterError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc})") from None
    window = ahead or 4 * max(1, workers)
    try:
        pending: deque = deque()
        for item in items:
            pending.append(client.submit(fn, item, pure=False))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
