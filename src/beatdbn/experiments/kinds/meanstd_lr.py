"""Mean/std logistic regression: a track as the mean and standard deviation of its beat-aligned features.

Each track becomes 48 numbers, the mean and the standard deviation over its beats of the 12 chroma and 12
timbre values (an MFCC-style bag of frames: no order in time), standardized with the training tracks'
statistics, into scikit-learn's multinomial logistic regression (L-BFGS, deterministic). One fit, no
epochs and no learning rate: a floor for Table 1, what a track's average sound alone tells.

Opt-in (the default Table 1 stays the paper's): ``beatdbn reproduce --models +meanstd_lr`` adds its row
after naive Bayes. Its run folder holds ``result.json`` only (with each test track's prediction, so Table 1
tests its differences); there is no ``model/`` to load for ``predict`` (``loads=None``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beatdbn.data.splits import check_splits, splits_fingerprint
from beatdbn.exceptions import ParameterError
from beatdbn.experiments.registry import ModelKind, TrainJob, Variant, one_fit
from beatdbn.metrics.predictions import predicted, targets_of
from beatdbn.metrics.results import RESULT_FILE, ExperimentResult
from beatdbn.metrics.scores import accuracy, chance_level, confusion_matrix, per_class_accuracy

__all__ = ["MeanStdConfig", "track_statistics", "train", "KIND"]

NAME = "meanstd_lr"


@dataclass(frozen=True)
class MeanStdConfig:
    """The logistic regression's settings (recorded in ``result.json``)."""

    C: float = 1.0  # inverse L2 strength (scikit-learn's default)
    max_iter: int = 1000  # L-BFGS iterations at most


def track_statistics(features) -> np.ndarray:
    """Each track's mean and standard deviation over its beats.

    Parameters
    ----------
    features : list of np.ndarray [shape=(n_beats, d)]

    Returns
    -------
    np.ndarray [shape=(n_tracks, 2 * d), dtype=float64]

    Examples
    --------
    >>> track_statistics([np.array([[0.0, 2.0], [2.0, 2.0]])]).tolist()
    [[1.0, 2.0, 1.0, 0.0]]
    """
    return np.stack([np.concatenate([np.mean(f, axis=0, dtype=np.float64), np.std(f, axis=0, dtype=np.float64)])
                     for f in features])


def _proba(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Class posteriors over every class of the task (a class absent from training gets 0)."""
    out = np.zeros((len(x), n_classes))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def train(job: TrainJob) -> ExperimentResult:
    """Fit on the training tracks, evaluate valid and test; resumes (returns) a finished result of the same
    settings and splits.

    Raises
    ------
    DataError
        Unusable splits (empty, mismatched classes, a track of 0 beats).
    ParameterError
        ``job.out`` holds a result of other settings or other splits.
    """
    from sklearn.linear_model import LogisticRegression  # reason: lazy, scikit-learn (fast --help)

    train_split, valid, test = job.splits
    classes = check_splits(train_split, valid, test)
    settings = {"task": job.task, "model": NAME, "config": dataclasses.asdict(job.settings),
                "splits": splits_fingerprint(train_split, valid, test)}
    out = Path(job.out)
    if (out / RESULT_FILE).exists():
        done = ExperimentResult.load(out / RESULT_FILE)
        if done.extra.get("settings") != settings:
            raise ParameterError(f"{out}: holds a {NAME} result of other settings or splits; use a new run folder")
        return done
    t0 = time.perf_counter()
    x = {name: track_statistics(s.features) for name, s in (("train", train_split), ("valid", valid), ("test", test))}
    mean, std = x["train"].mean(axis=0), x["train"].std(axis=0)
    std[std == 0] = 1.0
    z = {name: (v - mean) / std for name, v in x.items()}
    model = LogisticRegression(C=job.settings.C, max_iter=job.settings.max_iter).fit(z["train"], train_split.labels)
    n = len(classes)
    valid_pred = _proba(model, z["valid"], n).argmax(axis=1)
    test_pred = _proba(model, z["test"], n).argmax(axis=1)
    row = {"learning_rate": None, "epoch": 0, "valid_accuracy": accuracy(valid.labels, valid_pred),
           "test_accuracy": accuracy(test.labels, test_pred),
           "per_class_accuracy": [None if not np.isfinite(v) else float(v)
                                  for v in per_class_accuracy(test.labels, test_pred, n)],
           "confusion": confusion_matrix(test.labels, test_pred, n).tolist(), "test_predicted": predicted(test_pred),
           "seconds": time.perf_counter() - t0}
    result = ExperimentResult(job.task, NAME, classes=classes, chance=chance_level(train_split.labels, n), runs=[row],
                              seconds=time.perf_counter() - t0,
                              extra={"config": settings["config"], "settings": settings, **targets_of(test),
                                     "note": "per-track mean and std of the 24 features, standardized on train; "
                                             "scikit-learn LogisticRegression (L-BFGS)"})
    out.mkdir(parents=True, exist_ok=True)
    result.save(out)
    if job.progress is not None:
        job.progress({"step": 1, "total": 1, "message": f"mean/std LR: test accuracy {row['test_accuracy']:.1%}"})
    return result


KIND = ModelKind(
    name=NAME,
    order=15,
    variants=(Variant(NAME, "mean/std logistic regression", "mean/std log. regression", epochs=False),),
    settings=lambda config, variant: MeanStdConfig(),
    cost=lambda settings, beats, **_: 0.01 * beats,
    project=one_fit,
    trainer=f"{__name__}:train",
    default=False,
    loads=None,
    help="logistic regression on each track's mean and std of its features (a floor; opt-in)",
)
