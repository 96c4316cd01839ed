"""train/runner: the run directory every model shares (finished?, record, metrics, checkpoints)."""

from __future__ import annotations

import json

import pytest
import torch

from beatdbn.exceptions import DataError
from beatdbn.metrics.results import ExperimentResult
from beatdbn.train import rundir


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
    settings = rundir.settings_of(task="key", model="logreg", config={"epochs": 2, "learning_rates": [0.1]},
                                  splits="abc")
    assert rundir.finished(tmp_path / "none", settings) is None
    finished_run(tmp_path / "run", settings)
    assert rundir.finished(tmp_path / "run", settings, load=loader).model == "logreg"
    other = rundir.settings_of(task="key", model="logreg", config={"epochs": 3, "learning_rates": [0.1]},
                               splits="abc")
    with pytest.raises(DataError, match="epochs was 2, now 3"):
        rundir.finished(tmp_path / "run", other)
    # another learning-rate sweep only: redone (None), reusing the rates it shares
    wider = rundir.settings_of(task="key", model="logreg", config={"epochs": 2, "learning_rates": [0.1, 0.01]},
                               splits="abc")
    assert rundir.finished(tmp_path / "run", wider) is None
    with pytest.raises(DataError, match="splits was 'abc', now 'xyz'"):
        rundir.finished(tmp_path / "run", {**settings, "splits": "xyz"})


def test_a_finished_run_whose_model_does_not_load_is_not_finished(tmp_path):
    settings = rundir.settings_of(task="key", model="logreg", config={}, splits="abc")
    finished_run(tmp_path / "run", settings, model_ok=False)
    with pytest.raises(DataError, match="does not load .*ValueError: cannot read the weights.*delete"):
        rundir.finished(tmp_path / "run", settings, load=loader)


def test_metrics_round_trip_and_jsonable(tmp_path):
    rows = [{"epoch": 1, "loss": 0.5, "test_accuracy": None}, {"epoch": 2, "loss": 0.25, "test_accuracy": 0.75}]
    rundir.write_metrics(tmp_path / "m.csv", rows, ("epoch", "loss", "test_accuracy"))
    back = rundir.read_metrics(tmp_path / "m.csv")
    assert back == [{"epoch": 1.0, "loss": 0.5}, {"epoch": 2.0, "loss": 0.25, "test_accuracy": 0.75}]
    assert rundir.read_metrics(tmp_path / "m.csv", upto=1) == back[:1]
    assert rundir.jsonable({"a": (1, float("nan")), "b": {"c": float("inf")}}) == {"a": [1, None], "b": {"c": None}}
    rundir.write_record(tmp_path, {"model": "logreg", "x": float("nan")})
    record = json.loads((tmp_path / "config.json").read_text())  # strict JSON: NaN became null
    assert record["x"] is None and "torch" in record["versions"]


def test_checkpoints_carry_their_format_and_settings(tmp_path):
    path = tmp_path / "checkpoint.pt"
    rundir.save_checkpoint({"epoch": 3, "model": {"w": torch.ones(2)}}, path, fmt="demo/1", expect={"lr": 0.1})
    state = rundir.load_checkpoint(path, fmt="demo/1", expect={"lr": 0.1}, what="demo")
    assert state["epoch"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))
    with pytest.raises(DataError, match="another lr"):
        rundir.load_checkpoint(path, fmt="demo/1", expect={"lr": 0.2}, what="demo")
    with pytest.raises(DataError, match="not a beatdbn demo checkpoint"):
        rundir.load_checkpoint(path, fmt="other/1", expect={}, what="demo")
    assert rundir.lr_dir(tmp_path, 5e-5).name == "lr-5e-05"


def test_a_second_run_into_a_held_folder_fails_at_once_naming_it_and_the_holder(tmp_path):
    import os
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    with rundir.run_lock(out):
        with pytest.raises(DataError, match=rf"^{out}: another beatdbn run is writing this run folder "
                                            rf"\(pid {os.getpid()}\); wait for it to finish, or use another --out$"):
            with rundir.run_lock(out):
                pass
    with rundir.run_lock(out):  # released on leaving the block
        pass
    # held by another process: named by its pid; released by the OS when that process dies
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from beatdbn.train import rundir\n"
                               "with rundir.run_lock(sys.argv[1]):\n print('held', flush=True); time.sleep(60)",
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(DataError, match=rf"\(pid {holder.pid}\)"):
            with rundir.run_lock(out):
                pass
        assert time.monotonic() - t0 < 2  # at once, not after waiting
    finally:
        holder.kill()
        holder.wait()
    with rundir.run_lock(out):
        pass


def test_cli_finetune_and_baseline_refuse_a_folder_another_run_holds(tmp_path):
    from typer.testing import CliRunner

    from beatdbn.cli import app

    out = tmp_path / "run"
    cli = CliRunner()
    with rundir.run_lock(out):
        for args in (["finetune", str(tmp_path / "store"), str(tmp_path / "tasks"), "--task", "key",
                      "--init", "random", "--out", str(out)],
                     ["baseline", str(tmp_path / "store"), str(tmp_path / "tasks"), "--task", "key",
                      "--model", "naive-bayes", "--out", str(out)]):
            r = cli.invoke(app, args)
            assert r.exit_code == 1, r.output
            assert "another beatdbn run is writing this run folder" in r.output and str(out) in r.output.replace("\n", "")
            assert "Traceback" not in r.output
    assert not (out / "config.json").exists()  # nothing was written into the held folder


def test_a_finished_folder_of_other_settings_is_refused_saying_how_to_proceed(tmp_path):
    settings = rundir.settings_of(task="key", model="convmlp_random", config={"seed": 0, "learning_rates": [0.1]},
                                  splits="abc")
    finished_run(tmp_path / "run", settings)
    other = {**settings, "config": {"seed": 1, "learning_rates": [0.1]}}
    with rundir.run_lock(tmp_path / "run"):  # the lock does not hide it: the settings are checked inside it
        with pytest.raises(DataError, match=r"result\.json: a finished logreg run on 'key' made with other settings "
                                            r"\(config: seed was 0, now 1\); use a new --out, or delete .*result\.json "
                                            r"to redo it"):
            rundir.finished(tmp_path / "run", other)
