"""models/layout: the layer table, declared once, drives the DBN, the conv MLP and pretraining."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from beatdbn.exceptions import ParameterError
from beatdbn.models.convmlp import ConvMLP, MLPConfig
from beatdbn.models.dbn import ConvDBN, DBNConfig
from beatdbn.models.forward import layer4, prepare_input
from beatdbn.models.layout import LAYERS, PHASES, STAGES, Layout, output_length

SMALL = dict(n_maps_1a=4, n_maps_1b=3, n_maps_3=5)


def test_both_configs_inherit_one_layout():
    layout_fields = {f.name for f in dataclasses.fields(Layout)}
    assert layout_fields <= {f.name for f in dataclasses.fields(DBNConfig)}
    assert layout_fields <= {f.name for f in dataclasses.fields(MLPConfig)}
    dbn = DBNConfig(**SMALL, width_1=6, pool_3=2)
    mlp = MLPConfig.like(dbn, 3)
    assert mlp.layout == dbn.layout and mlp.receptive_field == dbn.receptive_field
    assert STAGES == ("1a", "1b", "3") and PHASES == {"layer1": ("1a", "1b"), "layer3": ("3",)}


def test_layers_are_built_from_the_table():
    cfg = DBNConfig(**SMALL)
    dbn, mlp = ConvDBN(cfg), ConvMLP(MLPConfig.like(cfg, 2))
    for spec in LAYERS:
        rbm, conv = getattr(dbn, spec.attr), getattr(mlp, spec.attr)
        assert rbm.weight.shape == conv.weight.shape == (getattr(cfg, spec.maps), cfg.n_visible(spec),
                                                          getattr(cfg, spec.width))
        assert rbm.config.visible == spec.visible and rbm.config.learning_rate == getattr(cfg, spec.learning_rate)


def test_one_forward_pass_serves_both_models():
    cfg = DBNConfig(**SMALL)
    dbn = ConvDBN(cfg)
    mlp = ConvMLP.from_dbn(dbn, 2)
    x = torch.cat([torch.rand(2, 12, 120), torch.randn(2, 12, 120)], dim=1)
    lengths = torch.tensor([120, 70])
    prepared, pl = prepare_input(cfg, x, lengths, like=dbn.layer1a.weight)
    h = layer4(cfg, dbn.params(), prepared)
    feats, l4 = dbn(x, lengths)
    assert l4.tolist() == [output_length(120, cfg), output_length(70, cfg)]
    torch.testing.assert_close(feats[0], h[0])
    torch.testing.assert_close(mlp.hidden(x, lengths)[0], feats)


def test_prepare_input_checks_once_for_both():
    cfg = Layout()
    with pytest.raises(ParameterError, match=r"expected \(batch, 24, n_beats\)"):
        prepare_input(cfg, torch.zeros(1, 12, 60), None, like=torch.zeros(1))
    with pytest.raises(ParameterError, match="lengths must lie in"):
        prepare_input(cfg, torch.zeros(1, 24, 60), torch.tensor([61]), like=torch.zeros(1))
    x = torch.full((1, 24, 60), float("nan"))
    x[:, :, :30] = 1.0
    out, ln = prepare_input(cfg, x, torch.tensor([30]), like=torch.zeros(1))
    assert bool(torch.isfinite(out).all()) and ln.tolist() == [cfg.receptive_field]  # NaN padding never enters
