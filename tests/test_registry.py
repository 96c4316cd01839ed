"""tasks/registry: a task is one TaskSpec; building, writing, Table 1 and the config all follow the registry."""

from __future__ import annotations

import pyarrow as pa
import pytest

from beatdbn.evaluate.table import Table1
from beatdbn.exceptions import ParameterError
from beatdbn.metrics.results import ExperimentResult
from beatdbn.tasks import registry
from beatdbn.tasks.build import build_tasks, load_task, write_tasks
from beatdbn.tasks.registry import TaskConfig, TaskOption, TaskSpec
from beatdbn.tasks.selection import balanced_task


def _tempo_task(rows, config, context):
    labels = {t: ("fast" if (tempo or 0) >= 120 else "slow") for t, tempo in zip(rows["track_id"], rows["tempo"])}
    return balanced_task("tempo", labels, ["fast", "slow"], config.per_tempo, "--per-tempo", config)


TEMPO = TaskSpec(name="tempo", title="tempo", order=50, build=_tempo_task, cap=lambda c: (2, c.per_tempo),
                 options=(TaskOption("per_tempo", 10, "Tempo task: tracks per class.", minimum=1),),
                 columns=("tempo",))


@pytest.fixture
def with_tempo(monkeypatch):
    monkeypatch.setattr(registry, "_SPECS", {**registry.specs(), "tempo": TEMPO})
    return TEMPO


def test_a_new_task_needs_nothing_but_its_spec(with_tempo, tmp_path):
    n = 60
    table = pa.table({"track_id": [f"TR{i:04d}" for i in range(n)], "tempo": [80.0 + 2 * i for i in range(n)],
                      "representation": ["echonest"] * n})
    config = TaskConfig(tasks=("tempo",), per_tempo=10)
    assert config.per_tempo == 10 and "tempo" in registry.task_names()
    tasks, errors, stats = build_tasks(table, config)
    assert not errors and tasks["tempo"].classes == ["fast", "slow"]
    summary = write_tasks(tmp_path, tasks, config=config, errors=errors, stats=stats, dropped=set())
    assert summary["tasks"]["tempo"]["paper_scale"] == "\u2014" and load_task(tmp_path, "tempo").counts()["train"] == 16
    result = ExperimentResult("tempo", "naive_bayes", classes=["fast", "slow"], chance=0.5,
                              runs=[{"learning_rate": None, "epoch": 0, "valid_accuracy": 0.9, "test_accuracy": 0.8}])
    md = Table1([result], tasks=("tempo",)).to_markdown()
    assert "tempo" in md and "80.00%" in md


def test_unknown_tasks_and_options_are_named():
    with pytest.raises(ParameterError, match="unknown task 'mood'; choose from genre, artist, key, decade"):
        TaskConfig(tasks=("mood",))
    with pytest.raises(ParameterError, match="unknown task option 'per_mood'"):
        TaskConfig(per_mood=3)
    with pytest.raises(ParameterError, match="per_key must be an int >= 1"):
        TaskConfig(per_key=0)
    assert TaskConfig.from_dict(TaskConfig(per_key=7).to_dict()) == TaskConfig(per_key=7)
