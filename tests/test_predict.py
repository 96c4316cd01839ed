"""beatdbn predict and evaluate: the library (beatdbn.inference, beatdbn.evaluate.split) and the commands.

Exit codes of `beatdbn predict`: 0 every input classified (without --strict: at least one), 1 none classified or
(--strict) any failed or an unusable run, 2 usage error.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.data.splits import load_split, padded_batch
from beatdbn.evaluate.split import evaluate_split
from beatdbn.features.sources import read_features
from beatdbn.inference import load_run, predict_files
from beatdbn.labels import KEY_NAMES
from beatdbn.metrics.scores import accuracy
from beatdbn.models.convmlp import ConvMLP, MLPConfig
from beatdbn.store.reader import FeatureStore
from beatdbn.tasks.build import load_task

runner = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()
SMALL = dict(n_maps_1a=8, n_maps_1b=8, n_maps_3=8)


@pytest.fixture(scope="module")
def key_run(demo_corpus, tmp_path_factory):
    """A conv MLP run for the demo key task (random weights; a few Adam steps so that answers differ)."""
    task = load_task(demo_corpus["tasks"], "key")
    model = ConvMLP(MLPConfig(n_classes=len(task.classes), classes=tuple(task.classes), task="key", seed=1, **SMALL))
    train = load_split(FeatureStore.open(demo_corpus["store"]), task, "train")
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, lengths = padded_batch(train.features)
    y = torch.as_tensor(train.labels)
    for _ in range(15):
        opt.zero_grad()
        logits, l4 = model(x, lengths)
        ConvMLP.loss(logits, l4, y).backward()
        opt.step()
    root = tmp_path_factory.mktemp("key-run")
    model.save(root / "model")
    (root / "config.json").write_text(json.dumps({"task": "key", "model": "convmlp_random",
                                                  "representation": "echonest"}))
    return root


def _files(demo_corpus, n):
    return sorted(demo_corpus["msd"].rglob("*.h5"))[:n]


def test_predict_and_evaluate(key_run, demo_corpus, tmp_path):
    run = load_run(key_run)
    assert run.labels == list(KEY_NAMES) and run.task == "key" and run.representation == "echonest"
    ev = evaluate_split(key_run, demo_corpus["store"], demo_corpus["tasks"], "test")
    test = load_split(FeatureStore.open(demo_corpus["store"]), load_task(demo_corpus["tasks"], "key"), "test")
    pred = run.model.predict_proba(*padded_batch(test.features)).argmax(1).numpy()
    assert ev["accuracy"] == pytest.approx(accuracy(test.labels, pred))
    assert set(ev["per_class_accuracy"]) == set(KEY_NAMES) and ev["n_tracks"] == len(test)
    assert "weighted_key_score" in ev
    files = _files(demo_corpus, 3)
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"not hdf5 at all")
    answers = predict_files(key_run, [files[0], bad, files[1]], top_k=3)
    assert [a["file"] for a in answers] == [str(files[0]), str(bad), str(files[1])]
    assert "error" in answers[1] and "broken.h5" in answers[1]["error"]
    for a in (answers[0], answers[2]):
        probs = a["probabilities"]
        assert len(probs) == 3 and a["label"] == next(iter(probs)) and a["label"] in KEY_NAMES
        assert list(probs.values()) == sorted(probs.values(), reverse=True)
        assert a["track_id"].startswith("TR")
    everything = predict_files(key_run, [files[0]], top_k=0)[0]["probabilities"]
    assert len(everything) == 12 and sum(everything.values()) == pytest.approx(1.0)
    _, feats, _ = next(iter(read_features(files[2])))
    direct = run.model.predict_proba(*padded_batch([feats]))[0]
    got = predict_files(run, [files[2]], top_k=0)[0]["probabilities"]
    assert [got[c] for c in KEY_NAMES] == pytest.approx(direct.tolist(), abs=1e-6)


def test_cli_predict_json_evaluate_and_errors(key_run, demo_corpus, tmp_path):
    files = _files(demo_corpus, 2)
    bad = tmp_path / "missing.h5"
    res = runner.invoke(app, ["predict", str(key_run), str(files[0]), str(bad), str(files[1]), "--json", "-k", "2"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out) == 3 and "error" in out[1] and out[1]["file"] == str(bad)
    assert set(out[0]) == {"file", "track_id", "label", "probabilities"} and len(out[0]["probabilities"]) == 2
    res = runner.invoke(app, ["predict", str(key_run), str(files[0])])
    assert res.exit_code == 0 and files[0].name in res.stdout
    res = runner.invoke(app, ["predict", str(key_run), str(bad)])  # every input failed: exit 1
    assert res.exit_code == 1
    res = runner.invoke(app, ["predict", str(key_run), str(files[0]), str(bad), "--strict"])  # any failed: exit 1
    assert res.exit_code == 1
    res = runner.invoke(app, ["evaluate", str(key_run), str(demo_corpus["store"]), str(demo_corpus["tasks"]),
                              "--split", "valid", "--json"])
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    assert ev["split"] == "valid" and 0 <= ev["accuracy"] <= 1 and len(ev["per_class_accuracy"]) == 12
    fake = tmp_path / "fake"
    (fake / "model").mkdir(parents=True)
    (fake / "model" / "model.pt").write_bytes(b"junk")
    (fake / "model" / "config.json").write_text('{"format": "beatdbn-convmlp", "version": 1, "config": {}}')
    res = runner.invoke(app, ["predict", str(fake), str(files[0])])
    assert res.exit_code == 1 and "Traceback" not in res.output and "not a readable beatdbn model file" in res.output
    res = runner.invoke(app, ["predict", str(tmp_path), str(files[0])])
    assert res.exit_code == 1 and "run directory" in res.output


def test_predict_over_time(key_run, demo_corpus):
    f = _files(demo_corpus, 1)[0]
    res = runner.invoke(app, ["predict", str(key_run), str(f), "--over-time", "--json", "-k", "0"])
    assert res.exit_code == 0, res.output
    a = json.loads(res.stdout)[0]
    ot = a["over_time"]
    post = np.array(ot["posteriors"])
    _, feats, beats = next(iter(read_features(f)))
    assert post.shape == (len(ot["beats"]), 12) == (len(ot["seconds"]), 12) and ot["labels"] == list(KEY_NAMES)
    assert ot["beats"][0] == [0, min(51, len(feats))] and all(b - a == 16 for (a, _), (b, _) in
                                                               zip(ot["beats"], ot["beats"][1:]))
    assert ot["seconds"][0][0] == pytest.approx(beats[0], abs=1e-3)
    mean = post.mean(axis=0)
    assert [a["probabilities"][c] for c in KEY_NAMES] == pytest.approx(mean.tolist(), abs=1e-5)
    text = runner.invoke(app, ["predict", str(key_run), str(f), "--over-time"])
    assert "over time" in text.stdout


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_predict_folder_writes_one_row_per_file(key_run, demo_corpus, tmp_path, suffix):
    folder = tmp_path / "songs"
    (folder / "deeper" / "deepest").mkdir(parents=True)
    files = _files(demo_corpus, 4)
    shutil.copy(files[0], folder / "a.h5")
    shutil.copy(files[1], folder / "deeper" / "b.h5")
    shutil.copy(files[2], folder / "deeper" / "deepest" / "c.h5")
    (folder / "deeper" / "junk.mp3").write_bytes(np.random.default_rng(0).bytes(3000))
    (folder / "readme.txt").write_text("not an input")
    out = tmp_path / f"rows{suffix}"
    res = runner.invoke(app, ["--quiet", "predict", str(key_run), str(folder), "--out", str(out)])
    assert res.exit_code == 0, res.output
    if suffix == ".csv":
        rows = list(csv.DictReader(out.open()))
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["file"].split("/")[-1] for r in rows] == ["a.h5", "b.h5", "junk.mp3", "c.h5"]
    assert list(rows[0]) == ["file", "track_id", "label", "probability", "error"]
    for r in (rows[0], rows[1], rows[3]):
        assert r["label"] in KEY_NAMES and 0 < float(r["probability"]) <= 1 and not r["error"]
    assert rows[2]["error"] and "junk.mp3" in rows[2]["error"] and rows[2]["label"] in ("", None)
    res = runner.invoke(app, ["--quiet", "predict", str(key_run), str(folder), "--out", str(out), "--strict"])
    assert res.exit_code == 1 and out.is_file()
    res = runner.invoke(app, ["predict", str(key_run), str(folder), "--out", str(tmp_path / "rows.txt")])
    assert res.exit_code == 1 and ".csv or .jsonl" in res.output


@pytest.mark.slow  # a local Dask cluster starts (about 30 s on a busy 2-core machine)
def test_parallel_predict_on_dask_gives_the_same_rows(key_run, demo_corpus, tmp_path):
    files = _files(demo_corpus, 6)
    serial = predict_files(key_run, files, top_k=0)
    parallel = predict_files(key_run, files, top_k=0, workers=2)  # a local Dask cluster of 2 processes
    assert [a["track_id"] for a in parallel] == [a["track_id"] for a in serial]
    for a, b in zip(parallel, serial):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)
    res = runner.invoke(app, ["predict", str(key_run), str(files[0]), "--scheduler", "bogus"])
    assert res.exit_code == 1 and "--scheduler" in res.output and "Traceback" not in res.output


def test_nan_probabilities_are_never_printed(key_run, demo_corpus, tmp_path):
    bad_run = tmp_path / "nan-run"
    shutil.copytree(key_run, bad_run)
    model = ConvMLP.load(bad_run / "model")
    with torch.no_grad():
        model.output.bias[3] = float("nan")
    model.save(bad_run / "model")
    f = _files(demo_corpus, 1)[0]
    res = runner.invoke(app, ["predict", str(bad_run), str(f), "--json", "--over-time"])
    assert res.exit_code == 1
    out = json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert "non-finite" in out[0]["error"] and "probabilities" not in out[0]
    res = runner.invoke(app, ["predict", str(bad_run), str(f)])
    assert "nan" not in res.stdout.lower()


def test_predict_refuses_another_representation(key_run, demo_corpus):
    f = _files(demo_corpus, 1)[0]
    res = runner.invoke(app, ["predict", "--task", "key", str(f)])  # the shipped key model is for audio
    assert res.exit_code == 1
    assert "needs a model trained on MSD (Echo Nest) features" in res.output
    assert len([x for x in res.output.splitlines() if x.strip()]) == 1


def test_predict_and_evaluate_a_real_baseline_run(demo_corpus, tmp_path):
    out = tmp_path / "nb"
    res = runner.invoke(app, ["--quiet", "baseline", str(demo_corpus["store"]), str(demo_corpus["tasks"]), "--task",
                              "key", "--model", "naive-bayes", "--out", str(out)])
    assert res.exit_code == 0, res.output
    run = load_run(out)
    assert run.kind == "naive_bayes" and run.labels == list(KEY_NAMES) and not run.has_steps
    f = _files(demo_corpus, 1)[0]
    res = runner.invoke(app, ["predict", str(out), str(f), "--json", "-k", "0"])
    assert res.exit_code == 0, res.output
    a = json.loads(res.stdout)[0]
    assert a["label"] in KEY_NAMES and sum(a["probabilities"].values()) == pytest.approx(1.0)
    assert load_run(out / "model").kind == "naive_bayes"  # the bare model folder too
    ev = evaluate_split(out, demo_corpus["store"], demo_corpus["tasks"], "test")
    assert 0 <= ev["accuracy"] <= 1 and ev["n_tracks"] > 0


def test_predict_a_baseline_run(demo_corpus, tmp_path, monkeypatch):
    """load_run dispatches on config.json's "model": a baseline run goes through inference.baselines."""
    run_dir = tmp_path / "nb"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"model": "naive_bayes", "task": "key"}))

    class NB:
        classes = [str(i) for i in range(12)]
        task = "key"
        representation = "echonest"

        def predict_proba(self, features):
            p = np.full((len(features), 12), 0.5 / 11)
            p[:, 7] = 0.5
            return p

    monkeypatch.setattr("beatdbn.inference.baselines.load_baseline", lambda path, device: NB())
    res = runner.invoke(app, ["predict", str(run_dir), str(_files(demo_corpus, 1)[0]), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["label"] == "G"
    res = runner.invoke(app, ["predict", str(run_dir), str(_files(demo_corpus, 1)[0]), "--over-time"])
    assert res.exit_code == 1 and "conv MLP" in res.output
