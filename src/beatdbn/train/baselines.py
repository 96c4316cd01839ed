"""Train and evaluate the window baselines of section 6: naive Bayes and logistic regression.

Both baselines see the same data the conv MLP does: a task's train / valid /
test splits (:class:`~beatdbn.data.splits.SplitData`), cut into windows of
``config.window`` beats every ``config.stride`` beats
(:mod:`beatdbn.models.windows`; short tracks wrap-padded to one window),
each of the 24 features standardized with the mean and standard deviation
of the *training* beats only. Model selection uses validation accuracy
(:meth:`ExperimentResult.select`), and the test accuracy of the selected row
is what Table 1 reports. All accuracies are *track* accuracies.

* :func:`run_naive_bayes`: scikit-learn's GaussianNB on the training
  windows (:class:`~beatdbn.models.naive_bayes.WindowedNaiveBayes`). One
  result row (``learning_rate`` None, ``epoch`` 0) whose ``valid_accuracy``
  / ``test_accuracy`` combine windows by the **mean of posteriors** (the
  rule Table 1 uses), plus ``valid_accuracy_sum_log`` /
  ``test_accuracy_sum_log`` for the sum of log-posteriors.
* :func:`run_logreg`: :class:`~beatdbn.models.logreg.WindowedLogReg`
  trained with plain SGD for ``config.epochs`` epochs at each of
  ``config.learning_rates``; one result row per learning rate at the last
  epoch (track class: mean of window posteriors; the sum-of-log rule is
  recorded too), every epoch in ``out/lr-<v>/metrics.csv``.

**Gradient normalization.** The SGD loss is the *sum* over the minibatch of
the per-window cross-entropies (``config.grad_norm='sum'``), which is what
makes the paper's learning rates (5e-3 ... 5e-7) span "underfits" to
"interpolates" with the paper's optimum inside; with the mean, two of the
five rates leave the weights near zero. Reasoning and measurements are in
:mod:`beatdbn.models.logreg`. Demo corpus (``make demo``; batch 100, 30
epochs, seed 0), valid / test track accuracy, sum rule::

    rate      key            genre          artist
    5e-3      0.958 / 0.972  0.900 / 0.887  0.825 / 0.975
    5e-4      0.958 / 0.958  0.912 / 0.887  0.825 / 0.975
    5e-5      0.958 / 0.958  0.850 / 0.863  0.775 / 0.950
    5e-6      0.903 / 0.944  0.762 / 0.787  0.700 / 0.850
    5e-7      0.833 / 0.917  0.688 / 0.688  0.675 / 0.800
    NB mean   0.819 / 0.889  0.775 / 0.775  0.725 / 0.850
    NB sumlog 0.833 / 0.931  0.787 / 0.775  0.725 / 0.850

(The synthetic demo is far easier than the MSD — chance is 8 %, 5 %, 10 % —
so large rates do not overfit it as they would real data.)

**Run directory, resuming** (the layout of :mod:`beatdbn.train.rundir`, shared
with the conv MLP). ``out/result.json`` written by a finished run with the same
configuration and the same splits is returned as is (after checking that
``out/model`` loads). ``out/model`` is the selected model as a
:class:`~beatdbn.models.window_model.WindowModel` (state dict + JSON config),
which ``beatdbn predict`` and ``evaluate`` load. For logistic regression, each
learning rate lives in ``out/lr-<v>/``: a finished one (``result.json``) is
reused; an unfinished one resumes from its per-epoch ``checkpoint.pt`` (the
minibatch order of epoch ``e`` is drawn from ``(seed, e)``, so a resumed run
equals an uninterrupted one). A directory written with a different
configuration or other splits raises :class:`~beatdbn.exceptions.DataError`
instead of being mixed in.

**Threads.** The SGD steps are tiny (100 x 768 x C); intra-op threads gain
nothing there and their synchronization made a step 8-30 times slower on a
busy 2-core machine (0.36 ms a step with 1 thread, 2.4-10 ms with 2 under
load). The thread count is the caller's choice (``beatdbn --threads``, set at
the CLI entry): library code does not change process-wide settings.

Examples
--------
>>> cfg = BaselineConfig(learning_rates=[5e-5], epochs=2)
>>> cfg.learning_rates, cfg.window * 24
((5e-05,), 768)
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from beatdbn.data.splits import check_splits, splits_fingerprint
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.metrics.predictions import predicted, targets_of
from beatdbn.metrics.results import RESULT_FILE, ExperimentResult
from beatdbn.metrics.scores import accuracy, chance_level, confusion_matrix, per_class_accuracy
from beatdbn.models.config import JsonConfig
from beatdbn.models.logreg import GRAD_NORMS, WindowedLogReg
from beatdbn.models.naive_bayes import WindowedNaiveBayes
from beatdbn.models.window_model import WindowModel
from beatdbn.models.windows import Standardizer, WindowedTracks, make_windows
from beatdbn.train import rundir
from beatdbn.train.provenance import run_versions
from beatdbn.utils.atomic import save_torch, write_json

__all__ = ["BaselineConfig", "PAPER_LEARNING_RATES", "prepare_windows", "run_naive_bayes", "run_logreg",
           "sgd_epoch"]

PAPER_LEARNING_RATES = (5e-3, 5e-4, 5e-5, 5e-6, 5e-7)
METRICS_COLUMNS = ("epoch", "learning_rate", "train_loss", "train_accuracy", "valid_accuracy", "seconds")
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "beatdbn-logreg-v2"

Progress = Callable[[dict], None] | None


@dataclass(frozen=True)
class BaselineConfig(JsonConfig):
    """Hyperparameters of the window baselines (saved in ``result.json`` under ``extra.config``).

    Parameters
    ----------
    window : int
        Beats per window (32: 8 bars, 768 values).
    stride : int
        Beats between consecutive windows of a track (32: no overlap).
    learning_rates : tuple of float
        Logistic-regression sweep (the paper's five by default).
    epochs : int
        Logistic-regression epochs (30); the result rows are at the last.
    batch_size : int
        Windows per SGD minibatch.
    grad_norm : {'sum', 'mean'}
        The minibatch loss is the sum (default) or the mean of the window losses.
    seed : int
        Seeds the minibatch order (``(seed, epoch)``) and nothing else is random.
    var_smoothing : float
        GaussianNB variance smoothing.
    """

    window: int = 32
    stride: int = 32
    learning_rates: tuple[float, ...] = PAPER_LEARNING_RATES
    epochs: int = 30
    batch_size: int = 100
    grad_norm: str = "sum"
    seed: int = 0
    var_smoothing: float = 1e-9

    def __post_init__(self):
        lrs = tuple(float(v) for v in (self.learning_rates if not isinstance(self.learning_rates, (int, float))
                                       else [self.learning_rates]))
        object.__setattr__(self, "learning_rates", lrs)
        checks = [
            ("window", self.window >= 1, ">= 1"),
            ("stride", self.stride >= 1, ">= 1"),
            ("learning_rates", len(lrs) > 0 and all(math.isfinite(v) and v > 0 for v in lrs),
             "one or more positive numbers"),
            ("learning_rates", len(set(lrs)) == len(lrs), "without repeats"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("grad_norm", self.grad_norm in GRAD_NORMS, f"one of {GRAD_NORMS}"),
            ("var_smoothing", self.var_smoothing >= 0, ">= 0"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ParameterError(f"BaselineConfig.{name}={getattr(self, name)!r}: must be {rule}")

    def _json(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.to_dict()))

    def nb_fields(self) -> dict[str, Any]:
        """The fields naive Bayes depends on."""
        return {k: getattr(self, k) for k in ("window", "stride", "var_smoothing")}

    def lr_fields(self) -> dict[str, Any]:
        """The fields one learning rate's run depends on (all but the sweep and var_smoothing)."""
        return {k: getattr(self, k) for k in ("window", "stride", "epochs", "batch_size", "grad_norm", "seed")}


# ---------------------------------------------------------------------------
# shared preparation


def prepare_windows(train, valid, test, *, window: int = 32,
                    stride: int = 32) -> tuple[Standardizer, dict[str, WindowedTracks]]:
    """Standardizer fit on ``train`` only, and the standardized windows of the three splits.

    Parameters
    ----------
    train, valid, test : SplitData
    window, stride : int

    Returns
    -------
    standardizer : Standardizer
    windows : dict
        ``{"train": WindowedTracks, "valid": ..., "test": ...}``.

    Raises
    ------
    DataError
        An empty split, a track of the wrong width or of 0 beats, mismatched classes.
    """
    check_splits(train, valid, test)
    std = Standardizer.fit(train.features, name="the train split")
    windows = {name: make_windows(split.features, window=window, stride=stride, standardizer=std,
                                  name=f"the {name} split")
               for name, split in (("train", train), ("valid", valid), ("test", test))}
    return std, windows


def _clean(values) -> list:
    return [None if (isinstance(v, float) and math.isnan(v)) else v for v in np.asarray(values).tolist()]


def _evaluate(scores: dict[str, np.ndarray], labels: np.ndarray, prefix: str) -> dict[str, Any]:
    """Track accuracy by the mean rule (``prefix_accuracy``) and the sum-of-log rule; ``_pred`` the mean-rule classes."""
    pred = scores["mean"].argmax(axis=1)
    return {f"{prefix}_accuracy": accuracy(labels, pred),
            f"{prefix}_accuracy_sum_log": accuracy(labels, scores["sum_log"].argmax(axis=1)),
            "_pred": pred}


def _test_report(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Per-class accuracy, confusion and ``test_predicted`` (each test track's class, :mod:`beatdbn.metrics.predictions`)."""
    return {"per_class_accuracy": _clean(per_class_accuracy(labels, pred, n_classes)),
            "confusion": confusion_matrix(labels, pred, n_classes).tolist(), "test_predicted": predicted(pred)}


def _window_stats(windows: dict[str, WindowedTracks]) -> dict[str, Any]:
    return {name: {"tracks": w.n_tracks, "windows": len(w), "beats": int(w.lengths.sum()),
                   "short_tracks_padded": int((w.lengths < w.window).sum())} for name, w in windows.items()}


def _settings(model: str, task: str, fields: dict[str, Any], fingerprint: str) -> dict:
    return rundir.settings_of(task=task, model=model, config=fields, splits=fingerprint)


def _save_run(out: Path, *, kind: str, task: str, model, std: Standardizer, config: BaselineConfig,
            classes: list[str], representation: str | None, settings: dict, result: ExperimentResult) -> None:
    """Save the selected model (``out/model``), the run record and the result (last: it marks the run finished)."""
    WindowModel(kind, model, std, config.window, config.stride, classes, task, representation).save(
        out / rundir.MODEL_DIR)
    rundir.write_record(out, {"task": task, "model": kind, "representation": representation, "settings": settings})
    result.extra["settings"] = settings
    result.save(out)


def _emit(progress: Progress, step: int, total: int, message: str) -> None:
    if progress is not None:
        progress({"step": step, "total": total, "message": message})


# ---------------------------------------------------------------------------
# naive Bayes


def run_naive_bayes(train, valid, test, *, task: str, out: str | Path, config: BaselineConfig = BaselineConfig(),
                    progress: Progress = None) -> ExperimentResult:
    """Fit GaussianNB on the training windows; evaluate tracks of valid and test.

    Parameters
    ----------
    train, valid, test : SplitData
        One task's three splits (:func:`beatdbn.data.splits.load_split`).
    task : str
        The task's name (``'artist'``, ``'genre'``, ``'key'``), recorded in the result.
    out : path
        The run directory (:mod:`beatdbn.train.rundir`): ``result.json``, ``config.json``, ``model/``.
    config : BaselineConfig
        ``window``, ``stride``, ``var_smoothing`` are used.
    progress : callable or None
        Called with ``{"step", "total", "message"}`` after each of 3 units (fit, valid, test).

    Returns
    -------
    ExperimentResult
        ``model='naive_bayes'``, one row: ``learning_rate`` None, ``epoch`` 0,
        ``valid_accuracy`` / ``test_accuracy`` (mean of window posteriors, the
        Table 1 number), ``valid_accuracy_sum_log`` / ``test_accuracy_sum_log``
        (sum of window log-posteriors), ``per_class_accuracy``,
        ``confusion`` and ``test_predicted`` (test, mean rule); ``extra`` has ``test_track_ids`` and
        ``test_targets`` (:mod:`beatdbn.metrics.predictions`).

    Raises
    ------
    DataError
        Unusable splits (empty, wrong feature width, mismatched classes).
    ParameterError
        ``out`` holds a result of another configuration or other splits.
    """
    out = Path(out)
    classes = check_splits(train, valid, test)
    fingerprint = splits_fingerprint(train, valid, test)
    settings = _settings("naive_bayes", task, config.nb_fields(), fingerprint)
    done = rundir.finished(out, settings, load=WindowModel.load)
    if done is not None:
        _emit(progress, 3, 3, "naive Bayes: already done")
        return done
    t0 = time.perf_counter()
    n_classes = len(classes)
    std, windows = prepare_windows(train, valid, test, window=config.window, stride=config.stride)
    nb = WindowedNaiveBayes(n_classes=n_classes, var_smoothing=config.var_smoothing)
    nb.fit(windows["train"], train.labels)
    _emit(progress, 1, 3, f"naive Bayes: fit on {len(windows['train']):,} windows")
    row: dict[str, Any] = {"learning_rate": None, "epoch": 0}
    ev = _evaluate(nb.track_scores(windows["valid"]), valid.labels, "valid")
    ev.pop("_pred")
    row.update(ev)
    _emit(progress, 2, 3, f"naive Bayes: valid accuracy {row['valid_accuracy']:.1%}")
    ev = _evaluate(nb.track_scores(windows["test"]), test.labels, "test")
    row.update(_test_report(ev.pop("_pred"), test.labels, n_classes))
    row.update(ev)
    row["seconds"] = time.perf_counter() - t0
    _emit(progress, 3, 3, f"naive Bayes: test accuracy {row['test_accuracy']:.1%}")

    out.mkdir(parents=True, exist_ok=True)
    result = ExperimentResult(
        task, "naive_bayes", classes=classes, chance=chance_level(train.labels, n_classes), runs=[row],
        seconds=time.perf_counter() - t0,
        extra={"config": config._json(), "splits": fingerprint, "windows": _window_stats(windows),
               "standardizer": std.to_dict(), "versions": run_versions(),
               "table_uses": "valid_accuracy/test_accuracy: mean of window posteriors", **targets_of(test),
               "note": "GaussianNB (scikit-learn) on standardized windows; standardization from train beats only"})
    _save_run(out, kind="naive_bayes", task=task, model=nb, std=std, config=config, classes=classes,
            representation=train.representation, settings=settings, result=result)
    return result


# ---------------------------------------------------------------------------
# logistic regression


def sgd_epoch(model: WindowedLogReg, opt: torch.optim.Optimizer, view: torch.Tensor, starts: torch.Tensor,
              y: torch.Tensor, order: torch.Tensor, *, batch_size: int, grad_norm: str = "sum") -> float:
    """One epoch of minibatch SGD over the windows ``starts[order]``; returns the summed window loss.

    Parameters
    ----------
    model : WindowedLogReg
    opt : torch.optim.Optimizer
    view : torch.Tensor [shape=(n_rows - window + 1, window * 24)]
        The zero-copy window view (:meth:`WindowedTracks.torch_view`).
    starts : torch.Tensor [shape=(n_windows,)]
        Row of ``view`` of each training window.
    y : torch.Tensor [shape=(n_windows,)]
        Class of each window.
    order : torch.Tensor [shape=(n_windows,)]
        Window order of this epoch (a permutation).
    batch_size : int
    grad_norm : {'sum', 'mean'}

    Returns
    -------
    float
        Sum over the epoch's windows of their cross-entropy (before each step).
    """
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=view.device)
    for s in range(0, len(order), batch_size):  # a loop over minibatches; each gathers its windows in one op
        idx = order[s:s + batch_size]
        # index_select, not view[...]: advanced indexing copies the whole overlapping view first
        x = view.index_select(0, starts.index_select(0, idx))  # (batch, 768)
        _, loss = model(x, y.index_select(0, idx), reduction=grad_norm)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * (len(idx) if grad_norm == "mean" else 1)
    model.eval()
    return float(total)


def _train_one_lr(lr: float, windows: dict[str, WindowedTracks], labels: dict[str, np.ndarray], n_classes: int,
                  config: BaselineConfig, lr_out: Path, fingerprint: str, device, tensors: dict,
                  tick: Callable[[int, str], None]) -> dict[str, Any]:
    """Train (or resume, or reuse) one learning rate; returns its result row at the last epoch."""
    meta = rundir.jsonable({"learning_rate": lr, "splits": fingerprint, **config.lr_fields()})
    cfg_path, row_path, ckpt_path = lr_out / "config.json", lr_out / RESULT_FILE, lr_out / CHECKPOINT
    if cfg_path.exists():
        if json.loads(cfg_path.read_text()) != meta:
            raise DataError(f"{lr_out} was trained with another configuration or other splits "
                            f"({cfg_path}); use another --out folder or delete it")
        if row_path.exists():
            tick(config.epochs, f"lr {lr:g}: already done")
            return json.loads(row_path.read_text())
    lr_out.mkdir(parents=True, exist_ok=True)
    write_json(cfg_path, meta)

    model = WindowedLogReg(windows["train"].n_inputs, n_classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    start_epoch, history = 1, []
    ckpt = rundir.load_checkpoint(ckpt_path, fmt=CHECKPOINT_FORMAT, expect=meta, what="logistic regression")
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start_epoch = int(ckpt["epoch"]) + 1
        history = rundir.read_metrics(lr_out / "metrics.csv", int(ckpt["epoch"]))
        tick(int(ckpt["epoch"]), f"lr {lr:g}: resumed after epoch {int(ckpt['epoch'])}")
    seconds = history[-1]["seconds"] if history else 0.0

    view, starts = tensors["train"]
    y = torch.from_numpy(labels["train"][windows["train"].track]).to(device)
    n_win, bs = len(starts), config.batch_size
    for epoch in range(start_epoch, config.epochs + 1):
        t0 = time.perf_counter()
        order = torch.from_numpy(np.random.default_rng([config.seed, epoch]).permutation(n_win)).to(device)
        total = sgd_epoch(model, opt, view, starts, y, order, batch_size=bs, grad_norm=config.grad_norm)
        train_acc = accuracy(labels["train"], model.track_proba(windows["train"], tensors=tensors["train"])["mean"].argmax(1))
        valid_acc = accuracy(labels["valid"], model.track_proba(windows["valid"], tensors=tensors["valid"])["mean"].argmax(1))
        seconds += time.perf_counter() - t0
        history.append({"epoch": epoch, "learning_rate": lr, "train_loss": total / n_win,
                        "train_accuracy": train_acc, "valid_accuracy": valid_acc, "seconds": seconds})
        rundir.write_metrics(lr_out / "metrics.csv", history, METRICS_COLUMNS)
        rundir.save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch},
                               ckpt_path, fmt=CHECKPOINT_FORMAT, expect=meta)
        tick(1, f"lr {lr:g} epoch {epoch}/{config.epochs}: loss {history[-1]['train_loss']:.3f}, "
                f"valid {valid_acc:.1%}")

    model.eval()
    scores = {s: model.track_proba(windows[s], tensors=tensors[s]) for s in ("valid", "test")}
    row: dict[str, Any] = {"learning_rate": lr, "epoch": config.epochs}
    ev = _evaluate(scores["valid"], labels["valid"], "valid")
    ev.pop("_pred")
    row.update(ev)
    ev = _evaluate(scores["test"], labels["test"], "test")
    row.update(_test_report(ev.pop("_pred"), labels["test"], n_classes))
    row.update(ev)
    row.update({"train_loss": history[-1]["train_loss"], "train_accuracy": history[-1]["train_accuracy"],
                "seconds": seconds})
    save_torch(model.state_dict(), lr_out / "model.pt")
    write_json(row_path, rundir.jsonable(row))
    ckpt_path.unlink(missing_ok=True)
    return row


def run_logreg(train, valid, test, *, task: str, out: str | Path, config: BaselineConfig = BaselineConfig(),
               progress: Progress = None, device: str | torch.device = "cpu") -> ExperimentResult:
    """Train windowed logistic regression at every learning rate of ``config``; evaluate tracks.

    Parameters
    ----------
    train, valid, test : SplitData
    task : str
    out : path
        ``result.json`` (the experiment), ``config.json``, ``model/`` (the selected rate) and one folder
        per learning rate, ``lr-<v>/`` (``metrics.csv``, ``config.json``,
        ``result.json``, ``model.pt``; ``checkpoint.pt`` while unfinished).
    config : BaselineConfig
    progress : callable or None
        Called after every epoch with ``{"step", "total", "message"}``; ``total``
        is ``len(learning_rates) * epochs``.
    device : str or torch.device

    Returns
    -------
    ExperimentResult
        ``model='logreg'``, one row per learning rate at ``epoch = config.epochs``:
        ``valid_accuracy`` / ``test_accuracy`` (mean of window posteriors),
        ``*_accuracy_sum_log``, ``per_class_accuracy``, ``confusion`` (test),
        ``test_predicted``, ``train_loss``, ``train_accuracy``, ``seconds``; ``extra`` has ``test_track_ids``
        and ``test_targets`` (:mod:`beatdbn.metrics.predictions`). Choose with ``.select()``.

    Raises
    ------
    DataError
        Unusable splits.
    ParameterError
        ``out`` holds results of another configuration or other splits.
    """
    out = Path(out)
    classes = check_splits(train, valid, test)
    fingerprint = splits_fingerprint(train, valid, test)
    total = len(config.learning_rates) * config.epochs
    settings = _settings("logreg", task, config._json(), fingerprint)
    done_before = rundir.finished(out, settings, load=WindowModel.load)
    if done_before is not None:
        _emit(progress, total, total, "logistic regression: already done")
        return done_before
    t0 = time.perf_counter()
    n_classes = len(classes)
    std, windows = prepare_windows(train, valid, test, window=config.window, stride=config.stride)
    out.mkdir(parents=True, exist_ok=True)
    labels = {"train": np.asarray(train.labels, np.int64), "valid": np.asarray(valid.labels, np.int64),
              "test": np.asarray(test.labels, np.int64)}
    tensors = {name: w.torch_view(device) for name, w in windows.items()}
    done = 0

    def tick(n: int, message: str) -> None:
        nonlocal done
        done += n
        _emit(progress, done, total, message)

    runs = []
    for lr in config.learning_rates:
        runs.append(_train_one_lr(lr, windows, labels, n_classes, config, rundir.lr_dir(out, lr), fingerprint,
                                  device, tensors, tick))
    best = max(runs, key=lambda r: (r["valid_accuracy"], -runs.index(r)))
    result = ExperimentResult(
        task, "logreg", classes=classes, chance=chance_level(train.labels, n_classes), runs=runs,
        seconds=time.perf_counter() - t0,
        extra={"config": config._json(), "splits": fingerprint, "windows": _window_stats(windows),
               "standardizer": std.to_dict(), "versions": run_versions(), "device": str(device),
               "chosen_learning_rate": best["learning_rate"],
               "table_uses": "valid_accuracy/test_accuracy: mean of window posteriors", **targets_of(test),
               "note": (f"windowed logistic regression, plain SGD, minibatch loss = {config.grad_norm} of window "
                        "cross-entropies; standardization from train beats only")})
    chosen = result.select()
    model = WindowedLogReg(windows["train"].n_inputs, n_classes)
    model.load_state_dict(torch.load(rundir.lr_dir(out, chosen["learning_rate"]) / "model.pt", map_location="cpu",
                                     weights_only=True))
    _save_run(out, kind="logreg", task=task, model=model.eval(), std=std, config=config, classes=classes,
            representation=train.representation, settings=settings, result=result)
    return result
