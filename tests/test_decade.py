"""The decade task (MSD year -> decade): a fourth task added as one module of the task registry."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.exceptions import ParameterError
from beatdbn.tasks import registry
from beatdbn.tasks.build import build_tasks, load_task
from beatdbn.tasks.kinds.decade import decade_of
from beatdbn.tasks.registry import TaskConfig


def table(years: list[int]) -> pa.Table:
    n = len(years)
    return pa.table({"track_id": [f"TR{i:06d}" for i in range(n)], "year": years,
                     "representation": ["echonest"] * n})


def test_decade_is_registered_with_its_options_and_no_paper_column():
    spec = registry.spec("decade")
    assert spec.paper is None and spec.title == "decade"
    assert {"per_decade", "decades"} <= set(registry.all_options())
    assert registry.task_names()[:3] == ("genre", "artist", "key")  # the paper's order first
    assert decade_of(1987) == "1980s" and decade_of(2000) == "2000s" and decade_of(0) is None


def test_decades_are_balanced_year_zero_left_out_and_splits_disjoint():
    years = [0] * 300 + [1975] * 40 + [1983] * 60 + [1999] * 80 + [2004] * 50 + [1955] * 5
    tasks, errors, stats = build_tasks(table(years), TaskConfig(tasks=("decade",), per_decade=30, seed=3))
    assert not errors
    task = tasks["decade"]
    assert task.classes == ["1970s", "1980s", "1990s", "2000s"]  # the 1950s has too few tracks
    ids = {s: task.track_ids(s) for s in ("train", "valid", "test")}
    every = [t for s in ids.values() for t in s]
    assert len(every) == len(set(every)) == 4 * 30
    assert all(int(t[2:]) >= 300 for t in every)  # no year-0 track
    counts = Counter(label for s in task.splits.values() for _, label in s)
    assert set(counts.values()) == {30}
    assert stats["decade"]["undated"] == 300


def test_named_decades_auto_scale_and_errors():
    years = [1975] * 40 + [1983] * 60 + [1999] * 80
    tasks, _, _ = build_tasks(table(years), TaskConfig(tasks=("decade",), decades="1980s,1990s", per_decade=50))
    assert tasks["decade"].classes == ["1980s", "1990s"]
    auto, _, _ = build_tasks(table(years), TaskConfig(tasks=("decade",), scale="auto"))
    assert auto["decade"].per_class == 40 and len(auto["decade"].classes) == 3
    _, errors, _ = build_tasks(table(years), TaskConfig(tasks=("decade",), per_decade=70))
    assert "--per-decade" in errors["decade"] and "--scale auto" in errors["decade"]
    with pytest.raises(ParameterError, match="not a decade"):
        TaskConfig(decades="1980,90s")


def test_tasks_command_builds_decade_from_the_store(demo_corpus, tmp_path):
    out = tmp_path / "tasks"
    result = CliRunner().invoke(app, ["tasks", str(demo_corpus["store"]), "--out", str(out), "--task", "decade",
                                      "--per-decade", "12"])
    assert result.exit_code == 0, result.output
    assert "decade" in result.output
    task = load_task(out, "decade")
    assert len(task.classes) >= 2 and all(c.endswith("0s") for c in task.classes)
    result = CliRunner().invoke(app, ["tasks", str(demo_corpus["store"]), "--out", str(out), "--per-decade", "0"])
    assert result.exit_code == 1 and "per_decade" in result.output


def test_every_task_option_reaches_the_commands():
    for command in ("tasks", "reproduce"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        for name in registry.all_options():
            assert "--" + name.replace("_", "-") in result.output, (command, name)
