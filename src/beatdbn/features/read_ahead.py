"""Reading one input file ahead, in another process: a one-song ``beatdbn predict`` analyses the song on one core
while the command goes on (its imports, the model) on the other (:func:`beatdbn.cli.predict._read_ahead`).

:func:`start` begins :func:`~beatdbn.features.sources.read_input` of a file: in a forked daemon process where the
platform forks safely (Linux, before torch is loaded: the fork is cheap and shares nothing that threads hold),
else in a thread. Its :meth:`Ahead.result` is ``read_input``'s answer, or raises when the child died (the caller
then reads the file itself: :func:`beatdbn.inference.files._read`). The child is a daemon, ended with the
process: a command that fails before it reads the file does not wait for the analysis.

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
            try:
                ok, value = self._conn.recv()
            except (EOFError, OSError):
                ok, value = False, f"the process reading {self.path} ended without an answer"
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


def _child(conn: Any, path: Path) -> None:
    """The forked reader: one message, ``(True, answer)`` or ``(False, why)``."""
    try:
        conn.send((True, _read(path)))
    except BaseException as exc:  # noqa: BLE001 - whatever happens here is the parent's to handle
        conn.send((False, f"reading {path} ahead failed: {exc!r}"))
    finally:
        conn.close()


def _in_thread(ahead: Ahead) -> None:
    try:
        ahead._value = _read(ahead.path)
    except BaseException as exc:  # noqa: BLE001 - raised again by result()
        ahead._error = exc


def start(path: str | Path) -> Ahead:
    """Begin reading ``path`` (see the module docstring)."""
    ahead = Ahead(Path(path))
    if sys.platform.startswith("linux") and "torch" not in sys.modules:
        try:
            import multiprocessing

            ctx = multiprocessing.get_context("fork")
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(child, ahead.path), name="beatdbn-read-ahead", daemon=True)
            proc.start()
            child.close()
            ahead._conn, ahead._proc, ahead.process = parent, proc, True
        except (OSError, RuntimeError, ValueError):  # e.g. a process limit: a thread reads it
            ahead._conn = ahead._proc = None
    if not ahead.process:
        ahead._thread = threading.Thread(target=_in_thread, args=(ahead,), name="beatdbn-read-ahead", daemon=True)
        ahead._thread.start()
    return ahead
