"""``python tests/_slow_extract.py SRC STORE [--wait]``: library-level extract with slow shard writes.

A light stand-in for ``beatdbn extract --scheduler sync --shard-size 2`` (no
torch import, so several can start quickly): a BeatdbnError becomes one
``error:`` line and exit code 1, as in the CLI. Each shard write sleeps 0.05 s
(:mod:`_slow_writer`, also for ``HOLD_AFTER_FIRST_SHARD``).
"""

import sys

import beatdbn.store.extract as extract_module
from _slow_writer import install
from beatdbn.exceptions import BeatdbnError


if __name__ == "__main__":
    install(0.05)
    src, store, *rest = sys.argv[1:]
    try:
        report = extract_module.extract(
            [src], store, scheduler="sync", shard_size=2, wait="--wait" in rest,
            on_wait=lambda pid: print(f"waiting for pid {pid}", file=sys.stderr, flush=True))
    except BeatdbnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"{report.already_done} inputs already done; store now {report.tracks_total} tracks")
