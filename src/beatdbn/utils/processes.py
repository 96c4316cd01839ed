"""Worker processes that never outlive their command: SIGTERM/SIGINT stop them, and none is left behind.

A command that starts processes (``pretrain --workers N``, a Dask
LocalCluster and its fork server for ``reproduce``, ``extract`` and
``predict``) runs them inside :func:`stop_on_signals`:

* SIGTERM (and SIGHUP) raise :class:`Stopped` (a ``SystemExit``, exit code
  ``128 + signal``) in the main thread, as SIGINT raises ``KeyboardInterrupt``,
  so every ``finally`` on the way out runs: clusters close, spawned ranks are
  stopped, temporary files are removed. Python's default for SIGTERM is to die
  at once, leaving the children running (reparented to init).
* Leaving the block by a signal then stops every descendant still alive
  (:func:`stop_descendants`: SIGTERM, a short wait, SIGKILL). A second signal
  during that clean-up stops them at once and exits.

:func:`die_with_parent` makes a worker process get SIGKILL when its parent
dies without cleaning up (``kill -9``; Linux only, a no-op elsewhere).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from typing import Iterator

__all__ = ["Stopped", "stop_on_signals", "stop_descendants", "descendants", "die_with_parent", "pid_alive"]

log = logging.getLogger(__name__)

_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


class Stopped(SystemExit):
    """Raised in the main thread when the command gets SIGTERM or SIGHUP (exit code ``128 + signal``)."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


def descendants(pid: int | None = None) -> list[int]:
    """Pids of every process below ``pid`` (default: this one), children first (psutil, else ``/proc``)."""
    pid = os.getpid() if pid is None else pid
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])  # after "pid (comm) state"
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(0), ()):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, already dead, counts as gone; it is reaped when it is our child)."""
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our own dead children
    except ChildProcessError:
        pass
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3] != b"Z"
    except OSError:
        pass
    return pid_alive(pid)


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` runs on this machine (or may: no permission to ask)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _keep() -> set[int]:
    """multiprocessing's resource tracker: not a worker; it exits by itself when this process does, and killed
    early it is relaunched with errors at exit."""
    try:
        from multiprocessing import resource_tracker

        pid = getattr(resource_tracker._resource_tracker, "_pid", None)
    except (ImportError, AttributeError):
        pid = None
    return {pid} if pid else set()


def stop_descendants(*, grace: float = 3.0) -> int:
    """SIGTERM every descendant of this process (but multiprocessing's resource tracker), SIGKILL those still
    alive after ``grace`` seconds; returns how many there were."""
    keep = _keep()
    pids = [p for p in descendants() if p not in keep]
    for sig, wait in ((signal.SIGTERM, grace), (getattr(signal, "SIGKILL", signal.SIGTERM), 2.0)):
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pids = [p for p in pids if _alive(p)]
            if not pids:
                break
            time.sleep(0.05)
        # processes started meanwhile (a fork server still forking) are stopped too
        pids = sorted((set(pids) | set(descendants())) - keep)
        if not pids:
            break
    return len(pids)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Run the block so that SIGTERM/SIGHUP/SIGINT stop it cleanly and leave no descendant process behind.

    In a thread other than the main one (where signal handlers cannot be set) the block just runs.
    Nested blocks keep the outer handlers and restore them on exit.

    Raises
    ------
    Stopped
        On SIGTERM or SIGHUP (a ``SystemExit``: the command exits with ``128 + signal``).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = {"stopping": False}

    def on_signal(signum, frame) -> None:
        if state["stopping"]:  # a second signal during the clean-up: stop the children now and exit
            stop_descendants(grace=0.5)
            os._exit(128 + signum)
        state["stopping"] = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(signum)

    handled = (*_SIGNALS, signal.SIGINT)
    before = {s: signal.getsignal(s) for s in handled}
    for s in handled:
        signal.signal(s, on_signal)
    try:
        yield
    except (Stopped, KeyboardInterrupt):
        state["stopping"] = True
        n = stop_descendants()
        if n:
            log.debug("stopped %d worker process(es) left after the signal", n)
        raise
    finally:
        for s, h in before.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def die_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux ``PR_SET_PDEATHSIG``); returns
    whether it was set (False on other systems)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False
