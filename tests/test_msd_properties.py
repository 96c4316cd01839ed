"""Property tests (Hypothesis) of the MSD reader and the beat alignment (issue 15).

Random segment/beat layouts with NaN, inf, huge, empty and unsorted values:
whatever comes back is finite and well-shaped, or the input is refused with a
:class:`~beatdbn.exceptions.DataError`. Nothing else (no other exception, no
non-finite value, no wrong shape) may come out, and nothing else may reach a
store (:class:`~beatdbn.store.shard.ShardData` takes every result).
"""

from types import SimpleNamespace

import h5py
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from beatdbn.exceptions import DataError  # noqa: E402
from beatdbn.features.beats import align_track  # noqa: E402
from beatdbn.features.sources import read_features  # noqa: E402
from beatdbn.store.shard import ShardData  # noqa: E402
from beatdbn.synth.corpus import make_track  # noqa: E402
from beatdbn.synth.msd_writer import write_track  # noqa: E402

SPECIAL = [np.nan, np.inf, -np.inf, 1e308, -1e308, 1e30, -1e30, 0.0, -0.0, 5e-324]


def values(lo, hi):
    """Floats mostly in [lo, hi], sometimes NaN, inf, huge or tiny."""
    return st.one_of(st.floats(lo, hi, allow_nan=False), st.sampled_from(SPECIAL),
                     st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def layouts(draw):
    n_seg = draw(st.integers(0, 30))
    n_beats = draw(st.integers(0, 30))
    seg_t = draw(st.lists(values(-5, 200), min_size=n_seg, max_size=n_seg))
    if draw(st.booleans()):
        seg_t = sorted(t for t in seg_t if t == t) + [t for t in seg_t if t != t]  # mostly sorted, NaN at the end
    beats = draw(st.lists(values(-5, 200), min_size=n_beats, max_size=n_beats))
    cells = st.lists(values(-600, 600), min_size=n_seg * 24, max_size=n_seg * 24)
    flat = np.array(draw(cells), dtype=np.float64).reshape(n_seg, 24)
    if n_seg and draw(st.booleans()):  # realistic chroma in [0, 1] on most rows
        flat[:, :12] = np.abs(np.nan_to_num(flat[:, :12])) % 1.0
    return SimpleNamespace(
        source="prop.h5", track_id="TRPROP", segments_start=np.array(seg_t, dtype=np.float64),
        segments_pitches=flat[:, :12], segments_timbre=flat[:, 12:], beats_start=np.array(beats, dtype=np.float64),
        duration=draw(values(-1, 300)), tempo=draw(values(-10, 400)))


def _check_result(feats, beats):
    assert feats.dtype == np.float32 and feats.ndim == 2 and feats.shape[1] == 24
    assert len(feats) == len(beats) >= 1
    assert np.isfinite(feats).all() and np.isfinite(beats).all()
    assert (feats[:, :12] >= 0).all() and (feats[:, :12] <= 1).all()
    ShardData(shard=0).add({"track_id": "T"}, feats, beats)  # a store takes it


@settings(max_examples=100, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_alignment_is_finite_and_well_shaped_or_a_data_error(track):
    try:
        feats, beats = align_track(track)
    except DataError:
        return
    _check_result(feats, beats)


@settings(max_examples=25, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(layout=layouts(), ragged=st.booleans())
def test_msd_reader_is_finite_and_well_shaped_or_a_data_error(tmp_path, layout, ragged):
    path = tmp_path / "prop.h5"
    write_track(path, make_track(track_id="TRPROP0000000001", n_beats=8, seed=1))
    arrays = {"segments_start": layout.segments_start, "segments_pitches": layout.segments_pitches,
              "segments_timbre": layout.segments_timbre, "beats_start": layout.beats_start,
              "segments_loudness_max": np.zeros(len(layout.segments_start))}
    if ragged and len(layout.segments_start):  # arrays that disagree in length
        arrays["segments_timbre"] = arrays["segments_timbre"][:-1]
    with h5py.File(path, "r+") as h5:
        for name, data in arrays.items():
            del h5[f"analysis/{name}"]
            h5.create_dataset(f"analysis/{name}", data=data)
        songs = h5["analysis/songs"][()]
        songs["duration"], songs["tempo"] = layout.duration, layout.tempo
        h5["analysis/songs"][...] = songs
    try:
        out = list(read_features(path))
    except DataError:
        return
    assert len(out) == 1
    meta, feats, beats = out[0]
    assert meta["track_id"] == "TRPROP0000000001"
    _check_result(feats, beats)
