"""Windowed logistic regression (the paper's second baseline): one job per learning rate of the sweep.

Trained by :func:`beatdbn.train.baselines.run_logreg` (5e-3 ... 5e-7, 30 epochs on windows of 32 beats); its
run loads for inference as a window model (:func:`beatdbn.inference.runs.load_run`). It is Table 1's
reference row (:data:`~beatdbn.experiments.registry.REFERENCE`).
"""

from __future__ import annotations

from pathlib import Path

from beatdbn.experiments.registry import ModelKind, Variant, sweep_scaled
from beatdbn.metrics.results import RESULT_FILE


def _rate_done(lr_dir: Path, settings) -> bool:
    return (lr_dir / RESULT_FILE).exists()


KIND = ModelKind(
    name="logreg",
    order=20,
    variants=(Variant("logreg", "windowed logistic regression", "windowed log. regression"),),
    settings=lambda config, variant: config.baselines,
    rates=lambda settings: settings.learning_rates,
    rate_done=_rate_done,
    cost=lambda settings, beats, **_: 0.03 * beats * settings.epochs * len(settings.learning_rates),
    project=sweep_scaled,
    trainer="beatdbn.train.kinds:logreg",
    help="logistic regression on windows of 32 beats, a learning-rate sweep",
)
