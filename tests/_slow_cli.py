"""Run the beatdbn CLI with every shard write slowed down (tests kill or race it part-way).

``python tests/_slow_cli.py SECONDS extract ...``: each shard write first
sleeps SECONDS. With ``HOLD_AFTER_FIRST_SHARD=PATH`` in the environment, the
writes after the first one also wait until PATH exists (at most a minute), so a
test can act while the run surely holds the store. The slowness is injected
here, by the test, not by a hook in beatdbn.
"""

import os
import sys
import time
from pathlib import Path

import beatdbn.store.extract as extract_module

delay = float(sys.argv.pop(1))
hold = os.environ.get("HOLD_AFTER_FIRST_SHARD")
_write_shard = extract_module.write_shard
_written = []


def slow_write_shard(store, data):
    time.sleep(delay)
    if hold and _written:
        deadline = time.time() + 60
        while not Path(hold).exists() and time.time() < deadline:
            time.sleep(0.02)
    _write_shard(store, data)
    _written.append(data.shard)


extract_module.write_shard = slow_write_shard

from beatdbn.cli import main  # noqa: E402  (after the patch)

if __name__ == "__main__":
    sys.argv[0] = "beatdbn"
    main()
