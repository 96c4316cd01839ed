"""beatdbn.inference: run loading and dispatch, posteriors per step, beat ranges, inputs, rows, file analysis."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch

from beatdbn.data.splits import padded_batch
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.inference import (analyse_file, iter_inputs, load_run, predict_features, predict_files, row_writer,
                               split_posteriors, step_beat_ranges, step_posteriors)
from beatdbn.inference.rows import csv_cell
from beatdbn.inference.runs import Run
from beatdbn.models.convmlp import ConvMLP, MLPConfig
from beatdbn.models.dbn import DBNConfig, output_length

SMALL = dict(n_maps_1a=6, n_maps_1b=6, n_maps_3=6)


def _tracks(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [np.concatenate([rng.random((n, 12)), rng.normal(size=(n, 12))], axis=1).astype(np.float32)
            for n in lengths]


@pytest.mark.parametrize("transpose", [False, True])
def test_step_posteriors_average_to_the_track_posterior(transpose):
    keys = tuple(range(12)) if transpose else ()
    model = ConvMLP(MLPConfig(n_classes=12 if transpose else 3, transpose_keys=keys, **SMALL))
    feats = _tracks([30, 51, 200, 431, 97])
    steps = step_posteriors(model, feats, batch_size=2)
    track = split_posteriors(model, feats, batch_size=3)
    direct = model.predict_proba(*padded_batch(feats)).detach().double().numpy()
    assert track == pytest.approx(direct, abs=1e-6)
    for f, s, t in zip(feats, steps, track):
        assert s.shape == (max(output_length(len(f)), 1), model.config.n_classes)
        assert s.sum(axis=1) == pytest.approx(np.ones(len(s)), abs=1e-5)
        assert s.mean(axis=0) == pytest.approx(t, abs=1e-6)


def test_step_beat_ranges_follow_the_receptive_field():
    c = DBNConfig()
    assert step_beat_ranges(100, output_length(100, c), c).tolist() == [[0, 51], [16, 67], [32, 83], [48, 99]]
    assert step_beat_ranges(20, 1, c).tolist() == [[0, 20]]  # a short track is padded: one step, all its beats
    r = step_beat_ranges(1000, output_length(1000, c), c)
    assert (np.diff(r[:, 0]) == 16).all() and (r[:, 1] - r[:, 0] == 51).all() and r[-1, 1] <= 1000


def _save_run(root, model, run_cfg=None, provenance=None):
    model.save(root / "model")
    if run_cfg is not None:
        (root / "config.json").write_text(json.dumps(run_cfg))
    if provenance is not None:
        (root / "model" / "PROVENANCE.json").write_text(json.dumps(provenance))
    return root


def test_load_run_records_the_representation_and_dispatches_baselines(tmp_path, monkeypatch):
    model = ConvMLP(MLPConfig(n_classes=12, classes=tuple(str(i) for i in range(12)), task="key", **SMALL))
    run = load_run(_save_run(tmp_path / "mlp", model, {"model": "convmlp_random", "representation": "echonest"}))
    assert run.kind == "convmlp" and run.representation == "echonest" and run.labels[:2] == ["C", "C#"]
    assert run.answers_over_time
    # a baseline run: load_run hands it to beatdbn.inference.baselines.load_baseline
    (tmp_path / "lr").mkdir()
    (tmp_path / "lr" / "config.json").write_text(json.dumps({"model": "logreg", "task": "genre"}))

    class Fake:
        classes = ["rock", "jazz"]
        task = "genre"
        representation = "echonest"

        def predict_proba(self, features):
            return np.tile([0.25, 0.75], (len(features), 1))

    calls = []
    monkeypatch.setattr("beatdbn.inference.baselines.load_baseline", lambda path, device: calls.append((path, device)) or Fake())
    run = load_run(tmp_path / "lr")
    assert calls and run.kind == "logreg" and run.labels == ["rock", "jazz"] and not run.answers_over_time
    assert predict_features(run, _tracks([60, 70])) == pytest.approx(np.tile([0.25, 0.75], (2, 1)))
    with pytest.raises(DataError, match="no such run"):
        load_run(tmp_path / "absent")
    with pytest.raises(DataError, match="no model/ folder"):
        load_run(tmp_path)


def test_iter_inputs_walks_folders_once_and_follows_links(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ("a/x.h5", "a/b/y.ogg", "a/b/notes.txt", "a/.hidden.h5", "z.wav"):
        (tmp_path / p).write_bytes(b"")
    os.symlink(tmp_path / "a", tmp_path / "a" / "b" / "loop")  # a link loop is followed once
    files = list(iter_inputs([tmp_path / "a", tmp_path / "z.wav", tmp_path / "a" / "x.h5", tmp_path / "missing.h5"]))
    names = [f.name for f in files]
    assert names == ["y.ogg", "x.h5", "z.wav", "missing.h5"] or names == ["x.h5", "y.ogg", "z.wav", "missing.h5"]


def test_rows_are_csv_or_jsonl_and_never_nan(tmp_path):
    answers = [{"file": "a.h5", "track_id": "TR1", "label": "C", "probabilities": {"C": 0.7, "G": 0.2}},
               {"file": "b.h5", "error": "b.h5: unreadable"}]
    with row_writer(tmp_path / "o.csv") as write:
        for a in answers:
            write(a)
    rows = list(csv.DictReader((tmp_path / "o.csv").open()))
    assert rows[0] == {"file": "a.h5", "track_id": "TR1", "label": "C", "probability": "0.7", "error": ""}
    assert rows[1]["error"] == "b.h5: unreadable" and rows[1]["probability"] == ""
    with row_writer(tmp_path / "o.jsonl") as write:
        for a in answers:
            write(a)
    lines = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert lines[1] == {"file": "b.h5", "track_id": "", "label": None, "probability": None, "error": "b.h5: unreadable"}
    with pytest.raises(ParameterError, match="csv or .jsonl"):
        with row_writer(tmp_path / "o.txt"):
            pass
    assert not (tmp_path / "o.txt").exists()


def test_csv_rows_hold_the_key_fields_and_a_column_per_class(tmp_path):
    answer = {"file": "=a.wav", "track_id": "AU1", "label": "A# major", "key": "B♭ major", "key_ascii": "Bb major",
              "tonic": "B♭", "mode": "major", "camelot": "6B", "confidence": 0.8, "tonal": True, "reason": None,
              "no_key_probability": 0.1, "alternatives": [
                  {"key": "B♭ major", "key_ascii": "Bb major", "camelot": "6B", "probability": 0.8}],
              "probabilities": {"A# major": 0.8, "no key": 0.1}}
    classes = ["A# major", "G minor", "no key"]
    with row_writer(tmp_path / "o.csv", classes=classes, key=True) as write:
        write(answer)
        write({"file": "-b.wav", "error": "-b.wav: unreadable"})
    rows = list(csv.DictReader((tmp_path / "o.csv").open(encoding="utf-8")))
    assert list(rows[0])[-4:] == ["p:A# major", "p:G minor", "p:no key", "error"]
    assert rows[0]["file"] == "'=a.wav" and rows[0]["key"] == "B♭ major" and rows[0]["camelot"] == "6B"
    assert rows[0]["p:A# major"] == "0.8" and rows[0]["p:G minor"] == ""
    assert rows[0]["alternatives"] == "B♭ major (6B) 0.8000"
    assert rows[1]["file"] == "'-b.wav" and rows[1]["error"] == "'-b.wav: unreadable" and rows[1]["key"] == ""
    with pytest.raises(ParameterError, match="over time"):
        with row_writer(tmp_path / "t.csv", over_time=True):
            pass
    assert not (tmp_path / "t.csv").exists()


def test_csv_cells_are_neutralised_but_numbers_stay_numbers():
    for text in ("=1+2", "+SUM(A1)", "-cmd", "@A1", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    for value in (-0.5, 3, 0.25, "-0.5", "+3", "1e-5", "plain", "B♭ major"):
        assert csv_cell(value) == value
    assert csv_cell(None) == ""


def test_non_finite_posteriors_become_errors(shared_msd, tmp_path):
    model = ConvMLP(MLPConfig(n_classes=3, **SMALL))
    with torch.no_grad():
        model.output.bias[0] = float("nan")
    answers = predict_files(Run(tmp_path, model, ["a", "b", "c"], "", {}, None), [shared_msd / "TRAXLZU12903D05F94.h5"],
                            over_time_steps=True)
    assert "non-finite" in answers[0]["error"] and "probabilities" not in answers[0]
    json.dumps(answers, allow_nan=False)


def test_analyse_file_names_the_mismatched_model(shared_msd, tmp_path):
    model = ConvMLP(MLPConfig(n_classes=3, classes=("a", "b", "c"), task="genre", **SMALL))
    en = load_run(_save_run(tmp_path / "en", model, {"model": "convmlp_random"}, {"representation": "echonest"}))
    au = load_run(_save_run(tmp_path / "au", model, {"model": "convmlp_random"}, {"representation": "audio"}))
    res = analyse_file([en, au], shared_msd / "TRAXLZU12903D05F94.h5", top_k=2)
    json.dumps(res, allow_nan=False)
    t = res["tracks"][0]
    assert t["n_beats"] == len(t["beats"]) == len(t["chroma"]) == len(t["timbre"]) and t["tempo"] > 0
    ok, bad = t["models"]
    assert len(ok["top"]) == 2 and len(ok["over_time"]["posteriors"]) == len(ok["over_time"]["beats"])
    assert "needs a model trained on MSD (Echo Nest) features" in bad["error"] and "top" not in bad
    with pytest.raises(DataError):
        bad_file = tmp_path / "x.h5"
        bad_file.write_bytes(b"\x89HDF\r\n\x1a\n junk")
        analyse_file([en], bad_file)


def test_the_package_names_are_the_functions_whatever_was_imported_first():
    """beatdbn.inference resolves its names lazily; ``embed`` is also a submodule's name, and importing the
    submodule first must not turn ``from beatdbn.inference import embed`` into the module (a fresh process)."""
    import subprocess
    import sys

    code = ("import types, beatdbn.inference.embed, beatdbn.inference.runs\n"
            "from beatdbn.inference import embed, load_run, predict_files\n"
            "import beatdbn.inference as pkg\n"
            "assert not isinstance(embed, types.ModuleType) and embed.__name__ == 'embed', embed\n"
            "assert pkg.embed is embed and callable(load_run) and callable(predict_files)\n"
            "assert set(pkg.__all__) <= set(dir(pkg))\n"
            "try:\n    pkg.no_such_name\nexcept AttributeError:\n    print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
