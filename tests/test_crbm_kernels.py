"""The CD-1 kernels' shared pieces: Goh's rank target and the Bernoulli sampler."""

from __future__ import annotations

import torch

from beatdbn.models.crbm_kernels import bernoulli, goh_rank_target


def test_goh_rank_target_has_the_target_mean_and_follows_the_ranks():
    g = torch.Generator().manual_seed(0)
    h = torch.rand(8, 50, 40, generator=g)
    q = goh_rank_target(h, None, 0.05)
    assert q.shape == h.shape and float(q.min()) >= 0 and float(q.max()) <= 1
    assert abs(float(q.mean()) - 0.05) < 0.01
    # per unit, a larger (rank-1) activation never gets a smaller target
    r1 = h.argsort(1).argsort(1).float()
    flat_r1 = r1.permute(1, 0, 2).reshape(50, -1)
    flat_q = q.permute(1, 0, 2).reshape(50, -1)
    order = flat_r1.argsort(1)
    assert bool((flat_q.gather(1, order).diff(dim=1) >= -1e-6).all())
    # masked positions are left out of the per-unit ranking
    hm = torch.ones(8, 1, 40)
    hm[:, :, 30:] = 0
    qm = goh_rank_target(h, hm, 0.05)
    assert abs(float((qm * hm).sum() / (hm.sum() * 50)) - 0.05) < 0.01


def test_cpu_bernoulli_sampler_is_unbiased():
    p = torch.tensor([0.0, 1e-3, 0.05, 0.5, 0.93, 1.0]).repeat(200_000, 1)
    s = bernoulli(p, torch.Generator().manual_seed(0))
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    freq = s.mean(0)
    sd = (p[0] * (1 - p[0]) / 200_000).sqrt()
    assert bool(((freq - p[0]).abs() <= 5 * sd + 2 ** -16).all()), freq
