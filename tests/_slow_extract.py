"""``python tests/_slow_extract.py SRC STORE [--wait]``: library-level extract with slow shard writes.

A light stand-in for ``beatdbn extract --scheduler sync --shard-size 2`` (no
torch import, so several can start quickly): a BeatdbnError becomes one
``error:`` line and exit code 1, as in the CLI. Each shard write sleeps 0.05 s;
with ``HOLD_AFTER_FIRST_SHARD=PATH`` the writes after the first one wait
until PATH exists (at most a minute), so a test can act while the run surely
holds the store.
"""

import os
import sys
import time
from pathlib import Path

import beatdbn.store.extract as extract_module
from beatdbn.exceptions import BeatdbnError

hold = os.environ.get("HOLD_AFTER_FIRST_SHARD")
_write_shard = extract_module.write_shard
_written = []


def slow_write_shard(store, data):
    time.sleep(0.05)
    if hold and _written:
        deadline = time.time() + 60
        while not Path(hold).exists() and time.time() < deadline:
            time.sleep(0.02)
    _write_shard(store, data)
    _written.append(data.shard)


if __name__ == "__main__":
    extract_module.write_shard = slow_write_shard
    src, store, *rest = sys.argv[1:]
    try:
        report = extract_module.extract(
            [src], store, scheduler="sync", shard_size=2, wait="--wait" in rest,
            on_wait=lambda pid: print(f"waiting for pid {pid}", file=sys.stderr, flush=True))
    except BeatdbnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"{report.already_done} inputs already done; store now {report.tracks_total} tracks")
