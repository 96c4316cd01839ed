"""Loading a finished run (or a model folder, or a shipped model) for inference.

A *run directory* is what ``beatdbn finetune`` (or ``beatdbn baseline``)
writes; its ``config.json`` names the model (``"model"``: ``convmlp_*`` for a
conv MLP, ``logreg`` / ``naive_bayes`` for a baseline). :func:`load_run`
dispatches on that name: a conv MLP is read from ``RUN_DIR/model``
(``model.pt`` + ``config.json``, the model chosen on validation), a baseline
through :func:`beatdbn.inference.baselines.load_baseline`. A bare conv MLP
folder (e.g. a snapshot ``RUN_DIR/lr-0.05/epoch-20``) is accepted as well.

**Shipped models.** :func:`shipped_model` loads a model that comes inside the
package (``beatdbn/pretrained/<name>/``), e.g. the audio key model
(:data:`SHIPPED_MODELS`), so ``beatdbn predict --task key song.mp3`` needs no
run directory. On the CPU it runs in numpy (``model.npz``,
:class:`~beatdbn.models.numpy_mlp.NumpyConvMLP`: the same posteriors within
float rounding, and no torch import, which is most of a one-song predict's
time); ``engine="torch"`` (or a device) gives the torch model of ``model.pt``.

**Representations.** A run records the feature representation it was trained
on (``"echonest"``: MSD files; ``"audio"``: beatdbn's audio front-end), in the
model folder's ``PROVENANCE.json`` or the run's ``config.json``
(``"representation"``). :func:`representation_mismatch` gives the error text
for a track of the other kind: the two share a layout but not a meaning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.inference.classifier import Classifier, Track, TrackRefused, admit, classifier_of, is_conv_mlp
from beatdbn.labels import KEY_NAMES, NO_KEY, parse_key
from beatdbn.metrics.calibration import apply_temperature
from beatdbn.metrics.results import ExperimentResult
from beatdbn.models.key_ends import fuse
from beatdbn.models.numpy_mlp import NPZ_FILE, NumpyConvMLP

if TYPE_CHECKING:  # torch is imported by the functions that load a torch model (load_run): the shipped model
    import torch  # runs in numpy (beatdbn.models.numpy_mlp), so a one-song `predict --task key` never imports it

__all__ = ["Run", "Posteriors", "load_run",
           "label_names", "with_ends", "key_columns", "shipped_model", "shipped_model_dir", "representation_mismatch",
           "needed_model_kind", "SHIPPED_MODELS", "REPRESENTATION_NAMES"]

#: Models shipped inside the package: task -> folder under ``beatdbn/pretrained``.
SHIPPED_MODELS = {"key": "key_audio"}
#: How each representation is named to users.
REPRESENTATION_NAMES = {"audio": "audio analysed by beatdbn's front-end",
                        "echonest": "Echo Nest features (MSD .h5 files)"}


class Posteriors(NamedTuple):
    """What :meth:`Run.predict_proba` gives: ``tracks`` ``(n_tracks, n_classes)`` float64 (calibrated), and
    ``steps``: per track ``(n_steps, n_classes)`` (the model's own, not calibrated), or None."""

    tracks: np.ndarray
    steps: list[np.ndarray] | None


@dataclass
class Run:
    """A finished model ready to classify.

    Attributes
    ----------
    path : Path
        The run directory (or model folder) given.
    model : ConvMLP, NumpyConvMLP or baseline
        A :class:`ConvMLP` in eval mode, its numpy forward (a shipped model), or a baseline object with
        ``predict_proba(list of (n_beats, 24) arrays) -> (n, n_classes)``.
    labels : list of str
        Class names as shown to users (key classes as C, C#, ..., B).
    task : str
    selected : dict
        ``RUN_DIR/model/selected.json`` (learning rate, epoch, accuracies), or {}.
    result : ExperimentResult or None
        ``RUN_DIR/result.json`` when present.
    representation : str or None
        ``"audio"`` or ``"echonest"``; None when the run does not record it.
    provenance : dict
        ``PROVENANCE.json`` of the model folder, or {}.
    kind : str
        ``"convmlp"``, or the baseline's model name (``logreg``, ``naive_bayes``).
    calibration : dict
        ``calibration.json`` of the model folder, or {}: ``"temperature"`` (track posteriors are
        reported as ``softmax(log(p) / T)``), ``"tonal_threshold"`` (a key model answers "no key"
        when ``P(no key)`` reaches it), ``"ends"`` (the weights of :mod:`beatdbn.models.key_ends`, applied
        to tracks whose reader gave their ends), ``"ece"`` and the held-out figures behind them.
    """

    path: Path
    model: Any
    labels: list[str]
    task: str
    selected: dict
    result: ExperimentResult | None
    representation: str | None = None
    provenance: dict = field(default_factory=dict)
    kind: str = "convmlp"
    calibration: dict = field(default_factory=dict)

    @property
    def temperature(self) -> float:
        """Temperature applied to track posteriors (1.0: none)."""
        return float(self.calibration.get("temperature", 1.0))

    @property
    def tonal_threshold(self) -> float | None:
        """``P(no key)`` at or above which a key model answers "no key" (None: the model has no such class)."""
        t = self.calibration.get("tonal_threshold")
        return None if t is None else float(t)

    @property
    def end_weights(self) -> list[float] | None:
        """The weights of :mod:`beatdbn.models.key_ends` (None: the model does not use a recording's ends)."""
        ends = self.calibration.get("ends")
        return [float(w) for w in ends["weights"]] if isinstance(ends, dict) and "weights" in ends else None

    @property
    def answers_over_time(self) -> bool:
        """True for a conv MLP (torch or numpy): it has layer-4 steps (posteriors over time)."""
        return isinstance(self.model, NumpyConvMLP) or is_conv_mlp(self.model)

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def n_inputs(self) -> int:
        """Features per beat the model reads."""
        return self.classifier.n_inputs

    @property
    def classifier(self) -> Classifier:
        """The model behind the one protocol (:mod:`beatdbn.inference.classifier`)."""
        return classifier_of(self.model)

    def admit(self, name: str, meta: dict | None, features, beats=None) -> Track:
        """The door (:func:`~beatdbn.inference.classifier.admit`) with this model's width and representation.

        Raises
        ------
        TrackRefused
            Another representation (the text of :func:`representation_mismatch`), no beats, a wrong shape or
            a non-finite value.
        """
        return admit(name, meta, features, beats, n_inputs=self.n_inputs,
                     mismatch=lambda m, n: representation_mismatch(self, m, n))

    def predict_proba(self, features: Sequence[np.ndarray | Track], *, over_time: bool = False,
                      batch_size: int = 32) -> Posteriors:
        """Track posteriors of any run (conv MLP or baseline) and, with ``over_time``, each track's per-step ones,
        from one pass of the network.

        ``features``: :class:`~beatdbn.inference.classifier.Track` objects (admitted already), or ``(n_beats, 24)``
        arrays, admitted here. With a calibrated run (:attr:`temperature`) the track posteriors are rescaled,
        so a probability shown is one (per-step posteriors are not).

        Raises
        ------
        ParameterError
            A track that does not pass the door, or ``over_time`` with a model without steps.
        """
        if over_time and not self.answers_over_time:
            raise ParameterError(f"{self.path}: a {self.kind} model has no layer-4 steps; posteriors over time need "
                                 f"a conv MLP run")
        feats, ends = [], []
        for i, f in enumerate(features):
            if not isinstance(f, Track) or f.features.shape[1] != self.n_inputs:
                try:
                    f = admit("features", {"track_id": str(i)}, getattr(f, "features", f), n_inputs=self.n_inputs)
                except TrackRefused as exc:
                    raise ParameterError(str(exc)) from None
            feats.append(f.features)
            ends.append(f.chroma_ends)
        if not feats:
            return Posteriors(np.zeros((0, self.n_classes)), [] if over_time else None)
        tracks, steps = classifier_of(self.model, batch_size=batch_size).predict_proba(feats, over_time=over_time)
        return Posteriors(self._with_ends(apply_temperature(tracks, self.temperature), ends), steps)

    def _with_ends(self, post: np.ndarray, ends: list[np.ndarray | None]) -> np.ndarray:
        return post if self.end_weights is None else with_ends(post, self.labels, ends, self.end_weights)

    @property
    def name(self) -> str:
        """A short name for pages and logs: the task and the folder."""
        return f"{self.task or 'model'} ({self.path.name})"


def with_ends(post: np.ndarray, labels: Sequence[str], ends: Sequence[np.ndarray | None], weights) -> np.ndarray:
    """``post`` ``(n, n_classes)`` with the key classes of the tracks that have ends (``ends[i]`` a ``(2, 12)``
    array, or None) re-weighed by :func:`key_ends.fuse <beatdbn.models.key_ends.fuse>`; ``P(no key)``, the
    tracks without ends and models whose classes are not the 24 keys as they were."""
    cols = key_columns(labels)
    have = np.array([e is not None for e in ends], dtype=bool)
    if cols is None or not have.any():
        return post
    post = np.array(post, dtype=np.float64)
    tonal = post[np.ix_(have, cols)]
    mass = tonal.sum(axis=1, keepdims=True)
    post[np.ix_(have, cols)] = fuse(tonal, np.stack([e for e in ends if e is not None]), weights) * mass
    return post


def key_columns(labels: Sequence[str]) -> np.ndarray | None:
    """The class index of each of the 24 keys in :mod:`beatdbn.models.key_ends`' order (C..B major, C..B minor),
    or None when the classes are not the 24 keys (and perhaps "no key")."""
    cols = {}
    for i, label in enumerate(labels):
        if label == NO_KEY:
            continue
        try:
            tonic, mode = parse_key(label)
        except ParameterError:
            return None
        if mode not in (0, 1):
            return None
        cols[tonic + 12 * (1 - mode)] = i
    return np.array([cols[k] for k in range(24)]) if len(cols) == 24 and len(labels) - 24 <= 1 else None


def label_names(classes: Sequence[str], task: str = "") -> list[str]:
    """User-facing class names: key classes given as numbers 0-11 become C, C#, ..., B."""
    classes = [str(c) for c in classes]
    if task == "key" and classes and all(c.isdigit() and int(c) < 12 for c in classes):
        return [KEY_NAMES[int(c)] for c in classes]
    return classes


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        raise DataError(f"{path}: not valid JSON ({what}); restore it or delete it") from None
    return value if isinstance(value, dict) else {}


def _model_name(path: Path) -> str | None:
    """The model a folder holds: the ``"model"`` of a run's ``config.json``, or a baseline model folder's
    ``"kind"``; None for a conv MLP (run or model folder) or when nothing is recorded."""
    if not path.is_dir():
        return None
    cfg = _read_json(path / "config.json", "run configuration")
    if cfg.get("format") == "beatdbn-convmlp":  # a conv MLP model folder, not a run
        return None
    from beatdbn.models.window_model import FORMAT as WINDOW_MODEL_FORMAT  # reason: lazy, it loads scikit-learn
    if cfg.get("format") == WINDOW_MODEL_FORMAT:  # a baseline model folder
        return str(cfg.get("kind") or "baseline")
    name = cfg.get("model")
    if isinstance(name, str):
        return name
    inner = _read_json(path / "model" / "config.json", "model configuration")
    return str(inner.get("kind") or "baseline") if inner.get("format") == WINDOW_MODEL_FORMAT else None


def load_run(run_dir: str | Path, *, device: str | torch.device = "cpu") -> Run:
    """Load the model a run selected: a conv MLP (``RUN_DIR/model``, or a bare model folder) or a baseline.

    Raises
    ------
    DataError
        ``run_dir`` holds neither a finished run nor a model (the message says
        which), or the model file is not ours.
    """
    path = Path(run_dir)
    if not path.exists():
        raise DataError(f"{path}: no such run directory")
    name = _model_name(path)
    if name is not None and not name.startswith("convmlp"):
        return _load_baseline_run(path, name, device)
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
    from beatdbn.models.convmlp import ConvMLP  # reason: lazy, torch (the shipped model runs without it)

    return _conv_run(path, model_dir, ConvMLP.load(model_dir, device=device).eval())


def _conv_run(path: Path, model_dir: Path, model: Any) -> Run:
    """The :class:`Run` of a conv MLP (torch or numpy) read from ``model_dir``, with its folder's files."""
    selected = _read_json(model_dir / "selected.json", "selected model") if (model_dir / "selected.json").is_file() \
        else {}
    result = ExperimentResult.load(path / "result.json") if (path / "result.json").is_file() else None
    provenance = _read_json(model_dir / "PROVENANCE.json", "provenance")
    run_cfg = _read_json(path / "config.json", "run configuration") if path.is_dir() and model_dir != path else {}
    representation = provenance.get("representation") or run_cfg.get("representation")
    calibration = _read_json(model_dir / "calibration.json", "calibration")
    cfg = model.config
    return Run(path, model, label_names(cfg.class_names, cfg.task), cfg.task, selected, result,
               representation=representation, provenance=provenance, kind="convmlp", calibration=calibration)


def _load_baseline_run(path: Path, name: str, device) -> Run:
    """A baseline run (windowed logistic regression, naive Bayes) through ``inference.baselines``."""
    from beatdbn.inference.baselines import load_baseline  # here: naive Bayes loads scikit-learn
    model = load_baseline(path, device)
    run_cfg = _read_json(path / "config.json", "run configuration")
    result = ExperimentResult.load(path / "result.json") if (path / "result.json").is_file() else None
    task = str(getattr(model, "task", "") or run_cfg.get("task", ""))
    return Run(path, model, label_names(list(model.classes), task), task, {}, result,
               representation=getattr(model, "representation", None) or run_cfg.get("representation"),
               provenance={}, kind=name)


def shipped_model_dir(task: str) -> Path:
    """The folder of the model shipped for ``task`` (see :data:`SHIPPED_MODELS`).

    Raises
    ------
    ParameterError
        No model is shipped for ``task``.
    DataError
        The package lacks the model's files.
    """
    if task not in SHIPPED_MODELS:
        raise ParameterError(f"no model is shipped for task {task!r} (shipped: {', '.join(SHIPPED_MODELS)}); "
                             f"give a RUN_DIR from `beatdbn finetune` instead")
    folder = Path(str(resources.files("beatdbn.pretrained") / SHIPPED_MODELS[task]))
    if not (folder / "model.pt").is_file() or not (folder / "config.json").is_file():
        raise DataError(f"{folder}: the shipped {task} model is missing (model.pt + config.json); "
                        f"rebuild it with `make model`, or reinstall beatdbn with its package data")
    return folder


def shipped_model(task: str = "key", *, device: str | torch.device = "cpu", engine: str = "numpy"
                  ) -> Run:
    """Load the model shipped inside the package for ``task``.

    ``engine="numpy"`` (on the CPU, where ``model.npz`` is shipped) runs it without torch; ``"torch"``, or a
    device other than the CPU, loads ``model.pt`` as a :class:`~beatdbn.models.convmlp.ConvMLP`.

    Examples
    --------
    >>> run = shipped_model("key")
    >>> run.task, run.representation, run.labels[:3], run.labels[-1]
    ('key', 'audio', ['C major', 'C# major', 'D major'], 'no key')
    """
    if engine not in ("numpy", "torch"):
        raise ParameterError(f"engine={engine!r}: must be 'numpy' or 'torch'")
    folder = shipped_model_dir(task)
    if engine == "numpy" and str(device) == "cpu" and (folder / NPZ_FILE).is_file():
        return _conv_run(folder, folder, NumpyConvMLP.load(folder))
    return load_run(folder, device=device)


def needed_model_kind(representation: str) -> str:
    """Which kind of model a track of ``representation`` needs, in words."""
    return ("a model trained on audio features (e.g. the shipped key model, `--task key`)" if representation == "audio"
            else "a model trained on MSD (Echo Nest) features")


def representation_mismatch(run: Run, meta: dict, name: str) -> str | None:
    """An error text when a track's representation is not the one ``run``'s model was trained on, else None."""
    want = run.representation
    have = meta.get("representation") if isinstance(meta, dict) else None
    if not want or not have or want == have:
        return None
    what = "the shipped" if run.provenance.get("shipped") else "this"
    return (f"{name}: holds {REPRESENTATION_NAMES.get(have, have)}, but {what} {run.task or ''} model was "
            f"trained on {REPRESENTATION_NAMES.get(want, want)}; it needs {needed_model_kind(have)}. "
            + ("Give the audio file itself (wav, flac, ogg, mp3), or a RUN_DIR trained on MSD features"
               if want == "audio" else "Give an MSD .h5 file, or a RUN_DIR trained on audio features"))


def as_run(run: "Run | str | Path", device: str | torch.device = "cpu") -> Run:
    """``run`` itself, or the run loaded from a path."""
    return run if isinstance(run, Run) else load_run(run, device=device)
