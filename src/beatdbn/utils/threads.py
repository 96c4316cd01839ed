"""The process's thread policy, set once by the CLI entry (library code never changes it).

Most of beatdbn's kernels are small (one track per CD-1 step, 100 x 768
SGD steps): intra-op threads gain little there and, on a busy machine, their
spin-waiting at every parallel region made steps 8-30 times slower (measured
on 2 cores). ``beatdbn --threads N`` sets torch's intra-op threads for the
whole command; the default is the CPUs this process may use.
"""

from __future__ import annotations

import os

__all__ = ["available_cpus", "apply_threads"]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def apply_threads(n: int | None) -> int:
    """Set torch's intra-op threads to ``n`` (None: :func:`available_cpus`); returns the number set.

    Raises
    ------
    ValueError
        ``n`` is below 1.
    """
    import torch  # heavy: imported when the policy is applied, not when this module is

    n = available_cpus() if n is None else int(n)
    if n < 1:
        raise ValueError(f"--threads {n}: must be 1 or more")
    torch.set_num_threads(n)
    return n
