"""Window baselines: windowing, standardization, naive Bayes, logistic regression, resume, CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.metrics.results import ExperimentResult
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.models.window_model import WindowModel
from beatdbn.models.logreg import WindowedLogReg
from beatdbn.models.naive_bayes import WindowedNaiveBayes
from beatdbn.models.windows import Standardizer, make_windows, pool_window_scores, window_counts
from beatdbn.train.baselines import BaselineConfig, run_logreg, run_naive_bayes
from beatdbn.data.splits import SplitData

runner = CliRunner()


@pytest.fixture(scope="module")
def key_splits(demo_corpus):
    from beatdbn.store.reader import FeatureStore
    from beatdbn.tasks.build import load_task
    from beatdbn.data.splits import load_split

    store = FeatureStore.open(demo_corpus["store"])
    task = load_task(demo_corpus["tasks"], "key")
    return tuple(load_split(store, task, s) for s in ("train", "valid", "test"))


def _naive_windows(tracks, window, stride):
    """Reference: per-track, per-window Python loop with wrap-padding of short tracks."""
    rows, owner = [], []
    for i, t in enumerate(tracks):
        if len(t) < window:
            t = t[np.arange(window) % len(t)]
        for s in range(0, len(t) - window + 1, stride):
            rows.append(t[s:s + window].reshape(-1))
            owner.append(i)
    return np.array(rows), np.array(owner)


# ---------------------------------------------------------------------------
# windows


@pytest.mark.parametrize("stride", [1, 7, 32, 40])
def test_windows_match_naive_reference(stride):
    rng = np.random.default_rng(stride)
    tracks = [rng.normal(size=(n, 24)).astype(np.float32) for n in (5, 31, 32, 33, 70, 100, 1)]
    w = make_windows(tracks, window=32, stride=stride)
    ref, owner = _naive_windows(tracks, 32, stride)
    np.testing.assert_array_equal(w.windows(), ref)
    np.testing.assert_array_equal(w.track, owner)
    np.testing.assert_array_equal(w.counts, window_counts(w.lengths, window=32, stride=stride))
    # the window view is a zero-copy strided view of the beats, not a per-window copy
    assert np.shares_memory(w.view(), w.beats) and w.view().shape == (len(w.beats) - 31, 768)
    view, starts = w.torch_view()
    np.testing.assert_array_equal(view[starts].numpy(), ref)


def test_short_track_is_wrap_padded_to_one_window():
    t = np.arange(10 * 24, dtype=np.float32).reshape(10, 24)
    w = make_windows([t], window=32, stride=32)
    assert len(w) == 1 and w.lengths.tolist() == [10]
    np.testing.assert_array_equal(w.windows()[0].reshape(32, 24), t[np.arange(32) % 10])


def test_standardizer_uses_given_stats_only():
    rng = np.random.default_rng(0)
    train = [rng.normal(3, 2, size=(n, 24)).astype(np.float32) for n in (50, 80)]
    other = [rng.normal(-40, 9, size=(60, 24)).astype(np.float32)]
    s = Standardizer.fit(train)
    beats = np.concatenate(train).astype(np.float64)
    np.testing.assert_allclose(s.mean, beats.mean(0))
    np.testing.assert_allclose(s.std, beats.std(0))
    w = make_windows(other, standardizer=s)
    np.testing.assert_allclose(w.beats, ((other[0] - s.mean) / s.std).astype(np.float32), rtol=1e-6)
    assert w.beats.mean() < -5  # valid/test data is *not* re-centred on its own statistics
    assert Standardizer.from_dict(json.loads(json.dumps(s.to_dict()))).mean.tolist() == s.mean.tolist()


def test_runs_fit_standardizer_on_train_split_only(key_splits, tmp_path):
    train, valid, test = key_splits
    shifted = [replace(sp, features=[f * 3 + 50 for f in sp.features]) for sp in (valid, test)]
    r = run_naive_bayes(train, *shifted, task="key", out=tmp_path, config=BaselineConfig())
    expect = Standardizer.fit(train.features)
    np.testing.assert_allclose(r.extra["standardizer"]["mean"], expect.mean)
    np.testing.assert_allclose(r.extra["standardizer"]["std"], expect.std)


# ---------------------------------------------------------------------------
# naive Bayes


def test_pool_mean_vs_sum_log_differ_on_hand_built_case():
    p = np.array([[0.9, 0.1], [0.9, 0.1], [1e-4, 1 - 1e-4], [0.2, 0.8]])
    track = np.array([0, 0, 0, 1])
    assert pool_window_scores(p, track, 2, how="mean").argmax(1).tolist() == [0, 1]
    assert pool_window_scores(np.log(p), track, 2, how="sum").argmax(1).tolist() == [1, 1]
    perm = np.array([3, 1, 0, 2])  # windows out of track order take the unsorted path
    np.testing.assert_allclose(pool_window_scores(p[perm], track[perm], 2), [[0.600033, 0.399967], [0.2, 0.8]],
                               rtol=1e-5)
    with pytest.raises(ParameterError):
        pool_window_scores(p, np.array([0, 0, 0, 2]), 3)  # track 1 has no window


def test_naive_bayes_rules_differ_on_hand_built_model():
    # 1-beat windows of 24 values; class 1 differs from class 0 only in value 0 (mean 1 vs 0, variance 1),
    # so the log-odds of class 1 is x0 - 0.5: two windows at p1 = 0.1, one at p1 = 0.9999
    nb = WindowedNaiveBayes(n_classes=2).load_state_dict({
        "theta": np.stack([np.zeros(24), np.eye(24)[0]]), "var": np.ones((2, 24)),
        "class_count": np.array([5.0, 5.0]), "class_prior": np.array([0.5, 0.5]), "epsilon": np.array(0.0)})
    x0 = np.array([0.5 + math.log(0.1 / 0.9), 0.5 + math.log(0.1 / 0.9), 0.5 + math.log(0.9999 / 1e-4)])
    beats = np.zeros((3, 24), np.float32)
    beats[:, 0] = x0
    w = make_windows([beats], window=1, stride=1)
    np.testing.assert_allclose(np.exp(nb.window_log_proba(w))[:, 1], [0.1, 0.1, 0.9999], rtol=1e-4)
    assert nb.predict(w, combine="mean").tolist() == [0]
    assert nb.predict(w, combine="sum_log").tolist() == [1]
    with pytest.raises(ParameterError):
        nb.predict(w, combine="vote")


def test_naive_bayes_beats_chance_on_demo_key(key_splits, tmp_path):
    r = run_naive_bayes(*key_splits, task="key", out=tmp_path, config=BaselineConfig())
    assert r.model == "naive_bayes" and len(r.runs) == 1
    row = r.runs[0]
    assert row["learning_rate"] is None and row["epoch"] == 0
    assert row["test_accuracy"] > 3 * r.chance and row["valid_accuracy"] > 3 * r.chance
    assert 0 <= row["test_accuracy_sum_log"] <= 1 and 0 <= row["valid_accuracy_sum_log"] <= 1
    conf = np.array(row["confusion"])
    assert conf.shape == (12, 12) and conf.sum() == len(key_splits[2])
    assert np.trace(conf) / conf.sum() == pytest.approx(row["test_accuracy"])
    assert ExperimentResult.load(tmp_path).runs == json.loads(json.dumps(r.runs))
    saved = WindowModel.load(tmp_path / "model")  # state dict + JSON config, read with weights_only=True
    assert saved.model.state_dict()["theta"].shape == (12, 768) and saved.classes == r.classes
    pred = saved.predict_proba(key_splits[2].features).argmax(1)
    assert (pred == key_splits[2].labels).mean() == pytest.approx(row["test_accuracy"])


def test_naive_bayes_window_posteriors_equal_sklearn(key_splits):
    from beatdbn.train.baselines import prepare_windows

    _, w = prepare_windows(*key_splits)
    nb = WindowedNaiveBayes(n_classes=12).fit(w["train"], key_splits[0].labels)
    ours = nb.window_log_proba(w["test"])
    ref = nb.model_.predict_log_proba(w["test"].windows().astype(np.float64))
    # the expanded form loses a little to cancellation: |jll| reaches 1e4 over 768 dimensions
    np.testing.assert_allclose(np.exp(ours), np.exp(ref), atol=1e-4)
    np.testing.assert_allclose(ours[ref > -30], ref[ref > -30], atol=1e-4)
    assert (ours.argmax(1) == ref.argmax(1)).all()


# ---------------------------------------------------------------------------
# logistic regression


def test_logreg_loss_falls_and_beats_chance(key_splits, tmp_path):
    progress = []
    cfg = BaselineConfig(learning_rates=(5e-5,), epochs=4)
    r = run_logreg(*key_splits, task="key", out=tmp_path, config=cfg, progress=progress.append)
    assert r.model == "logreg" and [(x["learning_rate"], x["epoch"]) for x in r.runs] == [(5e-5, 4)]
    lines = (tmp_path / "lr-5e-05" / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,learning_rate,train_loss,train_accuracy,valid_accuracy,seconds"
    losses = [float(line.split(",")[2]) for line in lines[1:]]
    assert len(losses) == 4 and losses[0] < math.log(12) and all(a > b for a, b in zip(losses, losses[1:]))
    row = r.select(4)
    assert row["test_accuracy"] > 3 * r.chance and row["valid_accuracy"] > 3 * r.chance
    assert len(row["per_class_accuracy"]) == 12 and np.array(row["confusion"]).sum() == len(key_splits[2])
    assert [p["step"] for p in progress] == [1, 2, 3, 4] and progress[-1]["total"] == 4
    state = torch.load(tmp_path / "lr-5e-05" / "model.pt", weights_only=True)
    assert state["linear.weight"].shape == (12, 768)


def test_grad_norm_mean_equals_sum_at_rate_over_batch():
    """'mean' at lr equals 'sum' at lr / batch for full batches: the choice only rescales the sweep."""
    torch.manual_seed(0)
    x, y = torch.randn(50, 768), torch.randint(0, 3, (50,))
    states = []
    for reduction, lr in (("sum", 1e-3 / 50), ("mean", 1e-3)):
        m = WindowedLogReg(768, 3)
        opt = torch.optim.SGD(m.parameters(), lr=lr)
        for _ in range(3):
            opt.zero_grad()
            m(x, y, reduction=reduction)[1].backward()
            opt.step()
        states.append(m.linear.weight.detach().clone())
    torch.testing.assert_close(states[0], states[1])


def test_short_tracks_are_classified(key_splits, tmp_path):
    train, valid, test = key_splits
    short_test = replace(test, features=[f[:5 + i % 20] for i, f in enumerate(test.features)])
    cfg = BaselineConfig(learning_rates=(5e-5,), epochs=1)
    r = run_logreg(train, valid, short_test, task="key", out=tmp_path / "lr", config=cfg)
    assert r.extra["windows"]["test"]["short_tracks_padded"] == len(test)
    assert np.array(r.runs[0]["confusion"]).sum() == len(test)
    r = run_naive_bayes(train, valid, short_test, task="key", out=tmp_path / "nb", config=cfg)
    assert np.array(r.runs[0]["confusion"]).sum() == len(test)


class _Stop(Exception):
    pass


def test_logreg_resume(key_splits, tmp_path, monkeypatch):
    cfg = BaselineConfig(learning_rates=(5e-4, 5e-5), epochs=3)
    full = run_logreg(*key_splits, task="key", out=tmp_path / "full", config=cfg)

    def stop_after_4(info):  # interrupt during the second learning rate, after its first epoch
        if info["step"] == 4:
            raise _Stop

    with pytest.raises(_Stop):
        run_logreg(*key_splits, task="key", out=tmp_path / "cut", config=cfg, progress=stop_after_4)
    assert (tmp_path / "cut" / "lr-0.0005" / "result.json").exists()
    assert (tmp_path / "cut" / "lr-5e-05" / "checkpoint.pt").exists()
    first_done = (tmp_path / "cut" / "lr-0.0005" / "result.json").stat().st_mtime_ns
    messages = []
    resumed = run_logreg(*key_splits, task="key", out=tmp_path / "cut", config=cfg,
                         progress=lambda i: messages.append(i["message"]))
    assert "already done" in messages[0] and "resumed after epoch 1" in messages[1]
    assert (tmp_path / "cut" / "lr-0.0005" / "result.json").stat().st_mtime_ns == first_done
    for a, b in zip(full.runs, resumed.runs):  # a resumed run equals an uninterrupted one
        assert a["valid_accuracy"] == b["valid_accuracy"] and a["confusion"] == b["confusion"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
    for lr in ("lr-0.0005", "lr-5e-05"):
        torch.testing.assert_close(torch.load(tmp_path / "full" / lr / "model.pt", weights_only=True),
                                   torch.load(tmp_path / "cut" / lr / "model.pt", weights_only=True))
    assert len((tmp_path / "cut" / "lr-5e-05" / "metrics.csv").read_text().splitlines()) == 4

    # a finished experiment returns without training at all
    def no_training(*a, **k):
        raise _Stop

    monkeypatch.setattr(WindowedLogReg, "forward", no_training)
    again = run_logreg(*key_splits, task="key", out=tmp_path / "cut", config=cfg)
    assert again.runs == resumed.runs
    # a wider sweep reuses the finished learning rates: only the new one trains
    messages.clear()
    with pytest.raises(_Stop):
        run_logreg(*key_splits, task="key", out=tmp_path / "cut", progress=lambda i: messages.append(i["message"]),
                   config=replace(cfg, learning_rates=(5e-4, 5e-5, 5e-6)))
    assert messages == ["lr 0.0005: already done", "lr 5e-05: already done"]
    monkeypatch.undo()
    # another configuration in the same folder is refused, not mixed in
    with pytest.raises(DataError, match="other settings"):
        run_logreg(*key_splits, task="key", out=tmp_path / "cut", config=replace(cfg, epochs=2))


# ---------------------------------------------------------------------------
# bad input


def test_bad_input_gives_clear_errors(key_splits, tmp_path):
    train, valid, test = key_splits
    empty = SplitData([], [], np.zeros(0, np.int64), list(train.classes))
    with pytest.raises(DataError, match="valid split has no tracks"):
        run_naive_bayes(train, empty, test, task="key", out=tmp_path / "a", config=BaselineConfig())
    wide = replace(test, features=[np.zeros((40, 25), np.float32)] + test.features[1:])
    with pytest.raises(DataError, match=r"track 0 has shape \(40, 25\)"):
        run_logreg(train, valid, wide, task="key", out=tmp_path / "b", config=BaselineConfig(epochs=1))
    with pytest.raises(DataError, match="0 beats"):
        make_windows([np.zeros((0, 24), np.float32)])
    with pytest.raises(DataError, match="NaN"):
        make_windows([np.full((40, 24), np.nan, np.float32)])
    with pytest.raises(ParameterError, match="learning_rates"):
        BaselineConfig(learning_rates=(0.0,))
    with pytest.raises(ParameterError, match="grad_norm"):
        BaselineConfig(grad_norm="max")
    with pytest.raises(ParameterError, match="stride"):
        make_windows([np.zeros((40, 24), np.float32)], stride=0)
    assert BaselineConfig.from_dict(json.loads(json.dumps(BaselineConfig().to_dict()))) == BaselineConfig()


# ---------------------------------------------------------------------------
# CLI


def test_cli_baselines_end_to_end(demo_corpus, tmp_path):
    store, tasks = str(demo_corpus["store"]), str(demo_corpus["tasks"])
    r = runner.invoke(app, ["baseline", store, tasks, "--task", "key", "--model", "naive-bayes",
                            "--out", str(tmp_path / "nb")])
    assert r.exit_code == 0, r.output
    assert "test accuracy" in r.output and (tmp_path / "nb" / "result.json").exists()
    r = runner.invoke(app, ["baseline", store, tasks, "--task", "artist", "--model", "logreg",
                            "--out", str(tmp_path / "lr"), "--lr", "5e-5", "--lr", "5e-6", "--epochs", "2",
                            "--stride", "16", "--seed", "1"])
    assert r.exit_code == 0, r.output
    assert "chosen on validation" in r.output
    res = ExperimentResult.load(tmp_path / "lr")
    assert res.extra["config"]["stride"] == 16 and [x["learning_rate"] for x in res.runs] == [5e-5, 5e-6]
    assert f"{res.select()['learning_rate']:g}" in r.output
    r = runner.invoke(app, ["baseline", store, tasks, "--task", "key", "--model", "svm", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "naive-bayes" in r.output


def test_predict_and_evaluate_work_on_baseline_runs(key_splits, demo_corpus, tmp_path):
    """A finished baseline run loads through inference (weights_only) and answers as its test split did."""
    from beatdbn.inference.posteriors import predict_features
    from beatdbn.inference.runs import load_run

    cfg = BaselineConfig(learning_rates=(5e-4,), epochs=2)
    for kind, fn in (("naive_bayes", run_naive_bayes), ("logreg", run_logreg)):
        out = tmp_path / kind
        result = fn(*key_splits, task="key", out=out, config=cfg)
        run = load_run(out)
        assert run.kind == kind and run.task == "key" and run.representation == "echonest"
        pred = predict_features(run, key_splits[2].features).argmax(1)
        assert (pred == key_splits[2].labels).mean() == pytest.approx(result.select()["test_accuracy"])
        result = CliRunner().invoke(app, ["evaluate", str(out), str(demo_corpus["store"]), str(demo_corpus["tasks"])])
        assert result.exit_code == 0, result.output
    # a finished run whose model no longer loads is not returned as finished
    (tmp_path / "naive_bayes" / "model" / "model.pt").write_bytes(b"garbage")
    with pytest.raises(DataError, match="does not load"):
        run_naive_bayes(*key_splits, task="key", out=tmp_path / "naive_bayes", config=cfg)
