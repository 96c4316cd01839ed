"""beatdbn benchmarks: `python -m benchmarks` (or `make bench`).

Each ``bench_*.py`` module defines ``run(results: Results, quick: bool)`` that
measures one hot stage against a baseline timed in the same run and calls
``results.add(...)``. The runner prints one table and writes
``bench-results.json`` at the project root.
"""
