"""Pretraining throughput at one track per CD-1 update against the number of processes (``--workers N``).

Each configuration is a fresh pass (benchmarks/bench_pretrain's subprocess, the CLI's thread policy) over
one store; ``--min-beats`` makes small stores long enough to time. Prints one JSON line per configuration
and a table with the speed-up over 1 process x 1 thread and the projected full-MSD pass (4.6e8 beats per
layer). Usage (on a machine with many cores)::

    python scripts/pretrain_scaling.py STORE --workers 1 2 4 8 16 --min-beats 2000000 --out scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_pretrain import MSD_BEATS, _pass  # noqa: E402
from beatdbn.train.ranks import SYNC_EVERY  # noqa: E402
from beatdbn.utils.threads import available_cpus  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--min-beats", type=int, default=0)
    ap.add_argument("--sync-every", type=int, default=SYNC_EVERY)
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        configs = [(w, 1) for w in args.workers] + [(1, available_cpus())]
        for workers, threads in configs:
            r = _pass(Path(args.store), Path(tmp) / f"w{workers}t{threads}", 1, workers=workers, threads=threads,
                      sync_every=args.sync_every, min_beats=args.min_beats)
            row = {"workers": workers, "threads": threads, "sync_every": args.sync_every, "rates": r["rates"],
                   "beats": r["beats"], "load": os.getloadavg()[0]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = rows[0]["rates"]
    print(f"\n{'processes x threads':>20} {'layer1 beats/s':>15} {'layer3 beats/s':>15} {'speed-up':>9} {'MSD pass':>9}")
    for row in rows:
        r = row["rates"]
        hours = sum(MSD_BEATS / v for v in r.values()) / 3600
        speed = sum(1 / v for v in base.values()) / sum(1 / v for v in r.values())
        print(f"{row['workers']:>14} x {row['threads']:<3} {r['layer1']:>15,.0f} {r['layer3']:>15,.0f} "
              f"{speed:>8.2f}x {hours:>7.2f} h")
    if args.out:
        Path(args.out).write_text(json.dumps({"cpus": available_cpus(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
