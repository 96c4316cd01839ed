"""Shared checks of command-line options: a bad value gives one line, never a traceback.

Each check raises :class:`~beatdbn.exceptions.ParameterError` (which
:func:`beatdbn.cli.command` prints as ``error: ...``, exit code 1) and is
meant to run first in a command, before anything is created on disk::

    check_device(device)            # cpu, cuda, cuda:N (when this torch build and machine have it), mps
    check_workers(workers)          # None or >= 1
    check_scheduler(scheduler)      # local, sync, tcp://HOST:PORT (checked even when one shard needs no Dask)
    check_out(out)                  # a folder that can be created/written (nothing is created)
    check_out_file(path)            # a file that can be created/replaced
    check_options(device=..., out=..., workers=...)   # the ones given, in one line

and :func:`model_and_inputs` reads ``[RUN_DIR] FILES...`` against ``--task``
for the commands that apply a model to files (``predict``, ``embed``).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Sequence

from beatdbn.exceptions import ParameterError
from beatdbn.utils.cluster import check_scheduler as _check_scheduler

__all__ = ["check_device", "check_workers", "check_scheduler", "check_out", "check_out_file", "check_options",
           "model_and_inputs", "check_model_task"]

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")


def check_device(device: str, option: str = "--device") -> str:
    """``device`` when this machine can use it, else ParameterError saying what to use instead."""
    if not _DEVICE.match(device or ""):
        raise ParameterError(f"{option} {device!r}: expected cpu, cuda, cuda:N or mps")
    if device == "cpu":
        return device
    import torch  # heavy: only a non-cpu device needs asking

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ParameterError(f"{option} {device}: {why}; use {option} cpu")
        if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
            raise ParameterError(f"{option} {device}: only {torch.cuda.device_count()} CUDA device(s) "
                                 f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    elif device == "mps" and not torch.backends.mps.is_available():
        raise ParameterError(f"{option} mps: not available on this machine; use {option} cpu")
    return device


def check_workers(workers: int | None, option: str = "--workers") -> int | None:
    """``workers`` when None (the default) or at least 1."""
    if workers is not None and workers < 1:
        raise ParameterError(f"{option} {workers}: expected 1 or more worker processes (or leave it out)")
    return workers


def check_scheduler(scheduler: str) -> str:
    """``scheduler`` when it is 'local', 'sync' or a Dask address (checked whatever the number of shards)."""
    _check_scheduler(scheduler)
    return scheduler


def check_out(out, option: str = "--out") -> Path:
    """``out`` when it is (or can become) a writable folder; nothing is created.

    The nearest existing folder on its path must take a new file (probed with a
    temporary file, so read-only mounts and permissions are caught even for root).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{option} {out}: exists and is not a folder")
    _check_writable(out, out, option)
    return out


def _check_writable(out: Path, named: Path, option: str) -> None:
    """Raise unless a new file can be made in the nearest existing folder on ``out``'s path."""
    base = out
    while not base.exists():
        if base.parent == base:
            break
        base = base.parent
    if not base.is_dir():
        raise ParameterError(f"{option} {named}: {base} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=base, prefix=".beatdbn-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ParameterError(f"{option} {named}: cannot write in {base} ({reason})") from None
    if not os.access(base, os.W_OK | os.X_OK):
        raise ParameterError(f"{option} {named}: cannot write in {base} (permission denied)")


def check_out_file(path, option: str = "--out") -> Path:
    """``path`` when it is (or can become) a writable file: not a folder, its folder writable."""
    path = Path(path)
    if path.is_dir():
        raise ParameterError(f"{option} {path}: is a folder; expected a file name")
    _check_writable(path.parent, path, option)
    return path


def check_options(*, device: str | None = None, out=None, out_file=None, workers: int | None = None,
                  scheduler: str | None = None) -> None:
    """Run the checks of the options given (None: not given), so a command needs one line."""
    if device is not None:
        check_device(device)
    if workers is not None:
        check_workers(workers)
    if scheduler is not None:
        check_scheduler(scheduler)
    if out is not None:
        check_out(out)
    if out_file is not None:
        check_out_file(out_file)


def _is_model_folder(path: Path) -> bool:
    """A run directory, a model folder (conv MLP, baseline, DBN), or one of a model folder's two files."""
    if path.name in ("model.pt", "config.json"):
        return True
    return path.is_dir() and ((path / "config.json").is_file() or (path / "model.pt").is_file()
                              or (path / "model").is_dir())


def model_and_inputs(paths: Sequence[Path], task: str | None, *, command: str, model: str = "RUN_DIR"
                     ) -> tuple[Path | None, list[Path]]:
    """``[RUN_DIR] FILES...`` read against ``--task``: the model folder given (None: use the model shipped for
    ``task``) and the inputs.

    Without ``task`` the first path must be a model folder and inputs must follow it; with ``task`` a first path
    that is a model folder is still the model (check its task with :func:`check_model_task`), else all paths
    are inputs.

    Raises
    ------
    ParameterError
        No model folder first without ``--task``, or no inputs after the model folder.
    """
    paths = [Path(p) for p in paths]
    first = paths[0]
    usage = (f"give `beatdbn {command} {model} FILES...`, or `beatdbn {command} --task key FILES...` for the shipped "
             f"key model")
    if not _is_model_folder(first):
        if task is None:
            raise ParameterError(f"{first}: not a run directory or model folder; {usage}")
        return None, paths
    if len(paths) < 2:
        raise ParameterError(f"no inputs after {first}: {usage}")
    return first, paths[1:]


def check_model_task(path: Path, model_task: str | None, task: str | None) -> None:
    """Raise ParameterError when ``--task`` is given and the model at ``path`` is for another task."""
    if task is not None and model_task and model_task != task:
        raise ParameterError(f"{path}: its model is for task {model_task!r}, not --task {task!r}")
