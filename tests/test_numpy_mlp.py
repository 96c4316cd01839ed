"""The conv MLP's numpy forward (beatdbn.models.numpy_mlp) against the torch model it copies: the same posteriors
within float rounding, per track and per step, for every short-track rule, with and without the 12 transpositions;
the shipped model's model.npz holds model.pt's tensors; bad files are refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch

from beatdbn.exceptions import DataError
from beatdbn.features.sources import read_features
from beatdbn.inference import shipped_model, shipped_model_dir
from beatdbn.inference.classifier import conv_posteriors
from beatdbn.models import numpy_mlp
from beatdbn.models.convmlp import ConvMLP, MLPConfig
from beatdbn.models.numpy_mlp import NPZ_FILE, NumpyConvMLP
from beatdbn.synth.audio_keys import render_piece
from beatdbn.utils.weights import load_weights
from conftest import SHARED_AUDIO

KEYS_25 = tuple(range(24)) + (-1,)


def _tracks(seed: int = 0, lengths=(1, 7, 50, 51, 52, 67, 120, 333)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    tracks = [np.concatenate([rng.random((n, 12)), 20 * rng.normal(size=(n, 12)) + 5], axis=1).astype(np.float32)
              for n in lengths]
    for t, value in zip(tracks[2:], (37.77, -100.3, 0.1)):  # a constant timbre dimension: its float32 mean is
        t[:, 20] = value  # inexact, and both engines must still make it 0 (not +-1 from the rounding error)
    return tracks


def _pair(tmp_path, **cfg) -> tuple[ConvMLP, NumpyConvMLP]:
    n_classes = len(cfg.get("transpose_keys", ())) or 5
    model = ConvMLP(MLPConfig(n_classes=n_classes, n_maps_1a=6, n_maps_1b=5, n_maps_3=7, seed=3, **cfg)).eval()
    with torch.no_grad():  # biases too, so that each of them is read from the right place
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    model.save(tmp_path)
    model.save_numpy(tmp_path)
    return model, NumpyConvMLP.load(tmp_path)


@pytest.mark.parametrize("short_track", ["wrap", "edge", "zeros"])
@pytest.mark.parametrize("keys", [(), KEYS_25])
def test_numpy_forward_gives_the_torch_posteriors(tmp_path, short_track, keys):
    model, twin = _pair(tmp_path, short_track=short_track, transpose_keys=keys)
    feats = _tracks()
    want_tracks, want_steps = conv_posteriors(model, feats, over_time=True, batch_size=1)
    got_tracks, got_steps = twin.posteriors(feats)
    assert got_tracks.dtype == np.float64 and got_tracks.shape == want_tracks.shape
    assert np.abs(got_tracks - want_tracks).max() < 1e-5
    for w, g in zip(want_steps, got_steps):
        assert g.shape == w.shape and np.abs(g - w).max() < 1e-5
    # the check can fail: one weight moved changes the answer
    twin.weights["layer3.weight"][0, 0, 0] += 1.0
    assert np.abs(twin.posteriors(feats)[0] - want_tracks).max() > 1e-4


def test_a_long_track_is_classified_in_chunks_of_rotations_alike(tmp_path, monkeypatch):
    _, twin = _pair(tmp_path, transpose_keys=KEYS_25)
    feats = _tracks(1, lengths=(900,))
    whole = twin.posteriors(feats)[0]
    monkeypatch.setattr(numpy_mlp, "_CHUNK_FLOATS", 1)  # one rotation a pass
    assert np.abs(twin.posteriors(feats)[0] - whole).max() < 1e-6


def test_the_shipped_numpy_weights_are_the_torch_weights():
    folder = shipped_model_dir("key")
    state = load_weights(folder / "model.pt")
    with np.load(folder / NPZ_FILE, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(state)
        for k, v in state.items():
            assert npz[k].dtype == np.float32 and np.array_equal(npz[k], v.numpy()), k


def test_the_shipped_model_answers_the_same_in_numpy_and_in_torch(tmp_path):
    fast, slow = shipped_model("key"), shipped_model("key", engine="torch")
    assert isinstance(fast.model, NumpyConvMLP) and isinstance(slow.model, ConvMLP)
    assert fast.labels == slow.labels and fast.calibration == slow.calibration and fast.answers_over_time
    piece = render_piece(tonic=3, mode=0, seed=9100, n_beats=80)
    sf.write(tmp_path / "song.wav", piece.audio, piece.sr)
    songs = [tmp_path / "song.wav"] + sorted(SHARED_AUDIO.glob("*.ogg"))  # the real recordings when present
    feats = [f for song in songs for _, f, _ in read_features(song)] + _tracks(2, lengths=(30, 200))
    a, b = fast.predict_proba(feats, over_time=True), slow.predict_proba(feats, over_time=True)
    assert np.abs(a.tracks - b.tracks).max() < 1e-5 and (a.tracks.argmax(1) == b.tracks.argmax(1)).all()
    assert all(np.abs(x - y).max() < 1e-5 for x, y in zip(a.steps, b.steps))


def test_bad_numpy_model_files_are_refused(tmp_path):
    _, twin = _pair(tmp_path)
    good = (tmp_path / NPZ_FILE).read_bytes()
    for bad in (b"not a zip", good[:len(good) // 2]):  # not a zip; a zip cut short (a copy that stopped)
        (tmp_path / NPZ_FILE).write_bytes(bad)
        with pytest.raises(DataError, match="not a numpy model file"):
            NumpyConvMLP.load(tmp_path)
    buf = io.BytesIO()  # an object array (a pickle) is never loaded
    np.savez(buf, **{"layer1a.weight": np.array([{"x": 1}], dtype=object)})
    (tmp_path / NPZ_FILE).write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="not a numpy model file"):
        NumpyConvMLP.load(tmp_path)
    numpy_mlp.save_npz({k: v[..., :1] for k, v in twin.weights.items()}, tmp_path)  # wrong shapes
    with pytest.raises(DataError, match="do not fit"):
        NumpyConvMLP.load(tmp_path)
    (tmp_path / NPZ_FILE).unlink()
    with pytest.raises(DataError, match="missing"):
        NumpyConvMLP.load(tmp_path)
