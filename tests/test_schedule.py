"""What one finetuning epoch feeds the model: batches, crops, minimum updates, the learning-rate schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from beatdbn.models.convmlp import ConvMLP, MLPConfig
from beatdbn.train.finetune_config import FinetuneConfig, updates_per_epoch
from beatdbn.train.schedule import epoch_batches, lr_factor, make_optimizer


def test_epoch_batches_reach_the_minimum_updates_with_crops():
    lengths = np.array([40, 55, 300, 1000, 128, 129, 60, 70, 80, 90])
    cfg = FinetuneConfig.for_recipe("beatdbn", batch_size=4, min_updates=90, epochs=10, crop=128)
    assert updates_per_epoch(10, cfg) == 9  # one pass is 3 batches; 90 updates over 10 epochs need 9
    assert updates_per_epoch(100, cfg) == 25  # a large task: one pass is more than the minimum
    batches = epoch_batches(lengths, cfg, np.random.default_rng(0))
    assert len(batches) == 9
    seen = np.concatenate([idx for idx, _ in batches[:3]])
    assert sorted(seen.tolist()) == list(range(10))  # every pass visits every track once
    for idx, starts in batches:
        assert np.all(starts >= 0) and np.all(starts + np.minimum(lengths[idx], 128) <= lengths[idx])
        assert np.all(starts[lengths[idx] <= 128] == 0)
    assert len({int(s) for idx, st in batches for i, s in zip(idx, st) if i == 3}) > 1  # fresh crops each pass
    f = lr_factor(cfg, 100)
    assert f(0) < 0.5 and f(4) == pytest.approx(1.0) and f(99) < 0.01 and all(0 <= f(i) <= 1 for i in range(100))
    assert lr_factor(FinetuneConfig(), 100)(57) == 1.0


def test_optimizer_follows_the_recipe():
    model = ConvMLP(MLPConfig(n_classes=3, n_maps_1a=2, n_maps_1b=2, n_maps_3=2))
    assert isinstance(make_optimizer(model, 0.01, FinetuneConfig()), torch.optim.SGD)
    adam = make_optimizer(model, 0.003, FinetuneConfig.for_recipe("beatdbn"))
    assert isinstance(adam, torch.optim.AdamW) and adam.param_groups[0]["lr"] == 0.003
