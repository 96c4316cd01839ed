"""The CUDA paths (``device='cuda'``) against the CPU of the same machine, in the same run.

Skipped, with one line and no figure, where ``torch.cuda.is_available()`` is False.

Measured (GPU timings between ``torch.cuda.synchronize()`` calls; the CPU with
torch's default intra-op threads, i.e. every CPU of the machine):

* **CD-1 steps** (:meth:`~beatdbn.models.crbm.ConvRBM.partial_fit`, monitoring
  off, the kernel ``cd_kernel='auto'`` picks on each device) of layers 1a, 1b
  and 3 at the paper's shapes (100 maps, width 8), on batches of 1 and 32
  tracks of 512 beats (layer 3: the 126 pooled steps of such a track), in
  beats/s, CUDA against the CPU. Also, on CUDA: the other kernel, a step with
  monitoring (one host sync, as pretraining runs it), and cuDNN with TF32
  switched off (the default lets cuDNN convolutions use TF32).
* **Resident CD-1 steps**: one track of 512 beats a step as the resident pass
  takes it (``partial_fit_on_device``, no host read, 256 steps queued between
  synchronizations) against ``partial_fit`` with monitoring (one host read a step).
* **A pretraining pass** (:func:`beatdbn.train.pretrain.pretrain`, paper DBN,
  one track per CD-1 step, store reading included) over a synthetic store of
  500 tracks (built once under ``.bench-data/`` with ``scheduler='sync'``; or
  the store named by ``BEATDBN_BENCH_STORE``), in beats/s per phase: the
  streaming pass on CUDA against the CPU, and the resident pass
  (``resident='on'``, :mod:`beatdbn.train.resident`, loading included) against
  the streaming pass on CUDA. Issue 27 item 4 aims at 1 M beats/s.
* **Conv MLP training steps** (forward, loss, backward, SGD update) at batches
  of 16 tracks x 512 beats, 50 classes: CUDA fp32 and CUDA under bf16
  autocast, against the CPU in fp32; the projected time of an epoch over
  5,000 tracks x 500 beats at each rate; inference in tracks/s.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import torch

from benchmarks._common import Results

BEATS = 512
LAYERS = {  # name: (visible kind, channels, time steps per track, sparsity target)
    "1a": ("binary", 12, BEATS, 0.05),
    "1b": ("gaussian", 12, BEATS, 0.05),
    "3": ("binary", 200, (BEATS - 7) // 4, 0.1),
}
MLP_BATCH, CLASSES = 16, 50
DATA = Path(__file__).resolve().parents[1] / ".bench-data"
GPU = "cuda"  # the device measured (the CPU is the baseline)


def _sync(device: str) -> None:
    if device == GPU:
        torch.cuda.synchronize()


def _rate(step, device: str, seconds: float, warmup: int = 3) -> float:
    """Calls of ``step`` per second over at least ``seconds`` (after ``warmup`` untimed calls), GPU work included."""
    for _ in range(warmup):
        step()
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        if n % 4 == 0 or device != GPU:
            _sync(device)
            dt = time.perf_counter() - t0
            if dt >= seconds and n >= 3:
                return n / dt


def _crbm_data(kind: str, n: int, c: int, t: int, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if kind == "binary":
        x = torch.rand(n, c, t, generator=g) ** 3
        x = x / x.amax(1, keepdim=True)
    else:
        x = torch.randn(n, c, t, generator=g)
    return x.to(device)


class _tf32_off:
    """cuDNN without TF32 inside the block (restored after)."""

    def __enter__(self):
        self.before = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32 = self.before


def _cd1(results: Results, seconds: float) -> None:
    from beatdbn.models.crbm import ConvRBM, CRBMConfig

    threads = torch.get_num_threads()
    for name, (kind, c, t, p) in LAYERS.items():
        cfg = CRBMConfig(n_visible=c, visible=kind, sparsity_target=p)
        for batch in (1, 32):
            rates = {}
            for key, device in (("gpu", GPU), ("cpu", "cpu")):
                rbm = ConvRBM.from_config(cfg, device=device)
                v = _crbm_data(kind, batch, c, t, device)
                g = torch.Generator(device=device).manual_seed(0)
                rates[key] = _rate(lambda: rbm.partial_fit(v, generator=g, monitor=False), device, seconds)
                if key == "gpu":
                    chosen = rbm._kernel_name(v.device)
                    other = "conv" if chosen == "gemm" else "gemm"
                    alt = ConvRBM.from_config(cfg, device=device)
                    alt.cd_kernel = other
                    rates["other"] = _rate(lambda: alt.partial_fit(v, generator=g, monitor=False), device, seconds)
                    rates["monitor"] = _rate(lambda: rbm.partial_fit(v, generator=g, monitor=True), device, seconds)
                    with _tf32_off():
                        rates["no_tf32"] = _rate(lambda: rbm.partial_fit(v, generator=g, monitor=False), device,
                                                 seconds)
                else:
                    cpu_kernel = rbm._kernel_name(v.device)
            beats = batch * BEATS
            note = f"{batch} x {BEATS} beats, 100 maps, fp32; CPU: {threads} threads, kernel {cpu_kernel}"
            results.add(f"cuda crbm {name} CD-1 batch {batch} ({chosen})", rates["gpu"] * beats, "beats/s",
                        baseline="CPU, same step", baseline_value=rates["cpu"] * beats, note=note)
            results.add(f"cuda crbm {name} CD-1 batch {batch}: kernel {chosen} vs {other}", rates["gpu"] * beats,
                        "beats/s", baseline=f"kernel {other} on CUDA", baseline_value=rates["other"] * beats, note=note)
            results.add(f"cuda crbm {name} CD-1 batch {batch} with monitoring", rates["monitor"] * beats, "beats/s",
                        baseline="without monitoring (CUDA)", baseline_value=rates["gpu"] * beats,
                        note=note + "; monitoring = one host sync a step, as pretrain runs it")
            results.add(f"cuda crbm {name} CD-1 batch {batch}, cuDNN TF32 off", rates["no_tf32"] * beats, "beats/s",
                        baseline="cuDNN TF32 allowed (torch default)", baseline_value=rates["gpu"] * beats,
                        note=note)
            print(f"CD-1 {name} batch {batch}: cuda {rates['gpu'] * beats:,.0f} beats/s ({chosen}; {other} "
                  f"{rates['other'] * beats:,.0f}; monitored {rates['monitor'] * beats:,.0f}; TF32 off "
                  f"{rates['no_tf32'] * beats:,.0f}), cpu {rates['cpu'] * beats:,.0f} beats/s")


def _store(n: int) -> Path:
    """A synthetic store of ``n`` tracks (``BEATDBN_BENCH_STORE`` when set), built with ``scheduler='sync'``."""
    given = os.environ.get("BEATDBN_BENCH_STORE")
    if given:
        return Path(given)
    from beatdbn.store.extract import extract
    from beatdbn.synth.corpus import generate_corpus

    store = DATA / f"store-sync-{n}"
    if not (store / "tracks.parquet").exists():
        shutil.rmtree(store, ignore_errors=True)
        generate_corpus(DATA / f"msd-sync-{n}", n, seed=0, n_artists=max(n // 50, 10),
                        n_jobs=max(1, min(8, (os.cpu_count() or 1) // 2)))
        extract([DATA / f"msd-sync-{n}"], store, scheduler="sync")
    return store


def _resident_steps(results: Results, seconds: float) -> None:
    """One track a CD-1 step as the resident pass takes it (``partial_fit_on_device``: no host read; 256 steps
    queued between two synchronizations) against ``partial_fit`` with monitoring (one host read a step)."""
    from beatdbn.models.crbm import ConvRBM, CRBMConfig

    queue = 256
    for name, (kind, c, t, p) in LAYERS.items():
        rbm = ConvRBM.from_config(CRBMConfig(n_visible=c, visible=kind, sparsity_target=p), device=GPU)
        v = _crbm_data(kind, 1, c, t, GPU)
        g = torch.Generator(device=GPU).manual_seed(0)
        raw = torch.empty((queue, 5), device=GPU)
        ok = torch.ones((), dtype=torch.bool, device=GPU)

        def resident_steps():
            for k in range(queue):
                rbm.partial_fit_on_device(v, generator=g, raw_out=raw[k], ok=ok)

        resident = _rate(resident_steps, GPU, seconds, warmup=1) * queue * BEATS
        host = _rate(lambda: rbm.partial_fit(v, generator=g, monitor=True), GPU, seconds) * BEATS
        results.add(f"cuda crbm {name} CD-1, 1 track a step, resident (no host read; {queue} steps a sync)", resident,
                    "beats/s", baseline="partial_fit with monitoring (one host read a step)", baseline_value=host,
                    note=f"1 x {BEATS} beats, 100 maps, fp32, kernel {rbm._kernel_name(v.device, rows=t - 7)}; "
                         f"aim >= 1 M beats/s a phase (issue 27 item 4)")
        print(f"CD-1 {name} 1 track: resident {resident:,.0f} beats/s, host read a step {host:,.0f} beats/s")


def _pretrain(results: Results, quick: bool) -> None:
    from beatdbn.store.reader import FeatureStore
    from beatdbn.train.pretrain import PretrainConfig, pretrain

    store = FeatureStore.open(_store(200 if quick else 500))
    summaries = {}
    for key, device, resident in (("gpu", GPU, "off"), ("resident", GPU, "on"), ("cpu", "cpu", "off")):
        out = DATA / f"cuda-bench-dbn-{key}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        summaries[key] = pretrain(store, out, config=PretrainConfig(batch_size=1), device=device, resident=resident)
        summaries[key]["wall"] = time.perf_counter() - t0
        shutil.rmtree(out, ignore_errors=True)
    s = summaries["gpu"]
    note = (f"{s['n_tracks']} synthetic tracks, {s['n_beats']:,} beats, paper DBN (100/100/100 maps), 1 track a "
            f"step, monitoring on, store reading included; CPU: {torch.get_num_threads()} threads")
    for phase, info in s["phases"].items():
        cpu = summaries["cpu"]["phases"][phase]
        res = summaries["resident"]["phases"][phase]
        how = summaries["resident"]["pass"]["phases"][phase]
        results.add(f"cuda pretrain pass, 1 track a step: {phase} ({'+'.join(info['stages'])})", info["beats_per_s"],
                    "beats/s", baseline="CPU, same pass", baseline_value=cpu["beats_per_s"], note=note)
        results.add(f"cuda pretrain pass, 1 track a step, resident (--resident on): {phase}", res["beats_per_s"],
                    "beats/s", baseline="the streaming pass on CUDA, same run", baseline_value=info["beats_per_s"],
                    note=note + f"; loading the inputs included ({how.get('load_seconds', 'n/a')} s); resident: "
                                f"{how['resident']}; aim >= 1 M beats/s (issue 27 item 4)")
        print(f"pretrain {phase}: cuda {info['beats_per_s']:,.0f} beats/s ({info['seconds']:.1f} s), resident "
              f"{res['beats_per_s']:,.0f} beats/s ({res['seconds']:.1f} s; {how}), "
              f"cpu {cpu['beats_per_s']:,.0f} beats/s ({cpu['seconds']:.1f} s)")
    results.add("cuda pretrain pass, wall time (both phases, plots excluded)", s["wall"], "s",
                baseline="CPU, same pass", baseline_value=summaries["cpu"]["wall"],
                ratio=summaries["cpu"]["wall"] / s["wall"], note=note + "; ratio > 1: CUDA faster")


def _convmlp(results: Results, seconds: float) -> None:
    from beatdbn.models.convmlp import ConvMLP, MLPConfig

    g = torch.Generator().manual_seed(0)
    chroma = torch.rand(MLP_BATCH, 12, BEATS, generator=g) ** 3
    x_cpu = torch.cat((chroma / chroma.amax(1, keepdim=True), torch.randn(MLP_BATCH, 12, BEATS, generator=g)), dim=1)
    y_cpu = torch.randint(0, CLASSES, (MLP_BATCH,), generator=g)
    beats = MLP_BATCH * BEATS
    rates = {}
    for key, device, bf16 in (("gpu", GPU, False), ("gpu", GPU, True), ("cpu", "cpu", False)):
        model = ConvMLP(MLPConfig(n_classes=CLASSES), device=device)
        opt = torch.optim.SGD(model.parameters(), lr=1e-4)
        x, y = x_cpu.to(device), y_cpu.to(device)
        lengths = torch.full((MLP_BATCH,), BEATS, device=device)

        def step():
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                logits, l4 = model(x, lengths)
            loss = ConvMLP.loss(logits, l4, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        rates[(key, bf16)] = _rate(step, device, seconds)
        if not bf16:
            model.eval()
            xi = x_cpu.repeat(4, 1, 1).to(device)  # 64 tracks
            li = torch.full((64,), BEATS, device=device)

            @torch.no_grad()
            def infer():
                model.predict_proba(xi, li)

            rates[(key, "infer")] = _rate(infer, device, seconds)
    note = f"batch {MLP_BATCH} x {BEATS} beats, 100/100/100 maps, {CLASSES} classes; CPU: {torch.get_num_threads()} threads"
    cpu = rates[("cpu", False)] * beats
    for bf16, label in ((False, "fp32"), (True, "bf16 autocast")):
        bps = rates[("gpu", bf16)] * beats
        results.add(f"cuda convmlp train {label}", bps, "beats/s", baseline="CPU fp32", baseline_value=cpu, note=note)
        epoch = 5000 * 500 / bps
        results.add(f"cuda convmlp projected epoch {label}, 5000 x 500 beats", epoch, "s",
                    baseline="CPU fp32 projected epoch", baseline_value=5000 * 500 / cpu,
                    ratio=(5000 * 500 / cpu) / epoch, note="ratio > 1: CUDA faster")
        print(f"convmlp train cuda {label}: {bps:,.0f} beats/s (epoch {epoch:.1f} s); cpu fp32 {cpu:,.0f} beats/s "
              f"(epoch {5000 * 500 / cpu:.1f} s)")
    results.add("cuda convmlp train bf16 vs fp32", rates[("gpu", True)] * beats, "beats/s",
                baseline="CUDA fp32", baseline_value=rates[("gpu", False)] * beats, note=note)
    results.add("cuda convmlp inference", rates[("gpu", "infer")] * 64, "tracks/s", baseline="CPU",
                baseline_value=rates[("cpu", "infer")] * 64, note=f"batches of 64 tracks x {BEATS} beats, fp32")
    print(f"convmlp inference: cuda {rates[('gpu', 'infer')] * 64:,.0f} tracks/s, "
          f"cpu {rates[('cpu', 'infer')] * 64:,.0f} tracks/s")


def run(results: Results, quick: bool = False) -> None:
    if not torch.cuda.is_available():
        print("bench_cuda: skipped (torch.cuda.is_available() is False: no CUDA device)")
        return
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"cuDNN {torch.backends.cudnn.version()}, cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, "
          f"matmul precision {torch.get_float32_matmul_precision()}, CPU threads {torch.get_num_threads()}")
    seconds = 0.4 if quick else 0.75
    for part, fn in (("cd1", lambda: _cd1(results, seconds)), ("resident", lambda: _resident_steps(results, seconds)),
                     ("pretrain", lambda: _pretrain(results, quick)),
                     ("convmlp", lambda: _convmlp(results, seconds))):
        t0 = time.perf_counter()
        fn()
        print(f"bench_cuda {part}: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    res = Results()
    run(res, quick=True)
    for f in res.figures:
        print(f)
