"""Quality guard of multi-process pretraining: does a DBN pretrained on N processes match one process?

For every seed and every worker count, on one store and its tasks folder:

1. pretrain a DBN (the tasks' valid/test tracks excluded; ``--workers``
   processes, ``--sync-every`` steps between exchanges);
2. linear probe: each track's layer-4 features (mean and max over time) ->
   logistic regression fitted on train+valid, accuracy on test;
3. finetune the conv MLP from it (the beatdbn recipe, ``--quick``'s settings,
   one learning rate) and read its selected test accuracy.

It prints, per task and metric, the mean and standard deviation over seeds of
each worker count: the seed-to-seed spread of one process is the noise that
the N-process figures are judged against. Every result is also appended to
``OUT/results.jsonl`` (a rerun skips what is there).

Usage::

    OMP_NUM_THREADS=1 python scripts/quality_guard.py STORE TASKS OUT --tasks key genre --seeds 0 1 2 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from beatdbn.data.splits import load_split, padded_batch
from beatdbn.models.dbn import ConvDBN, DBNConfig
from beatdbn.store.reader import FeatureStore
from beatdbn.tasks.build import load_task
from beatdbn.train.finetune import run_convmlp
from beatdbn.train.finetune_config import FinetuneConfig
from beatdbn.train.launch import run_local
from beatdbn.train.pretrain import PretrainConfig, pretrain, read_exclusion
from beatdbn.train.ranks import COMBINE, DEFAULT_COMBINE, SYNC_EVERY


def _features(dbn: ConvDBN, split) -> np.ndarray:
    out = []
    for i in range(0, len(split.features), 32):
        x, lengths = padded_batch(split.features[i:i + 32])
        h, l4 = dbn(x, lengths)
        mask = torch.arange(h.shape[2])[None, None, :] < l4[:, None, None]
        mean = (h * mask).sum(2) / l4[:, None].clamp(min=1)
        top = h.masked_fill(~mask, -1.0).amax(2)
        out.append(torch.cat([mean, top], 1).numpy())
    return np.concatenate(out)


def probe(dbn: ConvDBN, splits: dict) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x_train = np.concatenate([_features(dbn, splits["train"]), _features(dbn, splits["valid"])])
    y_train = np.concatenate([splits["train"].labels, splits["valid"].labels])
    scale = StandardScaler().fit(x_train)
    clf = LogisticRegression(C=0.1, max_iter=3000).fit(scale.transform(x_train), y_train)
    return float((clf.predict(scale.transform(_features(dbn, splits["test"]))) == splits["test"].labels).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("tasks_dir")
    ap.add_argument("out")
    ap.add_argument("--tasks", nargs="+", default=["key", "genre"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--sync-every", type=int, default=SYNC_EVERY)
    ap.add_argument("--min-beats", type=int, default=0)
    ap.add_argument("--combine", default=DEFAULT_COMBINE, choices=COMBINE)
    ap.add_argument("--no-finetune", action="store_true")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"results-{args.combine}{args.sync_every}.jsonl"  # the one-process rows are shared by name
    done = {(r["seed"], r["workers"], r["task"], r["metric"]): r for r in map(json.loads, log.read_text().splitlines())} \
        if log.exists() else {}
    fs = FeatureStore.open(args.store)
    exclude = read_exclusion(args.tasks_dir, known_ids=fs.track_ids)
    splits = {t: {s: load_split(fs, load_task(args.tasks_dir, t), s) for s in ("train", "valid", "test")}
              for t in args.tasks}
    lr0 = FinetuneConfig.for_recipe("beatdbn", quick=True).learning_rates[0]

    def record(**r) -> None:
        done[(r["seed"], r["workers"], r["task"], r["metric"])] = r
        with log.open("a") as f:
            f.write(json.dumps(r) + "\n")
        print(json.dumps(r), flush=True)

    for seed in args.seeds:
        for workers in args.workers:
            tag = f"s{seed}-w{workers}" + ("" if workers == 1 else f"-{args.combine}{args.sync_every}")
            dbn_dir = out / f"dbn-{tag}"
            t0 = time.perf_counter()
            summary = run_local(pretrain, dict(store=args.store, out=str(dbn_dir), exclude=exclude,
                                               config=PretrainConfig(seed=seed, min_beats=args.min_beats),
                                               dbn_config=DBNConfig(seed=seed)),
                                workers=workers, sync_every=args.sync_every, combine=args.combine)
            pre_s = time.perf_counter() - t0
            dbn = ConvDBN.load(dbn_dir)
            for task in args.tasks:
                if (seed, workers, task, "probe") not in done:
                    record(seed=seed, workers=workers, task=task, metric="probe", value=probe(dbn, splits[task]),
                           pretrain_s=round(pre_s, 1),
                           beats_per_s={p: round(v["beats_per_s"]) for p, v in summary["phases"].items()})
                if args.no_finetune or (seed, workers, task, "finetuned") in done:
                    continue
                config = FinetuneConfig.for_recipe("beatdbn", quick=True, seed=seed, learning_rates=(lr0,))
                t1 = time.perf_counter()
                result = run_convmlp(splits[task]["train"], splits[task]["valid"], splits[task]["test"], task=task,
                                     init="pretrained", dbn=dbn, out=out / f"ft-{tag}-{task}",
                                     config=config)
                record(seed=seed, workers=workers, task=task, metric="finetuned",
                       value=float(result.select()["test_accuracy"]), finetune_s=round(time.perf_counter() - t1, 1))

    print("\ntask      metric     " + "  ".join(f"{w} process(es): mean +- sd (n)" for w in args.workers))
    for task in args.tasks:
        for metric in ("probe", "finetuned"):
            cells = []
            for w in args.workers:
                vals = [r["value"] for (s, ww, t, m), r in done.items() if ww == w and t == task and m == metric]
                if vals:
                    sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
                    cells.append(f"{statistics.mean(vals):.3f} +- {sd:.3f} ({len(vals)})")
            if cells:
                print(f"{task:9} {metric:10} " + "      ".join(cells))


if __name__ == "__main__":
    main()
