"""Naive Bayes on windows of 32 beats (the paper's first baseline): one fit, no learning rate.

Trained by :func:`beatdbn.train.baselines.run_naive_bayes` (scikit-learn's GaussianNB on standardized
windows); its run loads for inference as a window model (:func:`beatdbn.inference.runs.load_run`).
"""

from __future__ import annotations

from beatdbn.experiments.registry import ModelKind, Variant, one_fit

KIND = ModelKind(
    name="naive_bayes",
    order=10,
    variants=(Variant("naive_bayes", "naive Bayes", "naive Bayes", epochs=False),),
    settings=lambda config, variant: config.baselines,
    cost=lambda settings, beats, **_: 0.02 * beats,
    project=one_fit,
    trainer="beatdbn.train.kinds:naive_bayes",
    help="naive Bayes on windows of 32 beats (GaussianNB)",
)
