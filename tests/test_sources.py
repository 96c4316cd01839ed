"""features/sources: one entry point from any input file (MSD .h5 or audio) to beat-aligned features."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from beatdbn.exceptions import DataError
from beatdbn.features.sources import REPRESENTATION_AUDIO, REPRESENTATION_MSD, is_msd_file, read_features
from beatdbn.synth import make_track, write_track
from beatdbn.synth.audio_keys import render_piece


def test_an_msd_file_gives_its_tracks_with_echonest_metadata(tmp_path):
    path = write_track(tmp_path / "TRSYNTH0000000001.h5", make_track(n_beats=120, seed=3))
    assert is_msd_file(path)
    [(meta, feats, beats)] = list(read_features(path))
    assert meta["track_id"] == "TRSYNTH0000000001" and meta["representation"] == REPRESENTATION_MSD
    assert feats.dtype == np.float32 and feats.shape[1] == 24 and len(beats) == len(feats) > 100
    assert np.isfinite(feats).all()


def test_an_audio_file_gives_one_track_with_labels_and_a_stable_id(tmp_path):
    piece = render_piece(tonic=2, mode=1, seed=0, n_beats=48, tempo=120.0, sr=22050)
    sf.write(tmp_path / "song.wav", piece.audio, 22050)
    meta, feats, beats = next(read_features(tmp_path / "song.wav", labels={"genre": "rock", "key": "D major"}))
    assert meta["representation"] == REPRESENTATION_AUDIO and meta["genre"] == "rock" and meta["key"] == 2
    assert meta["track_id"].startswith("AU") and len(meta["track_id"]) == 18
    assert feats.shape[1] == 24 and np.isfinite(feats).all() and len(beats) == len(feats) > 20
    (tmp_path / "copy.wav").write_bytes((tmp_path / "song.wav").read_bytes())
    assert next(read_features(tmp_path / "copy.wav"))[0]["track_id"] == meta["track_id"]  # a copy: the same track


def test_a_file_that_is_neither_is_one_clear_error(tmp_path):
    (tmp_path / "notes.h5").write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DataError, match="notes.h5"):
        list(read_features(tmp_path / "notes.h5"))
