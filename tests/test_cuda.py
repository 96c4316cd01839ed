"""The CUDA paths (``device='cuda'``): pretraining, finetuning, bf16 autocast, the baselines, CPU agreement.

Every test here but the last needs a CUDA device and skips without one, saying so (``pytest -rs`` shows the
reason); the last guards, on any machine, what made CPU and CUDA disagree (Goh's rank target and sort ties).
``scripts/gpu_check.sh`` runs them, with the other CUDA tests, on a machine with a GPU.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from beatdbn.data.splits import SplitData
from beatdbn.labels import KEY_NAMES
from beatdbn.models.convmlp import ConvMLP, MLPConfig
from beatdbn.models.crbm import ConvRBM, CRBMConfig
from beatdbn.models.crbm_kernels import goh_rank_target
from beatdbn.models.dbn import ConvDBN, DBNConfig
from beatdbn.store.extract import extract
from beatdbn.store.reader import FeatureStore
from beatdbn.synth.corpus import make_track
from beatdbn.synth.msd_writer import write_track
from beatdbn.train.baselines import BaselineConfig, run_logreg
from beatdbn.train.finetune import FinetuneConfig, run_convmlp
from beatdbn.train.precision import bf16_supported
from beatdbn.train.pretrain import CHECKPOINT, PretrainConfig, iter_stats, pretrain

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs CUDA: torch.cuda.is_available() is False on this machine")

SMALL = DBNConfig(n_maps_1a=8, n_maps_1b=8, n_maps_3=6)
MAPS = 8


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """14 synthetic tracks of 20..400 beats (two shorter than a filter's receptive field)."""
    root = tmp_path_factory.mktemp("cuda-store")
    for i, n in enumerate([20, 45, 60, 90, 120, 150, 180, 200, 240, 260, 300, 330, 370, 400]):
        tid = f"TRCUDA{i:012d}"
        write_track(root / "msd" / f"{tid}.h5", make_track(track_id=tid, n_beats=n, seed=i))
    extract([root / "msd"], root / "store", scheduler="sync")
    return root / "store"


def _key_splits(seed: int = 0):
    """Key-task splits whose key is plain in the chroma (as tests/test_finetune.py's short-track set)."""
    rng = np.random.default_rng(seed)
    major = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])

    def split(n, beats):
        labels = np.arange(n) % 12
        feats = []
        for i, k in enumerate(labels):
            t = beats + 7 * (i % 5)
            chroma = np.clip(np.roll(major / major.max(), k)[None, :] + 0.35 * rng.standard_normal((t, 12)), 0, None)
            chroma /= chroma.max(axis=1, keepdims=True)
            feats.append(np.concatenate([chroma, rng.standard_normal((t, 12))], axis=1).astype(np.float32))
        return SplitData([f"T{k}-{i}" for i, k in enumerate(labels)], feats, labels, list(KEY_NAMES))

    return split(48, 120), split(24, 100), split(24, 100)


# -- pretraining ------------------------------------------------------------------------------------------------------

@needs_cuda
def test_pretrain_on_cuda_and_its_dbn_loads_on_cpu(store, tmp_path):
    out = tmp_path / "dbn"
    summary = pretrain(store, out, config=PretrainConfig(batch_size=4), dbn_config=SMALL, device="cuda")
    assert summary["complete"] and summary["n_tracks"] == 14
    assert not (out / CHECKPOINT).exists()
    dbn = ConvDBN.load(out)  # on the CPU
    for stage in ("1a", "1b", "3"):
        layer = dbn.layer(stage)
        assert layer.weight.device.type == "cpu"
        assert int(layer.n_updates) == 4  # 14 tracks in batches of at most 4, one shard
        assert torch.isfinite(layer.weight).all()
    rows = list(iter_stats(out))
    assert rows and all(math.isfinite(r["reconstruction_error"]) for r in rows)
    x = torch.cat((torch.rand(2, 12, 120), torch.randn(2, 12, 120)), dim=1)
    cpu_out = dbn.transform(x)
    gpu_out = ConvDBN.load(out, device="cuda").transform(x.cuda())
    torch.testing.assert_close(gpu_out.cpu(), cpu_out, rtol=1e-2, atol=5e-3)  # cuDNN may use TF32 here


@needs_cuda
def test_pretrain_on_cuda_resumes_after_a_kill(store, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)  # no atomics in the weight gradients
    config = PretrainConfig(batch_size=2, checkpoint_every=2)
    whole = tmp_path / "whole"
    pretrain(store, whole, config=config, dbn_config=SMALL, device="cuda")

    calls = []

    def kill(info):
        calls.append(info)
        if len(calls) == 9:  # 7 batches a phase: layer3's 2nd batch, before its checkpoint (resumes at layer3)
            raise Killed

    out = tmp_path / "killed"
    with pytest.raises(Killed):
        pretrain(store, out, config=config, dbn_config=SMALL, device="cuda", progress=kill)
    assert (out / CHECKPOINT).exists()
    summary = pretrain(store, out, config=config, dbn_config=SMALL, device="cuda")
    assert summary["complete"]
    a, b = ConvDBN.load(whole), ConvDBN.load(out)
    for stage in ("1a", "1b", "3"):
        assert int(a.layer(stage).n_updates) == int(b.layer(stage).n_updates) == 7
    # same seed, same batches, the generator's state restored: the same weights (deterministic cuDNN)
    for k, v in a.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(b.state_dict()[k], v, rtol=1e-5, atol=1e-7, msg=k)


# -- the CRBM kernels -----------------------------------------------------------------------------------------------

@needs_cuda
@pytest.mark.parametrize("kernel", ["gemm", "conv"])
@pytest.mark.parametrize("kind", ["binary", "gaussian"])
@pytest.mark.parametrize("sparsity", ["goh", "goh-rank"])
def test_both_cd_kernels_on_cuda_match_the_cpu(kernel, kind, sparsity):
    cfg = CRBMConfig(n_visible=12, n_hidden=16, width=8, visible=kind, sample_hiddens=False, sparsity=sparsity)
    cpu, gpu = ConvRBM.from_config(cfg), ConvRBM.from_config(cfg, device="cuda")
    gpu.cd_kernel = kernel
    g = torch.Generator().manual_seed(0)
    v = torch.rand(5, 12, 90, generator=g) if kind == "binary" else torch.randn(5, 12, 90, generator=g)
    lengths = torch.tensor([90, 64, 7, 30, 81])
    s_cpu = cpu.partial_fit(v, lengths=lengths)
    s_gpu = gpu.partial_fit(v.cuda(), lengths=lengths.cuda(), generator=torch.Generator(device="cuda"))
    # the update itself, relative to its size (TF32 convolutions, if allowed, show up here)
    d_cpu = cpu.weight - ConvRBM.from_config(cfg).weight
    d_gpu = gpu.weight.cpu() - ConvRBM.from_config(cfg).weight
    rel = float((d_gpu - d_cpu).abs().max() / d_cpu.abs().max())
    assert rel < 1e-3, f"{kernel}: update differs from the CPU's by {rel:.2e} of its size"
    assert s_gpu["n_positions"] == s_cpu["n_positions"]
    assert math.isclose(s_gpu["reconstruction_error"], s_cpu["reconstruction_error"], rel_tol=1e-3)


@needs_cuda
def test_sampled_cd_on_cuda_is_reproducible_from_the_generator():
    cfg = CRBMConfig(n_visible=12, n_hidden=16, width=8)
    v = torch.rand(3, 12, 70).cuda()
    ws = []
    for _ in range(2):
        rbm = ConvRBM.from_config(cfg, device="cuda")
        rbm.cd_kernel = "gemm"
        rbm.partial_fit(v, generator=torch.Generator(device="cuda").manual_seed(5), monitor=False)
        ws.append(rbm.weight.cpu())
    torch.testing.assert_close(ws[0], ws[1], rtol=1e-5, atol=1e-7)


# -- finetuning and bf16 ------------------------------------------------------------------------------------------

@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_finetune_one_epoch_on_cuda(tmp_path, precision):
    train, valid, test = _key_splits()
    dbn = ConvDBN(DBNConfig(n_maps_1a=MAPS, n_maps_1b=MAPS, n_maps_3=MAPS), device="cuda")
    config = FinetuneConfig(learning_rates=(0.05,), epochs=1, snapshot_epochs=(), batch_size=8,
                            augment="transpose", precision=precision)
    result = run_convmlp(train, valid, test, task="key", init="pretrained", dbn=dbn, out=tmp_path / "run",
                         config=config, device="cuda")
    row = result.select(1)
    assert 0.0 <= row["test_accuracy"] <= 1.0 and math.isfinite(row["train_loss"])
    model = ConvMLP.load(tmp_path / "run" / "model")  # saved from CUDA, loads on the CPU
    assert model.layer1a.weight.device.type == "cpu" and model.config.transpose_keys
    assert model.predict_proba(torch.from_numpy(test.features[0].T[None].copy())).shape == (1, 12)
    # the random control drawn from the DBN's statistics, on CUDA
    run_convmlp(train, valid, test, task="key", init="random", dbn=dbn, out=tmp_path / "random",
                config=dataclasses.replace(config, augment="none"), device="cuda")


@needs_cuda
def test_bf16_autocast_on_cuda():
    assert bf16_supported("cuda")
    model = ConvMLP(MLPConfig(n_classes=5, n_maps_1a=MAPS, n_maps_1b=MAPS, n_maps_3=MAPS), device="cuda")
    x = torch.cat((torch.rand(4, 12, 200), torch.randn(4, 12, 200)), dim=1).cuda()
    xl = torch.tensor([200, 150, 60, 30], device="cuda")
    y = torch.tensor([0, 1, 2, 3], device="cuda")
    ref, l4 = model(x, xl)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits, l4b = model(x, xl)
    assert logits.dtype == torch.bfloat16 and torch.equal(l4, l4b)
    torch.testing.assert_close(logits.float(), ref, rtol=0.05, atol=0.1)
    loss = ConvMLP.loss(logits, l4b, y)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all(), name


@needs_cuda
def test_convmlp_on_cuda_matches_the_cpu():
    cfg = MLPConfig(n_classes=4, n_maps_1a=MAPS, n_maps_1b=MAPS, n_maps_3=MAPS)
    cpu, gpu = ConvMLP(cfg), ConvMLP(cfg, device="cuda")
    x = torch.cat((torch.rand(3, 12, 180), torch.randn(3, 12, 180)), dim=1)
    xl = torch.tensor([180, 100, 40])
    # cuDNN may run these fp32 convolutions in TF32 (torch's default): agreement to ~1e-3, not 1e-6
    torch.testing.assert_close(gpu.predict_proba(x.cuda(), xl.cuda()).cpu(), cpu.predict_proba(x, xl),
                               rtol=1e-2, atol=1e-2)


@needs_cuda
def test_logreg_baseline_on_cuda(tmp_path):
    train, valid, test = _key_splits(1)
    result = run_logreg(train, valid, test, task="key", out=tmp_path / "logreg", device="cuda",
                        config=BaselineConfig(learning_rates=(5e-4,), epochs=2))
    assert 0.0 <= result.select()["test_accuracy"] <= 1.0


# -- on any machine ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("masked", [False, True])
def test_goh_rank_target_does_not_depend_on_the_order_of_positions(masked):
    """Its second ranking is mostly ties (the first takes n_hidden values): how a sort ordered them decided the
    target (CUDA's order differed from the CPU's); now the activation breaks them, so permuting positions permutes
    the target and nothing else."""
    g = torch.Generator().manual_seed(0)
    h = torch.rand(5, 16, 83, generator=g)
    hm = None
    if masked:
        hm = torch.ones(5, 1, 83)
        hm[2, :, 40:] = hm[4, :, 10:] = 0
    perm = torch.randperm(83, generator=g)
    q = goh_rank_target(h, hm, 0.05)
    q_perm = goh_rank_target(h[:, :, perm], None if hm is None else hm[:, :, perm], 0.05)
    torch.testing.assert_close(q_perm, q[:, :, perm], rtol=0, atol=0)
    assert abs(float(q.mean() if hm is None else (q * hm).sum() / (hm.sum() * 16)) - 0.05) < 0.01
