"""Tests of beatdbn.models.crbm: exact algebra on enumerable RBMs, then learning."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from beatdbn.exceptions import ParameterError
from beatdbn.models.crbm import (
    BernoulliCRBM,
    ConvRBM,
    CRBMConfig,
    GaussianCRBM,
    hidden_mask,
)
from beatdbn.models.dbn import normalize_timbre

# ---------------------------------------------------------------------------
# helpers: the dense RBM with the tied weight matrix written out


def dense_params(rbm: ConvRBM, t: int):
    """Dense weight matrix (C*T, J*T') and biases of a CRBM on sequences of length ``t``.

    ``Wd[c*T + s, j*T' + t'] = W[j, c, s - t']`` when ``0 <= s - t' < width``.
    """
    w = rbm.weight.detach()
    j_, c_, k_ = w.shape
    th = t - k_ + 1
    wd = torch.zeros(c_ * t, j_ * th, dtype=w.dtype)
    for j in range(j_):
        for c in range(c_):
            for tt in range(th):
                for k in range(k_):
                    wd[c * t + tt + k, j * th + tt] = w[j, c, k]
    bvd = rbm.visible_bias.detach().repeat_interleave(t)
    bhd = rbm.hidden_bias.detach().repeat_interleave(th)
    return wd, bvd, bhd


def tie(g_dense: torch.Tensor, c_: int, j_: int, t: int, k_: int) -> torch.Tensor:
    """Sum a dense (C*T, J*T') gradient over the entries sharing each tied weight -> (J, C, width)."""
    th = t - k_ + 1
    out = torch.zeros(j_, c_, k_, dtype=g_dense.dtype)
    for j in range(j_):
        for c in range(c_):
            for tt in range(th):
                for k in range(k_):
                    out[j, c, k] += g_dense[c * t + tt + k, j * th + tt]
    return out


def dense_energy(v, h, wd, bvd, bhd, kind):
    inter = ((v @ wd) * h).sum(1)
    if kind == "binary":
        return -(v * bvd).sum(1) - (h * bhd).sum(1) - inter
    return 0.5 * ((v - bvd) ** 2).sum(1) - (h * bhd).sum(1) - inter


def all_binary(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def randomized(rbm: ConvRBM, seed: int = 0, scale: float = 0.8) -> ConvRBM:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        rbm.weight.copy_(torch.randn(rbm.weight.shape, generator=g, dtype=torch.float64) * scale)
        rbm.hidden_bias.copy_(torch.randn(rbm.hidden_bias.shape, generator=g, dtype=torch.float64) * 0.5)
        rbm.visible_bias.copy_(torch.randn(rbm.visible_bias.shape, generator=g, dtype=torch.float64) * 0.5)
    return rbm


def snapshot(rbm: ConvRBM):
    return [p.detach().clone() for p in (rbm.weight, rbm.hidden_bias, rbm.visible_bias)]


def deltas(rbm: ConvRBM, before):
    return [p.detach() - b for p, b in zip((rbm.weight, rbm.hidden_bias, rbm.visible_bias), before)]


C_, T_, K_, J_ = 2, 3, 2, 2  # 6 visible and 4 hidden units: 2**10 joint configurations
TH_ = T_ - K_ + 1


def small(kind="binary", kernel="auto", **kw) -> ConvRBM:
    cfg = CRBMConfig(n_visible=C_, n_hidden=J_, width=K_, visible=kind, **kw)
    rbm = randomized(ConvRBM.from_config(cfg, dtype=torch.float64))
    rbm.cd_kernel = kernel
    return rbm


KERNELS = ["gemm", "conv"]


# ---------------------------------------------------------------------------
# configuration and input validation


def test_config_defaults_follow_the_paper():
    assert CRBMConfig(n_visible=12).lr == 0.005
    assert CRBMConfig(n_visible=12, visible="gaussian").lr == 0.0001
    c = CRBMConfig(n_visible=12)
    assert (c.n_hidden, c.width, c.sparsity, c.sparsity_target, c.sparsity_cost) == (100, 8, "goh", 0.05, 0.1)
    assert (c.momentum, c.weight_decay) == (0.0, 0.0)
    assert math.isclose(c.initial_hidden_bias, math.log(0.05 / 0.95))
    assert CRBMConfig(n_visible=3, sparsity="none").initial_hidden_bias == 0.0
    assert CRBMConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


@pytest.mark.parametrize("field,value", [
    ("n_hidden", 0), ("width", 0), ("visible", "poisson"), ("learning_rate", -1.0),
    ("learning_rate", float("nan")), ("sparsity", "l1"), ("sparsity_target", 1.0),
    ("sparsity_cost", 1.5), ("momentum", 1.0), ("weight_decay", -0.1),
])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ParameterError, match=field):
        CRBMConfig(n_visible=12, **{field: value})


def test_class_must_match_visible_kind():
    with pytest.raises(ParameterError, match="visible"):
        BernoulliCRBM(CRBMConfig(n_visible=3, visible="gaussian"))
    assert isinstance(ConvRBM.from_config(CRBMConfig(n_visible=3, visible="gaussian")), GaussianCRBM)
    assert GaussianCRBM(n_visible=3).config.visible == "gaussian"


def test_input_validation():
    rbm = BernoulliCRBM(n_visible=12, n_hidden=4, width=3)
    with pytest.raises(ParameterError, match="channels"):
        rbm.transform(torch.rand(2, 24, 10))
    with pytest.raises(ParameterError, match="shape"):
        rbm.transform(torch.rand(12, 10))
    with pytest.raises(ParameterError, match="lengths"):
        rbm.partial_fit(torch.rand(2, 12, 10), lengths=torch.tensor([3, 11]))
    with pytest.raises(ParameterError, match="not both"):
        rbm.partial_fit(torch.rand(2, 12, 10), lengths=torch.tensor([3, 4]), mask=torch.ones(2, 10))


def test_shapes_valid_convolution_and_too_short_input():
    rbm = BernoulliCRBM(n_visible=12, n_hidden=5, width=8)
    assert rbm.transform(torch.rand(3, 12, 20)).shape == (3, 5, 13)
    assert rbm.transform(torch.rand(3, 12, 5)).shape == (3, 5, 0)
    before = snapshot(rbm)
    stats = rbm.partial_fit(torch.rand(3, 12, 5))
    assert stats["n_positions"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, snapshot(rbm)))
    assert rbm.gibbs(torch.rand(3, 12, 20), generator=torch.Generator().manual_seed(0)).shape == (3, 12, 20)


# ---------------------------------------------------------------------------
# exact algebra against a dense RBM, by enumeration


@pytest.mark.parametrize("kind", ["binary", "gaussian"])
def test_energy_and_conditionals_equal_the_dense_rbm(kind):
    rbm = small(kind)
    wd, bvd, bhd = dense_params(rbm, T_)
    hs = all_binary(J_ * TH_)  # every hidden configuration
    if kind == "binary":
        vs = all_binary(C_ * T_)  # every visible configuration
    else:
        vs = torch.randn(20, C_ * T_, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 1.5
    v3 = vs.reshape(-1, C_, T_)
    h3 = hs.reshape(-1, J_, TH_)
    # energy of every (v, h) pair
    vv = v3.repeat_interleave(len(hs), 0)
    hh = h3.repeat(len(vs), 1, 1)
    e = rbm.energy(vv, hh).reshape(len(vs), len(hs))
    e_dense = dense_energy(vs.repeat_interleave(len(hs), 0), hs.repeat(len(vs), 1), wd, bvd, bhd, kind)
    torch.testing.assert_close(e, e_dense.reshape(len(vs), len(hs)), rtol=1e-12, atol=1e-12)
    # P(h = 1 | v) by enumeration over every hidden configuration
    post = torch.softmax(-e, dim=1)  # P(h | v) for each v
    p_h = (post @ hs).reshape(-1, J_, TH_)
    torch.testing.assert_close(rbm.transform(v3), p_h, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(rbm._mean_hiddens(v3), torch.sigmoid(vs @ wd + bhd).reshape(-1, J_, TH_))
    # free energy = -log sum_h exp(-E(v, h))
    torch.testing.assert_close(rbm.free_energy(v3), -torch.logsumexp(-e, dim=1), rtol=1e-10, atol=1e-10)
    # E[v | h]
    if kind == "binary":
        post_v = torch.softmax(-e.T, dim=1)  # P(v | h) over every visible configuration
        mean_v = (post_v @ vs).reshape(-1, C_, T_)
    else:
        mean_v = (hs @ wd.T + bvd).reshape(-1, C_, T_)
    torch.testing.assert_close(rbm._mean_visibles(h3), mean_v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("kind", ["binary", "gaussian"])
def test_mean_field_cd1_equals_dense_positive_minus_negative_statistics(kind, kernel):
    rbm = small(kind, kernel, sample_hiddens=False, sparsity="none", learning_rate=1.0)
    wd, bvd, bhd = dense_params(rbm, T_)
    g = torch.Generator().manual_seed(1)
    v0 = torch.rand(5, C_ * T_, generator=g, dtype=torch.float64)
    if kind == "gaussian":
        v0 = v0 * 3 - 1.5
    h0 = torch.sigmoid(v0 @ wd + bhd)
    a1 = h0 @ wd.T + bvd
    v1 = torch.sigmoid(a1) if kind == "binary" else a1
    h1 = torch.sigmoid(v1 @ wd + bhd)
    n = len(v0)
    gw = tie((v0.T @ h0 - v1.T @ h1) / n, C_, J_, T_, K_)
    gbh = (h0 - h1).reshape(n, J_, TH_).sum((0, 2)) / n
    gbv = (v0 - v1).reshape(n, C_, T_).sum((0, 2)) / n
    before = snapshot(rbm)
    rbm.partial_fit(v0.reshape(n, C_, T_))
    dw, dbh, dbv = deltas(rbm, before)
    torch.testing.assert_close(dw, gw, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dbh, gbh, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dbv, gbv, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel", KERNELS)
def test_sampled_cd1_expected_update_matches_enumeration_over_hidden_states(kernel):
    """E[update] over the sampled hidden states, enumerated exactly, vs the average of many CD-1 steps."""
    rbm = small("binary", kernel, sparsity="none", learning_rate=1.0)
    wd, bvd, bhd = dense_params(rbm, T_)
    v0 = torch.tensor([[1.0, 0.0, 1.0, 0.3, 0.9, 0.0]], dtype=torch.float64)
    h0 = torch.sigmoid(v0 @ wd + bhd)[0]
    hs = all_binary(J_ * TH_)  # every state the sampler can produce
    p_hs = (hs * h0 + (1 - hs) * (1 - h0)).prod(1)
    v1 = torch.sigmoid(hs @ wd.T + bvd)
    h1 = torch.sigmoid(v1 @ wd + bhd)
    upd = torch.stack([tie(v0.T @ h0[None] - v1[i:i + 1].T @ h1[i:i + 1], C_, J_, T_, K_).flatten()
                       for i in range(len(hs))])  # (16, J*C*K) update for each sampled state
    expected = (p_hs[:, None] * upd).sum(0)
    sd = ((p_hs[:, None] * (upd - expected) ** 2).sum(0)).sqrt()
    m = 160_000
    before = snapshot(rbm)
    rbm.partial_fit(v0.reshape(1, C_, T_).expand(m, C_, T_), generator=torch.Generator().manual_seed(7))
    got = deltas(rbm, before)[0].flatten()
    assert (got - expected).abs().max() <= (5 * sd / math.sqrt(m)).max() + 1e-9
    # the test tells sampling from mean field: the mean-field update lies far outside the tolerance
    v1_mf = torch.sigmoid(h0[None] @ wd.T + bvd)
    h1_mf = torch.sigmoid(v1_mf @ wd + bhd)
    mean_field = tie(v0.T @ h0[None] - v1_mf.T @ h1_mf, C_, J_, T_, K_).flatten()
    assert (mean_field - expected).abs().max() > 5 * (5 * sd / math.sqrt(m)).max()


@pytest.mark.parametrize("kernel", KERNELS)
def test_goh_sparsity_replaces_the_positive_hidden_statistics(kernel):
    kw = dict(sample_hiddens=False, learning_rate=1.0, sparsity_cost=0.1, sparsity_target=0.05)
    a = small("binary", kernel, sparsity="none", **kw)
    b = small("binary", kernel, sparsity="goh", **kw)
    wd, bvd, bhd = dense_params(a, T_)
    v0 = torch.rand(4, C_ * T_, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    h0 = torch.sigmoid(v0 @ wd + bhd)
    sa, sb = snapshot(a), snapshot(b)
    a.partial_fit(v0.reshape(4, C_, T_))
    b.partial_fit(v0.reshape(4, C_, T_))
    da, db = deltas(a, sa), deltas(b, sb)
    lam, p = 0.1, 0.05
    # h0 -> (1 - lam) h0 + lam p in the positive phase: the difference is lam * <v0 (p - h0)>
    torch.testing.assert_close(db[0] - da[0], tie(v0.T @ (lam * (p - h0)) / 4, C_, J_, T_, K_))
    torch.testing.assert_close(db[1] - da[1], (lam * (p - h0)).reshape(4, J_, TH_).sum((0, 2)) / 4)
    torch.testing.assert_close(db[2], da[2])  # visible bias untouched


# ---------------------------------------------------------------------------
# padded batches


@pytest.mark.parametrize("kernel", KERNELS)
def test_padding_never_enters_the_statistics(kernel):
    cfg = CRBMConfig(n_visible=3, n_hidden=4, width=3, sample_hiddens=False, learning_rate=1.0)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 12, generator=g, dtype=torch.float64)
    b = torch.rand(1, 3, 8, generator=g, dtype=torch.float64)
    tiny = torch.rand(1, 3, 2, generator=g, dtype=torch.float64)  # shorter than the filter

    def update(v, **kw):
        rbm = randomized(BernoulliCRBM(cfg, dtype=torch.float64), scale=0.5)
        rbm.cd_kernel = kernel
        before = snapshot(rbm)
        rbm.partial_fit(v, **kw)
        return deltas(rbm, before)

    ua, ub = update(a), update(b)
    batch = torch.full((3, 3, 12), float("nan"), dtype=torch.float64)
    batch[0], batch[1, :, :8], batch[2, :, :2] = a[0], b[0], tiny[0]
    ubatch = update(batch, lengths=torch.tensor([12, 8, 2]))
    for x, y, z in zip(ubatch, ua, ub):  # per-track normalization: the mean of the two tracks' updates
        torch.testing.assert_close(x, (y + z) / 2)
    mask = torch.zeros(3, 12, dtype=torch.bool)
    mask[0], mask[1, :8], mask[2, :2] = True, True, True
    for x, y in zip(update(batch, mask=mask), ubatch):
        torch.testing.assert_close(x, y)


@pytest.mark.parametrize("sparsity", ["goh", "goh-rank", "none"])
@pytest.mark.parametrize("kind", ["binary", "gaussian"])
def test_both_kernels_compute_the_same_update(kind, sparsity):
    g = torch.Generator().manual_seed(0)
    v = torch.rand(5, 12, 40, generator=g, dtype=torch.float64)
    lengths = torch.tensor([40, 33, 9, 4, 40])
    results = []
    for kernel in KERNELS:
        rbm = ConvRBM.from_config(CRBMConfig(n_visible=12, n_hidden=10, width=6, visible=kind, sparsity=sparsity,
                                             learning_rate=0.5), dtype=torch.float64)
        rbm.cd_kernel = kernel
        stats = [rbm.partial_fit(v, lengths=lengths, generator=torch.Generator().manual_seed(i))
                 for i in range(3)]  # the same samples: both kernels draw them in (N, J, T') order
        results.append((snapshot(rbm), stats))
    for x, y in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12)
    for a, b in zip(results[0][1], results[1][1]):
        assert a.keys() == b.keys() and all(math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-12) for k in a)
    with pytest.raises(ParameterError, match="cd_kernel"):
        rbm.cd_kernel = "fft"
        rbm.partial_fit(v)


def test_hidden_mask_is_a_sliding_all():
    m = torch.tensor([[1, 1, 1, 1, 0, 1, 1, 1]], dtype=torch.bool)
    assert hidden_mask(m, 3).tolist() == [[True, True, False, False, False, True]]


# ---------------------------------------------------------------------------
# learning


def chroma_like(n, t, g):
    x = torch.rand(n, 12, t, generator=g) ** 3
    return x / x.amax(1, keepdim=True)


@pytest.mark.slow
def test_mean_hidden_activation_converges_to_the_sparsity_target():
    g = torch.Generator().manual_seed(0)
    data = [chroma_like(8, 64, g) for _ in range(20)]
    results = {}
    for sparsity, target in [("goh", 0.05), ("goh", 0.1), ("goh-rank", 0.05), ("none", 0.05)]:
        # start far from the target: hidden bias 0, i.e. activations around 0.5
        rbm = BernoulliCRBM(n_visible=12, n_hidden=20, width=8, sparsity=sparsity, sparsity_target=target,
                            hidden_bias_init=0.0)  # the paper's learning rate, 0.005
        gen = torch.Generator().manual_seed(1)
        hist = [rbm.partial_fit(data[i % 20], generator=gen)["mean_hidden"] for i in range(600)]
        results[(sparsity, target)] = float(np.mean(hist[-50:]))
        assert hist[0] > 0.4
    assert abs(results[("goh", 0.05)] - 0.05) < 0.02
    assert abs(results[("goh", 0.1)] - 0.1) < 0.03
    assert abs(results[("goh-rank", 0.05)] - 0.05) < 0.02
    assert results[("none", 0.05)] > 0.3  # without sparsity nothing pulls it there


def planted(n, t, filters, g, rate=0.03, amplitude=4.0):
    k, c, w = filters.shape
    h = (torch.rand(n, k, t - w + 1, generator=g) < rate).float()
    v = F.conv_transpose1d(h, filters * amplitude) + torch.randn(n, c, t, generator=g)
    return normalize_timbre(v)


def filter_match(learned, true):
    """For each true filter, the best cosine similarity with any learned filter at any shift."""
    w = true.shape[2]
    cc = F.conv1d(learned, true, padding=w - 1)  # (J, K, shifts): sum_{c,t} L[j,c,t] T[k,c,t-s]
    cc = cc / (learned.flatten(1).norm(dim=1)[:, None, None] * true.flatten(1).norm(dim=1)[None, :, None])
    return cc.amax(dim=(0, 2))


@pytest.mark.slow
def test_gaussian_crbm_recovers_planted_filters():
    """Data = sum of 4 random unit-norm 6x6 filters placed at sparse random times (x4) + N(0, 1) noise.

    That is the Gaussian-binary RBM's own conditional P(v | h) = N(W'h, 1), so the filters are
    identifiable. Threshold 0.9: the best of 4 learned filters x 13 shifts matches a random
    36-dimensional direction with cosine ~0.3-0.45 by chance (the initial weights score so,
    asserted below). The learned width (8) exceeds the true one (6) so that a filter learnt at
    an offset still holds the whole pattern. Sparsity cost 0.5 (the paper uses 0.1 for its
    over-complete layers): with a conv RBM's hidden units at every shift, the stronger pull
    is what makes each hidden unit pick one pattern instead of a blend of two.
    """
    g = torch.Generator().manual_seed(1)
    true = torch.randn(4, 6, 6, generator=g)
    true = true / true.flatten(1).norm(dim=1)[:, None, None]
    rbm = GaussianCRBM(n_visible=6, n_hidden=4, width=8, learning_rate=8e-4, momentum=0.9,
                       sparsity_target=0.03, sparsity_cost=0.5, init_std=0.1)
    assert float(filter_match(rbm.weight, true).max()) < 0.6
    gen = torch.Generator().manual_seed(2)
    for _ in range(1500):
        rbm.partial_fit(planted(16, 128, true, gen), generator=gen, monitor=False)
    match = filter_match(rbm.weight, true)
    assert float(match.min()) > 0.9, match


@pytest.mark.slow
def test_crbm_features_beat_random_weights_in_a_linear_probe():
    """3 classes of sequences holding the same 4 notes as an ascending, descending or zigzag figure.

    Every class has the same per-channel statistics, so a linear probe on time-averaged raw
    input is at chance; a probe on max-pooled CRBM features must beat the same probe on
    features of random weights drawn with the trained weights' mean and standard deviation.
    """
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(0)
    notes, length = torch.tensor([0, 4, 7, 11]), 4
    motifs = torch.zeros(3, 12, length)
    motifs[0, notes, torch.arange(length)] = 1
    motifs[1, notes, torch.arange(length).flip(0)] = 1
    motifs[2, notes[[0, 2, 1, 3]], torch.arange(length)] = 1

    def make(n):
        y = torch.randint(0, 3, (n,), generator=g)
        x = (torch.rand(n, 12, 48, generator=g) < 0.15).float() * torch.rand(n, 12, 48, generator=g)
        for _ in range(3):
            pos = torch.randint(0, 48 - length, (n,), generator=g)
            idx = (pos[:, None] + torch.arange(length)[None])[:, None, :].expand(n, 12, length)
            x.scatter_(2, idx, torch.maximum(torch.gather(x, 2, idx), motifs[y]))
        return x, y

    (x_tr, y_tr), (x_te, y_te), (x_un, _) = make(600), make(600), make(2000)
    rbm = BernoulliCRBM(n_visible=12, n_hidden=16, width=6, learning_rate=0.023, momentum=0.5)
    rbm.fit(x_un, batch_size=32, n_epochs=16, generator=torch.Generator().manual_seed(1))
    random = BernoulliCRBM(n_visible=12, n_hidden=16, width=6)
    with torch.no_grad():
        w = rbm.weight
        random.weight.copy_(torch.randn(w.shape, generator=torch.Generator().manual_seed(5)) * w.std() + w.mean())
        random.hidden_bias.copy_(rbm.hidden_bias)
        random.visible_bias.copy_(rbm.visible_bias)

    def probe(features):
        clf = LogisticRegression(max_iter=2000).fit(features(x_tr), y_tr.numpy())
        return clf.score(features(x_te), y_te.numpy())

    raw = probe(lambda x: x.mean(2).numpy())
    trained = probe(lambda x: rbm.transform(x).amax(2).numpy())
    untrained = probe(lambda x: random.transform(x).amax(2).numpy())
    assert raw < 0.45  # chance is 1/3
    assert trained > 0.85
    assert trained > untrained + 0.15, (trained, untrained)


@pytest.mark.slow
def test_paper_learning_rates_train_stably():
    g = torch.Generator().manual_seed(0)
    # layer 1a: binary, lr 0.005, 512-beat tracks
    rbm = BernoulliCRBM(n_visible=12)
    errs = [rbm.partial_fit(chroma_like(2, 512, g), generator=g)["reconstruction_error"] for _ in range(150)]
    assert np.isfinite(errs).all() and np.mean(errs[-20:]) < 0.85 * errs[0]
    # layer 1b: Gaussian, lr 0.0001, and 4x that (a 2000-beat track): learns, never diverges
    filters = torch.randn(20, 12, 8, generator=g)
    filters = filters / filters.flatten(1).norm(dim=1)[:, None, None]
    for lr in (0.0001, 0.0004):
        rbm = GaussianCRBM(n_visible=12, learning_rate=lr)
        errs = [rbm.partial_fit(planted(2, 512, filters, g, rate=0.02, amplitude=3.0), generator=g)
                ["reconstruction_error"] for _ in range(300)]
        # slow at first (the filters start nearly symmetric), but steadily downhill
        assert np.isfinite(errs).all() and np.mean(errs[-20:]) < 0.99 * np.mean(errs[:5])
        assert float(rbm.weight.abs().max()) < 2.0


def test_divergence_is_reported_and_leaves_parameters_unchanged():
    rbm = GaussianCRBM(n_visible=4, n_hidden=50, width=4, learning_rate=50.0, hidden_bias_init=0.0)
    g = torch.Generator().manual_seed(0)
    v = torch.randn(4, 4, 64, generator=g) * 3
    with pytest.raises(ParameterError, match="non-finite"):
        for _ in range(100):
            before = snapshot(rbm)
            rbm.partial_fit(v, generator=g)
    assert all(bool(torch.isfinite(p).all()) for p in before)
    assert all(torch.equal(a, b) for a, b in zip(before, snapshot(rbm)))


def test_momentum_and_weight_decay_follow_the_velocity_rule():
    cfg = CRBMConfig(n_visible=2, n_hidden=2, width=2, sample_hiddens=False, sparsity="none",
                     learning_rate=0.1, momentum=0.5, weight_decay=0.01)
    rbm = randomized(BernoulliCRBM(cfg, dtype=torch.float64))
    plain = randomized(BernoulliCRBM(cfg, dtype=torch.float64, momentum=0.0, weight_decay=0.0,
                                     learning_rate=1.0))
    v = torch.rand(3, 2, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w0 = rbm.weight.clone()
    before = snapshot(plain)
    plain.partial_fit(v)
    grad = deltas(plain, before)[0]  # the raw CD gradient at w0
    rbm.partial_fit(v)
    torch.testing.assert_close(rbm.weight, w0 + 0.1 * (grad - 0.01 * w0))
    torch.testing.assert_close(rbm.weight_velocity, 0.1 * (grad - 0.01 * w0))


# ---------------------------------------------------------------------------
# randomness, devices, persistence


def test_explicit_generator_makes_training_reproducible():
    def run(seed):
        rbm = BernoulliCRBM(n_visible=12, n_hidden=8, width=4)
        g = torch.Generator().manual_seed(seed)
        for _ in range(3):
            rbm.partial_fit(torch.rand(2, 12, 30, generator=torch.Generator().manual_seed(9)), generator=g)
        return rbm.weight.clone()

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_state_dict_round_trip_with_weights_only(tmp_path):
    rbm = GaussianCRBM(n_visible=12, n_hidden=7, width=3, momentum=0.5)
    rbm.partial_fit(torch.randn(2, 12, 20), generator=torch.Generator().manual_seed(0))
    torch.save(rbm.state_dict(), tmp_path / "crbm.pt")
    (tmp_path / "config.json").write_text(json.dumps(rbm.config.to_dict()))
    again = ConvRBM.from_config(CRBMConfig.from_dict(json.loads((tmp_path / "config.json").read_text())))
    again.load_state_dict(torch.load(tmp_path / "crbm.pt", weights_only=True))
    v = torch.randn(1, 12, 9)
    torch.testing.assert_close(again.transform(v), rbm.transform(v))
    assert int(again.n_updates) == 1
    assert set(again.state_dict()) >= {"weight", "hidden_bias", "visible_bias", "weight_velocity"}


def test_generator_on_the_model_device_is_used():
    rbm = BernoulliCRBM(n_visible=12, n_hidden=3, width=2)
    stats = rbm.partial_fit(torch.rand(1, 12, 5), generator=torch.Generator())  # same device: fine
    assert stats["n_positions"] == 4 and int(rbm.n_updates) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (a generator on another device than the model)")
def test_generator_on_the_wrong_device_is_refused():
    rbm = BernoulliCRBM(n_visible=12, n_hidden=3, width=2)
    with pytest.raises(ParameterError, match="generator"):
        rbm.partial_fit(torch.rand(1, 12, 5), generator=torch.Generator(device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["binary", "gaussian"])
def test_cuda_matches_cpu(kind):
    cfg = CRBMConfig(n_visible=12, n_hidden=16, width=8, visible=kind, sample_hiddens=False)
    cpu = ConvRBM.from_config(cfg)
    gpu = ConvRBM.from_config(cfg, device="cuda")
    v = torch.rand(4, 12, 64)
    lengths = torch.tensor([64, 50, 7, 30])
    s_cpu = cpu.partial_fit(v, lengths=lengths)
    s_gpu = gpu.partial_fit(v.cuda(), lengths=lengths.cuda(), generator=torch.Generator(device="cuda"))
    torch.testing.assert_close(gpu.weight.cpu(), cpu.weight, rtol=1e-4, atol=1e-6)
    assert math.isclose(s_cpu["reconstruction_error"], s_gpu["reconstruction_error"], rel_tol=1e-4)
    sampled = ConvRBM.from_config(dataclasses.replace(cfg, sample_hiddens=True), device="cuda")
    sampled.partial_fit(v.cuda(), generator=torch.Generator(device="cuda").manual_seed(0))
    assert sampled.transform(v.cuda()).device.type == "cuda"
