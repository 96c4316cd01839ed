"""The CD-1 kernels of the convolutional RBMs, apart from the estimator (:mod:`beatdbn.models.crbm`).

Two interchangeable ways to compute one CD-1 update's statistics, chosen by
``ConvRBM.cd_kernel`` (``'auto'``: ``gemm`` on the CPU for small layers,
``conv`` otherwise); both return the same un-normalized sums (tested):

* :func:`cd1_gemm`: matrix products on im2col buffers kept in a per-model
  workspace (:func:`workspace`), allocation-free after the first batch;
* :func:`cd1_conv`: ``conv1d`` / ``conv_transpose1d`` and their weight gradient.

Plus the samplers and statistics they share: Bernoulli sampling into a
buffer, window sums, the sparsity target of Goh's rank rule.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


__all__ = ["cd1_gemm", "cd1_conv", "free_energy_sum", "workspace", "bernoulli", "im2col", "window_sums",
           "conv1d_weight_grad", "goh_rank_target", "ranks", "mean_ranks"]


def cd1_gemm(rbm, v0, hm, vm, n_h, g, monitor):
    """CD-1 statistics as matrix products on im2col buffers, allocation-free.

    ``cols[n*T' + t, c*w + k] = v[n, c, t + k]`` (``(N*T', C*w)``), ``H[n*T' + t, j] = h[n, j, t]``:
    up ``H = sigmoid(cols @ W^T + b_h)``; down: the transposed convolution of the samples;
    weight gradient ``(1 - lam) H0^T cols0 - H1^T cols1 + lam p S`` (two products: one over
    both phases with negated ``H1`` measured slower). Returns un-normalized sums.
    """
    c = rbm.config
    n, n_vis, t = v0.shape
    w = c.width
    t_h = t - w + 1
    j = c.n_hidden
    rows = n * t_h
    ws = workspace(rbm, n, t, v0)
    cols, hh, hs, gw = ws["cols"], ws["hh"], ws["hs"], ws["gw"]
    cols0, cols1, h0, h1 = cols[:rows], cols[rows:], hh[:rows], hh[rows:]
    wm = rbm.weight.view(j, n_vis * w)
    lam = 0.0 if c.sparsity == "none" else c.sparsity_cost
    p = c.sparsity_target
    rank = c.sparsity == "goh-rank"
    hm_rows = None if hm is None else hm.reshape(rows, 1)  # (N*T', 1)

    # positive phase: cols0 (N*T', C*w) -> h0 (N*T', J)
    im2col(v0, w, cols0)
    fe0 = _up(rbm, cols0, wm, h0, v0, vm, hm_rows, ws if monitor else None)
    if hm_rows is not None:
        h0.mul_(hm_rows)
    sum_h0 = h0.sum(dim=0)
    # the hidden states that drive the reconstruction are sampled, into the middle of a
    # zero-margined (N, J, T' + 2 (w - 1)) buffer: the down pass (conv_transpose1d) is then a
    # valid conv1d with the flipped, transposed filters, which oneDNN runs faster
    h0_ncw = h0.view(n, t_h, j).permute(0, 2, 1)
    hs_mid = hs[:, :, w - 1:w - 1 + t_h]
    if c.sample_hiddens:
        bernoulli(h0_ncw, g, ws, out=hs_mid)
    else:
        hs_mid.copy_(h0_ncw)
    # negative phase: (N, J, T') -> (N, C, T) -> cols1 (N*T', C*w) -> h1 (N*T', J)
    if n == 1:
        # one track: v1[c, k + t] += sum_j W[j, c, k] hs[j, t], one matrix product per filter tap k
        wt = ws["wflip"].view(w, n_vis, j).copy_(rbm.weight.permute(2, 1, 0))
        v1 = v0.new_empty((1, n_vis, t))
        v1[0].copy_(rbm.visible_bias[:, None].expand(n_vis, t))
        for k in range(w):
            v1[0, :, k:k + t_h].addmm_(wt[k], hs_mid[0])
    else:
        _zero_margins(hs, w - 1, t_h)  # the memory may have held a batch of another shape
        # the flipped filters as one contiguous tensor: oneDNN ran the strided view 10 % (layer 1) to 40 % (layer 3) slower
        wf = ws["wflip"].copy_(rbm.weight.flip(2).transpose(0, 1))
        v1 = F.conv1d(hs, wf, rbm.visible_bias)
    rbm._mean_visibles_inplace(v1)
    if vm is not None:
        v1.mul_(vm)
    im2col(v1, w, cols1)
    fe1 = _up(rbm, cols1, wm, h1, v1, vm, hm_rows, ws if monitor else None)
    if hm_rows is not None:
        h1.mul_(hm_rows)
    sum_h1 = h1.sum(dim=0)

    if rank:  # h0 -> (1 - lam) h0 + lam q, Goh's rank-based target
        q = goh_rank_target(h0_ncw, hm, p)
        h0.view(n, t_h, j).lerp_(q.permute(0, 2, 1), lam)
        del q
        if hm_rows is not None:
            h0.mul_(hm_rows)
        gbh = h0.sum(dim=0) - sum_h1
    else:
        gbh = (1.0 - lam) * sum_h0 + lam * p * n_h - sum_h1
    # dW = sum hpos v0 - h1 v1, (J, N T') @ (N T', C w) per phase
    torch.mm(h0.t(), cols0, out=gw)
    if lam and not rank:
        gw.mul_(1.0 - lam)
        # lam * p * S[c, k], S = sum over valid hidden positions of the visible windows
        win = cols0.sum(dim=0) if hm_rows is None else torch.mv(cols0.t(), hm_rows[:, 0])
        gw.add_(win[None, :], alpha=lam * p)
    gw.addmm_(h1.t(), cols1, alpha=-1.0)
    gbv = v0.sum(dim=(0, 2)) - v1.sum(dim=(0, 2))
    gw = gw.view(j, n_vis, w).clone()
    mon = None
    if monitor:
        diff2 = (v0 - v1).square_()
        if vm is not None:
            diff2.mul_(vm)
        mon = (diff2.sum(), sum_h0.sum(), fe0, fe1)
    return gw, gbh, gbv, mon


def cd1_conv(rbm, v0, hm, vm, n_h, g, monitor):
    """Reference CD-1 with ``conv1d`` / ``conv_transpose1d`` and one fused weight-gradient call."""
    c = rbm.config
    n = v0.shape[0]
    lam = 0.0 if c.sparsity == "none" else c.sparsity_cost
    p = c.sparsity_target
    vv = v0.new_empty((2 * n,) + tuple(v0.shape[1:]))
    h0 = rbm._hidden_preactivation(v0)  # (N, C, T) -> (N, J, T')
    fe0 = free_energy_sum(rbm, v0, h0, vm, hm) if monitor else None
    h0.sigmoid_()
    if hm is not None:
        h0.mul_(hm)
    hs = bernoulli(h0, g) if c.sample_hiddens else h0
    v1 = rbm._mean_visibles(hs)  # (N, J, T') -> (N, C, T)
    if vm is not None:
        v1.mul_(vm)
    h1 = rbm._hidden_preactivation(v1)
    fe1 = free_energy_sum(rbm, v1, h1, vm, hm) if monitor else None
    h1.sigmoid_()
    if hm is not None:
        h1.mul_(hm)
    if c.sparsity == "goh-rank":
        hpos = torch.lerp(h0, goh_rank_target(h0, hm, p), lam)
        if hm is not None:
            hpos.mul_(hm)
        vv[:n].copy_(v0)
    else:
        hpos = h0
        vv[:n] = v0 * (1.0 - lam)
    vv[n:] = -v1
    # one call for both phases: sum hpos v0 - h1 v1
    gw = conv1d_weight_grad(vv, torch.cat((hpos, h1)), rbm.weight)
    if c.sparsity != "goh-rank" and lam:
        gw.add_(window_sums(v0, hm, c.width)[None], alpha=lam * p)
        gbh = (1.0 - lam) * h0.sum(dim=(0, 2)) + lam * p * n_h - h1.sum(dim=(0, 2))
    else:
        gbh = hpos.sum(dim=(0, 2)) - h1.sum(dim=(0, 2))
    gbv = v0.sum(dim=(0, 2)) - v1.sum(dim=(0, 2))
    mon = None
    if monitor:
        diff2 = (v0 - v1).square_()
        if vm is not None:
            diff2.mul_(vm)
        mon = (diff2.sum(), h0.sum(), fe0, fe1)
    return gw, gbh, gbv, mon


def free_energy_sum(rbm, v: torch.Tensor, pre: torch.Tensor, vm: torch.Tensor | None,
                     hm: torch.Tensor | None, *, h: torch.Tensor | None = None,
                     tmp: torch.Tensor | None = None) -> torch.Tensor:
    """Sum of ``F(v)`` over the batch, from the hidden pre-activations ``pre`` already computed.

    ``pre`` may be laid out (N, J, T') or in rows (N*T', J); ``hm`` masks it in the same layout.
    With ``h = sigmoid(pre)`` (and a buffer ``tmp`` of its shape) given, on the CPU, the softplus is
    ``pre - log(h)`` (one logarithm instead of softplus's exp and log1p: 4x faster, 15x for large
    ``|pre|``); as accurate (float32 rounding of each term, ~1e-7 relative to the sum), and where
    ``h`` underflows to 0 (``pre < -103``) the sum falls back to :func:`torch.nn.functional.softplus`.
    """
    vis = rbm._visible_energy(v)
    if vm is not None:
        vis = vis * vm
    sp = None
    if h is not None and tmp is not None and pre.device.type == "cpu":
        sp = torch.sub(pre, torch.log(h, out=tmp), out=tmp)
        if hm is not None:
            sp.mul_(hm)
        sp = sp.sum()
        if not math.isfinite(float(sp)):  # log(0): fall back (NaN/inf inputs stay non-finite there too)
            sp = None
    if sp is None:
        sp = F.softplus(pre)
        if hm is not None:
            sp = sp * hm
        sp = sp.sum()
    return vis.sum() - sp


def _up(rbm, cols: torch.Tensor, wm: torch.Tensor, h: torch.Tensor, v: torch.Tensor, vm: torch.Tensor | None,
        hm_rows: torch.Tensor | None, ws: dict | None) -> torch.Tensor | None:
    """``h = sigmoid(cols @ W^T + b_h)`` (rows layout) and, with a workspace ``ws`` (monitoring on), the
    free-energy sum of ``v`` from the pre-activations kept in ``ws['pre']`` (None without)."""
    if ws is None:
        torch.addmm(rbm.hidden_bias, cols, wm.t(), out=h)
        h.sigmoid_()
        return None
    pre = ws["pre"]
    torch.addmm(rbm.hidden_bias, cols, wm.t(), out=pre)
    torch.sigmoid(pre, out=h)
    return free_energy_sum(rbm, v, pre, vm, hm_rows, h=h, tmp=ws["tmp"])


def _zero_margins(hs: torch.Tensor, margin: int, t_h: int) -> None:
    """Zero the ``margin`` steps either side of ``hs[:, :, margin:margin + t_h]``."""
    hs[:, :, :margin].zero_()
    hs[:, :, margin + t_h:].zero_()


def workspace(rbm, n: int, t: int, like: torch.Tensor) -> dict[str, torch.Tensor]:
    """Buffers reused by every :meth:`partial_fit` call, shaped for a batch ``(n, C, t)``.

    Fresh multi-megabyte tensors each step cost page faults that, on CPU,
    took longer than the arithmetic. The memory is kept per model (not in the
    state dict) and only grows: a batch of another shape (pretraining feeds
    one track of its own length a step) gets views of it, not new tensors.
    The zero margins of ``'hs'`` are the caller's to restore (:func:`_zero_margins`).
    """
    c = rbm.config
    t_h = t - c.width + 1
    rows, cw = n * t_h, c.n_visible * c.width
    shapes = {"cols": (2 * rows, cw), "hh": (2 * rows, c.n_hidden), "pre": (rows, c.n_hidden),
              "tmp": (rows, c.n_hidden), "hs": (n, c.n_hidden, t_h + 2 * (c.width - 1)),
              "gw": (c.n_hidden, cw), "wflip": (c.n_visible, c.n_hidden, c.width)}
    store = getattr(rbm, "_ws_memory", None)
    if store is None or store["key"] != (like.device, like.dtype):
        rbm._ws_memory = store = {"key": (like.device, like.dtype)}
    if store.get("views_of") == (n, t):  # the same shape as the last batch: the same views
        return store["views"]
    ws: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        size = math.prod(shape)
        flat = store.get(name)
        if flat is None or flat.numel() < size:
            store[name] = None  # release the old memory first
            fill = like.new_zeros if name == "hs" else like.new_empty
            store[name] = flat = fill(size + size // 4)  # a quarter spare: slowly growing lengths
        ws[name] = flat[:size].view(shape)
    ws["rand_memory"] = store  # bernoulli's random bits live with the rest
    store["views"], store["views_of"] = ws, (n, t)
    return ws


def bernoulli(p: torch.Tensor, generator: torch.Generator,
               ws: dict[str, torch.Tensor] | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Binary states with ``P(1) = p`` (float, same dtype as ``p``), written to ``out`` if given.

    On CPU the uniforms have 16-bit resolution (four per 64-bit draw of the
    generator, ~4x faster than :func:`torch.rand`): ``P(1)`` is then ``p`` to
    within ``2 ** -16``. Elsewhere :func:`torch.rand` is used.
    """
    if out is None:
        out = torch.empty_like(p)
    if p.device.type != "cpu":
        out.uniform_(0.0, 1.0, generator=generator)
    else:
        n = p.numel()
        n64 = (n + 3) // 4
        store = None if ws is None else ws.get("rand_memory", ws)
        buf = None if store is None else store.get("rand")
        if buf is None or buf.numel() < n64:
            buf = torch.empty(n64 + n64 // 4, dtype=torch.int64)
            if store is not None:
                store["rand"] = buf
        buf = buf[:n64]
        buf.random_(-(2 ** 63), None, generator=generator)  # full 64-bit range: four uniform int16
        # u = (r + 32768.5) / 65536 is uniform on a grid of 2**16 points; u < p  <=>  r - 65536 p < -32768.5
        out.copy_(buf.view(torch.int16)[:n].view(p.shape))
        return out.sub_(p, alpha=65536.0).lt_(-32768.5)
    return out.neg_().add_(p).sign_().clamp_min_(0.0)  # 1 where u < p, else 0


def im2col(v: torch.Tensor, width: int, out: torch.Tensor) -> torch.Tensor:
    """``out[n*T' + t, c*width + k] = v[n, c, t + k]`` for ``v`` (N, C, T): one strided copy."""
    n, ch, t = v.shape
    s_n, s_c, s_t = v.stride()
    t_h = t - width + 1
    out.view(n, t_h, ch, width).copy_(v.as_strided((n, t_h, ch, width), (s_n, s_t, s_c, s_t)))
    return out


def window_sums(v: torch.Tensor, hm: torch.Tensor | None, width: int) -> torch.Tensor:
    """``S[c, k] = sum_{n, t} hm[n, t] v[n, c, t + k]`` over hidden positions ``t`` (all when ``hm`` is None).

    ``v``: (N, C, T), ``hm``: (N, 1, T - width + 1) or None -> (C, width).
    """
    t_h = v.shape[2] - width + 1
    if hm is None:
        return v.sum(dim=0).unfold(1, t_h, 1).sum(dim=2)  # (C, width)
    w1 = v.new_empty((1, v.shape[1], width))
    return conv1d_weight_grad(v, hm, w1)[0]


def conv1d_weight_grad(v: torch.Tensor, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``out[j, c, k] = sum_{n, t} h[n, j, t] v[n, c, t + k]`` (the ``conv1d`` weight gradient).

    ``v``: (N, C, T), ``h``: (N, J, T - width + 1) -> (J, C, width).
    """
    return torch.ops.aten.convolution_backward(
        h, v, weight, None, [1], [0], [1], False, [0], 1, [False, True, False])[1]


def goh_rank_target(h: torch.Tensor, hm: torch.Tensor | None, p: float) -> torch.Tensor:
    """Goh, Thome & Cord (2010) rank-based target for activations ``h`` (N, J, T').

    First, at each (example, time) position the ``J`` activations are ranked
    (``r = rank / J`` in ``(0, 1]``, 1 for the largest) and mapped to
    ``r ** (1/p - 1)``; then that result is ranked per unit over all valid
    (example, time) positions and mapped the same way. Invalid positions
    (``hm == 0``) are excluded from the second ranking.

    The first ranking takes only ``J`` distinct values, so the second one is
    mostly ties: tied positions share their mean rank (as
    ``scipy.stats.rankdata``'s default). Left to the sort, ties came out in an
    order that differed between CPU and CUDA (CD-1 updates 14-33 % of their
    size apart) and that favoured some positions over others.
    """
    expo = 1.0 / p - 1.0
    n, j, t = h.shape
    r1 = (ranks(h, dim=1) + 1.0) / j
    q1 = r1.pow(expo)
    flat = q1.permute(1, 0, 2).reshape(j, n * t)  # (J, N*T')
    if hm is None:
        r2 = (mean_ranks(flat, dim=1) + 1.0) / (n * t)
    else:
        valid = hm.expand(n, 1, t).permute(1, 0, 2).reshape(1, n * t) > 0.5
        n_valid = valid.sum().clamp_min(1).to(h.dtype)
        n_invalid = (n * t) - n_valid
        flat = flat.masked_fill(~valid, -1.0)
        r2 = ((mean_ranks(flat, dim=1) + 1.0 - n_invalid) / n_valid).clamp_min(0.0)
    q = r2.pow(expo)
    return q.reshape(j, n, t).permute(1, 0, 2)


def ranks(x: torch.Tensor, dim: int) -> torch.Tensor:
    """0-based ranks of ``x`` along ``dim`` (0 for the smallest), as ``x``'s dtype; equal values are ranked by
    position (a stable sort: the same on every device)."""
    order = torch.argsort(x, dim=dim, stable=True)
    ranks = torch.empty_like(order)
    src = torch.arange(x.shape[dim], device=x.device).view(
        [-1 if d == (dim % x.ndim) else 1 for d in range(x.ndim)]).expand_as(order)
    ranks.scatter_(dim, order, src)
    return ranks.to(x.dtype)


def mean_ranks(x: torch.Tensor, dim: int) -> torch.Tensor:
    """0-based ranks of ``x`` along ``dim``, equal values sharing the mean of their ranks, as ``x``'s dtype.

    Examples
    --------
    >>> mean_ranks(torch.tensor([3.0, 1.0, 3.0, 2.0, 3.0]), 0)
    tensor([3., 0., 3., 1., 3.])
    """
    xs, order = torch.sort(x.movedim(dim, -1), dim=-1, stable=True)
    m = xs.shape[-1]
    idx = torch.arange(m, device=x.device).expand_as(order)
    new = torch.ones_like(xs, dtype=torch.bool)
    new[..., 1:] = xs[..., 1:] != xs[..., :-1]  # a run of equal values starts here
    last = torch.ones_like(new)
    last[..., :-1] = new[..., 1:]  # ... ends here
    first_i = torch.where(new, idx, 0).cummax(dim=-1).values  # the run's first index
    last_i = torch.where(last, idx, m).flip(-1).cummin(dim=-1).values.flip(-1)  # its last
    mean = (first_i + last_i).to(x.dtype if x.is_floating_point() else torch.float64) / 2
    out = torch.empty_like(mean).scatter_(-1, order, mean)
    return out.movedim(-1, dim).to(x.dtype)
