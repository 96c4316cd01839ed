"""Classify new music, and evaluate a finetuned run on a task split.

A *run directory* is what ``beatdbn finetune`` writes (see
:mod:`beatdbn.train.finetune`); its ``model/`` folder holds the model chosen
on validation. A bare model folder (``model.pt`` + ``config.json``, e.g. a
snapshot ``RUN_DIR/lr-0.05/epoch-20``) is accepted as well.

**Shipped models.** :func:`shipped_model` loads a model that comes inside the
package (``beatdbn/pretrained/<name>/``: ``model.pt``, ``config.json`` and
``PROVENANCE.json``), e.g. the audio key model (:data:`SHIPPED_MODELS`), so
``beatdbn predict --task key song.mp3`` needs no run directory.

**Representations.** A model folder's ``PROVENANCE.json`` may name the
feature representation it was trained on (``"audio"``: beatdbn's audio
front-end; ``"echonest"``: MSD files). A track of the other representation
gets an answer with an ``error`` that says so, never a silent guess: the two
share a layout but not a meaning (Echo Nest timbre is not our MFCC timbre).

Inputs are read with :func:`beatdbn.features.sources.read_features`, so every
file type it reads (MSD ``.h5`` track and aggregate files; audio once the
audio front-end is there) can be classified. One file may hold several
tracks (an aggregate file): each gets its own answer.

Examples
--------
>>> from beatdbn.evaluate.predict import predict_files
>>> for answer in predict_files("runs/key-pretrained", ["TRAXLZU12903D05F94.h5"]):  # doctest: +SKIP
...     print(answer["label"], answer["probabilities"])
G {'G': 0.81, 'D': 0.07, 'C': 0.05}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from beatdbn.metrics.scores import accuracy, chance_level, confusion_matrix, per_class_accuracy
from beatdbn.metrics.results import ExperimentResult
from beatdbn.exceptions import BeatdbnError, DataError, ParameterError
from beatdbn.models.convmlp import ConvMLP
from beatdbn.labels import KEY_NAMES

__all__ = ["Run", "load_run", "label_names", "predict_features", "predict_files", "evaluate_split",
           "shipped_model", "shipped_model_dir", "representation_mismatch", "SHIPPED_MODELS"]

#: Models shipped inside the package: task -> folder under ``beatdbn/pretrained``.
SHIPPED_MODELS = {"key": "key_audio"}
_REPRESENTATION_NAMES = {"audio": "audio analysed by beatdbn's front-end",
                         "echonest": "Echo Nest features (MSD .h5 files)"}


@dataclass
class Run:
    """A finetuned model ready to classify.

    Attributes
    ----------
    path : Path
        The run directory (or model folder) given.
    model : ConvMLP
        In eval mode.
    labels : list of str
        Class names as shown to users (key classes as C, C#, ..., B).
    task : str
    selected : dict
        ``RUN_DIR/model/selected.json`` (learning rate, epoch, accuracies), or {}.
    result : ExperimentResult or None
        ``RUN_DIR/result.json`` when present.
    representation : str or None
        The features the model was trained on (``"audio"`` or ``"echonest"``),
        from the model folder's ``PROVENANCE.json``; None when not recorded.
    provenance : dict
        ``PROVENANCE.json`` of the model folder, or {}.
    """

    path: Path
    model: ConvMLP
    labels: list[str]
    task: str
    selected: dict
    result: ExperimentResult | None
    representation: str | None = None
    provenance: dict = field(default_factory=dict)


def label_names(classes: Sequence[str], task: str = "") -> list[str]:
    """User-facing class names: key classes given as numbers 0-11 become C, C#, ..., B."""
    classes = [str(c) for c in classes]
    if task == "key" and classes and all(c.isdigit() and int(c) < 12 for c in classes):
        return [KEY_NAMES[int(c)] for c in classes]
    return classes


def load_run(run_dir: str | Path, *, device: str | torch.device = "cpu") -> Run:
    """Load the model a finetuning run selected (``RUN_DIR/model``), or a bare model folder.

    Raises
    ------
    DataError
        ``run_dir`` holds neither a finished run nor a model (the message says
        which), or the model file is not ours.
    """
    path = Path(run_dir)
    if not path.exists():
        raise DataError(f"{path}: no such run directory")
    if path.is_file():
        model_dir = path.parent
    elif (path / "model.pt").exists():
        model_dir = path
    elif (path / "model").is_dir():
        model_dir = path / "model"
    else:
        hint = (" (it has a checkpoint: the run is unfinished; rerun the same `beatdbn finetune` to finish it)"
                if any(path.glob("lr-*/checkpoint.pt")) else "")
        raise DataError(f"{path}: no model/ folder; is it a run directory written by `beatdbn finetune`?{hint}")
    model = ConvMLP.load(model_dir, device=device).eval()
    selected = {}
    if (model_dir / "selected.json").exists():
        try:
            selected = json.loads((model_dir / "selected.json").read_text())
        except ValueError:
            selected = {}
    result = None
    if (path / "result.json").exists():
        result = ExperimentResult.load(path / "result.json")
    provenance = {}
    if (model_dir / "PROVENANCE.json").is_file():
        try:
            provenance = json.loads((model_dir / "PROVENANCE.json").read_text(encoding="utf-8"))
        except ValueError:
            raise DataError(f"{model_dir / 'PROVENANCE.json'}: not valid JSON; restore it from the package "
                            f"or delete it") from None
    representation = provenance.get("representation") if isinstance(provenance, dict) else None
    cfg = model.config
    return Run(path, model, label_names(cfg.class_names, cfg.task), cfg.task, selected, result,
               representation=representation, provenance=provenance if isinstance(provenance, dict) else {})


def shipped_model_dir(task: str) -> Path:
    """The folder of the model shipped for ``task`` (see :data:`SHIPPED_MODELS`).

    Raises
    ------
    ParameterError
        No model is shipped for ``task``.
    DataError
        The package lacks the model's files (an install without package data,
        or a checkout where ``make model`` has not been run).
    """
    if task not in SHIPPED_MODELS:
        raise ParameterError(f"no model is shipped for task {task!r} (shipped: {', '.join(SHIPPED_MODELS)}); "
                             f"give a RUN_DIR from `beatdbn finetune` instead")
    from importlib import resources

    folder = Path(str(resources.files("beatdbn.pretrained") / SHIPPED_MODELS[task]))
    if not (folder / "model.pt").is_file() or not (folder / "config.json").is_file():
        raise DataError(f"{folder}: the shipped {task} model is missing (model.pt + config.json); "
                        f"rebuild it with `make model`, or reinstall beatdbn with its package data")
    return folder


def shipped_model(task: str = "key", *, device: str | torch.device = "cpu") -> Run:
    """Load the model shipped inside the package for ``task``.

    Examples
    --------
    >>> run = shipped_model("key")          # doctest: +SKIP
    >>> run.task, run.representation, run.labels[:3]
    ('key', 'audio', ['C', 'C#', 'D'])
    """
    return load_run(shipped_model_dir(task), device=device)


def representation_mismatch(run: Run, meta: dict, name: str) -> str | None:
    """An error text when a track's representation is not the one ``run``'s model was trained on, else None."""
    want = run.representation
    have = meta.get("representation") if isinstance(meta, dict) else None
    if not want or not have or want == have:
        return None
    what = "the shipped" if run.provenance.get("shipped") else "this"
    return (f"{name}: holds {_REPRESENTATION_NAMES.get(have, have)}, but {what} {run.task or ''} model was "
            f"trained on {_REPRESENTATION_NAMES.get(want, want)}; the two are different representations. "
            + ("Give the audio file itself (wav, flac, ogg, mp3), or a RUN_DIR trained on MSD features"
               if want == "audio" else "Give an MSD .h5 file, or a RUN_DIR trained on audio features"))


def _as_run(run: Run | str | Path, device: str | torch.device = "cpu") -> Run:
    return run if isinstance(run, Run) else load_run(run, device=device)


def predict_features(run: Run | str | Path, features: Sequence[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
    """Track posteriors ``(n_tracks, n_classes)`` for ``(n_beats, 24)`` feature arrays.

    Raises
    ------
    ParameterError
        A track is not ``(n_beats, 24)`` or has 0 beats.
    """
    from beatdbn.train.finetune import split_posteriors

    run = _as_run(run)
    n_in = run.model.config.n_inputs
    for i, f in enumerate(features):
        if f.ndim != 2 or f.shape[1] != n_in or len(f) == 0:
            raise ParameterError(f"track {i} has features of shape {f.shape}: expected (n_beats >= 1, {n_in})")
    if not len(features):
        return np.zeros((0, run.model.config.n_classes))
    return split_posteriors(run.model, [np.asarray(f, dtype=np.float32) for f in features], batch_size=batch_size)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, BeatdbnError):
        return str(exc)
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def predict_files(run_dir: Run | str | Path, files: Sequence[str | Path], *, top_k: int = 3,
                  batch_size: int = 32) -> list[dict[str, Any]]:
    """Classify every track of every input file with a finetuned run's selected model.

    Parameters
    ----------
    run_dir : path or Run
        A run directory from ``beatdbn finetune`` (or a model folder).
    files : sequence of path
        MSD ``.h5`` files (any file :func:`~beatdbn.features.sources.read_features` reads).
    top_k : int
        Classes listed per track, most probable first (``0``: all).

    Returns
    -------
    list of dict
        Per track, in input order: ``{"file", "track_id", "label", "probabilities":
        {label: p, ...}}`` (``top_k`` labels, descending; ``label`` is the
        most probable); per unreadable file (or track without beats, or of
        another representation than the model's, see :func:`representation_mismatch`):
        ``{"file", "error"}`` (plus ``"track_id"`` when known). Probabilities
        are always finite.

    Raises
    ------
    ParameterError
        ``top_k`` < 0.
    DataError
        ``run_dir`` is not a usable run.
    """
    from beatdbn.features.sources import read_features

    if not isinstance(top_k, int) or top_k < 0:
        raise ParameterError(f"top_k={top_k!r}: must be an int >= 0 (0 lists every class)")
    run = _as_run(run_dir)
    answers: list[dict[str, Any]] = []
    pending: list[tuple[int, np.ndarray]] = []  # (answer index, features)
    n_in = run.model.config.n_inputs
    for f in files:
        name = str(f)
        try:
            tracks = list(read_features(f))
            if not tracks:
                raise DataError(f"{name}: holds no track")
        except Exception as exc:  # noqa: BLE001 - any failure to read is reported per file
            answers.append({"file": name, "error": _error_text(exc)})
            continue
        for meta, feats, _beats in tracks:
            track_id = str(meta.get("track_id", "")) if isinstance(meta, dict) else ""
            mismatch = representation_mismatch(run, meta, name)
            if mismatch:
                answers.append({"file": name, "track_id": track_id, "error": mismatch})
                continue
            feats = np.asarray(feats, dtype=np.float32)
            if feats.ndim != 2 or feats.shape[1] != n_in or len(feats) == 0:
                why = "no beats" if feats.ndim == 2 and len(feats) == 0 else f"features of shape {feats.shape}"
                answers.append({"file": name, "track_id": track_id, "error": f"{name}: track {track_id} has {why}; "
                                                                             f"nothing to classify"})
                continue
            answers.append({"file": name, "track_id": track_id})
            pending.append((len(answers) - 1, feats))
    if pending:
        post = predict_features(run, [f for _, f in pending], batch_size=batch_size)
        k = run.model.config.n_classes if top_k == 0 else min(top_k, run.model.config.n_classes)
        for (i, _), p in zip(pending, post):
            if not np.all(np.isfinite(p)):  # never hand out NaN (JSON cannot hold it)
                answers[i]["error"] = f"{answers[i]['file']}: the model gave non-finite posteriors for this track"
                continue
            order = np.argsort(-p, kind="stable")[:k]
            answers[i]["label"] = run.labels[int(order[0])]
            answers[i]["probabilities"] = {run.labels[int(j)]: float(p[j]) for j in order}
    return answers


def evaluate_split(run_dir: Run | str | Path, store, tasks_dir, split: str = "test", *,
                   batch_size: int = 32) -> dict[str, Any]:
    """Accuracy of a run's selected model on one split of its task.

    Parameters
    ----------
    run_dir : path or Run
    store : FeatureStore or path
    tasks_dir : path
        The tasks folder; the task is the one the model was trained for.
    split : {'train', 'valid', 'test'}

    Returns
    -------
    dict
        ``{"run", "task", "split", "n_tracks", "accuracy", "chance",
        "per_class_accuracy": {label: accuracy or None}, "classes",
        "confusion": [[...]]}`` (rows: true class, columns: predicted); on a key
        task also ``"weighted_key_score"`` (MIREX, via mir_eval), ``"key_score_rule"``
        and ``"key_score_fifth"`` (the installed mir_eval's fifth convention).

    Raises
    ------
    DataError
        Task or split missing, a track missing from the store, or classes that
        differ from the model's.
    """
    from beatdbn.store.reader import FeatureStore
    from beatdbn.tasks.build import load_task
    from beatdbn.data.splits import load_split

    run = _as_run(run_dir)
    if not run.task:
        raise DataError(f"{run.path}: the model does not record its task; evaluate it with the library instead")
    if split not in ("train", "valid", "test"):
        raise ParameterError(f"split={split!r}: must be one of train, valid, test")
    fs = store if isinstance(store, FeatureStore) else FeatureStore.open(store)
    task = load_task(tasks_dir, run.task)
    if list(task.classes) != list(run.model.config.class_names):
        raise DataError(f"{Path(tasks_dir) / run.task}: classes {task.classes[:5]}... differ from the model's "
                        f"{run.model.config.class_names[:5]}...: were the tasks rebuilt since finetuning?")
    data = load_split(fs, task, split)
    post = predict_features(run, data.features, batch_size=batch_size)
    pred = post.argmax(axis=1)
    n = run.model.config.n_classes
    pca = per_class_accuracy(data.labels, pred, n)
    confusion = confusion_matrix(data.labels, pred, n)
    out = {"run": str(run.path), "task": run.task, "split": split, "n_tracks": len(data),
           "accuracy": accuracy(data.labels, pred), "chance": chance_level(data.labels, n),
           "per_class_accuracy": {lab: (None if math.isnan(a) else float(a)) for lab, a in zip(run.labels, pca)},
           "classes": run.labels, "confusion": confusion.tolist()}
    from beatdbn.metrics.scores import KEY_SCORE_RULE, fifth_convention, weighted_key_score

    score = weighted_key_score(confusion, task.classes)
    if score is not None:  # a key task: the MIREX weighted score beside the accuracy
        out.update(weighted_key_score=score, key_score_rule=KEY_SCORE_RULE, key_score_fifth=fifth_convention())
    return out
