"""Calibration: ECE and reliability bins, temperature scaling, the "no key" threshold."""

from __future__ import annotations

import numpy as np
import pytest

from beatdbn.exceptions import ParameterError
from beatdbn.metrics.calibration import apply_temperature, expected_calibration_error
from beatdbn.train.calibration import choose_tonal_threshold, fit_temperature


def test_ece_of_perfectly_calibrated_and_overconfident_answers():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1.0, 20000)
    right = rng.random(20000) < conf  # right exactly as often as claimed
    ece, bins = expected_calibration_error(conf, right)
    assert ece < 0.02
    assert sum(b["n"] for b in bins) == 20000
    over, _ = expected_calibration_error(np.full(1000, 0.95), rng.random(1000) < 0.6)
    assert over == pytest.approx(0.35, abs=0.05)
    with pytest.raises(ParameterError):
        expected_calibration_error([0.5], [1, 0])


def test_temperature_recovers_the_true_temperature_and_lowers_ece():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, size=(4000, 25))
    true_p = np.exp(logits / 2.5)
    true_p /= true_p.sum(1, keepdims=True)
    labels = np.array([rng.choice(25, p=p) for p in true_p])
    shown = np.exp(logits)
    shown /= shown.sum(1, keepdims=True)  # the model's posterior: 2.5x too sharp
    t = fit_temperature(shown, labels)
    assert t == pytest.approx(2.5, rel=0.1)
    cal = apply_temperature(shown, t)
    before, _ = expected_calibration_error(shown.max(1), shown.argmax(1) == labels)
    after, _ = expected_calibration_error(cal.max(1), cal.argmax(1) == labels)
    assert after < 0.03 < before
    assert np.allclose(cal.sum(1), 1)
    assert (cal.argmax(1) == shown.argmax(1)).all()  # the answer never changes, only its confidence
    with pytest.raises(ParameterError):
        apply_temperature(shown, 0.0)


def test_tonal_threshold_refuses_at_most_the_allowed_share_of_tonal_tracks():
    rng = np.random.default_rng(2)
    tonal = rng.beta(0.5, 20, 1000)
    t = choose_tonal_threshold(tonal, max_tonal_refused=0.01)
    assert np.mean(tonal >= t) <= 0.01
    assert np.mean(tonal >= t * 0.9) > 0.005  # and not needlessly high: just above the tonal tail
    assert choose_tonal_threshold(np.full(50, 0.9), max_tonal_refused=0.0) == 0.5  # never above 0.5
    with pytest.raises(ParameterError):
        choose_tonal_threshold([], max_tonal_refused=0.01)
