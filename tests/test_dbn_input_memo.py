"""ConvDBN reuses one batch's prepared input across the stages trained on it, and never a stale one."""

from __future__ import annotations

import torch

from beatdbn.models.dbn import ConvDBN, DBNConfig

CFG = DBNConfig(n_maps_1a=6, n_maps_1b=6, n_maps_3=4)


def _batch(seed: int, t: int = 90):
    g = torch.Generator().manual_seed(seed)
    return torch.cat((torch.rand(2, 12, t, generator=g), torch.randn(2, 12, t, generator=g) * 3 + 1), 1), \
        torch.tensor([t, t - 20])


def test_stages_of_one_batch_share_its_prepared_input_bitwise():
    x, xl = _batch(0)
    memo, fresh = ConvDBN(CFG), ConvDBN(CFG)
    for i, stage in enumerate(("1a", "1b", "3", "1a")):
        fresh._input_memo = None
        a = memo.partial_fit(stage, x, lengths=xl, generator=torch.Generator().manual_seed(i))
        b = fresh.partial_fit(stage, x, lengths=xl, generator=torch.Generator().manual_seed(i))
        assert a == b
    for (k, p), q in zip(memo.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(p, q), k
    first = memo.layer_input("1b", x, lengths=xl)[0]
    assert memo.layer_input("1b", x, lengths=xl)[0].data_ptr() == first.data_ptr()  # reused


def test_a_changed_input_or_prepared_input_is_prepared_again():
    dbn = ConvDBN(CFG)
    x, xl = _batch(1)
    v = dbn.layer_input("1b", x, lengths=xl)[0].clone()
    x[:, 12:] *= 2.0  # changed in place: the timbre normalization must see it (scale-free, so shift too)
    x[:, 12:] += 5.0
    torch.testing.assert_close(dbn.layer_input("1b", x, lengths=xl)[0], v)  # normalized again: same values
    chroma = dbn.layer_input("1a", x, lengths=xl)[0]
    x[:, :12] *= 0.5
    torch.testing.assert_close(dbn.layer_input("1a", x, lengths=xl)[0], chroma * 0.5)
    prepared = dbn.layer_input("1a", x, lengths=xl)[0]
    prepared.zero_()  # the caller wrote into what it was given: not handed out again
    torch.testing.assert_close(dbn.layer_input("1a", x, lengths=xl)[0], chroma * 0.5)
    xl[1] -= 10  # other lengths, same tensor
    assert float(dbn.layer_input("1a", x, lengths=xl)[0][1, :, 60:].abs().sum()) == 0.0
    y = x.clone()  # an equal but other tensor: prepared afresh, the same values
    torch.testing.assert_close(dbn.layer_input("1a", y, lengths=xl)[0], dbn.layer_input("1a", x, lengths=xl)[0])
