"""train/runner: the run directory every model shares (finished?, record, metrics, checkpoints)."""

from __future__ import annotations

import json

import pytest
import torch

from beatdbn.exceptions import DataError
from beatdbn.metrics.results import ExperimentResult
from beatdbn.train import runner


def finished_run(out, settings, *, model_ok: bool = True):
    out.mkdir(parents=True, exist_ok=True)
    (out / "model").mkdir()
    (out / "model" / "ok" if model_ok else out / "model" / "broken").write_text("x")
    r = ExperimentResult("key", "logreg", classes=["C", "D"], chance=0.5,
                         runs=[{"learning_rate": 0.1, "epoch": 1, "valid_accuracy": 0.5, "test_accuracy": 0.5}])
    r.extra["settings"] = settings
    r.save(out)


def loader(model_dir):
    if not (model_dir / "ok").exists():
        raise ValueError("cannot read the weights")
    return "model"


def test_finished_returns_a_run_of_the_same_settings_and_refuses_others(tmp_path):
    settings = runner.settings_of(task="key", model="logreg", config={"epochs": 2, "learning_rates": [0.1]},
                                  splits="abc")
    assert runner.finished(tmp_path / "none", settings) is None
    finished_run(tmp_path / "run", settings)
    assert runner.finished(tmp_path / "run", settings, load=loader).model == "logreg"
    other = runner.settings_of(task="key", model="logreg", config={"epochs": 3, "learning_rates": [0.1]},
                               splits="abc")
    with pytest.raises(DataError, match="epochs was 2, now 3"):
        runner.finished(tmp_path / "run", other)
    # another learning-rate sweep only: redone (None), reusing the rates it shares
    wider = runner.settings_of(task="key", model="logreg", config={"epochs": 2, "learning_rates": [0.1, 0.01]},
                               splits="abc")
    assert runner.finished(tmp_path / "run", wider) is None
    with pytest.raises(DataError, match="splits was 'abc', now 'xyz'"):
        runner.finished(tmp_path / "run", {**settings, "splits": "xyz"})


def test_a_finished_run_whose_model_does_not_load_is_not_finished(tmp_path):
    settings = runner.settings_of(task="key", model="logreg", config={}, splits="abc")
    finished_run(tmp_path / "run", settings, model_ok=False)
    with pytest.raises(DataError, match="does not load .*ValueError: cannot read the weights.*delete"):
        runner.finished(tmp_path / "run", settings, load=loader)


def test_metrics_round_trip_and_jsonable(tmp_path):
    rows = [{"epoch": 1, "loss": 0.5, "test_accuracy": None}, {"epoch": 2, "loss": 0.25, "test_accuracy": 0.75}]
    runner.write_metrics(tmp_path / "m.csv", rows, ("epoch", "loss", "test_accuracy"))
    back = runner.read_metrics(tmp_path / "m.csv")
    assert back == [{"epoch": 1.0, "loss": 0.5}, {"epoch": 2.0, "loss": 0.25, "test_accuracy": 0.75}]
    assert runner.read_metrics(tmp_path / "m.csv", upto=1) == back[:1]
    assert runner.jsonable({"a": (1, float("nan")), "b": {"c": float("inf")}}) == {"a": [1, None], "b": {"c": None}}
    runner.write_record(tmp_path, {"model": "logreg", "x": float("nan")})
    record = json.loads((tmp_path / "config.json").read_text())  # strict JSON: NaN became null
    assert record["x"] is None and "torch" in record["versions"]


def test_checkpoints_carry_their_format_and_settings(tmp_path):
    path = tmp_path / "checkpoint.pt"
    runner.save_checkpoint({"epoch": 3, "model": {"w": torch.ones(2)}}, path, fmt="demo/1", expect={"lr": 0.1})
    state = runner.load_checkpoint(path, fmt="demo/1", expect={"lr": 0.1}, what="demo")
    assert state["epoch"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))
    with pytest.raises(DataError, match="another lr"):
        runner.load_checkpoint(path, fmt="demo/1", expect={"lr": 0.2}, what="demo")
    with pytest.raises(DataError, match="not a beatdbn demo checkpoint"):
        runner.load_checkpoint(path, fmt="other/1", expect={}, what="demo")
    assert runner.lr_dir(tmp_path, 5e-5).name == "lr-5e-05"
