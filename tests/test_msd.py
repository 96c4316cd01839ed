"""MSD reader: the real file, aggregate files, and clear errors for bad files."""

import h5py
import numpy as np
import pytest

from beatdbn.exceptions import DataError
from beatdbn.features.beats import align_track
from beatdbn.features.msd import count_tracks, iter_tracks, read_track
from beatdbn.synth.corpus import make_track
from beatdbn.synth.msd_writer import write_aggregate, write_track


def test_real_rick_astley_file(shared_msd):
    track = read_track(shared_msd / "TRAXLZU12903D05F94.h5")
    assert (track.artist_name, track.title) == ("Rick Astley", "Never Gonna Give You Up")
    assert track.segments_pitches.shape == (935, 12) and track.segments_timbre.shape == (935, 12)
    assert track.beats_start.shape == (397,) and track.segments_loudness_max.shape == (935,)
    assert track.mbtags == ("uk", "british", "english", "classic pop and rock") and track.year == 1987
    feats, beats = align_track(track)
    assert abs(feats.shape[0] - 397) <= 1 and feats.shape[1] == 24 and feats.dtype == np.float32
    assert feats[:, :12].min() >= 0 and feats[:, :12].max() <= 1 and np.isfinite(feats).all()


def test_all_real_files_align_including_no_beats_and_non_ascii(shared_msd):
    for path in sorted(shared_msd.glob("*.h5")):
        track = read_track(path)
        feats, beats = align_track(track)
        assert len(feats) == len(beats) >= 1 and np.isfinite(feats).all()
        if len(track.beats_start) == 0:  # TRBDXOD128F422C47B: tempo 0, so a 0.5 s grid
            np.testing.assert_allclose(np.diff(beats), 0.5)
        else:
            assert len(feats) == len(track.beats_start)
    assert read_track(shared_msd / "TRBDOXZ128F93420F3.h5").title == "Ça c'est Paris"


def test_aggregate_file_is_sliced_by_idx_columns(tmp_path):
    tracks = [make_track(track_id=f"TRAGG{i:013d}", n_beats=20 + 10 * i, seed=i) for i in range(4)]
    path = write_aggregate(tmp_path / "agg.h5", tracks)
    assert count_tracks(path) == 4
    back = list(iter_tracks(path))
    for a, b in zip(tracks, back):
        assert a.track_id == b.track_id and a.mbtags == b.mbtags
        np.testing.assert_array_equal(a.segments_timbre, b.segments_timbre)
        np.testing.assert_array_equal(a.beats_start, b.beats_start)


def test_bad_files_name_the_file_and_reason(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5 at all")
    with pytest.raises(DataError, match=r"notes\.h5: not a readable HDF5 file"):
        read_track(text)
    good = write_track(tmp_path / "good.h5", make_track())
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(DataError, match="truncated.h5"):
        read_track(truncated)
    missing = write_track(tmp_path / "missing.h5", make_track())
    with h5py.File(missing, "a") as h5:
        del h5["analysis/beats_start"]
    with pytest.raises(DataError, match=r"missing\.h5: no /analysis/beats_start"):
        read_track(missing)
    with pytest.raises(DataError, match="no such file"):
        read_track(tmp_path / "absent.h5")
    empty_group = tmp_path / "empty.h5"
    h5py.File(empty_group, "w").close()
    with pytest.raises(DataError, match="empty.h5: no /metadata/songs"):
        read_track(empty_group)
