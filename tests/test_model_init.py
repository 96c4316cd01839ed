"""train/model_init and utils/moments: a run's starting point is a function of its seed and data alone
(not of the torch thread count of the process that draws it)."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
import torch

from beatdbn.models.dbn import STAGES, ConvDBN, DBNConfig
from beatdbn.train.model_init import initial_model
from beatdbn.utils.moments import exact_moments


def _dbn(seed: int) -> ConvDBN:
    """A DBN of the paper's sizes with small weights like a pretrained one (170,000 weights in layer 3)."""
    dbn = ConvDBN(DBNConfig())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for i, stage in enumerate(STAGES):
            layer = dbn.layer(stage)
            layer.weight.copy_((torch.randn(layer.weight.shape, generator=g) * 0.5 + 0.1 * (i - 1)) * 0.013 + 0.0021)
            layer.hidden_bias.copy_(torch.randn(layer.hidden_bias.shape, generator=g))
    return dbn


def _fingerprint(model) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("seed", [0, 7, 14])  # seeds where torch's threaded mean/std drew other float32 weights
def test_random_control_is_the_same_on_one_and_two_threads(seed):
    dbn = _dbn(seed)
    before = torch.get_num_threads()
    got = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            got[n] = {init: _fingerprint(initial_model(init, dbn, ["a", "b", "c"], seed=seed))
                      for init in ("random", "pretrained")}
    finally:
        torch.set_num_threads(before)
    assert got[1] == got[2]
    assert got[1]["random"] != got[1]["pretrained"]


def test_plain_random_init_is_the_same_on_one_and_two_threads():
    before = torch.get_num_threads()
    try:
        prints = []
        for n in (1, 2):
            torch.set_num_threads(n)
            prints.append(_fingerprint(initial_model("random", None, ["a", "b"], seed=3)))
    finally:
        torch.set_num_threads(before)
    assert prints[0] == prints[1]


def test_exact_moments_do_not_depend_on_the_order_of_the_values():
    x = np.random.default_rng(0).normal(0.002, 0.013, 160_000)
    mean, std = exact_moments(x)
    shuffled = x.copy()
    random.Random(1).shuffle(shuffled)
    assert exact_moments(shuffled) == (mean, std)  # bit for bit
    assert exact_moments(torch.from_numpy(x[::-1].copy())) == (mean, std)
    assert mean == pytest.approx(x.mean(), rel=1e-12) and std == pytest.approx(x.std(), rel=1e-12)
    # float32 tensors are read exactly (widened, not rounded)
    assert exact_moments(torch.tensor([1.0, 2.0, 3.0, 4.0])) == (2.5, pytest.approx(1.118033988749895))


def test_exact_moments_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no values"):
        exact_moments([])
