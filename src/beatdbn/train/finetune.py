"""Supervised finetuning of the conv MLP (sections 3.5 and 6 of Dieleman et al., 2011).

Protocol: for every learning rate of :attr:`FinetuneConfig.learning_rates`
(the paper: 0.05, 0.005, 0.0005) a :class:`~beatdbn.models.convmlp.ConvMLP`
starts from the same initial weights and is trained by plain SGD on
minibatches of whole tracks for ``epochs`` epochs (30), minimizing
:meth:`ConvMLP.loss <beatdbn.models.convmlp.ConvMLP.loss>`. Validation
accuracy is measured after every epoch; at the snapshot epochs (20 and 30,
and always the last one) the model is saved and evaluated on the test split
too. For each snapshot epoch, :meth:`ExperimentResult.select` picks the
learning rate of best validation accuracy and reports its test accuracy
(Table 1 of the paper); the model so selected at the last epoch becomes the
run's model, ``RUN_DIR/model/``, which ``beatdbn predict`` uses.

Run directory::

    RUN_DIR/config.json              settings, versions, git commit, splits
    RUN_DIR/result.json              ExperimentResult: one row per (learning rate, snapshot epoch)
    RUN_DIR/model/                   the selected model (model.pt + config.json, selected.json)
    RUN_DIR/learning_curves.png      validation accuracy and training loss per epoch, per learning rate
    RUN_DIR/confusion.png            test confusion matrix of the selected model
    RUN_DIR/lr-<value>/metrics.csv   one row per epoch (METRICS_COLUMNS)
    RUN_DIR/lr-<value>/checkpoint.pt model, optimizer and position after the last finished epoch
    RUN_DIR/lr-<value>/epoch-<e>/    snapshot models

**Randomness and exact resume.** Every random choice of epoch ``e`` (the
order of the batches, the transposition of each track) comes from a NumPy
generator seeded with ``(seed, e)``, and the initial weights from ``seed``
alone (:mod:`beatdbn.models.convmlp`), so the checkpoint written after each
epoch (model, optimizer state, metric rows, the seed and the next epoch)
is all a rerun needs: a killed run resumes at the epoch after its last
checkpoint and ends with the same metrics as an uninterrupted run (tested).
A checkpoint or result made with other settings is refused with a message
naming it; a finished ``result.json`` is returned without training.

**Batches.** Tracks are grouped by similar length (:func:`bucketed_order`)
and zero-padded; ``lengths`` keep the padding out of the loss and the
posteriors. A batch whose loss is not finite is skipped (counted in the
``skipped_batches`` column) rather than allowed to ruin the weights, so one
too-large learning rate cannot abort the sweep.

**Precision.** ``precision='bf16'`` runs the forward and backward passes
under :func:`torch.autocast` with bfloat16 (weights, optimizer and loss stay
float32); evaluation is always float32, so the accuracies measure the model
trained, not the arithmetic used to evaluate it.

**Transposition augmentation** (``augment='transpose'``, key task only,
beyond the paper): in every epoch each training track's chroma is rotated
by a random ``k`` in ``0..11`` semitones (chroma bin ``c`` moves to
``(c + k) mod 12``) and its key label shifted by ``k``; the timbre is left
unchanged. Training accuracy is then measured on the transposed tracks.

**Recipes.** ``FinetuneConfig.for_recipe('paper')`` is section 6 exactly
(the defaults above); ``for_recipe('beatdbn')`` (:data:`BEATDBN_RECIPE`,
the default of ``beatdbn finetune``) is the recipe that converges on small
real corpora. Both are named in ``config.json`` (``recipe``, and
``overrides`` for any setting changed by hand) and in the model name
(``convmlp_<init>`` / ``convmlp_<init>_beatdbn``).

The ``beatdbn`` recipe's levers: **AdamW** (per-parameter steps: layers whose gradients differ by orders of
magnitude move alike), **at least 1,500 updates a run** (``min_updates``) with a 5 % linear warm-up and a cosine
decay, **random 128-beat crops** (``crop``: long and short tracks weigh alike, one length per batch), and on key
**transposition** (``augment='auto'``, posteriors averaged over the 12 transpositions); Adam's rates (0.003,
0.001) are swept and chosen on validation. Why the paper's recipe stalls on small corpora and what each lever
answers, with the figures: ``docs/measurements/finetune-recipes.md``.

Examples
--------
>>> from beatdbn.train.finetune import FinetuneConfig, finetune
>>> result = finetune("demo/store", "demo/tasks", "key", init="pretrained", dbn_dir="demo/dbn",
...                   out="demo/runs/key-pretrained", config=FinetuneConfig())  # doctest: +SKIP
>>> result.select(30)["test_accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from beatdbn.data.splits import SplitData, check_splits, load_split, padded_batch, splits_fingerprint
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.inference.posteriors import split_posteriors
from beatdbn.metrics.predictions import predicted, targets_of
from beatdbn.metrics.results import ExperimentResult
from beatdbn.metrics.scores import accuracy, chance_level, confusion_matrix, per_class_accuracy
from beatdbn.models.convmlp import ConvMLP, MLPConfig, track_posteriors
from beatdbn.models.dbn import ConvDBN
from beatdbn.plots import plot_confusion, plot_learning_curves
from beatdbn.store.reader import FeatureStore, check_representations
from beatdbn.tasks.build import load_task
from beatdbn.train import rundir
from beatdbn.train.augment import is_key_task, key_class_map, transpose_batch
from beatdbn.train.finetune_config import (BEATDBN_RECIPE, INIT_CHOICES, RECIPES, FinetuneConfig, model_name,
                                           updates_per_epoch)
from beatdbn.train.model_init import initial_model
from beatdbn.train.precision import bf16_supported
from beatdbn.train.provenance import run_versions
from beatdbn.train.schedule import epoch_batches, lr_factor, make_optimizer
from beatdbn.utils.atomic import atomic_path, write_json

__all__ = ["FinetuneConfig", "RECIPES", "BEATDBN_RECIPE", "model_name", "updates_per_epoch", "run_convmlp", "finetune",
           "initial_model", "split_posteriors", "transpose_batch",
           "key_class_map", "bf16_supported", "run_versions", "METRICS_COLUMNS", "INIT_CHOICES"]

#: Columns of ``lr-<value>/metrics.csv`` (``test_accuracy`` only at snapshot epochs).
METRICS_COLUMNS = ("epoch", "learning_rate", "train_loss", "train_accuracy", "valid_loss", "valid_accuracy",
                   "test_accuracy", "skipped_batches", "beats_per_s", "seconds")
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "beatdbn-finetune-checkpoint/2"

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# helpers


def _evaluate(model: ConvMLP, data: SplitData, config: FinetuneConfig, device: torch.device,
              *, full: bool = False) -> dict[str, Any]:
    """Accuracy and mean track loss of ``model`` on ``data`` (plus per-class accuracy, confusion and each track's
    predicted class when ``full``)."""
    post = split_posteriors(model, data.features, batch_size=config.eval_batch_size, device=device)
    pred = post.argmax(axis=1)
    p_true = post[np.arange(len(post)), data.labels]
    res: dict[str, Any] = {"accuracy": accuracy(data.labels, pred),
                           "loss": float(-np.log(np.clip(p_true, 1e-12, None)).mean())}
    if full:
        n = len(data.classes)
        res["per_class_accuracy"] = [None if math.isnan(a) else float(a)
                                     for a in per_class_accuracy(data.labels, pred, n)]
        res["confusion"] = confusion_matrix(data.labels, pred, n).tolist()
        res["predicted"] = predicted(pred)
    return res


def _weights_fingerprint(model: ConvMLP) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _write_plots(out: Path, curves: dict[str, list[dict]], selected: dict, classes: list[str], title: str,
                 chance: float) -> list[Path]:
    """Learning curves and the selected model's test confusion matrix (failures are logged, not raised)."""
    paths = []
    try:
        paths.append(plot_learning_curves(curves, out / "learning_curves.png", title=title, chance=chance))
        paths.append(plot_confusion(selected["confusion"], classes, out / "confusion.png",
                                    title=f"{title}, lr={selected['learning_rate']:g}, epoch {selected['epoch']}, test"))
    except Exception as exc:  # noqa: BLE001 - a plot must never cost a finished training run
        log.warning("%s: could not draw the plots (%s: %s)", out, type(exc).__name__, exc)
    return [Path(p) for p in paths]


# ---------------------------------------------------------------------------
# training


def _train_one_rate(lr: float, model: ConvMLP, train: SplitData, valid: SplitData, test: SplitData, *,
                    config: FinetuneConfig, device: torch.device, lr_dir: Path, expect: dict,
                    key_of_class: torch.Tensor | None, tick: Callable[[dict], None]) -> dict[int, dict]:
    """Train one learning rate (resuming from ``lr_dir``); returns the snapshot rows by epoch."""
    lr_dir.mkdir(parents=True, exist_ok=True)
    opt = make_optimizer(model, lr, config)
    per_epoch = updates_per_epoch(len(train), config)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(config, per_epoch * config.epochs))
    state = rundir.load_checkpoint(lr_dir / CHECKPOINT, fmt=CHECKPOINT_FORMAT, expect=expect, what="finetuning")
    rows: list[dict] = []
    snapshots: dict[int, dict] = {}
    start, elapsed = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rows, start, elapsed = list(state["rows"]), int(state["epoch"]), float(state["elapsed"])
        snapshots = {int(k): v for k, v in state["snapshots"].items()}
        log.info("%s: resuming after epoch %d", lr_dir, start)
        rundir.write_metrics(lr_dir / "metrics.csv", rows, METRICS_COLUMNS)  # a kill between checkpoint and csv
    labels_all = torch.from_numpy(np.asarray(train.labels, dtype=np.int64))
    lengths = train.lengths
    crop = config.crop
    bf16 = config.precision == "bf16"
    for epoch in range(start + 1, config.epochs + 1):
        t0 = time.perf_counter()
        rng = np.random.default_rng([config.seed, epoch])
        batches = epoch_batches(lengths, config, rng)
        model.train()
        loss_sum, correct, skipped, n_done, n_beats = 0.0, 0, 0, 0, 0
        for idx, starts in batches:
            feats = [train.features[i][s:s + crop] if crop else train.features[i] for i, s in zip(idx, starts)]
            x, xl = padded_batch(feats, device=device)
            y = labels_all[idx].to(device)
            if key_of_class is not None:
                shifts = torch.from_numpy(rng.integers(0, 12, size=len(idx)))
                x, y = transpose_batch(x, y, shifts, key_of_class)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits, l4 = model(x, xl)
            loss = ConvMLP.loss(logits, l4, y)
            if not bool(torch.isfinite(loss)):
                skipped += 1
                sched.step()
                continue
            n_done += len(idx)
            n_beats += int(xl.sum())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                loss_sum += float(loss) * len(idx)
                correct += int((track_posteriors(logits.detach(), l4).argmax(dim=1) == y).sum())
        t_train = time.perf_counter() - t0
        ev = _evaluate(model, valid, config, device)
        row = {"epoch": epoch, "learning_rate": lr,
               "train_loss": loss_sum / n_done if n_done else float("nan"),
               "train_accuracy": correct / max(n_done, 1), "valid_loss": ev["loss"], "valid_accuracy": ev["accuracy"],
               "test_accuracy": None, "skipped_batches": skipped, "beats_per_s": n_beats / max(t_train, 1e-9)}
        if epoch in config.snapshots:
            te = _evaluate(model, test, config, device, full=True)
            row["test_accuracy"] = te["accuracy"]
            model.save(lr_dir / f"epoch-{epoch}")
            snapshots[epoch] = {"learning_rate": lr, "epoch": epoch, "valid_accuracy": ev["accuracy"],
                                "test_accuracy": te["accuracy"], "train_loss": row["train_loss"],
                                "train_accuracy": row["train_accuracy"], "valid_loss": ev["loss"],
                                "per_class_accuracy": te["per_class_accuracy"], "confusion": te["confusion"],
                                "test_predicted": te["predicted"]}
        elapsed += time.perf_counter() - t0
        row["seconds"] = round(elapsed, 3)
        rows.append(row)
        rundir.save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "epoch": epoch, "rows": rows, "elapsed": elapsed,
                                "snapshots": {str(k): v for k, v in snapshots.items()},
                                "rng": {"seed": config.seed, "next_epoch": epoch + 1}},
                               lr_dir / CHECKPOINT, fmt=CHECKPOINT_FORMAT, expect=expect)
        rundir.write_metrics(lr_dir / "metrics.csv", rows, METRICS_COLUMNS)
        tick(row)
    return snapshots


def run_convmlp(
    train: SplitData,
    valid: SplitData,
    test: SplitData,
    *,
    task: str,
    init: str,
    dbn: ConvDBN | None,
    out: str | Path,
    config: FinetuneConfig = FinetuneConfig(),
    device: str | torch.device = "cpu",
    progress: Callable[[dict], None] | None = None,
    model_template: MLPConfig | None = None,
    plots: bool = True,
) -> ExperimentResult:
    """Finetune the conv MLP on one task over every learning rate; resumes from ``out``.

    Parameters
    ----------
    train, valid, test : SplitData
        The task's splits (:func:`~beatdbn.data.splits.load_split`).
    task : str
        Task name ('artist', 'genre', 'key'), recorded in the result.
    init : {'pretrained', 'random'}
        Start from ``dbn``'s weights, or from random weights (the paper's
        control drawn from ``dbn``'s statistics when ``dbn`` is given,
        plain random initialization otherwise).
    dbn : ConvDBN or None
        The pretrained DBN (needed for ``'pretrained'``).
    out : path
        The run directory (see the module docstring).
    config : FinetuneConfig
    device : str or torch.device
    progress : callable, optional
        Called after every epoch with ``{"step": epochs done over all
        learning rates, "total": n_rates * epochs, "message": str,
        "learning_rate", "epoch", "beats_per_s", "train_loss",
        "valid_accuracy"}``.
    model_template : MLPConfig, optional
        Layout of a plain random model (no DBN); paper sizes by default.
    plots : bool
        Draw the learning curves and the selected model's confusion matrix
        into ``out`` (the sweep's one-rate jobs, whose folders are merged,
        skip them).

    Returns
    -------
    ExperimentResult
        Model ``convmlp_<init>``; ``runs`` has a row per learning rate and
        snapshot epoch with ``valid_accuracy``, ``test_accuracy``,
        ``per_class_accuracy``, ``confusion`` and ``test_predicted`` (test);
        ``extra`` holds the selection, the settings, the versions and the
        test tracks' ``test_track_ids`` and ``test_targets``
        (:mod:`beatdbn.metrics.predictions`).

    Raises
    ------
    ParameterError
        Unknown ``init``, ``'pretrained'`` without a DBN, ``augment='transpose'``
        on a task that is not key.
    DataError
        An empty or inconsistent split; a checkpoint or result in ``out`` made
        with other settings.
    """
    out = Path(out)
    device = torch.device(device)
    if init not in INIT_CHOICES:
        raise ParameterError(f"init={init!r}: must be one of {INIT_CHOICES}")
    classes = check_splits(train, valid, test)
    augment = config.augment
    if augment == "auto":
        augment = "transpose" if is_key_task(classes) else "none"
    key_of_class = torch.from_numpy(key_class_map(classes)) if augment == "transpose" else None
    name = model_name(init, config.recipe)
    settings = rundir.settings_of(task=task, model=name, config=config.to_dict(),
                                  splits=splits_fingerprint(train, valid, test))
    done = rundir.finished(out, settings, load=lambda d: ConvMLP.load(d))
    if done is not None:
        return done

    transpose_keys = tuple(int(k) for k in key_class_map(classes)) if augment == "transpose" else ()
    model0 = initial_model(init, dbn, classes, seed=config.seed, task=task, device=device, template=model_template,
                           transpose_keys=transpose_keys)
    init_state = {k: v.clone() for k, v in model0.state_dict().items()}
    expect = rundir.jsonable({"task": task, "model": name, "tracks": splits_fingerprint(train, valid, test),
                        "initial_weights": _weights_fingerprint(model0),
                        "finetune": {k: v for k, v in config.to_dict().items() if k != "learning_rates"}})
    random_kind = None if init == "pretrained" else ("like_dbn" if dbn is not None else "plain")
    out.mkdir(parents=True, exist_ok=True)
    run_info = {"task": task, "model": name, "init": init, "random_init": random_kind,
                "recipe": config.recipe, "augment_resolved": augment, "updates_per_epoch": updates_per_epoch(len(train), config),
                "finetune": config.to_dict(), "model_config": model0.config.to_dict(), "device": str(device),
                "bf16_native": bf16_supported(device) if config.precision == "bf16" else None,
                "splits": {"train": len(train), "valid": len(valid), "test": len(test)},
                "tracks_fingerprint": expect["tracks"], "representation": train.representation,
                "settings": settings}
    rundir.write_record(out, run_info)
    if config.precision == "bf16" and not run_info["bf16_native"]:
        log.warning("%s has no native bfloat16 (no AVX-512 BF16 / AMX): bf16 training will be emulated and slow",
                    device)

    n_rates = len(config.learning_rates)
    total = n_rates * config.epochs
    t_start = time.perf_counter()
    runs: list[dict] = []
    curves: dict[str, list[dict]] = {}
    done_before = 0
    for lr in config.learning_rates:
        model = initial_model(init, dbn, classes, seed=config.seed, task=task, device=device, template=model_template,
                              transpose_keys=transpose_keys)
        model.load_state_dict(init_state)
        lr_dir = rundir.lr_dir(out, lr)

        def tick(row: dict, lr: float = lr, base: int = done_before) -> None:
            if progress is None:
                return
            progress({"step": base + row["epoch"], "total": total, "learning_rate": lr, "epoch": row["epoch"],
                      "beats_per_s": row["beats_per_s"], "train_loss": row["train_loss"],
                      "valid_accuracy": row["valid_accuracy"],
                      "message": f"{name} {task} lr={lr:g} epoch {row['epoch']}/{config.epochs}: "
                                 f"loss {row['train_loss']:.3f}, valid {row['valid_accuracy']:.3f}"})

        snapshots = _train_one_rate(lr, model, train, valid, test, config=config, device=device, lr_dir=lr_dir,
                                    expect=rundir.jsonable({**expect, "learning_rate": lr}), key_of_class=key_of_class,
                                    tick=tick)
        runs.extend(snapshots[e] for e in config.snapshots)
        state = rundir.load_checkpoint(lr_dir / CHECKPOINT, fmt=CHECKPOINT_FORMAT,
                                       expect={**expect, "learning_rate": lr}, what="finetuning")
        curves[f"{init} lr={lr:g}"] = list(state["rows"])
        done_before += config.epochs

    last_seconds = sum(float(rows[-1]["seconds"]) for rows in curves.values())
    result = ExperimentResult(task=task, model=name, classes=classes,
                              chance=chance_level(train.labels, len(classes)), runs=runs, seconds=last_seconds)
    selected = result.select(config.epochs)
    summary = {k: selected[k] for k in ("learning_rate", "epoch", "valid_accuracy", "test_accuracy")}
    with atomic_path(out / rundir.MODEL_DIR) as tmp_dir:
        shutil.copytree(rundir.lr_dir(out, selected["learning_rate"]) / f"epoch-{config.epochs}", tmp_dir)
        write_json(tmp_dir / "selected.json", rundir.jsonable({"task": task, "model": name, **summary}))
    result.extra = {"selected": summary, "finetune": config.to_dict(), "model_config": model0.config.to_dict(),
                    "init": init, "random_init": random_kind, "device": str(device),
                    "versions": run_versions(), "wall_seconds_this_call": time.perf_counter() - t_start,
                    "settings": settings, "representation": train.representation, **targets_of(test)}
    drawn = _write_plots(out, curves, selected, classes, f"{name} on {task}", result.chance) if plots else []
    result.extra["plots"] = [p.name for p in drawn]
    result.save(out)
    return result


def finetune(
    store,
    tasks_dir,
    task_name: str,
    *,
    init: str,
    dbn_dir: str | Path | None = None,
    out: str | Path,
    config: FinetuneConfig = FinetuneConfig(),
    device: str | torch.device = "cpu",
    progress: Callable[[dict], None] | None = None,
) -> ExperimentResult:
    """Load a task's splits from a feature store and run :func:`run_convmlp`.

    Parameters
    ----------
    store : FeatureStore or path
    tasks_dir : path
        Folder written by ``beatdbn tasks``.
    task_name : {'artist', 'genre', 'key'}
    init : {'pretrained', 'random'}
    dbn_dir : path, optional
        A DBN folder from ``beatdbn pretrain``: the weights for
        ``'pretrained'``, the weight statistics for ``'random'`` (without
        it, ``'random'`` uses the plain random initialization).
    out, config, device, progress
        As in :func:`run_convmlp`.
    """
    if init not in INIT_CHOICES:
        raise ParameterError(f"init={init!r}: must be one of {INIT_CHOICES}")
    if init == "pretrained" and dbn_dir is None:
        raise ParameterError("init='pretrained' needs dbn_dir, a folder written by `beatdbn pretrain`")
    dbn = None
    if dbn_dir is not None:
        dbn_dir = Path(dbn_dir)
        if not (dbn_dir / "model.pt").is_file() or not (dbn_dir / "config.json").is_file():
            raise DataError(f"{dbn_dir}: not a pretrained DBN folder (model.pt and config.json expected); "
                            f"run `beatdbn pretrain STORE --out {dbn_dir}` first")
        try:
            dbn = ConvDBN.load(dbn_dir, device=device)
        except (DataError, ParameterError):
            raise
        except Exception as exc:  # noqa: BLE001 - one line instead of a traceback
            raise DataError(f"{dbn_dir}: cannot load the DBN ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    fs = store if isinstance(store, FeatureStore) else FeatureStore.open(store)
    task = load_task(tasks_dir, task_name)
    splits = [load_split(fs, task, s) for s in ("train", "valid", "test")]
    dbn_kind = None
    if init == "pretrained" and dbn_dir is not None and (dbn_dir / "pretrain.json").is_file():
        dbn_kind = json.loads((dbn_dir / "pretrain.json").read_text()).get("representation")
    check_representations(fs.representations([t for s in splits for t in s.track_ids]), expected=dbn_kind,
                          what=f"task {task_name} in {fs.path}")
    return run_convmlp(*splits, task=task_name, init=init, dbn=dbn, out=out, config=config, device=device,
                       progress=progress)
