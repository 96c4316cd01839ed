"""Reading one input file ahead, in another process: a one-song ``beatdbn predict`` analyses the song on one core
while the command goes on (its imports, the model) on the other (:func:`beatdbn.cli.predict._read_ahead`).

:func:`start` begins :func:`~beatdbn.features.sources.read_input` of a file: in a forked daemon process where the
platform forks safely (Linux, before torch is loaded and while this is the process's only thread: the fork is
cheap and shares nothing that threads hold), else in a thread. Its :meth:`Ahead.result` is ``read_input``'s answer, or raises when the child died (the caller
then reads the file itself: :func:`beatdbn.inference.files._read`). The child is a daemon, ended with the
process: a command that fails before it reads the file does not wait for the analysis. It never outlives its
parent either: it holds no copy of the parent's end of the pipe, and it gets SIGTERM when the parent dies.

This module imports nothing heavy: :mod:`beatdbn.features.sources` (soundfile, scipy, the front-end) is imported by
the reader.

Starting it earlier was measured and does not pay: forked from the ``beatdbn`` entry, before the CLI's imports
(0.2 s sooner), the child must import numpy and the rest itself beside the parent's imports, and a 3-minute song's
whole predict took 0.96-1.12 s against 0.94-1.00 s forked from ``predict`` (7 runs each, alternating, idle
machine, 2026-12-05).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["Ahead", "start"]


class Ahead:
    """A reading of one file in progress: :meth:`result` waits for it (``read_input``'s ``(name, tracks)``).

    Attributes
    ----------
    path : Path
        The file being read, as given.
    process : bool
        True when a child process reads it, False for a thread.
    """

    def __init__(self, path: Path):
        self.path = path
        self.process = False
        self._conn: Any = None
        self._proc: Any = None
        self._thread: threading.Thread | None = None
        self._value: Any = None
        self._error: BaseException | None = None

    def __fspath__(self) -> str:  # it stands for its file in a list of inputs (beatdbn.inference.files)
        return str(self.path)

    def result(self) -> Any:
        """``read_input(path)``'s answer.

        Raises
        ------
        RuntimeError
            The child process died before it answered (killed, out of memory), or the reader raised.
        """
        if self._thread is not None:
            self._thread.join()
        elif self._conn is not None:
            ok, value = False, f"the process reading {self.path} ended without an answer"
            try:
                ok, value = self._conn.recv()
            except (EOFError, OSError):
                pass
            except Exception as exc:  # noqa: BLE001 - e.g. an answer that does not unpickle: kept for every call
                value = f"the answer of the process reading {self.path} is unreadable: {exc!r}"
            finally:
                self._conn.close()
                self._conn = None
                self._proc.join(timeout=5)
                self._value, self._error = (value, None) if ok else (None, RuntimeError(value))
        if self._error is not None:
            raise self._error
        return self._value


def _read(path: Path) -> Any:
    from beatdbn.features.sources import read_input  # reason: lazy, the child (or the thread) imports the reader

    return read_input(path)


def _child(conn: Any, other_end: Any, path: Path, parent_pid: int) -> None:
    """The forked reader: one message, ``(True, answer)`` or ``(False, why)``.

    It closes its copy of the parent's end first: were the parent to die without reading (killed, ``os._exit``),
    a large answer would otherwise block this process in ``send`` for ever, holding the pipe (and the command's
    stdout) open. And it asks the kernel for SIGTERM when the parent dies (Linux), so that it stops analysing.
    """
    other_end.close()
    _die_with_parent(parent_pid)
    try:
        conn.send((True, _read(path)))
    except BaseException as exc:  # noqa: BLE001 - whatever happens here is the parent's to handle
        try:
            conn.send((False, f"reading {path} ahead failed: {exc!r}"))
        except OSError:  # the parent is gone
            pass
    finally:
        conn.close()


def _die_with_parent(parent_pid: int) -> None:
    """SIGTERM to this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``); nothing where it is not
    available. A parent that died before the call is caught by the pid check."""
    import os
    import signal

    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        os._exit(0)


def _in_thread(ahead: Ahead) -> None:
    try:
        ahead._value = _read(ahead.path)
    except BaseException as exc:  # noqa: BLE001 - raised again by result()
        ahead._error = exc


def start(path: str | Path) -> Ahead:
    """Begin reading ``path`` (see the module docstring)."""
    ahead = Ahead(Path(path))
    if sys.platform.startswith("linux") and "torch" not in sys.modules and threading.active_count() == 1:
        import multiprocessing
        import os

        parent = child = None
        try:
            ctx = multiprocessing.get_context("fork")
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(child, parent, ahead.path, os.getpid()),
                               name="beatdbn-read-ahead", daemon=True)
            proc.start()
            child.close()
            ahead._conn, ahead._proc, ahead.process = parent, proc, True
        except (OSError, RuntimeError, ValueError, AssertionError, DeprecationWarning):
            # a process limit, a daemonic caller (a Dask worker), -W error on a fork warning: a thread reads it
            for end in (parent, child):
                if end is not None:
                    end.close()
            ahead._conn = ahead._proc = None
    if not ahead.process:
        ahead._thread = threading.Thread(target=_in_thread, args=(ahead,), name="beatdbn-read-ahead", daemon=True)
        ahead._thread.start()
    return ahead
