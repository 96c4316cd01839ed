"""Provenance of a run: library versions and the git commit of the source tree."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

__all__ = ["run_versions", "git_commit"]


def git_commit() -> str | None:
    """The commit checked out in the source tree of this package (read from ``.git``, no git process)."""
    for parent in Path(__file__).resolve().parents:
        dot = parent / ".git"
        if not dot.exists():
            continue
        try:
            gitdir = dot
            if dot.is_file():  # a worktree: "gitdir: <path>"
                gitdir = (parent / dot.read_text().split(":", 1)[1].strip()).resolve()
            common = gitdir
            if (gitdir / "commondir").exists():
                common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
            head = (gitdir / "HEAD").read_text().strip()
            if not head.startswith("ref:"):
                return head
            ref = head.split(":", 1)[1].strip()
            for base in (gitdir, common):
                if (base / ref).exists():
                    return (base / ref).read_text().strip()
            packed = common / "packed-refs"
            if packed.exists():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0]
        except OSError:
            return None
        return None
    return None


def run_versions() -> dict[str, Any]:
    """Versions of Python, torch, numpy, scikit-learn and beatdbn, and the git commit (None outside a checkout)."""
    import numpy as np
    import sklearn
    import torch

    import beatdbn

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "sklearn": sklearn.__version__,
            "beatdbn": beatdbn.__version__, "git_commit": git_commit(), "platform": platform.platform()}
