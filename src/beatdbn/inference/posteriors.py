"""Posteriors of tracks for training and evaluation: per track (the mean over layer-4 steps) and per step.

The conv MLP gives every layer-4 step a softmax posterior; a track's posterior
is their mean (section 5.1 of the paper). Both come from one forward pass
(:func:`~beatdbn.inference.classifier.conv_posteriors`, with the 12
transpositions of a key model inside :meth:`ConvMLP.step_proba
<beatdbn.models.convmlp.ConvMLP.step_proba>`). :func:`split_posteriors` gives
the track posteriors of a list of tracks (training evaluates a split with it),
:func:`step_posteriors` the per-step ones, :func:`predict_features` the
(calibrated) track posteriors of any run: :meth:`Run.predict_proba
<beatdbn.inference.runs.Run.predict_proba>`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from beatdbn.inference.classifier import conv_posteriors
from beatdbn.inference.runs import Run, as_run
from beatdbn.models.convmlp import ConvMLP

__all__ = ["split_posteriors", "step_posteriors", "predict_features"]


def split_posteriors(model: ConvMLP, features: Sequence[np.ndarray], *, batch_size: int = 64,
                     device: str | torch.device | None = None) -> np.ndarray:
    """Track posteriors ``(n_tracks, n_classes)`` of a list of ``(n_beats, 24)`` tracks, in float64, input order."""
    return conv_posteriors(model, features, batch_size=batch_size, device=device)[0]


def step_posteriors(model: ConvMLP, features: Sequence[np.ndarray], *, batch_size: int = 32,
                    device: str | torch.device | None = None) -> list[np.ndarray]:
    """Per track, the posterior of every layer-4 step: ``(n_steps, n_classes)`` float64 arrays, in input order.

    A track's row mean is its :func:`split_posteriors` row (tested).
    """
    return conv_posteriors(model, features, over_time=True, batch_size=batch_size, device=device)[1]


def predict_features(run: Run | str, features: Sequence[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
    """Track posteriors ``(n_tracks, n_classes)`` for ``(n_beats, 24)`` feature arrays, with any run's model
    (calibrated: :meth:`Run.predict_proba`).

    Raises
    ------
    ParameterError
        A track is not ``(n_beats, 24)``, has 0 beats or a non-finite value.
    """
    return as_run(run).predict_proba(features, batch_size=batch_size).tracks
