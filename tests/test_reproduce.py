"""beatdbn reproduce: the twelve experiments end to end on the demo corpus, resumable, Table 1 honest."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.evaluate.results import ExperimentResult
from beatdbn.models.dbn import DBNConfig
from beatdbn.tasks.build import TaskConfig
from beatdbn.train.baselines import BaselineConfig
from beatdbn.train.finetune import FinetuneConfig
from beatdbn.train.pretrain import PretrainConfig
from beatdbn.train.reproduce import EXPERIMENTS, ReproduceConfig, reproduce

TINY = ReproduceConfig(
    tasks=TaskConfig(artists=4, per_artist=20, per_genre=6, per_key=16, seed=0),
    dbn=DBNConfig(n_maps_1a=8, n_maps_1b=8, n_maps_3=6),
    pretrain=PretrainConfig(batch_size=64),
    finetune=FinetuneConfig(learning_rates=(0.05,), epochs=2, snapshot_epochs=(1, 2)),
    baselines=BaselineConfig(learning_rates=(5e-4, 5e-5), epochs=2),
    quick=True,
)


def test_reproduce_runs_every_experiment_and_resumes(demo_corpus, tmp_path):
    out = tmp_path / "run"
    stages = []
    record = reproduce(demo_corpus["store"], out, config=TINY, progress=lambda p: stages.append(p["stage"]))
    for task in ("artist", "genre", "key"):
        for model in EXPERIMENTS:
            result = ExperimentResult.load(out / "experiments" / task / model)
            assert result.task == task and result.model == model
            assert f"{task}/{model}" in stages and f"{task}/{model}" in record["timings"]
    table = json.loads((out / "table.json").read_text())
    ours = json.dumps(table)
    # every number of ours comes from a result file: the key task's naive Bayes accuracy appears in the table
    nb = ExperimentResult.load(out / "experiments" / "key" / "naive_bayes").select()["test_accuracy"]
    assert f"{nb:.4f}"[:5] in ours or str(round(nb, 4)) in ours
    assert (out / "report.html").exists() and (out / "report.md").exists()
    assert (out / "dbn" / "model.pt").exists() and (out / "tasks" / "exclude.txt").exists()
    assert record["projected"]["total_seconds"] > 0
    # a rerun resumes: nothing is retrained (the trainers return their result.json)
    before = {p: p.stat().st_mtime_ns for p in (out / "experiments").rglob("result.json")}
    reproduce(demo_corpus["store"], out, config=TINY)
    after = {p: p.stat().st_mtime_ns for p in (out / "experiments").rglob("result.json")}
    assert before == after


def test_reproduce_refuses_other_settings_and_cli_reports(demo_corpus, tmp_path):
    out = tmp_path / "run"
    (out).mkdir()
    (out / "config.json").write_text(json.dumps({"config": {"quick": False}}))
    result = CliRunner().invoke(app, ["reproduce", str(demo_corpus["store"]), "--out", str(out), "--quick"])
    assert result.exit_code == 1 and "other settings" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["report", str(empty)])
    assert result.exit_code == 0 and (empty / "report.html").exists()
