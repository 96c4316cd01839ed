"""``dask worker ... --preload tests/_slow_worker.py``: a worker whose shard writes are slowed (by the test,
not by a hook in beatdbn), so that a test can SIGKILL it while an ``extract`` is running.

Each shard write first sleeps ``BEATDBN_TEST_SHARD_DELAY`` seconds (the worker's environment; default 0), as
:mod:`_slow_writer` does in-process. Numbers are unchanged: only the time a shard takes.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _slow_writer import install  # noqa: E402


def dask_setup(worker) -> None:  # Dask calls it once, in the worker process
    install(float(os.environ.get("BEATDBN_TEST_SHARD_DELAY", "0")))
