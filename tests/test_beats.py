"""Beat alignment: overlap weighting and every edge rule of beatdbn.features.beats."""

import numpy as np
import pytest

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.features.beats import FALLBACK_PERIOD, _align_loop, align, beat_grid


def test_overlap_weighted_mean():
    seg_t = np.array([0.0, 1.0, 3.0])
    vals = np.array([[0.0, 10.0], [1.0, 20.0], [5.0, 30.0]])
    out = align(seg_t, vals, np.array([0.5, 2.5]), duration=4.0)
    # beat 0 spans [0.5, 2.5): 0.5 s of segment 0, 1.5 s of segment 1
    np.testing.assert_allclose(out[0], [(0.5 * 0 + 1.5 * 1) / 2, (0.5 * 10 + 1.5 * 20) / 2], rtol=1e-6)
    # beat 1 (the last) spans [2.5, min(2.5 + 2.0, 4.0)): 0.5 s of segment 1, 1 s of segment 2
    np.testing.assert_allclose(out[1], [(0.5 * 1 + 1.0 * 5) / 1.5, (0.5 * 20 + 1.0 * 30) / 1.5], rtol=1e-6)
    assert out.dtype == np.float32 and out.shape == (2, 2)


def test_matches_loop_reference_on_random_tracks():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n_seg = int(rng.integers(1, 60))
        seg_t = np.sort(rng.uniform(0, 30, n_seg))
        vals = rng.normal(size=(n_seg, 24))
        beats = np.sort(rng.uniform(-2, 35, int(rng.integers(1, 40))))
        beats[rng.random(len(beats)) < 0.1] = beats[0]  # some repeated (zero-length) beats
        beats = np.sort(beats)
        dur = float(rng.uniform(25, 40))
        np.testing.assert_allclose(align(seg_t, vals, beats, duration=dur),
                                   _align_loop(seg_t, vals, beats, duration=dur), rtol=1e-4, atol=1e-4)


def test_beats_outside_segments_take_the_nearest_segment():
    seg_t = np.array([2.0, 3.0])
    vals = np.array([[1.0], [2.0]])
    out = align(seg_t, vals, np.array([0.0, 0.5, 10.0]), duration=4.0)
    assert out[0, 0] == 1.0  # [0, 0.5) lies before the first segment
    assert out[1, 0] == pytest.approx((1.0 * 1 + 1.0 * 2) / 2)  # [0.5, 10): covers both fully
    assert out[2, 0] == 2.0  # [10, ...) lies after the end of the track: last segment


def test_zero_length_beats_take_the_segment_at_that_instant():
    seg_t = np.array([0.0, 1.0, 2.0])
    vals = np.array([[0.0], [1.0], [2.0]])
    out = align(seg_t, vals, np.array([1.5, 1.5, 2.5]), duration=3.0)
    assert out.shape == (3, 1)  # repeated beat kept
    assert out[0, 0] == 1.0  # zero-length span at t=1.5 lies in segment 1
    assert out[1, 0] == pytest.approx((0.5 * 1 + 0.5 * 2) / 1.0)


def test_nonfinite_values_become_gaps_and_nonfinite_times_are_dropped():
    seg_t = np.array([0.0, 1.0, np.inf, 2.0])
    vals = np.array([[1.0], [np.nan], [7.0], [3.0]])
    out = align(seg_t, vals, np.array([0.0, np.nan, 1.0, 2.0]), duration=3.0)
    assert out.shape == (3, 1)  # the NaN beat is dropped
    assert out[0, 0] == 1.0
    assert out[1, 0] in (1.0, 3.0)  # the NaN segment's span is a gap: nearest usable segment
    assert out[2, 0] == 3.0
    assert np.isfinite(out).all()


def test_all_segments_unusable_is_a_data_error():
    with pytest.raises(DataError, match="no usable segment"):
        align(np.array([0.0, 1.0]), np.full((2, 3), np.nan), np.array([0.5]))


def test_no_finite_beats_is_a_parameter_error():
    with pytest.raises(ParameterError, match="beat_grid"):
        align(np.array([0.0]), np.ones((1, 2)), np.array([np.nan]))


def test_unsorted_inputs_are_sorted():
    seg_t = np.array([1.0, 0.0])
    vals = np.array([[2.0], [1.0]])
    np.testing.assert_allclose(align(seg_t, vals, np.array([1.0, 0.0]), duration=2.0).ravel(), [1.0, 2.0])


def test_beat_grid_uses_tempo_else_half_seconds():
    np.testing.assert_allclose(beat_grid(start=0.0, end=2.0, tempo=120.0), [0.0, 0.5, 1.0, 1.5])
    np.testing.assert_allclose(beat_grid(start=1.0, end=2.0, tempo=60.0), [1.0])
    for bad in (0.0, None, np.nan, -5.0):
        grid = beat_grid(start=0.0, end=1.2, tempo=bad)
        np.testing.assert_allclose(np.diff(grid), FALLBACK_PERIOD)
        assert len(grid) == 3
    assert len(beat_grid(start=0.0, end=0.0, tempo=120.0)) == 1


def test_shape_mismatch_is_reported():
    with pytest.raises(ParameterError, match="segment_features"):
        align(np.array([0.0, 1.0]), np.ones((3, 2)), np.array([0.0]))
