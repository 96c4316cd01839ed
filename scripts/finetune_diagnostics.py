"""Why a conv MLP does or does not learn on a task: the figures issue 12 asks for, measured.

For one task (a store and a tasks folder) and one initial model (pretrained
from a DBN, the paper's random control drawn from the DBN's statistics, or
plain random), print:

* the SGD updates a run gets (tracks x epochs / batch) under the paper's
  recipe and under the beatdbn recipe;
* how many layer-4 steps each training track contributes;
* the scaling of the input (chroma, raw and normalized timbre);
* activation statistics per layer on the training tracks (mean unit
  activation, how much a unit varies *between* tracks, and the fraction of
  saturated sigmoid units);
* the output layer's start (weight scale, spread of the initial logits);
* gradient norms per layer on one batch of 16 whole tracks, for the
  paper's loss.

Usage::

    python scripts/finetune_diagnostics.py STORE TASKS --task key [--dbn DBN_DIR] [--init pretrained|random]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from beatdbn.models.convmlp import ConvMLP
from beatdbn.models.dbn import ConvDBN
from beatdbn.store.reader import FeatureStore
from beatdbn.tasks.build import load_task
from beatdbn.data.splits import load_split, padded_batch
from beatdbn.train.finetune import FinetuneConfig, initial_model, updates_per_epoch


def _layer_stats(model: ConvMLP, feats: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """Per-layer activation statistics over whole tracks (after pooling and the sigmoid)."""
    c = model.config
    acts: dict[str, list[torch.Tensor]] = {"layer2 (1a+1b pooled)": [], "layer4": []}
    with torch.no_grad():
        for f in feats:
            x, xl = padded_batch([f])
            x, _ = model._prepare(x, xl)
            h = torch.cat((model.layer1a(x[:, :c.n_chroma]), model.layer1b(x[:, c.n_chroma:])), dim=1)
            h2 = torch.sigmoid(F.max_pool1d(h, c.pool_1))
            h4 = torch.sigmoid(F.max_pool1d(model.layer3(h2), c.pool_3))
            acts["layer2 (1a+1b pooled)"].append(h2[0])
            acts["layer4"].append(h4[0])
    out = {}
    for name, hs in acts.items():
        per_track = torch.stack([h.mean(dim=1) for h in hs])  # (tracks, units): a track's mean activation
        allv = torch.cat([h.flatten() for h in hs])
        out[name] = {"mean": float(allv.mean()), "between_track_std": float(per_track.std(dim=0).mean()),
                     "within_track_std": float(torch.stack([h.std(dim=1).mean() for h in hs]).mean()),
                     "saturated_lt_0.01": float((allv < 0.01).float().mean()),
                     "saturated_gt_0.99": float((allv > 0.99).float().mean())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("tasks")
    ap.add_argument("--task", default="key")
    ap.add_argument("--dbn")
    ap.add_argument("--init", default="pretrained", choices=("pretrained", "random"))
    args = ap.parse_args()
    torch.manual_seed(0)
    fs = FeatureStore.open(args.store)
    task = load_task(args.tasks, args.task)
    train = load_split(fs, task, "train")
    dbn = ConvDBN.load(args.dbn) if args.dbn else None
    model = initial_model(args.init, dbn, train.classes, seed=0, task=args.task)
    c = model.config
    n = len(train)
    lengths = train.lengths

    print(f"== {args.task}: {n} training tracks, {len(train.classes)} classes, init {args.init} "
          f"({'DBN ' + args.dbn if dbn else 'no DBN'})")
    for name in ("paper", "beatdbn"):
        cfg = FinetuneConfig.for_recipe(name)
        print(f"updates per run ({name} recipe): {updates_per_epoch(n, cfg)} a epoch x {cfg.epochs} epochs = "
              f"{updates_per_epoch(n, cfg) * cfg.epochs} (batch {cfg.batch_size})")
    l4 = np.maximum(((lengths - 7) // 4 - 7) // 4, 1)
    print(f"beats per track: median {np.median(lengths):.0f} (5%: {np.percentile(lengths, 5):.0f}, "
          f"95%: {np.percentile(lengths, 95):.0f}); layer-4 steps per track: median {np.median(l4):.0f}, "
          f"min {l4.min()}, max {l4.max()}; tracks with 1 step: {(l4 == 1).mean():.0%}")
    allf = np.concatenate(train.features)
    print(f"chroma: mean {allf[:, :12].mean():.3f}, std {allf[:, :12].std():.3f}, range "
          f"[{allf[:, :12].min():.2f}, {allf[:, :12].max():.2f}]")
    print(f"timbre (raw): mean {allf[:, 12:].mean():.2f}, std {allf[:, 12:].std():.2f}, per-dim std "
          f"{np.round(allf[:, 12:].std(axis=0), 1).tolist()} (normalized per track inside the net: 0 / 1)")
    for name in ("layer1a", "layer1b", "layer3", "output"):
        layer = getattr(model, name)
        print(f"{name}: weight std {float(layer.weight.std()):.4f}, mean {float(layer.weight.mean()):+.4f}; "
              f"bias mean {float(layer.bias.mean()):+.2f}")
    for name, st in _layer_stats(model, train.features).items():
        print(f"{name} activations: " + ", ".join(f"{k} {v:.4f}" for k, v in st.items()))

    idx = np.argsort(lengths)[:: max(1, n // 16)][:16]
    x, xl = padded_batch([train.features[i] for i in idx])
    y = torch.from_numpy(np.asarray(train.labels)[idx])
    logits, l4t = model(x, xl)
    lg = logits.detach()
    valid = torch.cat([lg[i, :, :int(l4t[i])] for i in range(len(idx))], dim=1)
    print(f"initial logits: std over classes {float(valid.std(dim=0).mean()):.3f}; loss per step "
          f"{float(ConvMLP.loss(logits, l4t, y) / l4t.float().mean()):.3f} (uniform: {np.log(len(train.classes)):.3f})")
    model.zero_grad()
    ConvMLP.loss(logits, l4t, y).backward()
    print("gradient norms (paper loss, 16 tracks): " + ", ".join(
        f"{name} {float(getattr(model, name).weight.grad.norm()):.2e} (w/|w| "
        f"{float(getattr(model, name).weight.grad.norm() / getattr(model, name).weight.norm()):.1e})"
        for name in ("layer1a", "layer1b", "layer3", "output")))


if __name__ == "__main__":
    main()
