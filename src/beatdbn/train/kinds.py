"""How each model kind of the experiment registry trains one job: bound by name (``ModelKind.trainer``).

A kind (:mod:`beatdbn.experiments.kinds`) declares its trainer as ``"module:function"``; :func:`train`
imports it and calls it with the :class:`~beatdbn.experiments.registry.TrainJob`. The paper's kinds
train here, with the trainers of :mod:`beatdbn.train.baselines` and :mod:`beatdbn.train.finetune`; a new
kind may bring its own trainer in its module.
"""

from __future__ import annotations

import importlib

from beatdbn.experiments import registry
from beatdbn.experiments.registry import TrainJob
from beatdbn.metrics.results import ExperimentResult
from beatdbn.train.baselines import run_logreg, run_naive_bayes
from beatdbn.train.finetune import run_convmlp

__all__ = ["train", "naive_bayes", "logreg", "convmlp"]


def train(job: TrainJob) -> ExperimentResult:
    """Train ``job`` with its kind's trainer (the registry's entry point ``"module:function"``)."""
    module, _, function = registry.kind(job.variant.name).trainer.partition(":")
    return getattr(importlib.import_module(module), function)(job)


def naive_bayes(job: TrainJob) -> ExperimentResult:
    """GaussianNB on windows (:func:`~beatdbn.train.baselines.run_naive_bayes`)."""
    return run_naive_bayes(*job.splits, task=job.task, out=job.out, config=job.settings, progress=job.progress)


def logreg(job: TrainJob) -> ExperimentResult:
    """Windowed logistic regression, the job's learning rates (:func:`~beatdbn.train.baselines.run_logreg`)."""
    return run_logreg(*job.splits, task=job.task, out=job.out, config=job.settings, progress=job.progress,
                      device=job.device)


def convmlp(job: TrainJob) -> ExperimentResult:
    """The conv MLP of the job's init and recipe (:func:`~beatdbn.train.finetune.run_convmlp`)."""
    return run_convmlp(*job.splits, task=job.task, init=job.variant.params["init"], dbn=job.dbn(), out=job.out,
                       config=job.settings, device=job.device, progress=job.progress, plots=job.plots)
