"""Atomic file writes: a kill or a full disk never leaves half a file under the final name.

Every writer in beatdbn goes through :func:`atomic_path`: it yields a temporary
name in the target's folder (same file system, so the rename is atomic),
renames it over the target when the block succeeds, and removes it when the
block fails. The temporary name carries the writer's pid, so two processes
never share one and a cleaner can tell whose leftover a file is.

A full disk, a quota or a file-size limit (``ENOSPC``, ``EDQUOT``, ``EFBIG``;
torch's "unexpected pos" from ``torch.save``) becomes one
:class:`~beatdbn.exceptions.DataError` naming the file and the free space,
not a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from beatdbn.exceptions import DataError

__all__ = ["atomic_path", "write_text", "write_json", "write_bytes", "save_torch", "disk_full_error", "TMP_MARK"]

TMP_MARK = ".tmp-"
"""Every temporary name contains this mark followed by the writer's pid."""


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on failure it is removed.

    Works for files and for folders (a folder replaces an existing folder of the
    same name only when that one is empty or absent; otherwise the old folder is
    removed first).
    """
    path = Path(path)
    tmp = _tmp_name(path)
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        if exc.errno in _FULL:
            raise disk_full_error(path, exc) from None
        raise
    except BaseException:
        _remove(tmp)
        raise


_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def disk_full_error(path: str | Path, exc: BaseException) -> DataError:
    """One line for a write that failed for lack of room: the file, why, and the free space left."""
    path = Path(path)
    base = path.parent
    while not base.exists() and base.parent != base:
        base = base.parent
    try:
        free = f"{shutil.disk_usage(base).free / 2 ** 20:,.0f} MiB free"
    except OSError:
        free = "free space unknown"
    why = {errno.EFBIG: "file-size limit reached (ulimit -f)",
           None: "disk full or file-size limit reached (ulimit -f)"}.get(getattr(exc, "errno", None), "disk full")
    return DataError(f"{path}: could not be written, {why} ({free} on {base}); free some space (or raise the "
                     f"limit) and rerun: finished work is kept")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> None:
    """Write ``obj`` as strict JSON (no NaN or Infinity: those raise ValueError) to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n")


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (torch is imported here only: it is heavy)."""
    import torch  # heavy optional import: only writers of .pt files pay for it

    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:  # torch's zip writer on a full disk: "unexpected pos", "file write failed"
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else None
            if cause is not None and cause.errno in _FULL:
                raise disk_full_error(path, cause) from None
            text = str(exc)
            if "unexpected pos" in text or "write failed" in text or "No space left" in text:
                raise disk_full_error(path, OSError(text)) from None  # which limit: torch does not say
            raise
