"""Run the beatdbn CLI with every shard write slowed down (tests kill or race it part-way).

``python tests/_slow_cli.py SECONDS extract ...``: each shard write first
sleeps SECONDS (:mod:`_slow_writer`, also for ``HOLD_AFTER_FIRST_SHARD``).
"""

import sys

from _slow_writer import install

install(float(sys.argv.pop(1)))

from beatdbn.cli import main  # noqa: E402  (after the patch)

if __name__ == "__main__":
    sys.argv[0] = "beatdbn"
    main()
