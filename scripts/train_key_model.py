"""Build the key model shipped in ``beatdbn/pretrained/key_audio`` (``make model``).

Everything it learns from is audio that beatdbn synthesizes itself
(:mod:`beatdbn.synth.audio_keys`), so the model may be redistributed with the
package. The steps, each a plain ``beatdbn`` command or library call:

1. ``beatdbn synth-audio WORK/corpus --pieces N --seed S``  (the training corpus)
2. ``beatdbn extract WORK/corpus/audio --out WORK/store --labels WORK/corpus/labels.csv``
3. ``beatdbn tasks WORK/store --out WORK/tasks --task key --per-key N/12``  (80/10/10 per tonic)
4. ``beatdbn pretrain WORK/store --out WORK/dbn --exclude WORK/tasks --passes 5`` (a conv DBN on the
   training split only; ``--no-pretrain`` skips it. On the 408-piece corpus it lifted the selected
   model from 86.1 % valid / 77.8 % test (random init) to 94.4 % / 91.7 %, and 5 passes cost ~1 min)
5. finetune with ``FinetuneConfig.for_recipe("beatdbn")`` (selects on valid, reports test)
6. a held-out corpus from another seed (``--holdout-seed``), extracted the same way,
   classified by the selected model: its accuracy goes into the provenance
7. the selected model (``ConvMLP.save``: ``model.pt`` + ``config.json``) and
   ``PROVENANCE.json`` (seed, piece count, recipe, versions, accuracies, the
   command, times) are written to ``--out``.

Reruns resume: each step skips what its output folder already holds.

Usage::

    python scripts/train_key_model.py                      # the shipped settings
    python scripts/train_key_model.py --work /tmp/km --out /tmp/km/model --pieces 96 --holdout-pieces 24
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "beatdbn" / "pretrained" / "key_audio"


def _beatdbn(*args: str, log: list) -> float:
    """Run one ``beatdbn`` command (this interpreter's), record it, return its wall time."""
    cmd = [sys.executable, "-m", "beatdbn", *args]
    shown = "beatdbn " + " ".join(shlex.quote(a) for a in args).replace(f"{ROOT}/", "")  # paths as in the repo
    print(f"$ {shown}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - t0
    log.append({"command": shown, "seconds": round(seconds, 1)})
    return seconds


def _corpus(work: Path, name: str, pieces: int, seed: int, workers: int, log: list) -> Path:
    """Render and extract one corpus; returns its store."""
    corpus, store = work / name, work / f"{name}-store"
    _beatdbn("synth-audio", str(corpus), "--pieces", str(pieces), "--seed", str(seed), "--workers", str(workers),
             log=log)
    if not (store / "tracks.parquet").exists():
        _beatdbn("extract", str(corpus / "audio"), "--out", str(store), "--labels", str(corpus / "labels.csv"),
                 "--workers", str(workers), log=log)
    return store


def _uncommitted() -> list[str] | None:
    """Source files that differ from the recorded git commit (None outside a checkout)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", "src", "scripts", ":!src/beatdbn/pretrained"],
                             cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted(line[3:] for line in out.splitlines() if line.strip())


def _holdout_accuracy(run, store: Path) -> dict:
    """Tonic accuracy of ``run`` on every labelled track of ``store``."""
    import numpy as np

    from beatdbn.inference import predict_features
    from beatdbn.store.reader import FeatureStore
    from beatdbn.labels import KEY_NAMES

    fs = FeatureStore.open(store)
    feats, keys = [], []
    for batch in fs.iter_batches(256):
        for rec in batch:
            if int(rec.meta["key"]) >= 0:
                feats.append(rec.features)
                keys.append(int(rec.meta["key"]))
    post = predict_features(run, feats)
    pred = np.array([KEY_NAMES.index(run.labels[i]) for i in post.argmax(axis=1)])
    keys = np.array(keys)
    fifth = (pred - keys) % 12
    return {"n_tracks": int(len(keys)), "accuracy": float(np.mean(pred == keys)),
            "fifth_errors": float(np.mean((fifth == 7) | (fifth == 5))),
            "median_beats": float(np.median([len(f) for f in feats]))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / ".bench-data" / "key_model",
                    help="Working folder (corpora, stores, tasks, runs); reruns resume.")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Where the model and PROVENANCE.json go.")
    ap.add_argument("--pieces", type=int, default=408, help="Training corpus size (a multiple of 24 balances keys).")
    ap.add_argument("--seed", type=int, default=0, help="Training corpus seed.")
    ap.add_argument("--holdout-pieces", type=int, default=144, help="Held-out corpus size (0: none).")
    ap.add_argument("--holdout-seed", type=int, default=1, help="Held-out corpus seed (must differ from --seed).")
    ap.add_argument("--train-seed", type=int, default=0, help="Seed of the finetuning (weights, batches).")
    ap.add_argument("--pretrain", action=argparse.BooleanOptionalAction, default=True,
                    help="Pretrain a conv DBN on the training split first (default) or start from random weights.")
    ap.add_argument("--passes", type=int, default=5, help="Pretraining passes over the (small) corpus.")
    ap.add_argument("--workers", type=int, default=2, help="Processes for rendering and extraction.")
    args = ap.parse_args(argv)
    if args.holdout_pieces and args.holdout_seed == args.seed:
        ap.error("--holdout-seed must differ from --seed (the held-out corpus must be disjoint)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch

    torch.set_num_threads(1)
    from beatdbn.inference import load_run
    from beatdbn.train.finetune import FinetuneConfig, finetune

    t_start = time.perf_counter()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    log: list[dict] = []
    store = _corpus(work, "corpus", args.pieces, args.seed, args.workers, log)
    tasks = work / "tasks"
    per_key = args.pieces // 12
    if not (tasks / "key").exists():
        _beatdbn("tasks", str(store), "--out", str(tasks), "--task", "key", "--per-key", str(per_key),
                 "--seed", str(args.seed), log=log)
    dbn = None
    if args.pretrain:
        dbn = work / "dbn"
        if not (dbn / "model.pt").exists():
            _beatdbn("pretrain", str(store), "--out", str(dbn), "--exclude", str(tasks), "--passes", str(args.passes),
                     "--seed", str(args.train_seed), log=log)
    config = FinetuneConfig.for_recipe("beatdbn", seed=args.train_seed)
    run_dir = work / ("run-pretrained" if dbn else "run-random")
    print(f"finetune ({config.recipe} recipe, init {'pretrained' if dbn else 'random'}) -> {run_dir}", flush=True)
    t0 = time.perf_counter()
    result = finetune(store, tasks, "key", init="pretrained" if dbn else "random", dbn_dir=dbn, out=run_dir,
                      config=config)
    log.append({"command": f"finetune(store, tasks, 'key', init={'pretrained' if dbn else 'random'!r}, "
                           f"config=FinetuneConfig.for_recipe('beatdbn', seed={args.train_seed}))",
                "seconds": round(time.perf_counter() - t0, 1)})
    selected = result.select()
    run = load_run(run_dir)
    holdout = None
    if args.holdout_pieces:
        h_store = _corpus(work, "holdout", args.holdout_pieces, args.holdout_seed, args.workers, log)
        holdout = dict(_holdout_accuracy(run, h_store), seed=args.holdout_seed, pieces=args.holdout_pieces)
    args.out.mkdir(parents=True, exist_ok=True)
    run.model.save(args.out)
    from beatdbn.train.provenance import run_versions

    provenance = {
        "model": "key_audio", "task": "key", "classes": run.labels, "representation": "audio", "shipped": True,
        "description": "12-tonic key classifier (mode ignored) for audio analysed by beatdbn's front-end, trained "
                       "only on pieces synthesized by beatdbn.synth.audio_keys (redistributable)",
        "corpus": {"generator": "beatdbn.synth.audio_keys", "pieces": args.pieces, "seed": args.seed,
                   "per_key": per_key,
                   "splits": json.loads((run_dir / "config.json").read_text()).get("splits")},
        "recipe": config.recipe, "finetune": config.to_dict(), "init": "pretrained" if dbn else "random",
        "pretrain_passes": args.passes if dbn else 0,
        "selected": {k: selected[k] for k in ("learning_rate", "epoch")},
        "valid_accuracy": float(selected["valid_accuracy"]), "test_accuracy": float(selected["test_accuracy"]),
        "holdout": holdout,
        "command": "python scripts/train_key_model.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "steps": log, "wall_seconds": round(time.perf_counter() - t_start, 1),
        "finetune_seconds": round(float(result.seconds), 1),  # the training's own time, also when this call resumed it
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "versions": run_versions(),
        "uncommitted_sources": _uncommitted(),
        "size_bytes": (args.out / "model.pt").stat().st_size,
    }
    (args.out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    print(json.dumps({k: provenance[k] for k in ("valid_accuracy", "test_accuracy", "holdout", "wall_seconds",
                                                 "size_bytes")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
