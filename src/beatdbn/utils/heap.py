"""The process's heap policy, set once by the CLI entry and by each Dask worker's setup: freed memory is
kept for the next step instead of going back to the OS.

Why: glibc's ``malloc`` serves a request above its mmap threshold (128 KiB at first, rising with what was
freed, up to 32 MiB) with fresh pages, and gives the top of its heap back to the OS once more than its trim
threshold is free there. A training step allocates and frees the same few-MB tensors (layer maps, their
gradients, max-pool's zero-filled gradient) every step, so with the defaults each step's tensors came back
as new pages, zeroed by the kernel on first touch. Measured on this project's 2-vCPU machine, one torch
thread, a conv MLP step loop (``benchmarks/bench_convmlp.py`` has the row): about 8 ms of system time per
paper-recipe step (16 tracks x 600 beats, ~60 ms of user time) and 2 ms per beatdbn-recipe step (32 x 128,
~23 ms), none with this policy. A real job gains less, because glibc raises its threshold after the first
large block is freed (an evaluation pass). Jobs on the 878 real MSD tracks (30 epochs, one learning rate,
beside other work), system time before -> with it: beatdbn-recipe key 5.1 s -> 1.7 s (of ~75 s of CPU),
paper-recipe key 3.6 s -> 1.1 s (of ~36 s), beatdbn-recipe genre 1.5 s either way. The arithmetic is the
same (where memory lies does not change a sum): each job's models are byte-identical with and without it.

:func:`keep_heap` sets ``MALLOC_MMAP_THRESHOLD_`` (32 MiB, glibc's largest) and ``MALLOC_TRIM_THRESHOLD_``
(512 MiB) for the processes this one starts (spawned pretraining ranks, Dask's fork server and workers,
``torchrun``), unless the user set them, and applies the same to this process with ``mallopt``. Elsewhere than
glibc (macOS, musl) it does nothing. The cost: up to 512 MiB that a process freed stays in it (its peak is
unchanged). A library user's own process is never changed: only the CLI entry and beatdbn's worker setup call it.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["keep_heap", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: requests below this come from the heap (glibc's largest allowed value on 64-bit: 32 MiB)
MMAP_THRESHOLD = 32 << 20
#: free memory at the heap's top that may stay in the process before it is given back
TRIM_THRESHOLD = 512 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_SETTINGS = (("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD),
             ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def keep_heap() -> bool:
    """Keep freed memory for reuse in this process and in the processes it starts (glibc only).

    A variable the user set is respected (glibc read it when this process started) and passed on as it is.
    Returns True when both thresholds are in force here: set now, or by the user; False where malloc is not
    glibc's (nothing is changed there).
    """
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
    except (ValueError, OSError, AttributeError):  # no such name here: not glibc
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    ok = True
    for name, param, value in _SETTINGS:
        if name in os.environ:  # the user's value, read by glibc at start
            continue
        os.environ[name] = str(value)
        ok = bool(mallopt(param, value)) and ok
    return ok
