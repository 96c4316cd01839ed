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
from beatdbn.cli.predict import key_line
from beatdbn.inference import load_run, predict_files
from beatdbn.inference.key_answer import KEY_FIELDS, spell_key
from beatdbn.labels import KEY_NAMES, KEY_NAMES_24, NO_KEY
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
    assert set(out[0]) == {"file", "track_id", "label", "probabilities", *KEY_FIELDS}
    assert len(out[0]["probabilities"]) == 2 and len(out[0]["alternatives"]) == 2
    a = out[0]  # a 12-tonic model: the tonic, spelled; no mode, no Camelot code
    assert a["key"] == spell_key(KEY_NAMES.index(a["label"])) and a["mode"] is None and a["camelot"] is None
    assert a["tonal"] and a["confidence"] == a["probabilities"][a["label"]] and a["tonic"] == a["key"]
    res = runner.invoke(app, ["predict", str(key_run), str(files[0])])
    assert res.exit_code == 0 and files[0].name in res.stdout
    assert res.stdout.split("\n")[0].startswith(f"{files[0]} {a['track_id']}  {a['key']}  {a['confidence']:.2f}")
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
    assert list(rows[0])[:4] == ["file", "track_id", "label", "probability"] and "error" in rows[0]
    assert {"key", "key_ascii", "tonic", "mode", "camelot", "confidence", "tonal", "reason"} <= set(rows[0])
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
    assert run.kind == "naive_bayes" and run.labels == list(KEY_NAMES) and not run.answers_over_time
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
    assert json.loads(res.stdout)[0]["label"] == "G" and json.loads(res.stdout)[0]["key"] == "G"
    res = runner.invoke(app, ["predict", str(run_dir), str(_files(demo_corpus, 1)[0]), "--over-time"])
    assert res.exit_code == 1 and "conv MLP" in res.output
    # before: `[` was printed, then the error: invalid JSON. Now one line, and nothing on stdout
    res = runner.invoke(app, ["predict", str(run_dir), str(_files(demo_corpus, 1)[0]), "--over-time", "--json"])
    assert res.exit_code == 1 and "conv MLP" in res.output and len(res.output.strip().splitlines()) == 1
    assert res.stdout == ""


@pytest.fixture(scope="module")
def key24_run(tmp_path_factory):
    """A 24-key + "no key" model (random weights, an output bias that picks the class), calibrated with a
    tonal threshold of 0.5; ``key24_run(class_name)`` is its folder."""
    root = tmp_path_factory.mktemp("key24")
    classes = (*KEY_NAMES_24, NO_KEY)

    def make(top: str):
        folder = root / top.replace(" ", "-").replace("#", "s")
        if not folder.exists():
            model = ConvMLP(MLPConfig(n_classes=25, classes=classes, task="key", seed=2, **SMALL))
            with torch.no_grad():
                model.output.weight.zero_()
                model.output.bias.fill_(0.0)
                model.output.bias[classes.index(top)] = 6.0  # p(top) = e^6 / (e^6 + 24) = 0.94
            model.save(folder / "model")
            (folder / "model" / "calibration.json").write_text(json.dumps({"temperature": 1.0,
                                                                           "tonal_threshold": 0.5}))
            (folder / "config.json").write_text(json.dumps({"task": "key", "model": "convmlp_random",
                                                            "representation": "echonest"}))
        return folder

    return make


def test_key_answers_of_a_24_key_model_with_no_key(key24_run, demo_corpus):
    f = _files(demo_corpus, 1)[0]
    res = runner.invoke(app, ["predict", str(key24_run("A# major")), str(f), "--json", "-k", "2"])
    assert res.exit_code == 0, res.output
    a = json.loads(res.stdout)[0]
    spelled = (a["key"], a["key_ascii"], a["tonic"], a["mode"], a["camelot"])
    assert spelled == ("B♭ major", "Bb major", "B♭", "major", "6B")
    assert a["tonal"] and a["reason"] is None and a["label"] == "A# major" and 0.9 < a["confidence"] < 1
    assert a["confidence"] == pytest.approx(a["probabilities"]["A# major"]) and len(a["alternatives"]) == 2
    text = runner.invoke(app, ["predict", str(key24_run("A# major")), str(f)]).stdout
    assert text.startswith(f"{f} {a['track_id']}  B♭ major (6B)  {a['confidence']:.2f}")
    res = runner.invoke(app, ["predict", str(key24_run(NO_KEY)), str(f), "--json"])
    assert res.exit_code == 0, res.output
    b = json.loads(res.stdout)[0]
    assert b["key"] is None and b["tonal"] is False and b["camelot"] is None and b["label"] == NO_KEY
    assert b["reason"].startswith("no tonal centre: P(no key) 0.9") and b["reason"].endswith("≥ threshold 0.50")
    text = runner.invoke(app, ["predict", str(key24_run(NO_KEY)), str(f)]).stdout
    assert text.strip() == f"{f} {b['track_id']}  no key ({b['reason']})"


def test_key_line():
    a = {"file": "song.mp3", "track_id": "AU0123", "tonal": True, "key": "B♭ major", "camelot": "6B",
         "confidence": 0.913, "alternatives": [{"key": "B♭ major", "probability": 0.913},
                                               {"key": "G minor", "probability": 0.05}]}
    assert key_line(a) == "song.mp3  B♭ major (6B)  0.91   next: G minor 0.05"
    assert key_line({**a, "alternatives": []}) == "song.mp3  B♭ major (6B)  0.91"
    assert key_line({**a, "camelot": None, "key": "B♭"}).startswith("song.mp3  B♭  0.91")
    none = {"file": "speech.ogg", "tonal": False, "reason": "no tonal centre: P(no key) 0.93 ≥ threshold 0.50"}
    assert key_line(none) == "speech.ogg  no key (no tonal centre: P(no key) 0.93 ≥ threshold 0.50)"


def test_out_files_keep_what_json_shows(key24_run, demo_corpus, tmp_path):
    """Before: --out wrote top-1 only and ignored --top-k 0 and --over-time. Now JSONL holds --json's objects, CSV a
    column per class (all filled with --top-k 0) and the key fields, and --over-time into CSV is refused."""
    run = str(key24_run("F# minor"))
    files = [str(p) for p in _files(demo_corpus, 2)]
    shown = json.loads(runner.invoke(app, ["predict", run, *files, "--json", "-k", "0"]).stdout)
    jsonl, csv_out = tmp_path / "a.jsonl", tmp_path / "a.csv"
    assert runner.invoke(app, ["-q", "predict", run, *files, "-k", "0", "--out", str(jsonl)]).exit_code == 0
    lines = [json.loads(x) for x in jsonl.read_text(encoding="utf-8").splitlines()]
    for line, a in zip(lines, shown, strict=True):
        assert {k: v for k, v in line.items() if k not in ("probability", "error")} == a
        assert line["probability"] == a["probabilities"][a["label"]] and line["error"] is None
    assert runner.invoke(app, ["-q", "predict", run, *files, "-k", "0", "--out", str(csv_out)]).exit_code == 0
    rows = list(csv.DictReader(csv_out.open(encoding="utf-8")))
    for r, a in zip(rows, shown, strict=True):
        assert (r["key"], r["camelot"], r["mode"], r["tonal"]) == ("F♯ minor", "11A", "minor", "True")
        assert float(r["confidence"]) == a["confidence"] and r["key_ascii"] == "F# minor"
        probs = {c[2:]: float(v) for c, v in r.items() if c.startswith("p:")}
        assert probs == a["probabilities"] and len(probs) == 25  # every class, full precision
        assert r["alternatives"].startswith("F♯ minor (11A) 0.9")
    top2 = tmp_path / "b.csv"
    assert runner.invoke(app, ["-q", "predict", run, files[0], "-k", "2", "--out", str(top2)]).exit_code == 0
    row = next(csv.DictReader(top2.open(encoding="utf-8")))
    assert sum(1 for c, v in row.items() if c.startswith("p:") and v) == 2  # the two shown; the others empty
    # --over-time: JSONL holds it; a CSV file cannot, and says so before any work
    res = runner.invoke(app, ["-q", "predict", run, files[0], "--over-time", "--out", str(tmp_path / "t.jsonl")])
    assert res.exit_code == 0 and "over_time" in json.loads((tmp_path / "t.jsonl").read_text())
    res = runner.invoke(app, ["predict", run, files[0], "--over-time", "--out", str(tmp_path / "t.csv")])
    assert res.exit_code == 1 and "--over-time" in res.output and ".jsonl" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "t.csv").exists()


def test_csv_cells_cannot_be_formulas(key_run, demo_corpus, tmp_path, monkeypatch):
    """Before: a file named =HYPERLINK(...).h5 was written as is, a formula when the CSV opens in a spreadsheet."""
    src = _files(demo_corpus, 1)[0]
    monkeypatch.chdir(tmp_path)
    names = ['=HYPERLINK("x","y").h5', "+1.h5", "@SUM(A1).h5", "-junk.mp3"]
    for name in names[:3]:
        shutil.copy(src, tmp_path / name)
    (tmp_path / names[3]).write_bytes(b"not audio")
    res = runner.invoke(app, ["-q", "predict", str(key_run), "--out", "rows.csv", "--", *names])
    assert res.exit_code == 0, res.output
    rows = list(csv.reader((tmp_path / "rows.csv").open(encoding="utf-8")))
    header, body = rows[0], rows[1:]
    assert [r[0] for r in body] == ["'" + n for n in names]
    assert body[3][header.index("error")].startswith("'-junk.mp3")
    for r in body[:3]:  # numbers stay numbers
        assert 0 < float(r[header.index("probability")]) <= 1
    assert not any(c[:1] in ("=", "+", "@", "-", "\t", "\r") for r in rows for c in r)
