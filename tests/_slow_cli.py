"""Run the beatdbn CLI with every shard write slowed down (tests kill or race it part-way).

``python tests/_slow_cli.py SECONDS extract ...``: the slowness is injected
here, by the test, not by a hook in beatdbn.
"""

import sys
import time

import beatdbn.store.extract as extract_module

delay = float(sys.argv.pop(1))
_write_shard = extract_module.write_shard


def slow_write_shard(store, data):
    time.sleep(delay)
    _write_shard(store, data)


extract_module.write_shard = slow_write_shard

from beatdbn.cli import main  # noqa: E402  (after the patch)

sys.argv[0] = "beatdbn"
main()
