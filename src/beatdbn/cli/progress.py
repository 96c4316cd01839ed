"""Rich progress bars shared by the commands."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

__all__ = ["progress_bar", "counting_bar"]


def progress_bar(console, *, transient: bool = False) -> Progress:
    """A bar with count, percentage, rate text, elapsed and remaining time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )


@contextlib.contextmanager
def counting_bar(console, name: str, total: int, *, unit: str = "items",
                 fmt: str = ",.0f") -> Iterator[Callable[[int], None]]:
    """A :func:`progress_bar` over ``total`` items; yields ``advance(done)``, which also shows ``done / s``."""
    with progress_bar(console) as bar:
        job = bar.add_task(name, total=total, rate="")
        t0 = time.perf_counter()

        def advance(done: int) -> None:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar.update(job, completed=done, rate=f"{rate:{fmt}} {unit}/s")

        yield advance
