"""Shared pieces of the benchmarks: the result list and a timer."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


@dataclass
class Figure:
    """One measured figure, compared with a baseline from the same run."""

    name: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None  # value / baseline_value (higher is better for rates)
    note: str = ""


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)

    def add(self, name, value, unit, *, baseline=None, baseline_value=None, ratio=None, note=""):
        if ratio is None and baseline_value:
            ratio = value / baseline_value
        fig = Figure(name, float(value), unit, baseline,
                     None if baseline_value is None else float(baseline_value),
                     None if ratio is None else float(ratio), note)
        self.figures.append(fig)
        return fig

    def as_json(self):
        return [asdict(f) for f in self.figures]


def best_of(fn, *, repeat: int = 3, number: int = 1) -> float:
    """Best wall time in seconds of ``number`` calls of ``fn``, over ``repeat`` tries."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def cpu_info() -> dict:
    """The CPU, so that figures from machines of one kind can be told apart: ``lscpu``'s model name, the CPUs,
    and whether AMX and AVX-512 BF16 (the bf16 paths' hardware) are present (from ``/proc/cpuinfo`` flags)."""
    import os
    import platform
    import subprocess

    model, flags = platform.processor() or "", set()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
            elif key.strip() == "Flags":
                flags = set(value.split())
    except (OSError, subprocess.SubprocessError):
        pass
    if not flags:
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
        except OSError:
            pass
    return {"processor": model, "cpus": os.cpu_count(), "amx": bool({"amx_bf16", "amx_tile"} & flags),
            "avx512_bf16": "avx512_bf16" in flags}


class threads:
    """``with threads(n):`` torch intra-op threads set to ``n`` for the block (a benchmark's choice), then restored."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        import torch

        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.before)


def demo_store(n: int):
    """A synthetic demo store of ``n`` tracks under ``.bench-data/store-<n>`` (built once, kept between runs)."""
    from pathlib import Path

    from beatdbn.store.extract import extract
    from beatdbn.synth.corpus import generate_corpus

    data = Path(__file__).resolve().parents[1] / ".bench-data"
    store = data / f"store-{n}"
    if not (store / "tracks.parquet").exists():
        generate_corpus(data / f"msd-{n}", n, seed=0, n_artists=max(n // 50, 10), n_jobs=2)
        extract([data / f"msd-{n}"], store, scheduler="local", workers=2)
    return store


class busy:
    """``with busy():`` one CPU-bound process runs beside the block (the under-load figures), killed after it."""

    def __enter__(self):
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)  # running before the measurement starts
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): read into every figure measured alongside."""
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None
