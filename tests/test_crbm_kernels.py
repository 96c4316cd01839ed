"""The CD-1 kernels' shared pieces: Goh's rank target, the Bernoulli sampler, the workspace, the free energy;
and the one-track paths of the 'gemm' kernel (pretraining's default step)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from beatdbn.models.crbm import AUTO_GEMM_ROWS, BernoulliCRBM, ConvRBM, CRBMConfig
from beatdbn.models.crbm_kernels import bernoulli, free_energy_sum, goh_rank_target


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


def _params(rbm):
    return [p.detach().clone() for p in (rbm.weight, rbm.hidden_bias, rbm.visible_bias)]


@pytest.mark.parametrize("sparsity", ["goh", "goh-rank", "none"])
@pytest.mark.parametrize("kind", ["binary", "gaussian"])
def test_one_track_gemm_step_matches_the_conv_kernel(kind, sparsity):
    """One track a step (the down pass as one product per filter tap), with and without a padded tail."""
    g = torch.Generator().manual_seed(0)
    v = torch.rand(1, 12, 60, generator=g, dtype=torch.float64)
    for lengths in (None, torch.tensor([47])):
        out = {}
        for kernel in ("gemm", "conv"):
            rbm = ConvRBM.from_config(CRBMConfig(n_visible=12, n_hidden=10, width=6, visible=kind, sparsity=sparsity,
                                                 learning_rate=0.5), dtype=torch.float64)
            rbm.cd_kernel = kernel
            stats = [rbm.partial_fit(v, lengths=lengths, generator=torch.Generator().manual_seed(i)) for i in range(3)]
            out[kernel] = (_params(rbm), stats)
        for x, y in zip(out["gemm"][0], out["conv"][0]):
            torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12)
        for a, b in zip(out["gemm"][1], out["conv"][1]):
            assert all(math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-12) for k in a), (a, b)


@pytest.mark.parametrize("n", [1, 3])
def test_workspace_reused_across_lengths_leaks_nothing(n):
    """Tracks of changing lengths through one workspace give bitwise the updates of a fresh one each step."""
    cfg = CRBMConfig(n_visible=12, n_hidden=16, width=8)
    reused, fresh = BernoulliCRBM(cfg), BernoulliCRBM(cfg)
    reused.cd_kernel = fresh.cd_kernel = "gemm"
    gd = torch.Generator().manual_seed(3)
    for i, t in enumerate([90, 40, 120, 64, 64, 30]):
        v = torch.rand(n, 12, t, generator=gd)
        lengths = torch.tensor([t] + [t - 5] * (n - 1))
        fresh._ws_memory = None  # a workspace allocated for this step alone
        a = reused.partial_fit(v, lengths=lengths, generator=torch.Generator().manual_seed(i))
        b = fresh.partial_fit(v, lengths=lengths, generator=torch.Generator().manual_seed(i))
        assert a == b
        for x, y in zip(_params(reused), _params(fresh)):
            assert torch.equal(x, y)


def test_free_energy_from_the_probabilities_matches_softplus():
    rbm = BernoulliCRBM(n_visible=4, n_hidden=5, width=2)
    g = torch.Generator().manual_seed(0)
    v = torch.rand(30, 2 * 4, generator=g)[:, :4].reshape(1, 4, 30)
    hm = (torch.arange(29) < 25).float()[:, None]
    for scale in (1.0, 8.0, 40.0):
        pre = torch.randn(29, 5, generator=g) * scale - 2.9
        h = torch.sigmoid(pre)
        for mask in (None, hm):
            fast = free_energy_sum(rbm, v, pre, None, mask, h=h, tmp=torch.empty_like(pre))
            ref = free_energy_sum(rbm, v, pre, None, mask)
            torch.testing.assert_close(fast, ref, rtol=1e-6, atol=1e-5)
    pre[0, 0] = -200.0  # sigmoid underflows to 0: log(0) is not taken, softplus is
    h = torch.sigmoid(pre)
    fast = free_energy_sum(rbm, v, pre, None, None, h=h, tmp=torch.empty_like(pre))
    assert math.isfinite(float(fast))
    torch.testing.assert_close(fast, free_energy_sum(rbm, v, pre, None, None), rtol=1e-6, atol=1e-5)


def test_auto_kernel_takes_gemm_for_a_short_batch_of_a_wide_layer_on_cpu():
    layer3 = BernoulliCRBM(n_visible=200, n_hidden=100, width=8)
    cpu = torch.device("cpu")
    assert layer3._kernel_name(cpu, rows=116) == "gemm"  # one 500-beat track
    assert layer3._kernel_name(cpu, rows=AUTO_GEMM_ROWS + 1) == "conv"
    assert layer3._kernel_name(cpu) == "conv"
    assert layer3._kernel_name(torch.device("meta"), rows=116) == "conv"  # other devices: conv
