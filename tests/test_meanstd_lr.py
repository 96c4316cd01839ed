"""experiments/kinds/meanstd_lr: a model kind added as one module: opt-in in reproduce, a row in Table 1."""

from __future__ import annotations

import numpy as np
import pytest

from beatdbn.data.splits import SplitData
from beatdbn.evaluate.table import MODELS, Table1
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.experiments import registry
from beatdbn.experiments.kinds.meanstd_lr import MeanStdConfig, track_statistics
from beatdbn.metrics.results import ExperimentResult
from beatdbn.pipeline.reproduce import ReproduceConfig, experiments, parse_models, projected_time
from beatdbn.pipeline.sweep import train_experiment


def _split(n_per_class: int, seed: int, name: str) -> SplitData:
    """Two classes whose tracks differ in the mean of their first chroma value (and in length)."""
    rng = np.random.default_rng(seed)
    features, labels, ids = [], [], []
    for label in (0, 1):
        for i in range(n_per_class):
            f = rng.normal(size=(int(rng.integers(20, 60)), 24)).astype(np.float32)
            f[:, 0] += 1.5 * label
            features.append(f)
            labels.append(label)
            ids.append(f"TR{name}{label}{i:03d}")
    return SplitData(ids, features, np.array(labels, dtype=np.int64), ["C", "D"])


def _splits():
    return _split(20, 0, "TRN"), _split(5, 1, "VAL"), _split(5, 2, "TST")


def test_track_statistics_are_each_tracks_mean_and_std():
    f = [np.arange(12, dtype=np.float32).reshape(6, 2), np.ones((3, 2), dtype=np.float32)]
    got = track_statistics(f)
    assert got.shape == (2, 4)
    np.testing.assert_allclose(got[0], [5.0, 6.0, np.std([0, 2, 4, 6, 8, 10]), np.std([1, 3, 5, 7, 9, 11])])
    np.testing.assert_allclose(got[1], [1.0, 1.0, 0.0, 0.0])


def test_it_trains_through_the_registry_and_resumes(tmp_path):
    config = ReproduceConfig.make(quick=True, models=("meanstd_lr",))
    seen = []
    result = train_experiment("key", "meanstd_lr", _splits(), tmp_path / "run", config, progress=seen.append)
    assert result.model == "meanstd_lr" and result.classes == ["C", "D"]
    row = result.runs[0]
    assert row["epoch"] == 0 and row["learning_rate"] is None
    assert row["test_accuracy"] > 0.8 and len(row["test_predicted"]) == 10  # per-track: paired tests possible
    assert result.extra["test_track_ids"][0] == "TRTST0000" and seen[-1]["step"] == 1
    again = train_experiment("key", "meanstd_lr", _splits(), tmp_path / "run", config)
    assert again.runs[0]["test_predicted"] == row["test_predicted"] and again.seconds == result.seconds
    with pytest.raises(ParameterError, match="holds a meanstd_lr result of other settings or splits"):
        train_experiment("key", "meanstd_lr", (_split(20, 5, "TRN"), *_splits()[1:]), tmp_path / "run", config)


def test_unusable_splits_fail_with_the_reason(tmp_path):
    train, valid, test = _splits()
    empty = SplitData([], [], np.zeros(0, dtype=np.int64), ["C", "D"])
    with pytest.raises(DataError, match="the test split has no tracks"):
        train_experiment("key", "meanstd_lr", (train, valid, empty), tmp_path / "run", ReproduceConfig.make())


def test_it_is_opt_in_and_gets_a_table1_row(tmp_path):
    assert "meanstd_lr" in registry.optional()
    assert "meanstd_lr" not in [m for m, _ in experiments(ReproduceConfig.make(recipe="both"))]
    added = ReproduceConfig.make(models=parse_models("+meanstd_lr"))
    assert [m for m, _ in experiments(added)][:3] == ["naive_bayes", "meanstd_lr", "logreg"]
    assert list(added.to_dict()["models"]) == ["meanstd_lr"]  # recorded in config.json
    result = train_experiment("key", "meanstd_lr", _splits(), tmp_path / "run", added)
    nb = ExperimentResult("key", "naive_bayes", classes=["C", "D"], chance=0.5,
                          runs=[{"learning_rate": None, "epoch": 0, "valid_accuracy": 0.5, "test_accuracy": 0.5}])
    table = Table1([nb, ExperimentResult.load(tmp_path / "run" / "result.json")])
    assert ("meanstd_lr", "final") in table.rows and MODELS["meanstd_lr"] == "mean/std logistic regression"
    assert table.cell("meanstd_lr", "final", "key").test_accuracy == result.runs[0]["test_accuracy"]
    assert "mean/std logistic regression" in table.to_markdown()
    projected = projected_time({"key/meanstd_lr": 2.0}, added, fs=None, n_pretrain=0, train_beats={"key": 1000})
    assert projected["stages_seconds"]["key/meanstd_lr"] == pytest.approx(2.0 / 1000 * 2400 * 500)
    assert registry.kind("meanstd_lr").settings(added, registry.variant("meanstd_lr")) == MeanStdConfig()
