"""The key model shipped in the package: loads, predicts on audio, and `beatdbn predict --task key` uses it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.inference import predict_files, shipped_model, shipped_model_dir
from beatdbn.exceptions import ParameterError
from beatdbn.synth.audio_keys import render_piece
from beatdbn.labels import KEY_NAMES

runner = CliRunner()

# Pieces the model never saw (the training corpus is seed 0, pieces seeded [0, i]; the held-out one seed 1):
# (tonic, mode, seed), 56 beats each (real held-out pieces have a median of 55): the first 8 of the 24 pieces
# (tonics C..B, both modes, seeds 9000..9023) on which the shipped model was measured (22 of 24 right).
FRESH = [(tonic, mode, 9000 + 2 * tonic + mode) for tonic in range(4) for mode in (0, 1)]


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("songs")
    paths = []
    for tonic, mode, seed in FRESH:
        p = render_piece(tonic=tonic, mode=mode, seed=seed, n_beats=56)
        path = folder / f"{KEY_NAMES[tonic]}-{'major' if mode else 'minor'}.ogg"
        sf.write(path, p.audio, p.sr, format="OGG")
        paths.append(path)
    return paths


def test_shipped_model_is_small_and_documented():
    folder = shipped_model_dir("key")
    assert (folder / "model.pt").stat().st_size < 5 * 2**20
    prov = json.loads((folder / "PROVENANCE.json").read_text())
    for key in ("recipe", "corpus", "valid_accuracy", "test_accuracy", "holdout", "command", "versions"):
        assert key in prov, key
    assert prov["representation"] == "audio" and prov["corpus"]["generator"] == "beatdbn.synth.audio_keys"
    assert all(math.isfinite(prov[k]) for k in ("valid_accuracy", "test_accuracy"))
    run = shipped_model("key")
    assert run.task == "key" and run.representation == "audio" and run.labels == list(KEY_NAMES)


def test_shipped_model_predicts_generated_audio(audio_files):
    answers = predict_files(shipped_model("key"), audio_files, top_k=0)
    assert [a["file"] for a in answers] == [str(p) for p in audio_files]
    right = 0
    for a, (tonic, _, _) in zip(answers, FRESH):
        probs = np.array(list(a["probabilities"].values()))
        assert "error" not in a and len(probs) == 12 and np.all(np.isfinite(probs))
        assert abs(probs.sum() - 1) < 1e-4 and a["label"] == next(iter(a["probabilities"]))
        right += a["label"] == KEY_NAMES[tonic]
    assert right >= 6, answers  # ~90 % on held-out pieces; chance (1/12) gets >= 6 of 8 about once in 10^6


def test_cli_predict_task_key_uses_the_shipped_model(audio_files):
    res = runner.invoke(app, ["predict", "--task", "key", str(audio_files[0]), "--json"])
    assert res.exit_code == 0, res.output
    answers = json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"JSON holds {c}"))
    assert len(answers) == 1 and answers[0]["label"] in KEY_NAMES and len(answers[0]["probabilities"]) == 3
    # RUN_DIR FILES... still works (a model folder is a run directory too)
    res = runner.invoke(app, ["predict", str(shipped_model_dir("key")), str(audio_files[0]), "--top-k", "1"])
    assert res.exit_code == 0, res.output
    assert answers[0]["label"] in res.stdout


def test_cli_predict_names_a_representation_mismatch(tmp_path):
    from beatdbn.synth import make_track, write_track

    h5 = write_track(tmp_path / "TRSYNTH.h5", make_track(n_beats=64, seed=1))
    res = runner.invoke(app, ["predict", "--task", "key", str(h5), "--json"])
    assert res.exit_code == 1
    answer = json.loads(res.stdout)[0]
    assert "Echo Nest" in answer["error"] and "audio" in answer["error"]


def test_cli_predict_errors(tmp_path, audio_files):
    res = runner.invoke(app, ["predict", "--task", "genre", str(audio_files[0])])
    assert res.exit_code == 1 and "no model is shipped" in res.output
    res = runner.invoke(app, ["predict", str(audio_files[0])])
    assert res.exit_code == 1 and "--task key" in res.output
    res = runner.invoke(app, ["predict", "--task", "genre", str(shipped_model_dir("key")), str(audio_files[0])])
    assert res.exit_code == 1 and "not --task 'genre'" in res.output
    with pytest.raises(ParameterError):
        shipped_model_dir("artist")
