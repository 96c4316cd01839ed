"""The slow shard writer the extract-racing tests inject (by the test, not by a hook in beatdbn).

:func:`install` replaces ``beatdbn.store.extract.write_shard`` so that each shard write first sleeps
``delay`` seconds; with ``HOLD_AFTER_FIRST_SHARD=PATH`` in the environment, the writes after the first one
also wait until PATH exists (at most a minute), so a test can act while the run surely holds the store.
"""

import os
import time
from pathlib import Path

import beatdbn.store.extract as extract_module


def install(delay: float) -> None:
    hold = os.environ.get("HOLD_AFTER_FIRST_SHARD")
    write_shard = extract_module.write_shard
    written = []

    def slow_write_shard(store, data):
        time.sleep(delay)
        if hold and written:
            deadline = time.time() + 60
            while not Path(hold).exists() and time.time() < deadline:
                time.sleep(0.02)
        write_shard(store, data)
        written.append(data.shard)

    extract_module.write_shard = slow_write_shard
