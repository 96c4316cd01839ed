"""The MIREX weighted key score (mir_eval) on confusion matrices, in result.json, against hand-computed cases."""

import json

import numpy as np
import pytest

from beatdbn.metrics.scores import fifth_convention, mirex_keys, weighted_key_score
from beatdbn.metrics.results import ExperimentResult
from beatdbn.exceptions import ParameterError
from beatdbn.labels import KEY_NAMES, KEY_NAMES_24

K24 = list(KEY_NAMES_24)
K12 = list(KEY_NAMES)


def _confusion(pairs, classes):
    c = np.zeros((len(classes), len(classes)), dtype=int)
    for ref, est in pairs:
        c[classes.index(ref), classes.index(est)] += 1
    return c


def test_installed_mir_eval_credits_the_ascending_fifth_only():
    # the hand-computed cases below assume mir_eval's convention (0.8.x): the estimate a fifth above, same mode
    assert fifth_convention().endswith("fifth = ascending only (the estimate a perfect fifth above the reference), same mode")


@pytest.mark.parametrize("ref, est, score", [
    ("C major", "C major", 1.0),
    ("C major", "G major", 0.5),   # a perfect fifth above
    ("C major", "F major", 0.0),   # a fifth below: not credited by mir_eval's convention
    ("A minor", "E minor", 0.5),
    ("C major", "G minor", 0.0),   # a fifth, but another mode
    ("C major", "A minor", 0.3),   # relative minor
    ("A minor", "C major", 0.3),   # relative major
    ("C major", "C minor", 0.2),   # parallel
    ("C major", "D major", 0.0),
    ("B major", "F# major", 0.5),  # wraps around the octave
])
def test_single_pairs_on_24_keys(ref, est, score):
    assert weighted_key_score(_confusion([(ref, est)], K24), K24) == score


def test_mean_over_tracks_24_keys():
    pairs = [("C major", "C major"), ("C major", "G major"), ("C major", "A minor"), ("C major", "C minor"),
             ("C major", "D major")]
    # (1.0 + 0.5 + 0.3 + 0.2 + 0.0) / 5
    assert weighted_key_score(_confusion(pairs, K24), K24) == pytest.approx(0.4)


def test_12_tonics_take_the_references_mode():
    # C->C 1.0, C->G 0.5 (fifth above), C->F 0.0, A->E 0.5, A->C 0.0 (relative needs a mode: none on 12 tonics)
    pairs = [("C", "C"), ("C", "G"), ("C", "F"), ("A", "E"), ("A", "C")]
    assert weighted_key_score(_confusion(pairs, K12), K12) == pytest.approx(2.0 / 5)
    # class order does not matter
    shuffled = K12[5:] + K12[:5]
    assert weighted_key_score(_confusion(pairs, shuffled), shuffled) == pytest.approx(2.0 / 5)


def test_non_key_classes_and_bad_shapes():
    assert mirex_keys(["rock", "pop"]) is None
    assert weighted_key_score(np.eye(2), ["rock", "pop"]) is None
    assert np.isnan(weighted_key_score(np.zeros((12, 12)), K12))
    with pytest.raises(ParameterError, match="does not match"):
        weighted_key_score(np.eye(3), K12)


def test_result_json_carries_the_weighted_score(tmp_path):
    pairs = [("C", "C"), ("C", "G"), ("D", "D"), ("D", "C")]
    r = ExperimentResult("key", "logreg", classes=K12, chance=1 / 12)
    r.runs.append({"learning_rate": 5e-4, "epoch": 10, "valid_accuracy": 0.5, "test_accuracy": 0.5,
                   "confusion": _confusion(pairs, K12).tolist()})
    r.save(tmp_path)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["runs"][0]["test_weighted_key_score"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert "ascending" in saved["extra"]["key_score"]["fifth"]
    other = ExperimentResult("genre", "logreg", classes=["rock", "pop"], chance=0.5)
    other.runs.append({"learning_rate": 5e-4, "epoch": 10, "valid_accuracy": 0.5, "test_accuracy": 0.5,
                       "confusion": [[1, 0], [0, 1]]})
    other.save(tmp_path / "g")
    assert "test_weighted_key_score" not in json.loads((tmp_path / "g" / "result.json").read_text())["runs"][0]
