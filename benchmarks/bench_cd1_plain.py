"""The pipeline's one-track CD-1 step against the simplest plain-PyTorch CD-1 step (issue 27 item 5).

One 500-beat track, one thread (``torch.set_num_threads(1)`` for the module),
the layer shapes of the DBN config (1a: 12 chroma channels x 500 beats;
1b: 12 timbre channels x 500 beats; 3: 200 pooled maps x 123 steps; 100 maps
of width 8 each). For each layer, timed in interleaved turns (a busy moment
hits all alike), best of N:

* **pipeline**: :meth:`beatdbn.models.crbm.ConvRBM.partial_fit` as pretraining
  calls it (``lengths`` given, the paper's sparsity ``'goh'``, monitoring on,
  the kernel ``cd_kernel='auto'`` picks);
* **plain**: ``conv1d`` up, :func:`torch.bernoulli`, ``conv_transpose1d``
  down, ``conv1d`` up, the weight gradient of each phase by ``conv1d`` (batch
  and channel axes swapped), the parameter update; no sparsity, no monitoring;
* **as pretraining drives it**: :meth:`beatdbn.models.dbn.ConvDBN.partial_fit`
  on a fresh copy of the ``(1, 24, 500)`` track with its length, as
  ``train/pretrain.py`` calls it per batch: input preparation (timbre
  normalization; phase 1 prepares each track once for 1a and 1b, timed as
  one step) and, for layer 3, its input from raw beats (layers 1a/1b up +
  pool) included. Reading from the store is not (``bench_pretrain``).

Figures: beats/s of each and the ratio pipeline / plain (aim >= 0.85x), per
layer and for phase 1 (1a and 1b on every track: ``1 / (1/r_1a + 1/r_1b)``).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from benchmarks._common import Results, load_average, threads
from beatdbn.models.dbn import ConvDBN

BEATS = 500


def plain_cd1(v0: torch.Tensor, rbm, *, g: torch.Generator):
    """The simplest plain-PyTorch one-track CD-1 step (no sparsity, no monitoring) on ``v0`` ``(1, C, T)``, from a
    copy of ``rbm``'s initial parameters at its learning rate."""
    weight, bh, bv = (p.detach().clone() for p in (rbm.weight, rbm.hidden_bias, rbm.visible_bias))
    binary, lr = rbm.config.visible == "binary", rbm.config.lr

    def step():
        h0 = torch.sigmoid(F.conv1d(v0, weight, bh))
        hs = torch.bernoulli(h0, generator=g)
        a = F.conv_transpose1d(hs, weight, bv)
        v1 = torch.sigmoid(a) if binary else a
        h1 = torch.sigmoid(F.conv1d(v1, weight, bh))
        # dW[j, c, k] = sum_t h[j, t] v[c, t + k]: conv1d of v (c, 1, T) with filters h (j, 1, T')
        gw = (F.conv1d(v0.transpose(0, 1), h0.transpose(0, 1))
              - F.conv1d(v1.transpose(0, 1), h1.transpose(0, 1))).transpose(0, 1)
        weight.add_(gw, alpha=lr)
        bh.add_(h0.sum(dim=(0, 2)) - h1.sum(dim=(0, 2)), alpha=lr)
        bv.add_(v0.sum(dim=(0, 2)) - v1.sum(dim=(0, 2)), alpha=lr)

    return step


def interleaved_best(fns: dict, *, repeat: int, number: int) -> dict:
    """Best seconds per call of each function over ``repeat`` turns of ``number`` calls, the functions in turn."""
    for fn in fns.values():  # warm-up: workspaces, oneDNN primitives
        for _ in range(3):
            fn()
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            best[k] = min(best[k], (time.perf_counter() - t0) / number)
    return best


def measure(*, repeat: int = 15, number: int = 20, seed: int = 0) -> dict:
    """Seconds per step: ``{(stage, 'pipeline' | 'plain' | 'driven'): s}`` (one thread)."""
    g = torch.Generator().manual_seed(seed)
    dbn = ConvDBN()
    chroma = torch.rand(1, 12, BEATS, generator=g) ** 3
    x = torch.cat((chroma / chroma.amax(1, keepdim=True), torch.randn(1, 12, BEATS, generator=g)), dim=1)
    xl = torch.tensor([BEATS])
    fns = {}
    for stage in ("1a", "1b", "3"):
        v, vl = dbn.layer_input(stage, x, lengths=xl)
        rbm = dbn.layer(stage)
        fns[stage, "pipeline"] = lambda rbm=rbm, v=v, vl=vl: rbm.partial_fit(v, lengths=vl, generator=g)
        fns[stage, "plain"] = plain_cd1(v, rbm, g=g)
        # a new track each step, as pretraining reads them (ConvDBN reuses a prepared input only for the same tensor)
        fns[stage, "driven"] = lambda stage=stage: dbn.partial_fit(stage, x.clone(), lengths=xl, generator=g)

    def phase1():  # pretraining's phase 1: 1a then 1b on each track read
        xc = x.clone()
        for stage in ("1a", "1b"):
            dbn.partial_fit(stage, xc, lengths=xl, generator=g)

    fns["1", "driven"] = phase1
    return interleaved_best(fns, repeat=repeat, number=number)


def run(results: Results, quick: bool) -> None:
    with threads(1):
        before = load_average()
        t = measure(repeat=5 if quick else 15, number=5 if quick else 20)
        after = load_average()
    note = f"1 track x {BEATS} beats, float32, 1 thread, interleaved best-of; load average {before} -> {after}"
    rate = {k: BEATS / s for k, s in t.items()}
    for kind in ("pipeline", "plain"):  # phase 1 trains 1a and 1b on every track ('driven' is timed whole)
        rate["1", kind] = BEATS / (t["1a", kind] + t["1b", kind])
    for stage, label in (("1a", "1a"), ("1b", "1b"), ("1", "phase 1 (1a+1b)"), ("3", "3")):
        results.add(f"cd1 one track {label}: partial_fit (goh sparsity, monitoring)", rate[stage, "pipeline"],
                    "beats/s", baseline="plain PyTorch CD-1 step", baseline_value=rate[stage, "plain"],
                    note=note + "; aim >= 0.85x")
        results.add(f"cd1 one track {label}: ConvDBN.partial_fit as pretraining drives it", rate[stage, "driven"],
                    "beats/s", baseline="plain PyTorch CD-1 step", baseline_value=rate[stage, "plain"],
                    note=note + ("; layer 3's input (1a/1b up + pool) included" if stage == "3" else ""))
    print("cd1 one track, beats/s (pipeline / driven / plain, ratios to plain): " + "; ".join(
        f"{s} {rate[s, 'pipeline']:,.0f} / {rate[s, 'driven']:,.0f} / {rate[s, 'plain']:,.0f} "
        f"{rate[s, 'pipeline'] / rate[s, 'plain']:.2f}x / {rate[s, 'driven'] / rate[s, 'plain']:.2f}x"
        for s in ("1a", "1b", "1", "3")) + f"; load {before} -> {after}")
