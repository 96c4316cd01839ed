"""Tests of beatdbn.models.convmlp: layout vs the DBN, initializations, posteriors, loss, persistence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.models.convmlp import ConvMLP, MLPConfig, track_posteriors
from beatdbn.models.dbn import STAGES, ConvDBN, DBNConfig

SMALL = DBNConfig(n_maps_1a=6, n_maps_1b=5, n_maps_3=4)
LAYERS = {"1a": "layer1a", "1b": "layer1b", "3": "layer3"}


def tracks(n, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    chroma = torch.rand(n, 12, t, generator=g)
    timbre = torch.randn(n, 12, t, generator=g) * 20 + 5
    return torch.cat((chroma, timbre), dim=1)


def strong_dbn(seed=0, config=SMALL) -> ConvDBN:
    """A DBN with weights and biases large enough that the features depend visibly on the input."""
    dbn = ConvDBN(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for i, stage in enumerate(STAGES):
            layer = dbn.layer(stage)
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 0.5 + 0.1 * (i - 1))
            layer.hidden_bias.copy_(torch.randn(layer.hidden_bias.shape, generator=g))
    return dbn


def test_hidden_layers_equal_dbn_features():
    dbn = strong_dbn()
    mlp = ConvMLP.from_dbn(dbn, 3, seed=1)
    x = tracks(4, 140, seed=2)
    lengths = torch.tensor([140, 97, 51, 20])  # the last is shorter than the receptive field
    x[3, :, 20:] = float("nan")  # padding must never leak in
    ref, ref_len = dbn.forward(x, lengths)
    got, got_len = mlp.hidden(x, lengths)
    assert got_len.tolist() == ref_len.tolist() == [6, 3, 1, 1]
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    assert ref.std() > 0.05  # the features do depend on the input (not a vacuous check)
    for stage, name in LAYERS.items():
        assert torch.equal(getattr(mlp, name).weight, dbn.layer(stage).weight)
        assert torch.equal(getattr(mlp, name).bias, dbn.layer(stage).hidden_bias)
    assert mlp.config.init == "pretrained" and mlp.config.receptive_field == 51


def test_random_like_matches_each_layers_weight_statistics():
    dbn = strong_dbn(seed=3)
    rnd = ConvMLP.random_like(dbn, 5, seed=7)
    pre = ConvMLP.from_dbn(dbn, 5, seed=7)
    for stage, name in LAYERS.items():
        w_dbn = dbn.layer(stage).weight.double()
        w = getattr(rnd, name).weight.detach().double()
        assert w.shape == w_dbn.shape
        assert float(w.mean()) == pytest.approx(float(w_dbn.mean()), abs=1e-6)
        assert float(w.var(unbiased=False)) == pytest.approx(float(w_dbn.var(unbiased=False)), rel=1e-5)
        assert not torch.allclose(w, w_dbn)  # drawn, not copied
        # biases: every unit at the layer's mean pretrained bias
        b = getattr(rnd, name).bias
        assert torch.allclose(b, dbn.layer(stage).hidden_bias.mean().expand_as(b))
        # roughly Gaussian: about 68 % within one standard deviation
        z = ((w - w.mean()) / w.std()).abs()
        assert 0.6 < float((z < 1).double().mean()) < 0.76
    # the output layer starts the same way in both, and depends on the seed
    assert torch.equal(rnd.output.weight, pre.output.weight) and torch.equal(rnd.output.bias, pre.output.bias)
    assert not torch.equal(ConvMLP.random_like(dbn, 5, seed=8).output.weight, rnd.output.weight)
    assert rnd.config.init == "random_like"
    # seeded: the same seed gives the same draw
    assert torch.equal(ConvMLP.random_like(dbn, 5, seed=7).layer3.weight, rnd.layer3.weight)


def test_plain_random_init_scale_and_seed():
    c = MLPConfig(n_classes=4, n_maps_1a=10, n_maps_1b=10, n_maps_3=8, seed=3)
    m = ConvMLP(c)
    bound = 4 * math.sqrt(6 / (12 * 8 + 10 * 8 / 4))
    w = m.layer1a.weight.detach()
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.9 * bound
    assert float(m.layer1a.bias.abs().max()) == 0.0
    out_bound = 4 * math.sqrt(6 / (8 + 4))
    assert 0.8 * out_bound < float(m.output.weight.abs().max()) <= out_bound
    assert torch.equal(ConvMLP(c).layer3.weight, m.layer3.weight)
    assert not torch.equal(ConvMLP(MLPConfig(n_classes=4, n_maps_1a=10, n_maps_1b=10, n_maps_3=8, seed=4))
                           .layer3.weight, m.layer3.weight)


def test_posterior_is_the_mean_of_the_steps_posteriors():
    # two tracks, three classes; track 0 has 2 valid steps, track 1 has 3
    p = torch.tensor([[[0.7, 0.1, 0.2], [0.2, 0.3, 0.3], [0.1, 0.6, 0.5]],
                      [[0.5, 0.2, 0.2], [0.25, 0.7, 0.2], [0.25, 0.1, 0.6]]])  # (B, C, T) probabilities
    logits = torch.log(p) + 3.0  # softmax over classes recovers p exactly (up to rounding)
    out = track_posteriors(logits, torch.tensor([2, 3]))
    expect = torch.tensor([[0.40, 0.25, 0.35], [0.3, 0.38333333, 0.31666667]])
    torch.testing.assert_close(out, expect, rtol=1e-5, atol=1e-6)
    # mean of posteriors, not posterior of mean logits: the two differ here
    assert not torch.allclose(torch.softmax(logits[0, :, :2].mean(1), 0), out[0], atol=1e-3)
    # and predict_proba computes exactly this from the model's logits
    m = ConvMLP(MLPConfig(n_classes=3, n_maps_1a=4, n_maps_1b=4, n_maps_3=4, seed=1))
    with torch.no_grad():
        m.output.weight.mul_(300.0)  # spread the posteriors
    x, lengths = tracks(2, 120, seed=5), torch.tensor([120, 70])
    logits, l4 = m(x, lengths)
    manual = [torch.softmax(logits[i, :, :int(l4[i])], dim=0).mean(dim=1) for i in range(2)]
    torch.testing.assert_close(m.predict_proba(x, lengths), torch.stack(manual))


def test_short_tracks_are_padded_and_classified():
    # (timbre normalization off: wrapping changes a track's timbre statistics a little)
    m = ConvMLP(MLPConfig(n_classes=3, n_maps_1a=4, n_maps_1b=4, n_maps_3=4, normalize_timbre=False))
    x = tracks(3, 60, seed=1)
    logits, l4 = m(x, torch.tensor([60, 30, 1]))
    assert l4.tolist() == [1, 1, 1]
    assert logits.shape == (3, 3, 1) and torch.isfinite(logits).all()
    post = m.predict_proba(x, torch.tensor([60, 30, 1]))
    assert torch.allclose(post.sum(1), torch.ones(3))
    # a short track classifies like itself repeated cyclically ('wrap') to 51 beats
    short = x[1:2, :, :30]
    wrapped = short[:, :, torch.arange(51) % 30]
    torch.testing.assert_close(m.predict_proba(short), m.predict_proba(wrapped), rtol=1e-4, atol=1e-5)
    with pytest.raises(ParameterError, match="0 beats"):
        m(x, torch.tensor([60, 0, 10]))
    with pytest.raises(ParameterError, match="expected"):
        m(torch.zeros(2, 12, 60))


def test_gradients_flow_to_every_layer():
    dbn = strong_dbn()
    m = ConvMLP.from_dbn(dbn, 3, seed=0)
    x, lengths = tracks(3, 130, seed=4), torch.tensor([130, 90, 40])
    logits, l4 = m(x, lengths)
    loss = m.loss(logits, l4, torch.tensor([0, 1, 2]))
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().max()) > 0, name
    # the loss sums over a track's valid steps and averages over tracks
    ce = torch.nn.functional.cross_entropy
    per_track = [ce(logits[i, :, :int(l4[i])].T, torch.full((int(l4[i]),), i), reduction="sum") for i in range(3)]
    torch.testing.assert_close(loss, torch.stack(per_track).mean())


def test_save_load_round_trip(tmp_path):
    m = ConvMLP.from_dbn(strong_dbn(), 4, seed=2, classes=["C", "D", "E", "F"], task="key")
    m.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "config.json").read_text())
    assert doc["format"] == "beatdbn-convmlp" and doc["version"] == 1
    back = ConvMLP.load(tmp_path / "m")
    assert back.config == m.config and back.config.classes == ("C", "D", "E", "F")
    x = tracks(3, 100, seed=9)
    torch.testing.assert_close(back.predict_proba(x), m.predict_proba(x), rtol=0, atol=0)


def test_bad_model_files_give_one_clear_error(tmp_path):
    m = ConvMLP(MLPConfig(n_classes=2, n_maps_1a=3, n_maps_1b=3, n_maps_3=2))
    good = m.save(tmp_path / "good")
    with pytest.raises(DataError, match="missing"):
        ConvMLP.load(tmp_path / "nothing")
    # a DBN folder is not a classifier
    ConvDBN(SMALL).save(tmp_path / "dbn")
    with pytest.raises(DataError, match="not a beatdbn conv MLP"):
        ConvMLP.load(tmp_path / "dbn")
    # a newer format version
    bad = tmp_path / "newer"
    bad.mkdir()
    (bad / "model.pt").write_bytes((good / "model.pt").read_bytes())
    doc = json.loads((good / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**doc, "version": 99}))
    with pytest.raises(DataError, match="version 99"):
        ConvMLP.load(bad)
    # garbage bytes, and a pickle that would run code
    (bad / "config.json").write_text(json.dumps(doc))
    (bad / "model.pt").write_bytes(b"this is not a model")
    with pytest.raises(DataError, match="not a readable beatdbn model file"):
        ConvMLP.load(bad)
    torch.save({"layer1a.weight": np.zeros(3)}, bad / "model.pt")  # numpy array: refused by weights_only
    with pytest.raises(DataError, match="model.pt"):
        ConvMLP.load(bad)
    # tensors that do not fit the config
    torch.save({"layer1a.weight": torch.zeros(1)}, bad / "model.pt")
    with pytest.raises(DataError, match="does not match"):
        ConvMLP.load(bad)
    # a config that is not JSON
    (bad / "config.json").write_text("{not json")
    with pytest.raises(DataError, match="config"):
        ConvMLP.load(bad)


def test_config_checks():
    with pytest.raises(ParameterError, match="n_classes"):
        MLPConfig(n_classes=0)
    with pytest.raises(ParameterError, match="classes"):
        MLPConfig(n_classes=3, classes=("a", "b"))
    with pytest.raises(ParameterError, match="init"):
        MLPConfig(init="xavier")
    c = MLPConfig(n_classes=2, classes=["x", "y"])
    assert c.classes == ("x", "y") and MLPConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_transposition_average_is_exactly_equivariant():
    """A key model with ``transpose_keys`` averages over the 12 transpositions: transposing the input by k
    semitones shifts the posterior by k keys, exactly."""
    keys = tuple((np.arange(12) + 3) % 12)  # classes in the order D#, E, ..., D
    model = ConvMLP(MLPConfig(n_classes=12, n_maps_1a=4, n_maps_1b=4, n_maps_3=4, transpose_keys=keys))
    plain = ConvMLP(MLPConfig(n_classes=12, n_maps_1a=4, n_maps_1b=4, n_maps_3=4))
    x = torch.cat([torch.rand(2, 12, 90), torch.randn(2, 12, 90)], dim=1)
    lengths = torch.tensor([90, 40])
    p = model.predict_proba(x, lengths)
    assert torch.allclose(p.sum(dim=1), torch.ones(2))
    class_of_key = {k: i for i, k in enumerate(keys)}
    for k in (1, 5, 11):
        xk = torch.cat([x[:, :12][:, (torch.arange(12) - k) % 12], x[:, 12:]], dim=1)
        shift = [class_of_key[(keys[i] + k) % 12] for i in range(12)]
        assert torch.allclose(model.predict_proba(xk, lengths)[:, shift], p, atol=1e-6)
        assert not torch.allclose(plain.predict_proba(xk, lengths)[:, shift], plain.predict_proba(x, lengths),
                                  atol=1e-4)  # without averaging the net is not equivariant
    with pytest.raises(ParameterError, match="transpose_keys"):
        MLPConfig(n_classes=3, transpose_keys=(0, 1, 2))


def test_transposition_table_24_keys_and_no_key_equivariance():
    """A 24-key + "no key" model is exactly transposition-equivariant, mode kept, "no key" unmoved; the
    batched 12-rotation pass equals averaging 12 separate passes."""
    import numpy as np

    from beatdbn.labels import KEY_NAMES_24, NO_KEY
    from beatdbn.models.convmlp import ConvMLP, MLPConfig, rotate_chroma, transposition_table
    from beatdbn.train.augment import key_class_map

    classes = list(KEY_NAMES_24) + [NO_KEY]
    codes = key_class_map(classes)
    table = transposition_table(codes)
    assert table[2, KEY_NAMES_24.index("C major")] == KEY_NAMES_24.index("D major")
    assert table[3, KEY_NAMES_24.index("A minor")] == KEY_NAMES_24.index("C minor")
    assert table[7, 24] == 24
    with pytest.raises(ParameterError):
        transposition_table([0, 1, 2])  # a key whose transpositions are missing
    cfg = MLPConfig(n_classes=25, classes=tuple(classes), task="key", transpose_keys=tuple(codes))
    model = ConvMLP(cfg)
    g = torch.Generator().manual_seed(0)
    for p in model.parameters():
        p.data.normal_(0, 0.3, generator=g)
    x = torch.rand(2, 24, 90, generator=g)
    lengths = torch.tensor([90, 60])
    p0 = model.predict_proba(x, lengths)
    p3 = model.predict_proba(rotate_chroma(x, 3), lengths)
    assert torch.allclose(p3[:, table[3]], p0, atol=1e-5)
    assert torch.allclose(p0.sum(1), torch.ones(2), atol=1e-5)
    # the batched pass against 12 separate passes of the plain network
    plain = ConvMLP(MLPConfig(n_classes=25, classes=tuple(classes), task="key"))
    plain.load_state_dict(model.state_dict())
    manual = sum(plain.predict_proba(rotate_chroma(x, k), lengths)[:, table[k]] for k in range(12)) / 12
    assert torch.allclose(manual, p0, atol=1e-5)
    with torch.no_grad():
        steps, l4 = model.step_proba(x, lengths)
    assert np.allclose(steps.sum(2).numpy() / l4[:, None].numpy(), p0.detach().numpy(), atol=1e-5)
