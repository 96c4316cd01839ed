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

What a line holds is never cut to fit: off a terminal a line is written whole
(however narrow the console); on a narrow terminal the bar shrinks or goes,
then the description, then the head of a message (``…lr=0.05 epoch 3/10:
loss 55.203, valid 0.412``), so the counts, the percentage, the last clause of
the message (a loss, an accuracy) and the times stay (:func:`fit_row`).
A task whose total is a share of the work (the float 1.0; an int total is a
count, even 1) shows as a percentage only; a rate
below one per second is given per minute; a ``unit`` field names what is
counted (default "items"); a stage's ``now: ...`` note is left off its
``done`` line. A caller that knows better than the count's own rate gives the
ETA itself: an ``eta`` field (seconds, or a text such as "after the first
job") with an optional ``eta_basis`` ("from the running jobs' epoch rates"),
shown as ``eta 12:10 (from ...)`` (:func:`eta_text`); ``eta=None`` goes back to
the count's.

The global options are set once by the app callback (:func:`configure`).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from rich.console import Group
from rich.progress import Progress
from rich.progress_bar import ProgressBar
from rich.table import Column, Table
from rich.text import Text

__all__ = ["progress_bar", "counting_bar", "configure", "settings", "PlainProgress", "SilentProgress",
           "FitProgress", "fit_row", "format_seconds", "format_rate", "eta_text"]


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
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,.1f}"


def format_rate(per_second: float | None, unit: str = "items") -> str:
    """``12.34 -> '12.3 items/s'``; below one a second, per minute (``0.1 -> '6.0 items/min'``); unknown -> ''."""
    if not per_second or per_second != per_second or per_second < 0:
        return ""
    return f"{per_second:,.1f} {unit}/s" if per_second >= 1 else f"{per_second * 60:,.1f} {unit}/min"


#: A field that already holds a rate ("109,745 beats/s"): the line then shows no items/s of its own.
_HAS_RATE = re.compile(r"\d\s*\S*/(s|min)\b")
#: Fields that describe the task rather than inform (not printed as text).
_META = ("rate", "unit", "eta", "eta_basis", "eta_at")


def eta_text(fields: dict, computed: float | None, now: float | None = None) -> str:
    """The ETA shown for a task with these ``fields``: the caller's ``eta`` (seconds, or a text) when given,
    else ``computed`` (seconds; None: unknown), then the caller's ``eta_basis`` in parentheses (none after "?").
    Seconds given at clock time ``eta_at`` (set by the progress display when the caller gives them) count down
    to ``now``, so a line between two of the caller's updates does not repeat a stale figure.

    Examples
    --------
    >>> eta_text({}, 75.0), eta_text({"eta": "after the first job"}, 9000.0)
    ('1:15', 'after the first job')
    >>> eta_text({"eta": 730.0, "eta_basis": "from the running jobs' epoch rates"}, 9000.0)
    "12:10 (from the running jobs' epoch rates)"
    >>> eta_text({"eta_basis": "at most"}, 90.0), eta_text({"eta_basis": "at most"}, None)
    ('1:30 (at most)', '?')
    """
    given = fields.get("eta")
    if isinstance(given, (int, float)) and fields.get("eta_at") is not None and now is not None:
        given = max(float(given) - (now - fields["eta_at"]), 0.0)
    text = format_seconds(computed) if given is None else (
        given if isinstance(given, str) else format_seconds(float(given)))
    basis = fields.get("eta_basis")
    return f"{text} ({basis})" if basis and text != "?" else text


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    fields: dict = field(default_factory=dict)
    start: float = field(default_factory=time.monotonic)
    finished: bool = False
    #: when the job began and its count then: a stage that continues its job's count (a pass, an epoch) keeps
    #: them, so elapsed, rate and ETA are the job's, as its counts are (an ETA from one stage's seconds and
    #: the whole job's count was far too short)
    job_start: float | None = None
    job_base: float = 0.0

    def __post_init__(self) -> None:
        if self.job_start is None:
            self.job_start = self.start

    def line(self, now: float, *, stage_end: bool = False) -> str:
        """``description: count (pct), rate, elapsed, eta [fields]``. The rate carries a unit: the caller's
        ``rate`` field when it gives one (e.g. "1,234 beats/s"), else items per second in plain digits.
        ``stage_end``: a stage of a longer job ended (the counts are the job's: "17% of the job")."""
        elapsed = now - self.job_start
        done = self.completed - self.job_base
        rate = done / elapsed if elapsed > 0 and done > 0 else None
        # a share of the work (a float total of 1.0, as reproduce's whole run), not a count (an int, even 1)
        fraction = isinstance(self.total, float) and 0 < self.total <= 1.0
        of_job = " of the job" if stage_end else ""
        if fraction:  # "9%", not "0.09/1 (9%)"
            count = f"{100 * self.completed / self.total:.0f}%{of_job}"
        else:
            count = _num(self.completed) + (f"/{_num(self.total)}" if self.total else "")
            count += f" ({100 * self.completed / self.total:.0f}%{of_job})" if self.total else ""
        texts = [str(v) for k, v in self.fields.items() if k not in _META and v not in (None, "")]
        if self.finished or stage_end:  # where a stage now is means nothing once it is over
            texts = [t for t in texts if not t.startswith("now:")]
        given = self.fields.get("rate")
        own = "" if fraction or any(_HAS_RATE.search(t) for t in texts) else format_rate(
            rate, self.fields.get("unit") or "items")
        rate_s = f", {given}" if given else (f", {own}" if own else "")
        eta = (self.total - self.completed) / rate if rate and self.total else None
        eta_s = f", eta {eta_text(self.fields, eta, now)}" if self.total and not self.finished and not stage_end else ""
        extra = " ".join(texts)
        return (f"{self.description}: {count}{rate_s}, elapsed {format_seconds(elapsed)}{eta_s}"
                + (f" [{extra}]" if extra else ""))


class PlainProgress:
    """rich ``Progress``'s interface, printing plain lines (see the module docstring)."""

    def __init__(self, console, *, every: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.every = every
        self._clock = clock
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
                    self._print_done_line(t, stopped=exc[0] is not None or bool(t.total and t.completed < t.total))

    def add_task(self, description: str, total: float | None = 100.0, completed: float = 0, **fields: Any) -> int:
        with self._lock:
            tid = len(self._tasks)
            self._tasks[tid] = _Task(str(description), total, float(completed or 0), dict(fields),
                                     start=self._clock())
            return tid

    def update(self, task_id: int, *, total: float | None = None, completed: float | None = None,
               advance: float | None = None, description: str | None = None, visible: bool | None = None,
               refresh: bool = False, **fields: Any) -> None:
        with self._lock:
            t = self._tasks[task_id]
            if description is not None and str(description) != t.description:
                if t.completed and not t.finished:
                    self._print_done_line(t, stage_end=True)  # a new stage in the same task: the previous one is done
                new_total = total if total is not None else t.total
                goes_on = new_total == t.total and (completed if completed is not None else t.completed) >= t.completed
                now = self._clock()
                new = _Task(str(description), new_total, t.completed if goes_on else 0.0, dict(t.fields), start=now,
                            job_start=t.job_start if goes_on else now, job_base=t.job_base if goes_on else 0.0)
                self._tasks[task_id] = t = new
            if total is not None:
                t.total = total
            if completed is not None:
                t.completed = float(completed)
            if advance is not None:
                t.completed += float(advance)
            t.fields.update(fields)
            if "eta" in fields:
                t.fields["eta_at"] = self._clock()  # a caller's ETA counts down from now (eta_text)
            if t.total and t.completed >= t.total and not t.finished:
                self._print_done_line(t)
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

    def _print_done_line(self, t: _Task, *, stopped: bool = False, stage_end: bool = False) -> None:
        t.finished = True
        self._print(("stopped " if stopped else "done ") + t.line(self._clock(), stage_end=stage_end))

    def _tick(self) -> None:
        while not self._stop.wait(self.every):
            with self._lock:
                now = self._clock()
                for t in self._tasks.values():
                    if not t.finished:
                        self._print("progress " + t.line(now))


class SilentProgress(PlainProgress):
    """``--quiet``: the same interface, no output."""

    def __init__(self, console=None, **_: Any):
        super().__init__(console, every=0)

    def _print(self, text: str) -> None:
        pass


#: The widest bar drawn, and the narrowest worth drawing.
BAR_MAX, BAR_MIN = 40, 10
#: A description is shortened to no fewer characters than this (then the message's head goes).
DESCRIPTION_MIN = 12


def _cut_head(text: str, width: int, *, keep: int = 0) -> str:
    """``text`` in ``width`` characters, losing its head: "…" and the end, from a word's start where one is near
    (never fewer than ``keep`` characters of the end)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    start = len(text) - (width - 1)
    tail = text[start:]
    space = tail.find(" ")
    if text[start - 1] != " " and 0 <= space < len(tail) // 3 and len(tail) - space - 1 >= max(keep, 1):
        tail = tail[space + 1:]
    return "…" + tail


def _cut_tail(text: str, width: int) -> str:
    return text if len(text) <= width else (text[:max(width - 1, 0)] + "…")[:max(width, 0)]


def fit_row(width: int, *, description: str, count: str, percent: str, message: str, times: str
            ) -> tuple[str, int, str, str, str, str]:
    """Fit a progress row into ``width`` columns without cutting what it tells.

    Returns ``(description, bar_width, count, percent, message, times)``, each
    kept whole when the row fits. When it does not, in this order: the bar
    shrinks to :data:`BAR_MIN` columns and then goes; the description is cut
    at its end to :data:`DESCRIPTION_MIN`; the message loses its head ("…"),
    never its last clause (after the last ": ", e.g. "loss 55.203, valid
    0.412"); the times go; the description is cut further. The count, the
    percentage and the message's last clause are never cut (a console
    narrower than those wraps the row).

    Examples
    --------
    >>> row = fit_row(73, description="artist/convmlp_pretrained", count="3/20", percent="15%",
    ...               message="convmlp_pretrained artist lr=0.05 epoch 3/10: loss 55.203, valid 0.412",
    ...               times="0:32 eta 0:04")
    >>> row[-2]
    '…epoch 3/10: loss 55.203, valid 0.412'
    """
    parts = [p for p in (count, percent, times) if p]
    fixed = sum(len(p) + 1 for p in parts)  # each with the space before it

    def need(desc: str, msg: str, bar: int, with_times: bool = True) -> int:
        return (len(desc) + (bar + 1 if bar else 0) + fixed - (0 if with_times or not times else len(times) + 1)
                + (len(msg) + 1 if msg else 0))

    room = width - need(description, message, 0)
    if room >= BAR_MIN + 1:
        return description, min(BAR_MAX, room - 1), count, percent, message, times
    if room >= 0:
        return description, 0, count, percent, message, times
    desc = _cut_tail(description, max(DESCRIPTION_MIN, width - need("", message, 0)))
    if need(desc, message, 0) <= width:
        return desc, 0, count, percent, message, times
    last = message.rsplit(": ", 1)[-1]
    essential = len(last) + (1 if last != message else 0)  # "…" + the last clause
    msg_room = width - need(desc, "", 0) - 1
    if message and msg_room >= essential:
        return desc, 0, count, percent, _cut_head(message, msg_room, keep=len(last)), times
    msg = _cut_head(message, essential, keep=len(last)) if message else ""
    if need(desc, msg, 0) <= width:
        return desc, 0, count, percent, msg, times
    desc = _cut_tail(desc, width - need("", msg, 0, with_times=False))  # the times go, then the description
    return desc, 0, count, percent, msg, ""


class FitProgress(Progress):
    """rich's ``Progress`` drawing each task as one row fitted to the terminal by :func:`fit_row`: description,
    bar, count (totals above 1), percentage, the task's text fields (``rate``, ``info``...), elapsed and ETA."""

    def update(self, task_id, **kwargs: Any) -> None:  # noqa: D102  (rich's, stamping a caller's ETA: eta_text)
        if "eta" in kwargs:
            kwargs["eta_at"] = self.get_time()
        super().update(task_id, **kwargs)

    def make_tasks_table(self, tasks):  # noqa: D102  (rich's hook)
        return Group(*(self._row(task) for task in tasks if task.visible))

    def _row(self, task) -> Table:
        total = task.total
        count = f"{_num(task.completed)}/{_num(total)}" if total and total > 1 else ""
        percent = f"{task.percentage:.0f}%" if total else ""
        message = " ".join(str(v) for k, v in task.fields.items()
                           if k not in ("unit", "eta", "eta_basis", "eta_at") and v not in (None, ""))
        times = format_seconds(task.finished_time if task.finished else task.elapsed)
        if total and not task.finished:
            times += f" eta {eta_text(task.fields, task.time_remaining, self.get_time())}"
        desc, bar, count, percent, message, times = fit_row(
            self.console.width, description=str(task.description), count=count, percent=percent, message=message,
            times=times)
        texts = [x for x in (desc, count, percent, message, times) if x]
        if sum(len(x) + 1 for x in texts) - 1 > self.console.width:  # narrower than the figures: wrapped, whole
            return Text(" ".join(texts))
        cells = [(desc, None)] + ([(ProgressBar(total=total, completed=task.completed, width=bar), bar)] if bar
                                  else []) + [(x, None) for x in (count, percent, message, times) if x]
        grid = Table.grid(*(Column(no_wrap=True, width=w) for _, w in cells), padding=(0, 1))
        grid.add_row(*(c for c, _ in cells))
        return grid


def progress_bar(console, *, transient: bool = False, columns: tuple | None = None):
    """A progress display for ``console``: a rich bar on a terminal, plain lines off one, nothing when quiet.

    ``columns`` is accepted for older callers and not used: on a terminal
    every task is drawn as :class:`FitProgress` draws it (its text fields, e.g.
    ``rate`` or ``info``, after the percentage), fitted to the width.
    """
    del columns
    if _SETTINGS.quiet:
        return SilentProgress(console)
    if not console.is_terminal:
        return PlainProgress(console, every=_SETTINGS.every)
    return FitProgress(console=console, transient=transient)


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
