"""predict --workers N: a local Dask cluster only where it pays (issue 25 item 3: 2 workers were slower than serial
on 6 clips); below, the inputs are read in this process and one line says so."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.cli.predict import WORKERS_PAY_FROM, _workers_that_pay
from beatdbn.labels import KEY_NAMES
from beatdbn.models.convmlp import ConvMLP, MLPConfig

runner = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()


@pytest.fixture
def run_dir(tmp_path):
    ConvMLP(MLPConfig(n_classes=12, classes=tuple(KEY_NAMES), task="key", n_maps_1a=4, n_maps_1b=4,
                      n_maps_3=4)).save(tmp_path / "run" / "model")
    (tmp_path / "run" / "config.json").write_text(json.dumps({"task": "key", "model": "convmlp_random",
                                                              "representation": "echonest"}))
    return tmp_path / "run"


def test_few_inputs_are_read_here_with_a_line_saying_so(run_dir, demo_corpus, monkeypatch):
    def no_cluster(*a, **k):
        raise AssertionError("a Dask cluster was started for 2 MSD files")

    monkeypatch.setattr("beatdbn.inference.parallel.dask_client", no_cluster)
    files = [str(p) for p in sorted(demo_corpus["msd"].rglob("*.h5"))[:2]]
    res = runner.invoke(app, ["predict", str(run_dir), *files, "--workers", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)) == 2
    assert "--workers 2: 2 inputs (0 audio) are read faster in this process" in res.stderr


def test_workers_are_kept_where_they_pay_or_a_scheduler_is_asked_for(tmp_path):
    audio = [tmp_path / f"s{i}.ogg" for i in range(WORKERS_PAY_FROM)]
    assert _workers_that_pay(audio, 2, None) == 2
    assert _workers_that_pay(audio[:-1], 2, None) == 1
    assert _workers_that_pay([tmp_path / "a.h5"] * 500, 4, None) == 1  # MSD files cost milliseconds: never
    assert _workers_that_pay(audio[:3], 2, "local") == 2  # --scheduler given: the user's choice
    assert _workers_that_pay(audio[:3], 1, None) == 1
