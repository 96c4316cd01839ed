"""The resumable render loop shared by the audio corpus writers.

A corpus writer lists the items not yet on disk, renders them with
:func:`render_missing` (one process per worker, progress as a running count)
and then writes its whole ``labels.csv`` with :func:`write_labels`, which is
atomic: a writer stopped part-way leaves the finished files and no
half-written labels, and its rerun renders only what is missing.
"""

from __future__ import annotations

import csv
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from beatdbn.utils.atomic import atomic_path

__all__ = ["render_missing", "write_labels"]


def render_missing(write_one: Callable[[Any], Any], todo: Sequence[Any], *, total: int, workers: int = 1,
                   chunksize: int = 4, progress: Callable[[int], None] | None = None) -> list[Any]:
    """``write_one`` over ``todo`` (in ``workers`` processes when > 1); returns the results in ``todo``'s order.

    ``progress`` is called with the number of items finished out of ``total`` (those already on disk
    count as finished), first before any work.
    """
    done = total - len(todo)
    if progress:
        progress(done)
    if not todo:
        return []
    results = []
    with ProcessPoolExecutor(max_workers=workers) if workers > 1 else _Serial() as pool:
        for res in pool.map(write_one, todo, chunksize=chunksize):
            results.append(res)
            done += 1
            if progress:
                progress(done)
    return results


class _Serial:
    """The executor interface without processes (one worker: nothing to fork)."""

    def __enter__(self) -> "_Serial":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    @staticmethod
    def map(fn: Callable[[Any], Any], items: Iterable[Any], chunksize: int = 1):
        return map(fn, items)


def write_labels(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write ``labels.csv`` atomically (UTF-8, a header then one row per item); returns its path."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path
