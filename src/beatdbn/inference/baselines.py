"""Loading a finished window-baseline run (windowed logistic regression, naive Bayes) for prediction.

A baseline run (:mod:`beatdbn.train.baselines`) saves its selected model in
``RUN_DIR/model`` as a :class:`~beatdbn.models.window_model.WindowModel`:
the classifier's state dict, its standardizer and windowing, its classes,
task and representation. :func:`load_baseline` reads it back; its
``predict_proba(features)`` pools each track's window posteriors by their
mean, the rule of Table 1, so a file gets the answer the run's test split got.
"""

from __future__ import annotations

from pathlib import Path

import torch

from beatdbn.exceptions import DataError
from beatdbn.models.window_model import WindowModel

__all__ = ["load_baseline"]


def load_baseline(run_dir: str | Path, device: str | torch.device = "cpu") -> WindowModel:
    """The selected model of a finished baseline run (or a baseline model folder).

    Raises
    ------
    DataError
        The run is unfinished, or was written by a beatdbn that did not save its model (retrain it).
    """
    path = Path(run_dir)
    folder = path if (path / "model.pt").is_file() and (path / "config.json").is_file() and \
        not (path / "model").is_dir() else path / "model"
    if not (folder / "config.json").is_file():
        raise DataError(f"{path}: a baseline run without a saved model (model/ missing: unfinished, or written by an "
                        f"older beatdbn); rerun `beatdbn baseline` into a new --out")
    return WindowModel.load(folder, device=device)
