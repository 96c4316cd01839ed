"""The input files of a command: files as given, folders searched recursively.

Folders are walked in sorted order, symlinked sub-folders followed once (a
link loop is not followed twice), and every file whose suffix is an input
suffix (MSD ``.h5``/``.hdf5``, audio) is taken if it is a regular file (not a
pipe, socket or device, which would block or never end a reader). A path that does not exist is
passed through, so that the caller reports it as a failed input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

from beatdbn.features.sources import INPUT_SUFFIXES

__all__ = ["iter_inputs", "is_folder_input"]


def is_folder_input(path: str | Path) -> bool:
    return Path(path).is_dir()


def _walk(folder: Path) -> Iterator[Path]:
    seen: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a symlink loop, or a folder reached twice
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if not name.lower().endswith(INPUT_SUFFIXES) or name.startswith("."):
                continue
            # not a FIFO or device with an input's name (it would block or never end the reader); a dangling
            # link is still passed on, to be reported as missing
            if path.is_file() or not path.exists():
                yield path


def iter_inputs(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every input file named by ``paths`` (folders expanded recursively), in order, each once."""
    done: set[str] = set()
    for p in paths:
        p = Path(p)
        for f in (_walk(p) if p.is_dir() else (p,)):
            key = os.path.realpath(f)
            if key in done:
                continue
            done.add(key)
            yield f
