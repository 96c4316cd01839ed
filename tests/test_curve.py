"""Label-efficiency curves (pipeline.curve, plots.curve, the curve command): a tiny synthetic store, few epochs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from beatdbn.data.splits import SplitData
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.models.dbn import DBNConfig
from beatdbn.metrics.results import ExperimentResult
from beatdbn.pipeline.curve import CurveConfig, curve_markdown, label_curve, paired, parse_counts, subsample
from beatdbn.tasks.registry import TaskConfig
from beatdbn.train.pretrain import PretrainConfig

TINY = {"dbn": DBNConfig(n_maps_1a=4, n_maps_1b=4, n_maps_3=4), "pretraining": PretrainConfig(batch_size=64),
        "finetune_overrides": {"min_updates": 0, "learning_rates": (0.003,)}}  # one rate, one pass an epoch


def test_counts_and_config_are_checked():
    assert parse_counts("10, 1,2,2") == (1, 2, 10)
    for bad in ("", "0,1", "a,2"):
        with pytest.raises(ParameterError, match="--per-class"):
            parse_counts(bad)
    with pytest.raises(ParameterError, match="curve models"):
        CurveConfig(task="key", models=("svm",))
    with pytest.raises(ParameterError, match="seeds"):
        CurveConfig(task="key", seeds=())
    assert CurveConfig(task="key").tasks.tasks == ("key",)


def test_subsets_are_nested_balanced_and_seeded():
    ids = [f"T{i:03d}" for i in range(30)]
    train = SplitData(ids, [np.zeros((4, 24), np.float32)] * 30, np.arange(30) % 3, ["a", "b", "c"])
    one, two = subsample(train, 1, seed=0, task="key"), subsample(train, 2, seed=0, task="key")
    assert np.bincount(two.labels).tolist() == [2, 2, 2] and set(one.track_ids) <= set(two.track_ids)
    assert subsample(train, 2, seed=1, task="key").track_ids != two.track_ids
    assert subsample(train, 11, seed=0, task="key") is None  # 10 per class


def test_curve_on_a_tiny_store_writes_json_png_md_and_reuses_points(demo_corpus, tmp_path):
    config = CurveConfig(task="key", per_class=(1, 3, 99), seeds=(0, 1), tasks=TaskConfig(per_key=16),
                         epochs=1, quick=True, **TINY)
    lines: list[str] = []
    curve = label_curve(demo_corpus["store"], tmp_path / "c", config, progress=lines.append)
    models = ("convmlp_pretrained_beatdbn", "convmlp_random_beatdbn", "logreg", "naive_bayes")
    assert set(curve["summary"]) == set(models)
    for model in models:
        rows = curve["summary"][model]
        assert [r["n"] for r in rows] == [1, 3] and all(len(r["values"]) == 2 for r in rows)
        assert all(0 <= r["low"] <= r["mean"] <= r["high"] <= 1 for r in rows)
    # n=99 exceeds the training tracks per key: skipped, with why
    assert {(s["n"], s["reason"].startswith("a class has")) for s in curve["skipped"]} == {(99, True)}
    train_tracks = {(p["n"], p["model"]): p["train_tracks"] for p in curve["points"] if p["seed"] == 0}
    assert train_tracks[(1, "logreg")] == 12 and train_tracks[(3, "naive_bayes")] == 36
    # one DBN, pretrained without either seed's valid/test tracks
    held = set()
    for s in (0, 1):
        for split in ("valid", "test"):
            lines_ = (tmp_path / "c" / f"seed-{s}" / "tasks" / "key" / f"{split}.tsv").read_text().splitlines()[1:]
            held |= {line.split("\t")[0] for line in lines_}
    assert curve["pretrain_excluded"] == len(held) > 24  # the two seeds' splits differ
    on_disk = json.loads((tmp_path / "c" / "curve.json").read_text())
    assert on_disk["summary"] == json.loads(json.dumps(curve["summary"]))
    assert (tmp_path / "c" / "curve.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "c" / "curve.md").read_text()
    assert "| convmlp_pretrained_beatdbn |" in md and "n=3" in md and "Skipped: n=99" in md
    # the paired comparisons: pretrained - random, each conv MLP - logreg, per n, over both seeds' test tracks
    test_tracks = sum(p["test_tracks"] for p in curve["points"] if p["model"] == "logreg" and p["n"] == 1)
    assert [(r["a"], r["b"], r["n"]) for r in curve["paired"]][:2] == [
        ("convmlp_pretrained_beatdbn", "convmlp_random_beatdbn", 1), ("convmlp_pretrained_beatdbn",
                                                                      "convmlp_random_beatdbn", 3)]
    assert len(curve["paired"]) == 6 and all(r["pairs"] == test_tracks and r["seeds"] == 2 for r in curve["paired"])
    assert "| convmlp_pretrained_beatdbn − convmlp_random_beatdbn |" in md and "McNemar" in md
    trained = sum(p["seconds"] for p in curve["points"]) / 60
    assert f"the points' own training took {trained:.1f} min" in md
    # a rerun trains nothing: every point is reused
    again: list[str] = []
    label_curve(demo_corpus["store"], tmp_path / "c", config, progress=again.append)
    points = [line for line in again if line.startswith("seed ")]
    assert len(points) == 16 and all("reused" in line for line in points)


def test_a_task_the_store_cannot_give_is_named(demo_corpus, tmp_path):
    with pytest.raises(DataError, match="curve: the key task could not be built"):
        label_curve(demo_corpus["store"], tmp_path / "c", CurveConfig(task="key", seeds=(0,), **TINY))


def test_curve_command_is_registered_and_checks_its_options(demo_corpus, tmp_path):
    from beatdbn.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["curve", "--help"])
    assert r.exit_code == 0 and "--per-class" in r.output and "--task" in r.output
    r = runner.invoke(app, ["curve", str(demo_corpus["store"]), str(tmp_path / "c"), "--task", "key",
                            "--per-class", "0"])
    assert r.exit_code == 1 and "--per-class" in r.output


def _fake_point(out, model, n, seed, targets, predicted):
    r = ExperimentResult("key", model, classes=["C", "D"], chance=0.5,
                         runs=[{"learning_rate": None, "epoch": 1, "valid_accuracy": 0.5,
                                "test_accuracy": float(np.mean(np.array(targets) == np.array(predicted))),
                                "test_predicted": list(predicted)}],
                         extra={"test_track_ids": [f"T{i}" for i in range(len(targets))], "test_targets": list(targets)})
    r.save(out / f"seed-{seed}" / f"n-{n}" / model)
    return {"model": model, "n": n, "seed": seed}


def test_paired_pools_the_seeds_and_marks_a_real_difference(tmp_path):
    config = CurveConfig(task="key", per_class=(1,), seeds=(0, 1), models=("convmlp_pretrained_beatdbn", "logreg"))
    targets = [0, 1] * 10
    points = [_fake_point(tmp_path, "convmlp_pretrained_beatdbn", 1, s, targets, targets) for s in (0, 1)]
    points += [_fake_point(tmp_path, "logreg", 1, s, targets, [0] * 20) for s in (0, 1)]
    (row,) = paired(tmp_path, points, config)
    # the conv MLP right everywhere, logreg wrong on every target 1: 20 discordant pairs of 40, all for A
    assert (row["a"], row["b"], row["pairs"], row["a_only"], row["b_only"], row["seeds"]) == (
        "convmlp_pretrained_beatdbn", "logreg", 40, 20, 0, 2)
    assert row["difference"] == pytest.approx(0.5) and row["real"] and row["p_value"] < 0.001
    md = curve_markdown({"task": "key", "classes": ["C", "D"], "chance": 0.5, "config": config.to_dict(),
                         "store_tracks": 40, "pretrain_excluded": 0, "summary": {}, "skipped": [], "paired": [row],
                         "seconds": 1.0})
    assert "| convmlp_pretrained_beatdbn − logreg | **+50.0 [" in md
    # the same predictions: no discordant pair, no difference, not bold
    points = [_fake_point(tmp_path, "logreg", 1, s, targets, targets) for s in (0, 1)] + points[:2]
    (same,) = paired(tmp_path, points, config)
    assert same["difference"] == 0 and not same["real"]


def test_paired_refuses_points_tested_on_different_tracks(tmp_path):
    config = CurveConfig(task="key", per_class=(1,), seeds=(0,), models=("convmlp_pretrained_beatdbn", "logreg"))
    points = [_fake_point(tmp_path, "convmlp_pretrained_beatdbn", 1, 0, [0, 1], [0, 1]),
              _fake_point(tmp_path, "logreg", 1, 0, [0, 1, 1], [0, 1, 0])]
    with pytest.raises(DataError, match="different tracks"):
        paired(tmp_path, points, config)
