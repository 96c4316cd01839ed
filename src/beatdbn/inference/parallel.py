"""Reading inputs in parallel on Dask (the same setup as ``beatdbn extract``), results in input order.

``scheduler``: ``"sync"`` (this process), ``"local"`` (a local Dask cluster of
``workers`` processes) or the address of an existing Dask scheduler (its
workers must see the same paths). A bounded window of inputs is in flight at
a time, so memory does not grow with the number of inputs.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable, Iterator

from beatdbn.utils.cluster import check_scheduler, dask_client

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
    with dask_client(scheduler, max(1, workers)) as client:
        yield from _windowed(client, fn, items, ahead or 4 * max(1, workers))


def _windowed(client, fn: Callable[[Any], Any], items: Iterable[Any], window: int) -> Iterator[Any]:
    pending: deque = deque()
    for item in items:
        pending.append(client.submit(fn, item, pure=False))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
