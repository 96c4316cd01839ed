"""The writers' lock of a feature store: one writer at a time.

``STORE/.lock`` is locked with ``fcntl.flock`` (an OS-level lock: it dies with
its process, so a killed writer never leaves a stale lock behind) and holds the
writer's pid, so a second writer can name the holder::

    with StoreLock(store):            # DataError "... is being written by ... (pid 1234)"
        ...
    with StoreLock(store, wait=True):  # blocks until the holder is done
        ...

``beatdbn extract`` and ``beatdbn check --repair`` take it; readers do not
need it (shards are committed atomically). On file systems without ``flock``
(some network mounts) the lock raises :class:`~beatdbn.exceptions.DataError`
saying so rather than letting two writers in.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import Callable

from beatdbn.exceptions import DataError
from beatdbn.utils.processes import pid_alive

__all__ = ["StoreLock", "LOCK_FILE", "pid_alive"]

LOCK_FILE = ".lock"


class StoreLock:
    """An exclusive ``flock`` on ``STORE/.lock`` holding the writer's pid.

    Parameters
    ----------
    store : path
        The store folder (created if needed).
    wait : bool
        Block until the lock is free instead of raising.
    on_wait : callable, optional
        Called with the holder's pid before blocking (``wait=True``).
    """

    def __init__(self, store, *, wait: bool = False, on_wait: Callable[[int | None], None] | None = None):
        self.store = Path(store)
        self.path = self.store / LOCK_FILE
        self.wait = wait
        self.on_wait = on_wait
        self._fd: int | None = None

    def holder(self) -> int | None:
        """The pid written by the current (or last) holder, if any."""
        try:
            text = self.path.read_text().strip()
            return int(text) if text else None
        except (OSError, ValueError):
            return None

    def acquire(self) -> "StoreLock":
        try:
            self.store.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DataError(f"{self.store}: cannot create the store's lock file ({exc.strerror or exc})") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = self.holder()
                if not self.wait:
                    who = f"pid {pid}" if pid else "pid unknown"
                    raise DataError(f"{self.store} is being written by another beatdbn process ({who}); "
                                    f"wait for it to finish, or re-run with --wait") from None
                if self.on_wait:
                    self.on_wait(pid)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise DataError(f"{self.store}: the file system does not support locks ({exc.strerror}); "
                                    f"write the store on a local disk") from None
                raise
            # the pid: written in place (the lock file must keep its inode), read by a second writer
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
