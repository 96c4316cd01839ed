"""Decade recognition: the MSD's ``year`` mapped to decades (the dataset's other standard benchmark).

Not in the paper. A track's class is its release decade (``1987`` →
``"1980s"``); tracks with year 0 (unknown, about half of the MSD) are left
out. Balanced: ``per_decade`` (100) tracks of each decade, drawn at random
(seeded). Classes: every decade with at least ``per_decade`` tracks (at
least two of them), or the decades ``decades`` names (``'1980s,1990s'``),
each of which must have that many. At ``scale='auto'`` ``per_decade`` is a
cap: the k largest decades that use the most tracks (k × the k-th largest),
each with 20+ tracks (``--min-test-per-class``, ``--min-per-class``);
``'auto-all-classes'``: every decade above the floor, at the smallest's size.
"""

from __future__ import annotations

from collections import Counter

from beatdbn.exceptions import ParameterError
from beatdbn.tasks.registry import TaskConfig, TaskOption, TaskSpec
from beatdbn.tasks.selection import Task, TaskScaleError, auto_balanced, balanced_task, try_auto


def decade_of(year) -> str | None:
    """``'1980s'`` for 1980-1989; None for a missing or zero year (unknown in the MSD)."""
    if year is None or not isinstance(year, (int,)) or year <= 0:
        return None
    return f"{year // 10 * 10}s"


def _named(spec: str) -> list[str]:
    names = [n.strip().lower() for n in (spec or "").split(",") if n.strip()]
    for n in names:
        if not (len(n) == 5 and n.endswith("s") and n[:4].isdigit() and n[3] == "0"):
            raise ParameterError(f"--decades {spec!r}: {n!r} is not a decade; write them as 1980s,1990s,2000s")
    if spec and len(names) < 2:
        raise ParameterError(f"--decades {spec!r}: name two or more decades (e.g. 1980s,1990s)")
    return names


def build(rows: dict, config: TaskConfig, context: dict) -> Task:
    labels = {}
    for tid, year in zip(rows["track_id"], rows["year"]):
        decade = decade_of(year)
        if decade is not None:
            labels[tid] = decade
    counts = Counter(labels.values())
    context["stats"]["decade"] = {"dated": len(labels), "undated": len(rows["track_id"]) - len(labels),
                                  "per_decade": dict(sorted(counts.items()))}
    named = _named(config.decades)
    if named:
        missing = [d for d in named if d not in counts]
        if missing:
            raise ParameterError(f"--decades: {', '.join(missing)} has no dated track in this corpus "
                                 f"(dated tracks: {', '.join(f'{d}: {n}' for d, n in sorted(counts.items()))})")
        classes = sorted(named)
    else:
        classes = sorted(d for d, n in counts.items() if n >= config.per_decade) if config.scale == "paper" \
            else sorted(counts)
    if len(classes) < 2 and config.scale == "paper":
        listing = ", ".join(f"{d}: {n}" for d, n in sorted(counts.items())) or "none"
        raise TaskScaleError(f"decade task: {config.per_decade} tracks per decade asked, but fewer than two decades "
                             f"have that many (dated tracks: {listing}). Use --per-decade N or --scale auto")
    auto, why = try_auto(lambda: auto_balanced("decade", counts, classes, config, bool(named),
                                               report=context["stats"]["decade"].setdefault("auto", {})))
    return balanced_task("decade", labels, classes, config.per_decade, "--per-decade", config,
                         auto=auto, auto_error=why)


TASK = TaskSpec(
    name="decade",
    title="decade",
    order=40,
    build=build,
    cap=lambda c: (len(_named(c.decades)) or 10, c.per_decade),
    options=(
        TaskOption("per_decade", 100, "Decade task: tracks per decade (year 0 left out); a cap with --scale auto.",
                   minimum=1),
        TaskOption("decades", "", "Decade classes: every decade with enough tracks (default) or a list "
                                  "'1980s,1990s,2000s'.", check=_named),
    ),
    columns=("year",),
    help="decade recognition: the MSD year mapped to decades, year 0 left out",
    paper=None,
    unit="tracks per decade",
)
