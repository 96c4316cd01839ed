"""The one classifier protocol (issue 26 item 2): Run.predict_proba(features, *, over_time) for every run, one
forward pass for steps and track posterior, one door (admit), one answer builder (track_answer, page_answer)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from beatdbn.data.splits import padded_batch
from beatdbn.exceptions import ParameterError
from beatdbn.features.sources import read_features
from beatdbn.inference import analyse_file, predict_files, shipped_model
from beatdbn.inference.answer import page_answer, track_answer
from beatdbn.inference.classifier import Track, TrackRefused, WindowClassifier, admit
from beatdbn.inference.runs import Run
from beatdbn.labels import KEY_NAMES
from beatdbn.metrics.calibration import apply_temperature
from beatdbn.models.convmlp import ConvMLP, MLPConfig
from beatdbn.synth.audio_keys import render_piece

from conftest import SHARED_AUDIO

SMALL = dict(n_maps_1a=6, n_maps_1b=6, n_maps_3=6)


def _tracks(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [np.concatenate([rng.random((n, 12)), rng.normal(size=(n, 12))], axis=1).astype(np.float32)
            for n in lengths]


def _run(model, **kw):
    return Run(kw.pop("path", None) or __import__("pathlib").Path("."), model, list(model.config.class_names), "key",
               {}, None, **kw)


def _count_forwards(monkeypatch):
    calls = []
    real = ConvMLP._logits
    monkeypatch.setattr(ConvMLP, "_logits", lambda self, x, l: calls.append(x.shape[0]) or real(self, x, l))
    return calls


@pytest.mark.parametrize("transpose", [False, True])
def test_track_posterior_is_the_mean_of_the_steps_from_one_forward_pass(transpose, monkeypatch):
    keys = tuple(range(12)) if transpose else ()
    model = ConvMLP(MLPConfig(n_classes=12, classes=tuple(KEY_NAMES), task="key", transpose_keys=keys, **SMALL))
    feats = _tracks([30, 51, 200, 431, 97])
    run = _run(model)
    old = [model.eval().predict_proba(*padded_batch([f])).detach().double().numpy()[0] for f in feats]  # before
    calls = _count_forwards(monkeypatch)
    post = run.predict_proba(feats, over_time=True, batch_size=1)
    assert len(calls) == 5 and calls == [12 if transpose else 1] * 5  # one pass a batch, rotations inside it
    assert np.array_equal(post.tracks, np.array(old))  # bit for bit the track posterior of before
    for s, t in zip(post.steps, post.tracks):
        assert s.mean(axis=0) == pytest.approx(t, abs=1e-6)
    assert run.predict_proba(feats).steps is None


def test_over_time_runs_the_network_once_in_predict_and_serve(shared_msd, monkeypatch, tmp_path):
    model = ConvMLP(MLPConfig(n_classes=12, classes=tuple(KEY_NAMES), task="key", **SMALL))
    run = _run(model, path=tmp_path)
    f = shared_msd / "TRAXLZU12903D05F94.h5"
    calls = _count_forwards(monkeypatch)
    (a,) = predict_files(run, [f], over_time_steps=True, top_k=0)
    assert len(calls) == 1  # before: 2 (track posteriors, then the steps again)
    assert [a["probabilities"][c] for c in KEY_NAMES] == pytest.approx(
        np.array(a["over_time"]["posteriors"]).mean(axis=0), abs=1e-5)
    calls.clear()
    page = analyse_file([run], f, top_k=3)["tracks"][0]["models"][0]
    assert len(calls) == 1 and [t["label"] for t in page["top"]] == list(a["probabilities"])[:3]
    assert page["key"]["key"] == a["key"] and page["over_time"] == a["over_time"]


def test_the_door_refuses_in_one_line_and_predict_proba_names_the_track():
    ok = admit("x.h5", {"track_id": "TR1"}, np.ones((5, 24), dtype=np.float64), np.arange(5.0), n_inputs=24)
    assert isinstance(ok, Track) and ok.features.dtype == np.float32 and ok.track_id == "TR1"
    bad = np.ones((5, 24))
    bad[2, 3] = np.nan
    for feats, says in ((np.zeros((0, 24)), "has no beats"), (np.ones((5, 20)), r"shape \(5, 20\)"),
                        (bad, "non-finite feature values")):
        with pytest.raises(TrackRefused, match=f"x.h5: track TR1 {'has ' if 'shape' in says else ''}.*{says}"):
            admit("x.h5", {"track_id": "TR1"}, feats, n_inputs=24)
    with pytest.raises(TrackRefused, match="other kind"):
        admit("x.h5", {}, np.ones((5, 24)), n_inputs=24, mismatch=lambda meta, name: "other kind")
    run = _run(ConvMLP(MLPConfig(n_classes=12, classes=tuple(KEY_NAMES), task="key", **SMALL)))
    with pytest.raises(ParameterError, match="track 1 has features of shape"):
        run.predict_proba([np.ones((60, 24), np.float32), np.ones((60, 3), np.float32)])
    assert run.predict_proba([]).tracks.shape == (0, 12)


def test_a_baseline_has_the_same_protocol_and_no_steps():
    class NB:
        kind = "naive_bayes"

        def predict_proba(self, features):
            return np.tile([0.25, 0.75], (len(features), 1))

    c = WindowClassifier(NB())
    tracks, steps = c.predict_proba(_tracks([60, 70]))
    assert tracks.shape == (2, 2) and steps is None and not c.answers_over_time
    with pytest.raises(ParameterError, match="no layer-4 steps"):
        c.predict_proba(_tracks([60]), over_time=True)
    run = Run(__import__("pathlib").Path("nb"), NB(), ["rock", "jazz"], "genre", {}, None, kind="naive_bayes")
    with pytest.raises(ParameterError, match="conv MLP"):
        run.predict_proba(_tracks([60]), over_time=True)


def test_one_answer_builder_for_files_and_the_page():
    run = _run(ConvMLP(MLPConfig(n_classes=12, classes=tuple(KEY_NAMES), task="key", **SMALL)))
    p = np.full(12, 0.5 / 11)
    p[7] = 0.5
    a = track_answer(run, p, top_k=2)
    assert a["label"] == "G" and a["key"] == "G" and list(a["probabilities"]) == ["G", "C"]
    page = page_answer(a)
    assert page["top"] == [{"label": "G", "probability": 0.5}, {"label": "C", "probability": pytest.approx(0.5 / 11)}]
    assert page["key"]["label"] == "G" and page["key"]["confidence"] == 0.5
    assert track_answer(run, np.full(12, np.nan), name="x.h5") == {
        "error": "x.h5: the model gave non-finite posteriors for this track"}
    assert "error" in page_answer(track_answer(run, np.full(12, np.nan)))
    json.dumps(a, allow_nan=False)


def _audio_tracks(tmp_path):
    piece = render_piece(tonic=10, mode=1, seed=9020, n_beats=56)
    sf.write(tmp_path / "song.ogg", piece.audio, piece.sr, format="OGG")
    paths = [tmp_path / "song.ogg"] + sorted(SHARED_AUDIO.glob("*.ogg"))[:2]  # the real recordings when present
    return [(p, feats) for p in paths for _, feats, _ in read_features(p)]


def test_the_shipped_key_model_answers_as_before(tmp_path):
    """The shipped model's track posteriors (12 transpositions, calibrated) are those of the path before the
    protocol: ConvMLP.predict_proba of the same batch, then the temperature; bit for bit (tests' own audio, and
    two real recordings when ../shared/data/audio is present)."""
    run = shipped_model("key", engine="torch")
    assert run.model.config.transpose_keys
    tracks = _audio_tracks(tmp_path)
    post = run.predict_proba([f for _, f in tracks], over_time=True, batch_size=1)  # one track a pass, as before
    batched = run.predict_proba([f for _, f in tracks]).tracks  # several a pass: padding moves the last bits
    for (path, feats), got, steps, b in zip(tracks, post.tracks, post.steps, batched):
        with torch.no_grad():
            before = apply_temperature(run.model.predict_proba(*padded_batch([feats])).double().numpy(),
                                       run.temperature)[0]
        assert np.array_equal(got, before), path.name
        assert b == pytest.approx(before, abs=1e-6) and b.argmax() == before.argmax()
        assert apply_temperature(steps.mean(axis=0)[None], run.temperature)[0] == pytest.approx(before, abs=1e-6)


def test_budget_batches_cover_every_track_once_within_the_budget():
    from beatdbn.data.splits import budget_batches

    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 3000, size=200)
    for max_tracks, max_beats in ((64, 1 << 15), (4, 2000), (1, 10)):
        batches = budget_batches(lengths, max_tracks, max_beats)
        assert sorted(np.concatenate(batches).tolist()) == list(range(200))
        for b in batches:
            assert 1 <= len(b) <= max_tracks
            assert len(b) == 1 or len(b) * lengths[b].max() <= max_beats  # a longer track alone
    with pytest.raises(ParameterError, match="max_beats"):
        budget_batches(lengths, 4, 0)


def test_a_key_split_is_evaluated_in_passes_that_fit_the_caches(monkeypatch):
    """Training evaluates a split through conv_posteriors: a transposition model's 12 rotations count toward
    EVAL_BEATS, so 36 tracks of ~1,000 beats are not one pass of 432 x 1,000 beats (7.5x slower on real
    tracks); the posteriors stay those of one track a pass to float rounding, the answers the same."""
    from beatdbn.inference import classifier

    model = ConvMLP(MLPConfig(n_classes=12, classes=tuple(KEY_NAMES), task="key", transpose_keys=tuple(range(12)),
                              **SMALL))
    feats = _tracks([900, 1000, 950, 40, 60, 980] * 6)
    one = classifier.conv_posteriors(model, feats, batch_size=1)[0]
    calls, real = [], ConvMLP._logits
    monkeypatch.setattr(ConvMLP, "_logits", lambda self, x, l: calls.append(x.shape[:3:2]) or real(self, x, l))
    got = classifier.conv_posteriors(model, feats, batch_size=64)[0]
    assert all(rows * beats <= classifier.EVAL_BEATS or rows == 12 for rows, beats in calls)
    assert sum(rows for rows, _ in calls) == 12 * len(feats) and len(calls) > 1
    assert got == pytest.approx(one, abs=1e-6) and np.array_equal(got.argmax(1), one.argmax(1))
