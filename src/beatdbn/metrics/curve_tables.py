"""The cells of a label-efficiency curve's tables, read from its ``curve.json`` dict
(:mod:`beatdbn.pipeline.curve`): one home for the curve's own page (``curve.md``) and the run report.

>>> curve = {"summary": {"logreg": [{"n": 1, "mean": 0.5, "sd": 0.1, "low": 0.3, "high": 0.7}]},
...          "paired": [{"a": "m", "b": "logreg", "n": 1, "difference": 0.2, "low": 0.05, "high": 0.3,
...                      "p_value": 0.01, "real": True}]}
>>> ns, rows = summary_cells(curve)
>>> ns, rows
([1], [('logreg', ['50.0 ± 10.0 [30.0, 70.0]'])])
>>> paired_cells(curve, ns)
[('m − logreg', [('+20.0 [+5.0, +30.0], p = 0.010', True)])]
"""

from __future__ import annotations

__all__ = ["summary_cells", "paired_cells", "NO_CELL", "PAIRED_LEGEND"]

#: A cell without a value (the point was not run or was skipped).
NO_CELL = "\u2014"
#: How to read the paired table.
PAIRED_LEGEND = ("Paired on the same test tracks (exact McNemar, discordant pairs pooled over seeds): accuracy of the "
                 "first model minus the second, in points, [95 % interval], p")


def summary_cells(curve: dict) -> tuple[list[int], list[tuple[str, list[str]]]]:
    """``(ns, rows)``: the n of every column (points and comparisons), and per model its cells
    ``mean ± sd [95 % interval]`` in points (:data:`NO_CELL` where it has no point)."""
    ns = sorted({r["n"] for rows in curve["summary"].values() for r in rows}
                | {r["n"] for r in curve.get("paired", [])})
    out = []
    for model, rows in curve["summary"].items():
        by_n = {r["n"]: r for r in rows}
        cells = []
        for n in ns:
            r = by_n.get(n)
            if r is None:
                cells.append(NO_CELL)
                continue
            sd = f" ± {100 * r['sd']:.1f}" if r.get("sd") is not None else ""
            cells.append(f"{100 * r['mean']:.1f}{sd} [{100 * r['low']:.1f}, {100 * r['high']:.1f}]")
        out.append((model, cells))
    return ns, out


def paired_cells(curve: dict, ns: list[int]) -> list[tuple[str, list[tuple[str, bool] | None]]]:
    """Per comparison ``"A − B"``, per n: ``(difference [interval], p, real)`` in points, or None where it was not
    compared; ``real`` when the interval excludes 0."""
    out = []
    for a, b in dict.fromkeys((r["a"], r["b"]) for r in curve.get("paired", [])):
        by_n = {r["n"]: r for r in curve["paired"] if (r["a"], r["b"]) == (a, b)}
        cells: list[tuple[str, bool] | None] = []
        for n in ns:
            r = by_n.get(n)
            if r is None:
                cells.append(None)
                continue
            p = "< 0.001" if r["p_value"] < 0.001 else f"= {r['p_value']:.3f}"
            cells.append((f"{100 * r['difference']:+.1f} [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}], p {p}",
                          bool(r["real"])))
        out.append((f"{a} \u2212 {b}", cells))
    return out
