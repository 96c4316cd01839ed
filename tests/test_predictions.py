"""metrics/predictions: every trainer records each test track's predicted class, and the sweep keeps them."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from beatdbn.data.splits import load_split
from beatdbn.exceptions import DataError
from beatdbn.metrics.predictions import check_predictions, predictions_of, targets_of
from beatdbn.metrics.results import ExperimentResult
from beatdbn.models.dbn import ConvDBN, DBNConfig
from beatdbn.store.reader import FeatureStore
from beatdbn.tasks.build import load_task
from beatdbn.train.baselines import BaselineConfig, run_logreg, run_naive_bayes
from beatdbn.train.finetune import FinetuneConfig, run_convmlp

FT = FinetuneConfig(learning_rates=(0.05, 0.005), epochs=2, snapshot_epochs=(1, 2))
BASE = BaselineConfig(learning_rates=(5e-4, 5e-5), epochs=1)


@pytest.fixture(scope="module")
def key_splits(demo_corpus):
    fs = FeatureStore.open(demo_corpus["store"])
    task = load_task(demo_corpus["tasks"], "key")
    return [load_split(fs, task, s) for s in ("train", "valid", "test")]


def _check(result: ExperimentResult, test) -> None:
    assert result.extra["test_track_ids"] == list(test.track_ids)
    assert result.extra["test_targets"] == np.asarray(test.labels).tolist()
    rows = [r for r in result.runs if r.get("test_accuracy") is not None]
    assert rows and check_predictions(result) == len(rows)
    for row in rows:
        ids, targets, pred = predictions_of(result, row)
        assert all(type(v) is int for v in row["test_predicted"])  # plain JSON ints, not numpy
        assert len(pred) == len(test) and pred.min() >= 0 and pred.max() < len(result.classes)
        assert float((pred == targets).sum()) / len(targets) == row["test_accuracy"]  # exactly
        # the confusion matrix is made of the same predictions
        confusion = np.zeros((len(result.classes),) * 2, dtype=int)
        np.add.at(confusion, (targets, pred), 1)
        assert confusion.tolist() == row["confusion"]


def test_every_trainer_records_each_test_tracks_prediction(key_splits, tmp_path):
    train, valid, test = key_splits
    nb = run_naive_bayes(*key_splits, task="key", out=tmp_path / "nb", config=BASE)
    lr = run_logreg(*key_splits, task="key", out=tmp_path / "lr", config=BASE)
    dbn = ConvDBN(DBNConfig(n_maps_1a=4, n_maps_1b=4, n_maps_3=4))
    conv = run_convmlp(*key_splits, task="key", init="pretrained", dbn=dbn, out=tmp_path / "conv", config=FT,
                       plots=False)
    assert len(conv.runs) == 4 and len(lr.runs) == 2  # 2 rates x 2 snapshots; 2 rates
    for result, folder in ((nb, "nb"), (lr, "lr"), (conv, "conv")):
        _check(result, test)
        _check(ExperimentResult.load(tmp_path / folder), test)  # as written to result.json
    # the predictions differ between models: they are the models' own, not the targets copied
    assert {tuple(r["test_predicted"]) for r in nb.runs + lr.runs + conv.runs} != {tuple(test.labels.tolist())}


def test_the_sweep_jobs_carry_the_predictions_into_the_assembled_result(demo_corpus, key_splits, tmp_path):
    """The sweep trains each rate in a job (its own scratch folder) and assembles the experiment afterwards:
    the assembled result has every rate's predictions, equal to a serial run's."""
    from beatdbn.pipeline.reproduce import ReproduceConfig
    from beatdbn.pipeline.sweep import Job, assemble, run_job
    from beatdbn.tasks.registry import TaskConfig

    out = tmp_path / "run"
    shutil.copytree(demo_corpus["tasks"], out / "tasks")
    dbn = ConvDBN(DBNConfig(n_maps_1a=4, n_maps_1b=4, n_maps_3=4))
    dbn.save(out / "dbn")
    config = ReproduceConfig(tasks=TaskConfig(tasks=("key",)), finetune=dataclasses.replace(FT, epochs=1,
                                                                                            snapshot_epochs=(1,)),
                             baselines=BASE, quick=True)
    store = str(demo_corpus["store"])
    for model, rates in (("logreg", BASE.learning_rates), ("convmlp_random", config.finetune.learning_rates)):
        recipe = None if model == "logreg" else "paper"
        for lr in rates:
            run_job(Job("key", model, recipe, lr), store, str(out), config)
        assemble("key", model, recipe, store, str(out), config)
        swept = ExperimentResult.load(out / "experiments" / "key" / model)
        _check(swept, key_splits[2])
        assert len(swept.runs) == 2
    serial = run_convmlp(*key_splits, task="key", init="random", dbn=ConvDBN.load(out / "dbn"),
                         out=tmp_path / "serial", config=config.finetune, plots=False)
    swept = ExperimentResult.load(out / "experiments" / "key" / "convmlp_random")
    assert [r["test_predicted"] for r in serial.runs] == [r["test_predicted"] for r in swept.runs]


def test_a_result_without_predictions_or_with_wrong_ones_is_named():
    result = ExperimentResult("key", "logreg", classes=["C", "D"], chance=0.5,
                              runs=[{"learning_rate": 0.1, "epoch": 1, "valid_accuracy": 1.0, "test_accuracy": 0.5}])
    with pytest.raises(DataError, match="logreg on 'key': the result has no per-track test predictions"):
        check_predictions(result)

    class Split:
        track_ids, labels = ["TRA", "TRB"], np.array([1, 0])

    result.extra.update(targets_of(Split()))
    result.runs[0]["test_predicted"] = [1, 1]
    assert check_predictions(result) == 1
    result.runs[0]["test_predicted"] = [0, 1]
    with pytest.raises(DataError, match=r"give a test accuracy of 0\.0, the row records 0\.5"):
        check_predictions(result)
    result.runs[0]["test_predicted"] = [0]
    with pytest.raises(DataError, match="2 test track ids, 2 targets and 1 predictions"):
        check_predictions(result)
