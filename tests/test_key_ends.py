"""models.key_ends (the ends' chords added to a key model's answer), its fit, and where a Run applies it."""

from __future__ import annotations

import numpy as np
import pytest

from beatdbn.exceptions import ParameterError
from beatdbn.inference.classifier import admit
from beatdbn.inference.runs import key_columns, shipped_model
from beatdbn.models.key_ends import end_terms, fuse, triad_templates
from beatdbn.train.calibration import fit_end_weights

RNG = np.random.default_rng(0)


def _ends_on(keys, level=3.0, noise=0.2):
    """Start and end chroma on each key's tonic triad, with a little noise."""
    t = triad_templates()[keys]
    return np.abs(np.repeat(t[:, None, :], 2, axis=1) * level + RNG.normal(0, noise, (len(keys), 2, 12)))


def test_fuse_gives_distributions_and_only_the_network_when_the_ends_weigh_nothing():
    post = RNG.dirichlet(np.ones(24), size=5)
    ends = _ends_on(RNG.integers(0, 24, 5))
    q = fuse(post, ends, [1.0, 2.0, 1.0])
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    np.testing.assert_allclose(fuse(post * 0.3, ends, [1.0, 0.0, 0.0]), post, rtol=1e-9)  # scale per row: none
    flat = fuse(post, np.ones((5, 2, 12)), [1.0, 5.0, 5.0])  # a flat chroma correlates with nothing
    np.testing.assert_allclose(flat, post, rtol=1e-9)
    assert np.isfinite(fuse(post, np.zeros((5, 2, 12)), [1.0, 5.0, 5.0])).all()  # silence at both ends


def test_the_ends_decide_between_a_key_and_its_relative_or_its_dominant():
    post = np.zeros((3, 24))
    post[0, [0, 21]] = [0.45, 0.55]   # C major or A minor? the network leans to A minor
    post[1, [0, 7]] = [0.4, 0.6]      # C major or G major (its dominant)? the network leans to G
    post[2, [0, 21]] = [0.55, 0.45]
    post += 1e-6
    ends = _ends_on(np.array([0, 0, 21]), noise=0.0)  # the first two end on C major, the third on A minor
    assert fuse(post, ends, [1.0, 3.0, 1.0]).argmax(axis=1).tolist() == [0, 0, 21]
    assert post.argmax(axis=1).tolist() == [21, 7, 0]


def test_fit_recovers_what_the_ends_say_and_refuses_bad_input():
    keys = RNG.integers(0, 24, 300)
    post = np.full((300, 24), 1 / 24)
    w = fit_end_weights(post, _ends_on(keys), keys)
    assert w[1] > 1 and w[2] > 1
    noise_ends = np.abs(RNG.normal(0, 1, (300, 2, 12)))  # ends that say nothing get ~no weight
    informative = np.log(np.where(np.arange(24) == keys[:, None], 0.9, 0.1 / 23))
    w_noise = fit_end_weights(np.exp(informative), noise_ends, keys)
    assert abs(w_noise[1]) < 0.5 and abs(w_noise[2]) < 0.5 and w_noise[0] > 0.5
    with pytest.raises(ParameterError):
        fit_end_weights(post[:, :12], _ends_on(keys), keys)
    with pytest.raises(ParameterError):
        fit_end_weights(post, _ends_on(keys), keys + 24)
    with pytest.raises(ValueError, match="expected"):
        end_terms(np.zeros((3, 12)))


def testkey_columns_map_the_24_keys_and_nothing_else():
    run = shipped_model("key")
    cols = key_columns(run.labels)
    assert [run.labels[i] for i in cols[[0, 10, 12, 21]]] == ["C major", "A# major", "C minor", "A minor"]
    assert key_columns(["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]) is None  # 12 tonics
    assert key_columns(["rock", "jazz"]) is None


def test_a_run_reweighs_only_the_tracks_with_ends_and_keeps_p_no_key():
    run = shipped_model("key")
    feats = np.abs(RNG.normal(0, 1, (64, 24))).astype(np.float32)
    ends = _ends_on(np.array([7]), noise=0.0)[0]  # both ends on G major
    plain = run.admit("x", {"track_id": "a"}, feats)
    with_ends = run.admit("x", {"track_id": "b", "chroma_ends": ends}, feats)
    assert plain.chroma_ends is None and with_ends.chroma_ends.shape == (2, 12)
    assert admit("x", {"chroma_ends": np.full((2, 12), np.nan)}, feats, n_inputs=24).chroma_ends is None
    run.calibration = {**run.calibration, "ends": {"weights": [1.0, 8.0, 8.0]}}
    p = run.predict_proba([plain, with_ends]).tracks
    run.calibration = {k: v for k, v in run.calibration.items() if k != "ends"}
    p0 = run.predict_proba([plain, with_ends]).tracks
    np.testing.assert_allclose(p[0], p0[0])            # no ends: as the network said
    np.testing.assert_allclose(p[1, -1], p0[1, -1])    # P(no key) untouched
    np.testing.assert_allclose(p[1].sum(), 1.0)
    assert run.labels[int(p[1, :24].argmax())] == "G major"
