"""Run every benchmark module, print a table, write bench-results.json."""

from __future__ import annotations

from beatdbn.utils.heap import keep_heap
from beatdbn.utils.threads import passive_wait

passive_wait()  # as the CLI entry does, before torch loads: the figures are what `beatdbn` users get
keep_heap()  # likewise (beatdbn.utils.heap); bench_convmlp measures the step without it too

import argparse  # noqa: E402
import os
import importlib
import json
import pkgutil
import platform
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks._common import Results, cpu_info

ROOT = Path(__file__).resolve().parent.parent


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("only", nargs="*", help="run only these modules (e.g. bench_align)")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    parser.add_argument("--out", default=str(ROOT / "bench-results.json"))
    args = parser.parse_args(argv)

    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                   if m.name.startswith("bench_"))
    if args.only:
        names = [n for n in names if n in args.only or n.removeprefix("bench_") in args.only]
    console = Console()
    results = Results()
    failed = []
    for name in names:
        console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        try:
            importlib.import_module(f"benchmarks.{name}").run(results, quick=args.quick)
        except Exception as exc:  # a broken benchmark is reported, the others still run
            console.print(f"[red]{name} failed: {type(exc).__name__}: {exc}")
            failed.append(name)
        console.print(f"{name}: {time.perf_counter() - t0:.1f} s")

    table = Table(title="beatdbn benchmarks")
    for col in ("figure", "value", "unit", "baseline", "baseline value", "ratio"):
        table.add_column(col, justify="right" if col in ("value", "baseline value", "ratio") else "left")
    for f in results.figures:
        table.add_row(f.name, f"{f.value:,.4g}", f.unit, f.baseline or "",
                      "" if f.baseline_value is None else f"{f.baseline_value:,.4g}",
                      "" if f.ratio is None else f"{f.ratio:.2f}x")
    console.print(table)
    payload = {
        "machine": {"platform": platform.platform(), **cpu_info(), "python": sys.version.split()[0],
                    "load_average_end": _load()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "figures": results.as_json(),
        "failed": failed,
    }
    Path(args.out).write_text(json.dumps(payload, indent=2))
    console.print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
