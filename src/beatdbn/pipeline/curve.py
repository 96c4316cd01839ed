"""Label-efficiency curves: where pretraining pays (issue 23 item 4).

The paper's premise is many unlabelled tracks and few labelled ones. A curve
measures that regime on one task::

    OUT/seed-<s>/tasks/             the task's 80/10/10 split of seed s (tasks.json, exclude.txt)
    OUT/dbn/                        ONE DBN, pretrained once without labels
    OUT/seed-<s>/n-<n>/<model>/     each model finetuned on n labelled tracks per class
    OUT/curve.json, curve.md, curve.png

**Pretraining.** One DBN, pretrained once on every track of the store except
the union over the seeds of the task's valid and test tracks (and dropped
duplicates): no seed's held-out tracks are ever seen, and every point of every
seed starts from the same DBN, so the pretrained-versus-random gap is not
mixed with the spread of DBNs. The price: a few more tracks left out of
pretraining than one seed would leave out (3 seeds at 80/10/10: at most 60 %
of the task's tracks; the rest of the store is unlabelled anyway). Rerunning
with other seeds changes the exclusion, which the DBN folder refuses: use a
new OUT.

**Labelled tracks.** For seed s and n tracks per class, each class's training
tracks are shuffled once (seeded by s, the task and the class) and the first
n taken, so the n = 2 tracks include the n = 1 track (nested subsets: less
noise between points). A point whose n exceeds a class's training tracks is
skipped and listed in ``curve.json``. Validation (learning-rate choice and
snapshot) and test are the task's whole valid and test splits, the same for
every n and every model.

**Models.** The conv MLP from the DBN (``convmlp_pretrained_beatdbn``) and
from random weights (``convmlp_random_beatdbn``), both with the ``beatdbn``
recipe; windowed logistic regression (``logreg``); naive Bayes
(``naive_bayes``): the existing trainers, each in its own run folder.

**Resuming.** A finished point writes ``point.json`` beside its run; a rerun
with the same settings (task, model, n, seed, training tracks, epochs) reads
it and trains nothing; the trainers resume an unfinished run.

Each point's accuracy is the test accuracy of the run of best validation
accuracy (:meth:`ExperimentResult.select`). Over seeds: mean, sd and the 95 %
t-interval (:func:`beatdbn.metrics.intervals.summarize`; one seed: Wilson over
its test tracks), plotted as a band.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from beatdbn.data.splits import SplitData, load_split
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.metrics.curve_tables import NO_CELL, PAIRED_LEGEND, paired_cells, summary_cells
from beatdbn.metrics.intervals import paired_comparison, summarize
from beatdbn.metrics.predictions import predictions_of
from beatdbn.metrics.results import ExperimentResult
from beatdbn.models.dbn import ConvDBN, DBNConfig
from beatdbn.plots.curve import plot_curve
from beatdbn.store.reader import FeatureStore
from beatdbn.tasks.build import prepare_tasks, write_tasks
from beatdbn.tasks.registry import TaskConfig
from beatdbn.tasks.selection import rng
from beatdbn.experiments import registry as model_kinds
from beatdbn.experiments.kinds.convmlp import model_name
from beatdbn.pipeline.sweep import train_experiment
from beatdbn.train.baselines import BaselineConfig
from beatdbn.train.finetune import FinetuneConfig
from beatdbn.train.pretrain import PretrainConfig, pretrain
from beatdbn.utils.atomic import write_json, write_text

__all__ = ["CurveConfig", "CURVE_MODELS", "parse_counts", "subsample", "label_curve", "aggregate", "paired",
           "curve_markdown"]

#: The curve's models, in plot order.
CURVE_MODELS = (model_name("pretrained", "beatdbn"), model_name("random", "beatdbn"), "logreg", "naive_bayes")
#: Every model a curve can train: the registry's experiments without a recipe or of the ``beatdbn`` recipe.
CURVE_CHOICES = tuple(name for name, v in model_kinds.variants().items() if v.recipe in (None, "beatdbn"))


class _SeedSettings:
    """One seed's settings in the shape a kind reads them (``baselines``, ``finetune_for(recipe)``): the curve's
    baselines and its ``beatdbn`` recipe."""

    def __init__(self, config: "CurveConfig", seed: int) -> None:
        self.baselines, self._finetune = config.baselines(seed), config.finetune(seed)

    def finetune_for(self, recipe: str) -> FinetuneConfig:
        return self._finetune


def _same(value: Any) -> Any:
    return value


def parse_counts(text: str | Sequence[int]) -> tuple[int, ...]:
    """``'1,2,5,10'`` -> (1, 2, 5, 10): labelled tracks per class, each >= 1, sorted, no repeats."""
    try:
        values = [int(v) for v in (text.split(",") if isinstance(text, str) else text) if str(v).strip()]
    except ValueError:
        raise ParameterError(f"--per-class {text!r}: expected whole numbers separated by commas, e.g. 1,2,5,10") from None
    if not values or min(values) < 1:
        raise ParameterError(f"--per-class {text!r}: give one or more numbers >= 1, e.g. 1,2,5,10,20,50")
    return tuple(sorted(set(values)))


@dataclass
class CurveConfig:
    """What a curve measures (see the module docstring).

    ``epochs``: conv MLP and logistic-regression epochs (None: each recipe's own); ``quick``: two learning
    rates each and the recipes' smoke settings.
    """

    task: str
    per_class: tuple[int, ...] = (1, 2, 5, 10, 20, 50)
    seeds: tuple[int, ...] = (0, 1, 2)
    tasks: TaskConfig = field(default_factory=TaskConfig)
    models: tuple[str, ...] = CURVE_MODELS
    epochs: int | None = None
    quick: bool = False
    genre_labels: str = ""
    duplicates: str = ""
    pretrain_min_beats: int = 0
    dbn: DBNConfig | None = None  # None: the paper's network, seeded by the first seed
    pretraining: PretrainConfig | None = None  # None: one pass (or pretrain_min_beats), seeded by the first seed
    finetune_overrides: dict = field(default_factory=dict)  # on top of the beatdbn recipe (e.g. min_updates)

    def __post_init__(self) -> None:
        self.per_class = parse_counts(self.per_class)
        self.seeds = tuple(dict.fromkeys(int(s) for s in self.seeds))
        if not self.seeds:
            raise ParameterError("a curve needs one or more seeds (--seeds N)")
        unknown = [m for m in self.models if m not in CURVE_CHOICES]
        if unknown:
            raise ParameterError(f"curve models {unknown}: choose from {', '.join(CURVE_CHOICES)}")
        if self.epochs is not None and (not isinstance(self.epochs, int) or self.epochs < 1):
            raise ParameterError(f"epochs={self.epochs!r}: must be an int >= 1")
        self.tasks = self.tasks.replace(tasks=(self.task,))

    def finetune(self, seed: int) -> FinetuneConfig:
        more: dict[str, Any] = {"epochs": self.epochs} if self.epochs else {}
        if self.epochs:
            more["snapshot_epochs"] = (self.epochs,)
        more.update(self.finetune_overrides)
        return FinetuneConfig.for_recipe("beatdbn", quick=self.quick, seed=seed, **more)

    def baselines(self, seed: int) -> BaselineConfig:
        base = BaselineConfig(learning_rates=(5e-4, 5e-5), epochs=10, seed=seed) if self.quick else BaselineConfig(seed=seed)
        return dataclasses.replace(base, epochs=self.epochs) if self.epochs else base

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["tasks"] = self.tasks.to_dict()
        d["dbn"] = self.dbn.to_dict() if self.dbn else None
        d["pretraining"] = self.pretraining.to_dict() if self.pretraining else None
        d["finetune_overrides"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.finetune_overrides.items()}
        d["per_class"], d["seeds"], d["models"] = list(self.per_class), list(self.seeds), list(self.models)
        return d


def subsample(train: SplitData, n: int, *, seed: int, task: str) -> SplitData | None:
    """The first ``n`` of each class's training tracks in a seeded order (nested over n); None when a class
    has fewer than ``n``."""
    keep: list[int] = []
    for c, name in enumerate(train.classes):
        idx = np.flatnonzero(train.labels == c)
        if len(idx) < n:
            return None
        order = sorted(idx, key=lambda i: train.track_ids[i])
        perm = rng(seed, task, "curve", name).permutation(len(order))
        keep.extend(order[j] for j in perm[:n])
    keep.sort()
    return SplitData([train.track_ids[i] for i in keep], [train.features[i] for i in keep], train.labels[keep],
                     list(train.classes), train.representation)


def _fingerprint(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def _point(result, *, model: str, n: int, seed: int, tracks: int, test_tracks: int, settings: dict) -> dict:
    best = result.select()
    return {"model": model, "n": n, "seed": seed, "train_tracks": tracks, "test_tracks": test_tracks,
            "test_accuracy": float(best["test_accuracy"]), "valid_accuracy": float(best["valid_accuracy"]),
            "learning_rate": best.get("learning_rate"), "epoch": best.get("epoch"), "seconds": float(result.seconds),
            "chance": 1.0 / len(result.classes), "settings": settings}


def _build_seed_tasks(fs, out: Path, config: CurveConfig):
    tasks, exclude = {}, set()
    for s in config.seeds:
        tc = config.tasks.replace(seed=s)
        built, errors, stats, dropped = prepare_tasks(fs, tc, duplicates=config.duplicates or None,
                                                      genre_labels=config.genre_labels or None)
        if config.task not in built:
            raise DataError(f"curve: the {config.task} task could not be built from {fs.path} (seed {s}): "
                            f"{errors.get(config.task, 'no reason given')}")
        write_tasks(out / f"seed-{s}" / "tasks", built, config=tc, errors=errors, stats=stats, dropped=dropped,
                    store=str(fs.path))
        task = built[config.task]
        tasks[s] = task
        exclude |= set(task.track_ids("valid")) | set(task.track_ids("test")) | set(dropped)
    return tasks, exclude


def label_curve(store, out, config: CurveConfig, *, device: str = "cpu",
                progress: Callable[[str], None] | None = None) -> dict:
    """Pretrain once, finetune every model at every n and seed, write ``curve.json``, ``curve.md``, ``curve.png``.

    Parameters
    ----------
    store : FeatureStore or path
    out : path
        The curve folder (created; a rerun resumes, see the module docstring).
    config : CurveConfig
    device : str
    progress : callable, optional
        Called with one line per stage and point.

    Returns
    -------
    dict
        The contents of ``curve.json``: the config, every point, the skipped points and the summary per model
        and n (:func:`aggregate`).

    Raises
    ------
    DataError
        The task cannot be built from the store (the message says why).
    """
    say = progress or (lambda line: None)
    fs = store if isinstance(store, FeatureStore) else FeatureStore.open(store)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tasks, exclude = _build_seed_tasks(fs, out, config)
    convs = [m for m in config.models if model_kinds.kind(m).needs_dbn]
    dbn = None
    if convs:
        say(f"pretraining one DBN on the store without the {len(exclude):,} valid/test tracks of seeds "
            f"{', '.join(map(str, config.seeds))}")
        first = config.seeds[0]
        pretrain(fs, out / "dbn", exclude=sorted(exclude),
                 config=config.pretraining or PretrainConfig(seed=first, min_beats=config.pretrain_min_beats),
                 dbn_config=config.dbn or DBNConfig(seed=first), device=device)
        dbn = ConvDBN.load(out / "dbn", device=device)
    points, skipped = [], []
    for s in config.seeds:
        task = tasks[s]
        splits: dict[str, SplitData] = {}
        for n in config.per_class:
            for model in config.models:
                run_dir = out / f"seed-{s}" / f"n-{n}" / model
                settings = {"task": config.task, "model": model, "n": n, "seed": s,
                            "train": _fingerprint(sorted(task.track_ids("train"))),
                            "test": _fingerprint(sorted(task.track_ids("test"))),
                            "epochs": config.epochs, "quick": config.quick,
                            "finetune": (config.finetune(s).to_dict() if model_kinds.variant(model).recipe is not None
                                         else None)}
                settings = json.loads(json.dumps(settings))  # as read back from point.json (tuples -> lists)
                saved = run_dir / "point.json"
                if saved.exists():
                    old = json.loads(saved.read_text())
                    if old.get("settings") == settings:
                        points.append(old)
                        say(f"seed {s}, n={n}, {model}: reused ({old['test_accuracy']:.1%})")
                        continue
                if not splits:
                    splits = {name: load_split(fs, task, name) for name in ("train", "valid", "test")}
                train = subsample(splits["train"], n, seed=s, task=config.task)
                if train is None:
                    fewest = int(np.bincount(splits["train"].labels, minlength=len(task.classes)).min())
                    skipped.append({"n": n, "seed": s, "model": model,
                                    "reason": f"a class has {fewest} training tracks < {n}"})
                    continue
                valid, test = splits["valid"], splits["test"]
                result = train_experiment(config.task, model, (train, valid, test), run_dir, _SeedSettings(config, s),
                                          device=device, plots=False, dbn=functools.partial(_same, dbn))
                point = _point(result, model=model, n=n, seed=s, tracks=len(train), test_tracks=len(test),
                               settings=settings)
                write_json(saved, point)
                points.append(point)
                say(f"seed {s}, n={n}, {model}: {point['test_accuracy']:.1%} test accuracy")
    summary = aggregate(points, config)
    comparisons = paired(out, points, config)
    curve = {"task": config.task, "classes": list(tasks[config.seeds[0]].classes),
             "chance": 1.0 / len(tasks[config.seeds[0]].classes), "config": config.to_dict(),
             "pretrain_excluded": len(exclude), "store_tracks": len(fs.track_ids), "points": points,
             "skipped": skipped, "summary": summary, "paired": comparisons, "seconds": time.perf_counter() - t0}
    write_json(out / "curve.json", curve)
    plot_curve(curve, out / "curve.png")
    write_text(out / "curve.md", curve_markdown(curve))
    return curve


def aggregate(points: list[dict], config: CurveConfig) -> dict[str, list[dict]]:
    """Per model, per n: each seed's accuracy, the mean, sd and 95 % interval (:func:`summarize`)."""
    out: dict[str, list[dict]] = {}
    for model in config.models:
        rows = []
        for n in config.per_class:
            here = sorted((p for p in points if p["model"] == model and p["n"] == n), key=lambda p: p["seed"])
            if not here:
                continue
            s = summarize([p["test_accuracy"] for p in here], tracks=[p["test_tracks"] for p in here])
            rows.append({"n": n, "seeds": [p["seed"] for p in here], "values": list(s.values), "mean": s.mean,
                         "sd": s.sd, "low": s.low, "high": s.high, "method": s.method})
        out[model] = rows
    return out


def _pairs(models: Sequence[str]) -> list[tuple[str, str]]:
    """The comparisons a curve reports: pretrained against random (the paper's claim), then each conv MLP
    against windowed logistic regression."""
    pre, ran = model_name("pretrained", "beatdbn"), model_name("random", "beatdbn")
    want = [(pre, ran), (pre, "logreg"), (ran, "logreg")]
    return [(a, b) for a, b in want if a in models and b in models]


def paired(out: Path, points: list[dict], config: CurveConfig) -> list[dict]:
    """Per comparison (:func:`_pairs`) and n: the exact McNemar test on the same test tracks, pairs pooled over
    the seeds where both points exist (:func:`~beatdbn.metrics.intervals.paired_comparison`); each point's run
    is its best-validation run, as in the curve. The band over 3 seeds is wide (t with 2 degrees of freedom);
    the paired test asks the sharper question: on the same tracks, which model is right where the other is
    wrong."""
    have = {(p["model"], p["n"], p["seed"]) for p in points}

    @functools.cache
    def answers(model: str, n: int, s: int):  # a model's run is in several comparisons: read it once
        result = ExperimentResult.load(Path(out) / f"seed-{s}" / f"n-{n}" / model / "result.json")
        return predictions_of(result, result.select())

    rows = []
    for a, b in _pairs(config.models):
        for n in config.per_class:
            triples = []
            for s in config.seeds:
                if (a, n, s) not in have or (b, n, s) not in have:
                    continue
                (ids_a, targets, pred_a), (ids_b, _, pred_b) = answers(a, n, s), answers(b, n, s)
                if ids_a != ids_b:
                    raise DataError(f"curve {out}: seed {s}, n={n}: {a} and {b} were tested on different tracks; "
                                    f"rerun the curve into a new folder")
                triples.append((targets, pred_a, pred_b))
            if triples:
                rows.append({"a": a, "b": b, "n": n, **paired_comparison(triples).to_dict()})
    return rows


def curve_markdown(curve: dict) -> str:
    """The curve as a Markdown page: the figure, then one row per model and one column per n (mean ± sd [interval]),
    then the paired comparisons (:func:`paired`)."""
    ns, rows = summary_cells(curve)
    lines = [f"# Label-efficiency curve: {curve['task']}", "",
             f"Test accuracy against labelled tracks per class ({len(curve['classes'])} classes, chance "
             f"{curve['chance']:.1%}); seeds {', '.join(map(str, curve['config']['seeds']))}; "
             + (f"one DBN pretrained without labels on {curve['store_tracks'] - curve['pretrain_excluded']:,} of "
                f"the store's {curve['store_tracks']:,} tracks (every seed's valid/test tracks left out)"
                if any(model_kinds.kind(m).needs_dbn for m in curve["config"]["models"])
                else "no DBN (no conv MLP asked)")
             + ". Mean ± sd [95 % interval] over seeds.", "", "![curve](curve.png)", "",
             "| model | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|" + "---:|" * len(ns)]
    lines += [f"| {model} | " + " | ".join(cells) + " |" for model, cells in rows]
    comparisons = paired_cells(curve, ns)
    if comparisons:
        lines += ["", PAIRED_LEGEND + "; **bold** where the interval excludes 0.", "",
                  "| comparison | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|" + "---:|" * len(ns)]
        lines += [f"| {label} | " + " | ".join(NO_CELL if c is None else f"**{c[0]}**" if c[1] else c[0] for c in cells)
                  + " |" for label, cells in comparisons]
    if curve["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"n={s['n']} seed {s['seed']} {s['model']} ({s['reason']})"
                                              for s in curve["skipped"])]
    trained = sum(p.get("seconds", 0.0) for p in curve.get("points", []))
    lines += ["", f"Wall time: {curve['seconds']:.0f} s (this run; reused points cost nothing); the points' own "
                  f"training took {trained / 60:.1f} min in all, over every run of this folder (pretraining not counted)."]
    return "\n".join(lines) + "\n"
