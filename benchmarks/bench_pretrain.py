"""Streaming pretraining from a store: peak memory and end-to-end throughput of one pass.

A synthetic demo store of 10,000 tracks (2,000 with ``--quick``) is built once
under ``.bench-data/`` (kept between runs). One pretraining pass (layers 1a+1b,
then 3, the paper's 100/100/100 maps, one track per CD-1 step) runs in a fresh subprocess; its peak
resident memory (``ru_maxrss``) is compared with the size of the store's
features loaded as float32: streaming must keep the peak far below it, and
about the same for a store 5x smaller. Throughput is beats per second of each
phase over the whole pass, reading included, for the smaller store also at
32 tracks a step (fewer, larger updates: the arithmetic's best case).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks._common import demo_store

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".bench-data"

# The pass's own peak: after the imports, the kernel's high-water mark is reset (``/proc/self/clear_refs``
# "5", Linux >= 4.0), so VmHWM afterwards is the peak *of the pass*, not of importing torch; where the reset
# is refused, a thread samples VmRSS every 10 ms instead.
_CHILD = """
import json, sys, threading, time, torch
from beatdbn.train.pretrain import PretrainConfig, pretrain

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

start = status("VmRSS")
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    how = "VmHWM after a reset"
    sampled = None
except OSError:
    how, sampled = "VmRSS sampled every 10 ms", [start]
    def sample():
        while sampled[-1] is not None:
            sampled.append(max(sampled[-1], status("VmRSS")))
            time.sleep(0.01)
    threading.Thread(target=sample, daemon=True).start()
s = pretrain(sys.argv[1], sys.argv[2], config=PretrainConfig(batch_size=int(sys.argv[3])))
peak = status("VmHWM") if sampled is None else max(sampled[-1], status("VmRSS"))
print(json.dumps({"peak_kb": peak, "start_kb": start, "how": how, "beats": s["n_beats"], "phases": s["phases"]}))
"""


def _pass(store: Path, out: Path, batch_size: int) -> dict:
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(store), str(out), str(batch_size)], capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(results, quick: bool = False) -> None:
    sizes = (500, 2000) if quick else (2000, 10000)
    for n in sizes:
        store = demo_store(n)
        r = _pass(store, DATA / f"dbn-{n}", 1)
        loaded_mb = r["beats"] * 24 * 4 / 2**20
        peak_mb, start_mb = r["peak_kb"] / 1024, r["start_kb"] / 1024
        results.add(f"pretrain pass over {n:,} demo tracks: peak memory above start", peak_mb - start_mb, "MB",
                    baseline="the store's features loaded whole", baseline_value=loaded_mb,
                    note=f"{r['beats']:,} beats; the pass's own peak {peak_mb:.0f} MB ({r['how']}) over "
                         f"{start_mb:.0f} MB resident at its start (interpreter + torch); ratio < 1 is better")
        if n != sizes[0]:
            continue
        r32 = _pass(store, DATA / f"dbn-{n}-b32", 32)  # the same pass, 32 tracks per update
        for phase, info in r["phases"].items():
            results.add(f"pretrain pass over {n:,} tracks, 1 track a step: {phase} ({'+'.join(info['stages'])})",
                        info["beats_per_s"], "beats/s", baseline="32 tracks a step",
                        baseline_value=r32["phases"][phase]["beats_per_s"],
                        note="streamed from the store, reading included")
