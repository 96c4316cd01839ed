"""The process's thread policy, set once by the CLI entry (library code never changes it).

Most of beatdbn's kernels are small (one track per CD-1 step, 100 x 768
SGD steps): intra-op threads gain little there and, on a busy machine, their
spin-waiting at every parallel region made steps 8-30 times slower (measured
on 2 cores). Two parts:

* :func:`passive_wait`: OpenMP threads that wait for work sleep at once
  instead of spinning (``OMP_WAIT_POLICY=PASSIVE``, unless the user set it).
  It must run before torch loads its OpenMP runtime, so the CLI entry
  (``beatdbn.cli``) calls it first thing; spawned workers and Dask workers
  inherit it. With one busy process beside it on 2 cores, a CD-1 step loop
  on 2 threads ran 1.8-4x faster passive than with libgomp's default or
  ACTIVE spinning (``benchmarks/bench_pretrain.py`` measures the idle and
  loaded rates).
* :func:`apply_threads`: ``beatdbn --threads N`` sets torch's intra-op
  threads for the whole command; the default is the CPUs this process may
  use. Commands that start several processes give each its share
  (``pretrain --workers N``: ``cpus // N``).
* :func:`cap_workers`: worker processes are capped at the CPUs this process
  may use (``--workers 100000`` starts as many as there are CPUs, and says so).
"""

from __future__ import annotations

import logging
import os

__all__ = ["available_cpus", "apply_threads", "passive_wait", "cap_workers"]

log = logging.getLogger(__name__)


def passive_wait() -> bool:
    """Ask OpenMP threads to sleep rather than spin while they wait (before torch is imported).

    Returns True when the policy is in force: set here or by the user, and
    torch not yet loaded with another (an already-loaded OpenMP runtime has
    read its environment).
    """
    import sys

    if "torch" in sys.modules and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"


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


def cap_workers(workers: int | None, *, option: str = "--workers") -> int | None:
    """``workers`` capped at :func:`available_cpus` (None stays None: the caller's default), with one
    warning line when it is lowered.

    Examples
    --------
    >>> cap_workers(1)
    1
    """
    if workers is None:
        return None
    cpus = available_cpus()
    if workers > cpus:
        log.warning("%s %d: this process may use %d CPU%s; starting %d worker process%s", option, workers, cpus,
                    "" if cpus == 1 else "s", cpus, "" if cpus == 1 else "es")
        return cpus
    return workers
