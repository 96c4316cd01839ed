"""Window models against the conv MLP, over seeds: the measurement behind issue 12's bar.

For each seed ``s`` the study reads ``TASKS_PATTERN.format(seed=s)`` (tasks
built with ``beatdbn tasks --seed s``, so the split changes with the seed)
and, for the pretrained rows, ``DBN_PATTERN.format(seed=s)`` (a DBN
pretrained with that task folder's exclusion list). It then runs naive
Bayes, windowed logistic regression and the conv MLP (random-control and
pretrained starts) under the chosen recipes, each selected on validation as
in the paper, and prints one row per model: valid and test accuracy as mean
± standard deviation over the seeds, and the early-snapshot test accuracy.
Every run lands in ``OUT/<seed>/<model>/`` and resumes, so a rerun only
prints the table.

Usage::

    python scripts/recipe_study.py STORE 'tasks-s{seed}' --task key --dbn 'dbn-s{seed}' \\
        --seeds 0 1 2 --recipes beatdbn --out study/key
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from beatdbn.models.dbn import ConvDBN
from beatdbn.store.reader import FeatureStore
from beatdbn.tasks.build import load_task
from beatdbn.train.baselines import BaselineConfig, run_logreg, run_naive_bayes
from beatdbn.data.splits import load_split
from beatdbn.train.finetune import FinetuneConfig, model_name, run_convmlp


def _early_valid(run_dir: Path, epochs=(2, 5, 10)) -> dict[int, float]:
    """Best validation accuracy over the learning rates at each of ``epochs`` (from ``lr-*/metrics.csv``):
    how fast a start converges, read off the learning curves."""
    best: dict[int, float] = {}
    for metrics in run_dir.glob("lr-*/metrics.csv"):
        with metrics.open(newline="") as f:
            for row in csv.DictReader(f):
                e = int(row["epoch"])
                if e in epochs:
                    best[e] = max(best.get(e, 0.0), float(row["valid_accuracy"]))
    return best


def _row(result, epoch: int | None = None) -> tuple[float, float]:
    sel = result.select(epoch) if epoch is not None else result.select()
    return float(sel["valid_accuracy"]), float(sel["test_accuracy"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("tasks_pattern")
    ap.add_argument("--task", required=True)
    ap.add_argument("--dbn", dest="dbn_pattern", help="DBN folder pattern with {seed}; no pretrained rows without it")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--recipes", nargs="+", default=["beatdbn"], choices=("paper", "beatdbn"))
    ap.add_argument("--inits", nargs="+", default=["random", "pretrained"], choices=("random", "pretrained"))
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--quick", action="store_true", help="10 epochs (snapshot 7) for every sweep")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    fs = FeatureStore.open(args.store)
    table: dict[str, list[tuple[float, float, float | None]]] = {}
    curves: dict[str, list[dict[int, float]]] = {}
    for seed in args.seeds:
        task = load_task(args.tasks_pattern.format(seed=seed), args.task)
        splits = [load_split(fs, task, s) for s in ("train", "valid", "test")]
        out = Path(args.out) / str(seed)
        if not args.no_baselines:
            bl = BaselineConfig(seed=seed, **({"epochs": 10, "learning_rates": (5e-4, 5e-5)} if args.quick else {}))
            for name, fn in (("naive_bayes", run_naive_bayes), ("logreg", run_logreg)):
                r = fn(*splits, task=args.task, out=out / name, config=bl)
                table.setdefault(name, []).append((*_row(r), None))
        dbn = ConvDBN.load(args.dbn_pattern.format(seed=seed)) if args.dbn_pattern else None
        for recipe in args.recipes:
            cfg = FinetuneConfig.for_recipe(recipe, quick=args.quick, seed=seed)
            early = cfg.snapshots[0]
            for init in args.inits:
                if init == "pretrained" and dbn is None:
                    continue
                name = model_name(init, recipe)
                r = run_convmlp(*splits, task=args.task, init=init, dbn=dbn, out=out / name, config=cfg)
                table.setdefault(name, []).append((*_row(r), _row(r, early)[1]))
                curves.setdefault(name, []).append(_early_valid(out / name))
                print(f"seed {seed} {name}: valid {table[name][-1][0]:.3f} test {table[name][-1][1]:.3f}", flush=True)

    print(f"\n{args.task} on {args.store}, seeds {args.seeds} (mean ± std; test at the early snapshot for conv MLPs)")
    print(f"{'model':32s} {'valid':>15s} {'test':>15s} {'test (early)':>15s}")
    summary = {}
    for name, rows in table.items():
        a = np.array([[v, t, np.nan if e is None else e] for v, t, e in rows], dtype=float)
        cells = [f"{np.mean(a[:, i]):.3f} ± {np.std(a[:, i]):.3f}" if not np.isnan(a[:, i]).any() else ""
                 for i in range(3)]
        print(f"{name:32s} {cells[0]:>15s} {cells[1]:>15s} {cells[2]:>15s}")
        summary[name] = {"valid": [r[0] for r in rows], "test": [r[1] for r in rows],
                         "test_early": [r[2] for r in rows], "valid_by_epoch": curves.get(name, [])}
    if curves:
        print("\nbest validation accuracy over the learning rates after 2 / 5 / 10 epochs (mean ± std over seeds)")
        for name, per_seed in curves.items():
            cells = [f"{np.mean([c[e] for c in per_seed]):.3f} ± {np.std([c[e] for c in per_seed]):.3f}"
                     if all(e in c for c in per_seed) else "" for e in (2, 5, 10)]
            print(f"{name:32s} " + " ".join(f"{c:>15s}" for c in cells))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
