"""Streaming pretraining from a store: memory, throughput at one track per update on 1 and N processes,
under load, and the projected full-MSD pass.

A synthetic demo store of 10,000 tracks (2,000 with ``--quick``) is built once
under ``.bench-data/`` (kept between runs). Every pass (layers 1a+1b, then 3,
the paper's 100/100/100 maps) runs in a fresh subprocess with the CLI's
thread policy (``OMP_WAIT_POLICY=PASSIVE``), reading included:

* **memory**: the pass's own peak resident memory, against the store's
  features loaded as float32 (streaming must keep it far below, and about the
  same for a store 5x smaller);
* **processes**: one track per CD-1 update on N = the CPUs processes of one
  thread each (``pretrain --workers N``, :mod:`beatdbn.train.ranks`), against
  one process of one thread (``pretrain``'s default), one process of N
  threads (``beatdbn --threads N pretrain``), and 32 tracks a step (fewer,
  larger updates: the arithmetic's best case);
* **under load**: the same three with one CPU-bound process beside them,
  against the idle figure of the same configuration (aim: >= 0.4x; on 2
  cores a fair share is 1x for one single-thread process, 0.67x for 2, 0.5x
  for one process of 2 threads);
* **resident**: the resident pass (``pretrain --resident on``: each phase's inputs in memory, statistics
  read every 256 steps) against the streaming pass, one process of one thread, interleaved, same run;
* **projection**: one pass over the whole MSD (4.6e8 beats through layer 1,
  then layer 3) at the measured rates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks._common import busy, demo_store, load_average
from beatdbn.train.ranks import SYNC_EVERY
from beatdbn.utils.threads import available_cpus

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".bench-data"
MSD_BEATS = 4.6e8  # the paper's pretraining pass: about 920,000 tracks

# The pass's own peak: after the imports, the kernel's high-water mark is reset (``/proc/self/clear_refs``
# "5", Linux >= 4.0), so VmHWM afterwards is the peak *of the pass*, not of importing torch; where the reset
# is refused, a thread samples VmRSS every 10 ms instead.
_CHILD = """
import json, sys, threading, time, torch
from beatdbn.train.launch import run_local
from beatdbn.train.pretrain import PretrainConfig, pretrain

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])

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
if __name__ == "__main__":
    s = run_local(pretrain, dict(store=args["store"], out=args["out"], resident=args["resident"],
                                 config=PretrainConfig(batch_size=args["batch_size"], min_beats=args["min_beats"])),
                  workers=args["workers"], sync_every=args["sync_every"], threads=args["threads"])
    peak = status("VmHWM") if sampled is None else max(sampled[-1], status("VmRSS"))
    print(json.dumps({"peak_kb": peak, "start_kb": start, "how": how, "beats": s["n_beats"], "phases": s["phases"],
                      "pass": s["pass"]}))
"""


def _pass(store: Path, out: Path, batch_size: int = 1, *, workers: int = 1, threads: int = 1,
          sync_every: int = SYNC_EVERY, min_beats: int = 0, resident: str = "auto") -> dict:
    import shutil
    import tempfile

    shutil.rmtree(out, ignore_errors=True)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:  # spawned workers re-import __main__
        f.write(_CHILD)
    args = {"store": str(store), "out": str(out), "batch_size": batch_size, "workers": workers, "threads": threads,
            "sync_every": sync_every, "min_beats": min_beats, "resident": resident}
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    env.pop("OMP_NUM_THREADS", None)
    try:
        proc = subprocess.run([sys.executable, f.name, json.dumps(args)], capture_output=True, text=True, check=True,
                              env=env, cwd=ROOT)
    finally:
        os.unlink(f.name)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["rates"] = {phase: info["beats_per_s"] for phase, info in r["phases"].items()}
    return r


def resident_vs_streaming(results, store: Path, *, repeats: int = 2) -> dict:
    """The resident pass (``--resident on``) against the streaming pass (``--resident off``) on this CPU, one
    process of one thread, one track a step, interleaved ``repeats`` times (best of each), in one run."""
    import shutil

    best: dict[str, dict] = {}
    load = [load_average()]
    for i in range(repeats):
        for mode in ("off", "on"):
            r = _pass(store, DATA / f"dbn-resident-{mode}", 1, resident=mode)
            for phase, rate in r["rates"].items():
                best.setdefault(mode, {})[phase] = max(best.get(mode, {}).get(phase, 0.0), rate)
            best[mode]["beats"] = r["beats"]
            shutil.rmtree(DATA / f"dbn-resident-{mode}", ignore_errors=True)
    load.append(load_average())
    for phase in best["on"]:
        if phase == "beats":
            continue
        results.add(f"pretrain resident pass vs streaming, 1 track a step, 1 process x 1 thread (CPU): {phase}",
                    best["on"][phase], "beats/s", baseline="the streaming pass (--resident off), same run",
                    baseline_value=best["off"][phase],
                    note=f"{best['on']['beats']:,} beats of {store.name}, loading included, best of {repeats} "
                         f"interleaved; load average {load[0]} before, {load[1]} after")
    print("resident vs streaming (CPU, 1 thread): " + ", ".join(
        f"{p} {best['on'][p]:,.0f} vs {best['off'][p]:,.0f} beats/s ({best['on'][p] / best['off'][p]:.2f}x)"
        for p in best["on"] if p != "beats") + f"; load average {load[0]} -> {load[1]}")
    return best


def _hours(rates: dict) -> float:
    return sum(MSD_BEATS / r for r in rates.values()) / 3600


def run(results, quick: bool = False) -> None:
    sizes = (500, 2000) if quick else (2000, 10000)
    n_cpu = available_cpus()
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
        one = r  # 1 process x 1 thread: `pretrain` (--workers 1; one thread at one track a step)
        resident_vs_streaming(results, store)
        load = {"one": load_average()}
        r32 = _pass(store, DATA / f"dbn-{n}-b32", 32)
        wide = _pass(store, DATA / f"dbn-{n}-t{n_cpu}", 1, threads=n_cpu)  # `beatdbn --threads N pretrain`
        many = _pass(store, DATA / f"dbn-{n}-w{n_cpu}", 1, workers=n_cpu)  # `pretrain --workers N`
        load["idle"] = load_average()
        with busy():
            loaded = {"one": _pass(store, DATA / f"dbn-{n}-busy-1", 1),
                      "many": _pass(store, DATA / f"dbn-{n}-busy-w{n_cpu}", 1, workers=n_cpu),
                      "wide": _pass(store, DATA / f"dbn-{n}-busy-t{n_cpu}", 1, threads=n_cpu)}
            load["busy"] = load_average()
        where = f"{n:,} demo tracks, streamed from the store, reading included"
        for phase, info in one["phases"].items():
            stages = "+".join(info["stages"])
            results.add(f"pretrain 1 track a step, 1 process x 1 thread (--workers 1): {phase} ({stages})",
                        one["rates"][phase], "beats/s", baseline="32 tracks a step", baseline_value=r32["rates"][phase],
                        note=f"{where}; load average {load['one']}")
            results.add(f"pretrain 1 track a step, {n_cpu} processes x 1 thread (--workers {n_cpu}): {phase}",
                        many["rates"][phase], "beats/s", baseline="1 process x 1 thread",
                        baseline_value=one["rates"][phase],
                        note=f"{where}; parameters averaged every {SYNC_EVERY} steps; load average {load['idle']}")
            results.add(f"pretrain 1 track a step, 1 process x {n_cpu} threads (--threads {n_cpu}): {phase}",
                        wide["rates"][phase], "beats/s", baseline="1 process x 1 thread",
                        baseline_value=one["rates"][phase], note=where)
            for key, name, idle in (("one", "--workers 1", one), ("many", f"--workers {n_cpu}", many),
                                    ("wide", f"--threads {n_cpu} --workers 1", wide)):
                results.add(f"pretrain under load, {name}: {phase}", loaded[key]["rates"][phase], "beats/s",
                            baseline="the same, idle", baseline_value=idle["rates"][phase],
                            note=f"one CPU-bound process beside it; load average {load['busy']} "
                                 f"(idle run: {load['idle']}); aim >= 0.4x")
        for name, r_ in (("1 process x 1 thread", one), (f"1 process x {n_cpu} threads", wide),
                         (f"{n_cpu} processes x 1 thread", many)):
            results.add(f"projected full-MSD pretraining pass (4.6e8 beats), {name}", _hours(r_["rates"]), "h",
                        baseline="1 process x 1 thread", baseline_value=_hours(one["rates"]),
                        ratio=_hours(one["rates"]) / _hours(r_["rates"]),
                        note=f"layer 1 then layer 3 at the rates above ({n:,}-track demo store); aim < 1 h; "
                             f"ratio > 1 is faster")
        print(f"pretrain 1 track/step on {n:,} tracks: " + ", ".join(
            f"{name} {r_['rates']['layer1']:,.0f}/{r_['rates']['layer3']:,.0f} beats/s"
            for name, r_ in (("1x1", one), (f"1x{n_cpu}", wide), (f"{n_cpu}x1", many),
                             ("1x1 busy", loaded["one"]), (f"{n_cpu}x1 busy", loaded["many"]),
                             (f"1x{n_cpu} busy", loaded["wide"]))) + f"; load {load}")


if __name__ == "__main__":  # the resident row alone: python -m benchmarks.bench_pretrain [N_TRACKS]
    from benchmarks._common import Results

    res = Results()
    resident_vs_streaming(res, demo_store(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
    for figure in res.figures:
        print(figure)
