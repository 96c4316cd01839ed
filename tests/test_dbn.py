"""Tests of beatdbn.models.dbn: shapes, receptive field, short tracks, padding, persistence."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from beatdbn.exceptions import ParameterError
from beatdbn.models.crbm import BernoulliCRBM, GaussianCRBM
from beatdbn.models.dbn import (
    STAGES,
    ConvDBN,
    DBNConfig,
    normalize_timbre,
    output_length,
    pad_short_tracks,
)

SMALL = DBNConfig(n_maps_1a=6, n_maps_1b=5, n_maps_3=4)


def tracks(n, t, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    chroma = torch.rand(n, 12, t, generator=g, dtype=dtype)
    timbre = torch.randn(n, 12, t, generator=g, dtype=dtype) * 20 + 5
    return torch.cat((chroma, timbre), dim=1)


def strong(dbn: ConvDBN, seed=0, scale=1.0) -> ConvDBN:
    """Random weights large enough that every input beat visibly moves the features."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for stage in STAGES:
            w = dbn.layer(stage).weight
            w.copy_(torch.randn(w.shape, generator=g, dtype=w.dtype) * scale)
    return dbn


def test_paper_layout_and_defaults():
    dbn = ConvDBN()
    c = dbn.config
    assert isinstance(dbn.layer1a, BernoulliCRBM) and isinstance(dbn.layer1b, GaussianCRBM)
    assert isinstance(dbn.layer3, BernoulliCRBM)
    assert dbn.layer1a.weight.shape == (100, 12, 8)
    assert dbn.layer1b.weight.shape == (100, 12, 8)
    assert dbn.layer3.weight.shape == (100, 200, 8)
    assert [dbn.layer(s).config.lr for s in STAGES] == [0.005, 0.0001, 0.005]
    assert [dbn.layer(s).config.sparsity_target for s in STAGES] == [0.05, 0.05, 0.1]
    assert all(dbn.layer(s).config.sparsity_cost == 0.1 for s in STAGES)
    assert (c.pool_1, c.pool_3) == (4, 4)
    with pytest.raises(ParameterError, match="stage"):
        dbn.layer("2")
    with pytest.raises(ParameterError, match="short_track"):
        DBNConfig(short_track="reflect")
    with pytest.raises(ParameterError, match="learning_rate"):
        DBNConfig(learning_rate_1b=0.0)


def test_shapes_through_the_network():
    dbn = ConvDBN()
    x = tracks(2, 512)
    v1a, _ = dbn.layer_input("1a", x)
    v1b, _ = dbn.layer_input("1b", x)
    v3, _ = dbn.layer_input("3", x)
    assert v1a.shape == (2, 12, 512) and v1b.shape == (2, 12, 512)
    assert v3.shape == (2, 200, (512 - 7) // 4)  # 126 pooled steps
    out, lengths = dbn(x)
    assert out.shape == (2, 100, ((512 - 7) // 4 - 7) // 4)  # 29 layer-4 steps
    assert lengths.tolist() == [29, 29]
    assert float(out.min()) >= 0 and float(out.max()) <= 1  # pooled probabilities
    with pytest.raises(ParameterError, match="24"):
        dbn.transform(torch.rand(2, 12, 100))


def test_receptive_field_is_51_beats_with_a_hop_of_16():
    c = DBNConfig()
    assert c.receptive_field == 51 and c.hop == 16
    assert output_length(50) == 0 and output_length(51) == 1
    for k in range(1, 6):  # T = 51 + 16 (k - 1) beats give exactly k outputs
        assert output_length(51 + 16 * (k - 1)) == k
        assert output_length(51 + 16 * (k - 1) + 15) == k
    assert output_length(torch.tensor([0, 50, 51, 67])).tolist() == [0, 0, 1, 2]
    # empirically: output i reads exactly beats [16 i, 16 i + 51). (Per-track timbre
    # normalization makes every output depend a little on the whole track, through the
    # track's mean and variance: it is switched off here to see the network itself.)
    # (Which beats move a max-pooled output depends on where the maxima fall; with 32 maps a
    # beat that can move it does so in some map.)
    cfg = DBNConfig(n_maps_1a=16, n_maps_1b=16, n_maps_3=32, normalize_timbre=False)
    dbn = strong(ConvDBN(cfg, dtype=torch.float64), scale=0.3)
    x = tracks(1, 120, dtype=torch.float64)
    base = dbn.transform(x)
    assert base.shape[2] == output_length(120)
    t_out = base.shape[2]
    depends = torch.zeros(t_out, 120, dtype=torch.bool)
    for beat in range(120):
        for value in (0.0, 1.0):  # two different changes, so a max that ignores one still sees the other
            y = x.clone()
            y[0, :12, beat] = value
            y[0, 12:, beat] = 3.0 * (1 if value else -1)
            depends[:, beat] |= (dbn.transform(y) - base).abs().amax(dim=1)[0] > 1e-12
    for i in range(t_out):
        beats = torch.nonzero(depends[i]).flatten()
        assert beats.min() == 16 * i and beats.max() == 16 * i + 50, (i, beats.tolist())
    assert DBNConfig(width_1=4, pool_1=2, width_3=3, pool_3=2).receptive_field == 2 * (2 - 1 + 3) + 4 - 1


def test_pad_short_tracks_rules():
    x = torch.tensor([[[1.0, 2.0, 3.0, 0.0, 0.0]]])
    lengths = torch.tensor([3])
    wrap, lw = pad_short_tracks(x, lengths, min_length=7, mode="wrap")
    edge, _ = pad_short_tracks(x, lengths, min_length=7, mode="edge")
    zeros, _ = pad_short_tracks(x, lengths, min_length=7, mode="zeros")
    assert wrap[0, 0].tolist() == [1, 2, 3, 1, 2, 3, 1] and lw.tolist() == [7]
    assert edge[0, 0].tolist() == [1, 2, 3, 3, 3, 3, 3]
    assert zeros[0, 0].tolist() == [1, 2, 3, 0, 0, 0, 0]
    # long tracks are untouched (their padding stays padding), short ones grow in place
    x2 = torch.arange(2 * 1 * 10, dtype=torch.float32).reshape(2, 1, 10)
    out, l2 = pad_short_tracks(x2, torch.tensor([10, 2]), min_length=5, mode="wrap")
    assert out[0, 0].tolist() == x2[0, 0].tolist()
    assert out[1, 0, :5].tolist() == [10, 11, 10, 11, 10] and l2.tolist() == [10, 5]
    with pytest.raises(ParameterError, match="0 beats"):
        pad_short_tracks(x, torch.tensor([0]), min_length=7)
    with pytest.raises(ParameterError, match="mode"):
        pad_short_tracks(x, lengths, min_length=7, mode="mirror")


@pytest.mark.parametrize("n_beats", [1, 8, 30, 50])
def test_short_tracks_still_get_one_output(n_beats):
    dbn = ConvDBN(SMALL)
    x = tracks(1, n_beats)
    out, lengths = dbn(x)
    assert out.shape == (1, 4, 1) and lengths.tolist() == [1]
    assert float(out.abs().sum()) > 0
    # the rule: timbre normalized over the track's own beats, then the track repeated
    # cyclically up to 51 beats
    raw = ConvDBN(dataclasses.replace(SMALL, normalize_timbre=False))
    x_norm = torch.cat((x[:, :12], normalize_timbre(x[:, 12:])), dim=1)
    wrapped = x_norm.repeat(1, 1, -(-51 // n_beats))[:, :, :51]
    torch.testing.assert_close(out, raw.transform(wrapped))
    edge = ConvDBN(dataclasses.replace(SMALL, normalize_timbre=False, short_track="edge"))
    edged = torch.cat((x_norm, x_norm[:, :, -1:].expand(1, 24, 51 - n_beats)), dim=2)
    torch.testing.assert_close(edge.transform(x_norm), raw.transform(edged))


def test_padded_batch_equals_tracks_one_by_one():
    dbn = strong(ConvDBN(SMALL, dtype=torch.float64))
    lens = [200, 51, 20, 97]
    xs = [tracks(1, t, seed=i, dtype=torch.float64) for i, t in enumerate(lens)]
    batch = torch.full((4, 24, 200), float("nan"), dtype=torch.float64)
    for i, x in enumerate(xs):
        batch[i, :, :lens[i]] = x[0]
    out, out_len = dbn(batch, torch.tensor(lens))
    assert out_len.tolist() == [output_length(200), 1, 1, output_length(97)]
    for i, x in enumerate(xs):
        alone = dbn.transform(x)
        torch.testing.assert_close(out[i:i + 1, :, :out_len[i]], alone)
        assert bool((out[i, :, out_len[i]:] == 0).all())
    # layer inputs for greedy training honour lengths too
    v3, l3 = dbn.layer_input("3", batch, lengths=torch.tensor(lens))
    assert l3.tolist() == [(t - 7) // 4 for t in lens]
    torch.testing.assert_close(v3[1:2, :, :l3[1]], dbn.layer_input("3", xs[1])[0])


def test_normalize_timbre_per_track_with_guard_for_constant_dimensions():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 12, 40, generator=g) * 7 + 3
    x[1, 4] = 2.5  # a constant dimension
    lengths = torch.tensor([40, 25, 40])
    x[1, :, 25:] = 1e6  # padding must not enter the statistics
    y = normalize_timbre(x, lengths)
    assert bool(torch.isfinite(y).all())
    valid = [y[0], y[1, :, :25], y[2]]
    for v in valid:
        torch.testing.assert_close(v.mean(1), torch.zeros(12), atol=1e-5, rtol=0)
    torch.testing.assert_close(y[1, 4, :25], torch.zeros(25))
    torch.testing.assert_close(y[0].std(1, unbiased=False), torch.ones(12), atol=1e-5, rtol=0)
    assert bool((y[1, :, 25:] == 0).all())
    torch.testing.assert_close(normalize_timbre(y, lengths), y, atol=1e-5, rtol=0)  # idempotent


def test_layer_inputs_and_greedy_training_step_by_step():
    dbn = ConvDBN(SMALL)
    x = tracks(3, 80)
    lengths = torch.tensor([80, 60, 5])
    v1b, _ = dbn.layer_input("1b", x, lengths=lengths)
    torch.testing.assert_close(v1b[0].mean(1), torch.zeros(12), atol=1e-5, rtol=0)
    g = torch.Generator().manual_seed(0)
    for stage in STAGES:
        before = dbn.layer(stage).weight.clone()
        stats = dbn.partial_fit(stage, x, lengths=lengths, generator=g)
        assert stats["n_positions"] > 0
        assert not torch.equal(before, dbn.layer(stage).weight)
        assert int(dbn.layer(stage).n_updates) == 1
    with pytest.raises(ParameterError, match="stage"):
        dbn.layer_input("4", x)


def test_config_and_state_dict_round_trip(tmp_path):
    cfg = DBNConfig(n_maps_1a=5, n_maps_1b=3, n_maps_3=2, short_track="edge", seed=3)
    assert DBNConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ParameterError, match="unknown"):
        DBNConfig.from_dict({**cfg.to_dict(), "n_maps_2": 4})
    dbn = ConvDBN(cfg)
    dbn.partial_fit("1a", tracks(2, 60), generator=torch.Generator().manual_seed(0))
    dbn.save(tmp_path / "m")
    state = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    again = ConvDBN.load(tmp_path / "m")
    assert again.config == cfg
    x = tracks(2, 70)
    torch.testing.assert_close(again.transform(x), dbn.transform(x))
    fresh = ConvDBN(DBNConfig.from_dict(json.loads((tmp_path / "m" / "config.json").read_text())))
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.layer1a.weight, dbn.layer1a.weight)
    # different seeds give different layers, the same seed the same ones
    assert not torch.allclose(ConvDBN(SMALL).layer1a.weight[:5], ConvDBN(SMALL).layer1b.weight)
    torch.testing.assert_close(ConvDBN(SMALL).layer3.weight, ConvDBN(SMALL).layer3.weight)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_dbn_on_cuda():
    dbn = ConvDBN(SMALL, device="cuda")
    x = tracks(2, 90).cuda()
    for stage in STAGES:
        dbn.partial_fit(stage, x, generator=torch.Generator(device="cuda").manual_seed(0))
    out, lengths = dbn(x, torch.tensor([90, 30], device="cuda"))
    assert out.device.type == "cuda" and lengths.tolist() == [output_length(90), 1]
