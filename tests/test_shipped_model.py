"""The key model shipped in the package: 24 keys and "no key", calibrated; `beatdbn predict --task key` uses it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.exceptions import ParameterError
from beatdbn.inference import predict_files, shipped_model, shipped_model_dir
from beatdbn.labels import KEY_NAMES_24, NO_KEY
from beatdbn.synth.audio_keys import render_piece
from beatdbn.synth.no_key import render_clip

runner = CliRunner()

# Pieces the model never saw (its corpora are pieces seeded [0, i], held out [1, i] and [2, i], and for the ends'
# weights [3, i]):
# (tonic, mode, seed), 56 beats each, both modes.
FRESH = [(tonic, mode, 9000 + 2 * tonic + mode) for tonic in (0, 3, 7, 10) for mode in (0, 1)]
# Clips without a key, of seeds never used in training (the corpus is [0, i], the held-out ones [1, i] and [2, i]).
KEYLESS = [("noise", [77, 1]), ("tone", [77, 2]), ("noise", [77, 3]), ("tone", [77, 4])]


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("songs")
    paths = []
    for tonic, mode, seed in FRESH:
        p = render_piece(tonic=tonic, mode=mode, seed=seed, n_beats=56)
        path = folder / f"{KEY_NAMES_24[tonic + 12 * (mode == 0)].replace(' ', '-')}.ogg"
        sf.write(path, p.audio, p.sr, format="OGG")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def keyless_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keyless")
    paths = []
    for kind, seed in KEYLESS:
        path = folder / f"{kind}-{seed[1]}.flac"
        sf.write(path, render_clip(kind, seed=seed, seconds=20.0), 22050)
        paths.append(path)
    return paths


def test_shipped_model_is_small_calibrated_and_documented():
    folder = shipped_model_dir("key")
    assert (folder / "model.pt").stat().st_size < 5 * 2**20
    prov = json.loads((folder / "PROVENANCE.json").read_text())
    for key in ("corpus", "comparison", "calibration", "valid", "holdout", "command", "versions"):
        assert key in prov, key
    assert prov["representation"] == "audio"
    assert "FluidR3" not in json.dumps(prov["corpus"]) and "music21" not in json.dumps(prov["corpus"])
    run = shipped_model("key")
    assert run.task == "key" and run.representation == "audio" and run.labels == list(KEY_NAMES_24) + [NO_KEY]
    assert 0 < run.temperature < 20 and 0 < run.tonal_threshold <= 0.5
    assert math.isfinite(prov["holdout"]["ece"])


def test_shipped_model_weighs_the_ends_fitted_on_a_seed_of_their_own():
    run = shipped_model("key")
    w = run.end_weights
    assert w is not None and len(w) == 3 and all(math.isfinite(x) for x in w) and w[1] > 0 and w[2] > 0
    prov = json.loads((shipped_model_dir("key") / "PROVENANCE.json").read_text())
    ends = prov["ends"]
    assert ends["seed"] not in (prov["corpus"]["seed"], prov["holdout"]["seed"])
    assert ends["weights"] == pytest.approx(w)
    h = ends["holdout"]  # the same held-out files, the network alone and with the ends
    assert h["n_tonal"] >= 600 and set(h["network"]) == set(h["with_ends"]) >= {"tonic_accuracy", "accuracy_24"}


def test_predict_reads_a_recordings_ends_and_the_ends_move_the_answer(audio_files):
    from beatdbn.features.sources import read_audio_features

    run = shipped_model("key")
    shown = predict_files(run, audio_files[:2], top_k=0)
    for a, path in zip(shown, audio_files[:2]):
        meta, feats, beats = read_audio_features(path)
        assert meta["chroma_ends"].shape == (2, 12)
        track = run.admit(str(path), meta, feats, beats)
        with_ends = run.predict_proba([track]).tracks[0]
        network = run.predict_proba([feats]).tracks[0]  # an array: no ends
        got = np.array([a["probabilities"][label] for label in run.labels])
        np.testing.assert_allclose(got, with_ends, atol=1e-3)  # the answer shown is the one with the ends
        assert np.abs(with_ends - network).max() > 1e-4
        assert with_ends[-1] == pytest.approx(network[-1])  # P(no key) is the network's


def test_shipped_model_provenance_gives_intervals_and_styles():
    prov = json.loads((shipped_model_dir("key") / "PROVENANCE.json").read_text())
    h = prov["holdout"]
    assert h["seed"] != prov["corpus"]["seed"] and h["pieces"] >= 600 and h["n_tonal"] == 2 * h["pieces"]
    for k in ("accuracy_24", "tonic_accuracy", "mirex_weighted"):
        lo, hi = h[k + "_ci"]
        assert lo <= h[k] <= hi and 0 < hi - lo < 0.1, (k, lo, h[k], hi)
    styles = h["by_style"]
    assert {"functional harmony", "popular-music loop", "chorale"} <= set(styles)
    # functional harmony and the loops split the pieces between them
    assert styles["functional harmony"]["pieces"] + styles["popular-music loop"]["pieces"] == h["pieces"]
    versus = h.get("against_essentia")  # present when Essentia was installed where the model was built
    if versus is not None:
        assert versus["tracks"] == h["n_tonal"] and versus["all"]["pieces"] == h["pieces"]
        for k in ("accuracy_24", "tonic_accuracy", "mirex_weighted"):
            v = versus["all"][k]
            assert v["beatdbn"] == pytest.approx(h[k])
            assert v["difference"] == pytest.approx(v["beatdbn"] - v["essentia"])
            assert v["difference_ci"][0] <= v["difference"] <= v["difference_ci"][1]
        # every loop progression apart: their tracks are the loops' tracks
        assert sum(x["tracks"] for x in versus["by_loop"].values()) == styles["popular-music loop"]["n_tonal"]


def test_shipped_model_names_the_key_of_pieces_it_never_heard(audio_files):
    run = shipped_model("key")
    answers = predict_files(run, audio_files, top_k=0)
    right = 0
    for a, (tonic, mode, _) in zip(answers, FRESH):
        probs = np.array(list(a["probabilities"].values()))
        assert "error" not in a and len(probs) == 25 and np.all(np.isfinite(probs))
        assert abs(probs.sum() - 1) < 1e-4
        assert a["probabilities"][NO_KEY] < run.tonal_threshold  # tonal music is never refused here
        right += a["label"] == KEY_NAMES_24[tonic + 12 * (mode == 0)]
    assert right >= 6, answers  # 24 keys; chance gets >= 6 of 8 about once in 10^7


def test_shipped_model_refuses_what_has_no_key(keyless_files):
    run = shipped_model("key")
    answers = predict_files(run, keyless_files, top_k=0)
    refused = [a["probabilities"][NO_KEY] >= run.tonal_threshold for a in answers]
    assert sum(refused) >= 3, answers


def test_cli_predict_task_key_prints_the_key_as_musicians_name_it(audio_files, keyless_files):
    res = runner.invoke(app, ["predict", "--task", "key", str(audio_files[0]), "--json"])
    assert res.exit_code == 0, res.output
    answers = json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"JSON holds {c}"))
    a = answers[0]
    assert len(answers) == 1 and a["label"] in KEY_NAMES_24 and len(a["probabilities"]) == 3
    for field in ("key", "tonic", "mode", "camelot", "confidence", "tonal", "alternatives"):
        assert field in a, field
    assert a["tonal"] is True and a["mode"] in ("major", "minor") and a["camelot"][-1] in "AB"
    res = runner.invoke(app, ["predict", "--task", "key", str(audio_files[0])])
    assert res.exit_code == 0 and f"{a['key']} ({a['camelot']})" in res.stdout
    # a clip without a key: key null, tonal false, a reason; never a key
    res = runner.invoke(app, ["predict", "--task", "key", str(keyless_files[0]), "--json"])
    b = json.loads(res.stdout)[0]
    assert b["key"] is None and b["tonal"] is False and b["reason"]
    # RUN_DIR FILES... still works (a model folder is a run directory too)
    res = runner.invoke(app, ["predict", str(shipped_model_dir("key")), str(audio_files[0]), "--top-k", "1"])
    assert res.exit_code == 0, res.output
    assert a["key"] in res.stdout


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
