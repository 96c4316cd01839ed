"""Progress for every command: rich bars on a terminal, plain lines in logs, nothing with ``--quiet``.

:func:`progress_bar` returns an object with rich's ``Progress`` interface
(``with bar:``, ``add_task``, ``update``, ``advance``):

* on a terminal, a rich bar (count, percentage, rate, elapsed, ETA);
* off a terminal (CI, ``nohup``, ``tee``, a scheduler, ``make demo > log``),
  a :class:`PlainProgress`: a line per running task every
  ``--progress-every`` seconds (default 30) and one line per finished stage
  (a task that reaches its total, or whose description changes), each with
  counts, rate and ETA;
* with ``--quiet``, nothing.

The global options are set once by the app callback (:func:`configure`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

__all__ = ["progress_bar", "counting_bar", "configure", "settings", "PlainProgress", "SilentProgress",
           "format_seconds"]


@dataclass
class _Settings:
    quiet: bool = False
    every: float = 30.0


_SETTINGS = _Settings()


def configure(*, quiet: bool | None = None, every: float | None = None) -> None:
    """Set the global progress options (the app callback calls this)."""
    if quiet is not None:
        _SETTINGS.quiet = bool(quiet)
    if every is not None:
        _SETTINGS.every = float(every)


def settings() -> _Settings:
    return _SETTINGS


def format_seconds(s: float | None) -> str:
    """``75 -> '1:15'``, ``3725 -> '1:02:05'``; unknown -> '?'."""
    if s is None or s != s or s in (float("inf"), float("-inf")) or s < 0:
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,.2f}"


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    fields: dict = field(default_factory=dict)
    start: float = field(default_factory=time.monotonic)
    finished: bool = False

    def line(self, now: float, *, stage_end: bool = False) -> str:
        """``description: count (pct), rate, elapsed, eta [fields]``. The rate carries a unit: the caller's
        ``rate`` field when it gives one (e.g. "1,234 beats/s"), else items per second in plain digits.
        ``stage_end``: a stage of a longer job ended (the counts are the job's: "17% of the job")."""
        elapsed = now - self.start
        rate = self.completed / elapsed if elapsed > 0 and self.completed > 0 else None
        fraction = bool(self.total) and self.total <= 1.0  # a share of the work, not a count: no rate shown
        count = _num(self.completed) + (f"/{_num(self.total)}" if self.total else "")
        pct = (f" ({100 * self.completed / self.total:.0f}%{' of the job' if stage_end else ''})"
               if self.total else "")
        given = self.fields.get("rate")
        rate_s = f", {given}" if given else (f", {rate:,.1f} items/s" if rate and not fraction else "")
        eta = (self.total - self.completed) / rate if rate and self.total else None
        eta_s = f", eta {format_seconds(eta)}" if self.total and not self.finished and not stage_end else ""
        extra = " ".join(str(v) for k, v in self.fields.items() if k != "rate" and v not in (None, ""))
        return (f"{self.description}: {count}{pct}{rate_s}, elapsed {format_seconds(elapsed)}{eta_s}"
                + (f" [{extra}]" if extra else ""))


class PlainProgress:
    """rich ``Progress``'s interface, printing plain lines (see the module docstring)."""

    def __init__(self, console, *, every: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.every = every
        self._tasks: dict[int, _Task] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- rich's interface -----------------------------------------------------------------
    def __enter__(self) -> "PlainProgress":
        if self.every > 0:
            self._thread = threading.Thread(target=self._tick, name="beatdbn-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            for t in self._tasks.values():  # a stage still open at the end: say where it stopped
                if not t.finished and t.completed:
                    self._finish(t, stopped=exc[0] is not None or bool(t.total and t.completed < t.total))

    def add_task(self, description: str, total: float | None = 100.0, completed: float = 0, **fields: Any) -> int:
        with self._lock:
            tid = len(self._tasks)
            self._tasks[tid] = _Task(str(description), total, float(completed or 0), dict(fields))
            return tid

    def update(self, task_id: int, *, total: float | None = None, completed: float | None = None,
               advance: float | None = None, description: str | None = None, visible: bool | None = None,
               refresh: bool = False, **fields: Any) -> None:
        with self._lock:
            t = self._tasks[task_id]
            if description is not None and str(description) != t.description:
                if t.completed and not t.finished:
                    self._finish(t, stage_end=True)  # a new stage in the same task: the previous one is done
                new = _Task(str(description), total if total is not None else t.total, 0.0, dict(t.fields))
                self._tasks[task_id] = t = new
            if total is not None:
                t.total = total
            if completed is not None:
                t.completed = float(completed)
            if advance is not None:
                t.completed += float(advance)
            t.fields.update(fields)
            if t.total and t.completed >= t.total and not t.finished:
                self._finish(t)
            elif t.finished and t.total and t.completed < t.total:
                t.finished = False

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def remove_task(self, task_id: int) -> None:
        with self._lock:
            self._tasks.pop(task_id, None)

    def refresh(self) -> None:
        pass

    @property
    def tasks(self) -> list[_Task]:
        return list(self._tasks.values())

    # -- lines ----------------------------------------------------------------------------
    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def _finish(self, t: _Task, *, stopped: bool = False, stage_end: bool = False) -> None:
        t.finished = True
        self._print(("stopped " if stopped else "done ") + t.line(time.monotonic(), stage_end=stage_end))

    def _tick(self) -> None:
        while not self._stop.wait(self.every):
            with self._lock:
                now = time.monotonic()
                for t in self._tasks.values():
                    if not t.finished:
                        self._print("progress " + t.line(now))


class SilentProgress(PlainProgress):
    """``--quiet``: the same interface, no output."""

    def __init__(self, console=None, **_: Any):
        super().__init__(console, every=0)

    def _print(self, text: str) -> None:
        pass


def _rich_columns() -> tuple:
    return (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())


def progress_bar(console, *, transient: bool = False, columns: tuple | None = None):
    """A progress display for ``console``: a rich bar on a terminal, plain lines off one, nothing when quiet.

    ``columns``: rich columns for the terminal bar (default: count, percentage,
    the ``rate`` field, elapsed, ETA; tasks then need a ``rate`` field).
    """
    if _SETTINGS.quiet:
        return SilentProgress(console)
    if not console.is_terminal:
        return PlainProgress(console, every=_SETTINGS.every)
    return Progress(*(columns or _rich_columns()), console=console, transient=transient)


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
