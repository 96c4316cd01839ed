"""Known MSD duplicates (``msd_duplicates.txt``): keep one track per group.

The file's format, as LabROSA distributes it::

    # comment lines start with '#'
    %1040297 Justin Bieber - I'll be        <- '%' opens a group (id, free text)
    TRNRIKG128F931E56B
    TRJIVKQ128F428A1B4
    %1040298 ...

Of each group the first listed track that is in the corpus is kept; the
others are dropped before any task or pretraining set is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from beatdbn.exceptions import DataError

__all__ = ["read_duplicates", "duplicates_to_drop"]


def read_duplicates(path) -> list[list[str]]:
    """Parse a duplicates file into groups of track ids.

    Raises
    ------
    DataError
        The file is missing, or has track ids before any ``%`` group line.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the duplicates file ({exc.strerror or exc})") from None
    groups: list[list[str]] = []
    current: list[str] | None = None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("%"):
            current = []
            groups.append(current)
            continue
        if current is None:
            raise DataError(f"{path}:{n}: track id before any '%' group line; is this msd_duplicates.txt?")
        current.append(line.split()[0])
    return [g for g in groups if g]


def duplicates_to_drop(groups: list[list[str]], present: Iterable[str]) -> set[str]:
    """Track ids to drop: all but the first present member of each group."""
    present = set(present)
    drop: set[str] = set()
    for group in groups:
        members = [t for t in group if t in present]
        drop.update(members[1:])
    return drop
