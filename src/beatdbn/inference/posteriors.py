"""Posteriors of tracks: per track (the mean over layer-4 steps) and per step (over time).

The conv MLP gives every layer-4 step a softmax posterior; a track's posterior
is their mean (section 5.1 of the paper). :func:`split_posteriors` returns the
track posteriors of a list of tracks (training uses it to evaluate a split),
:func:`step_posteriors` the per-step ones, and :func:`predict_features` the
track posteriors of any run (a conv MLP or a baseline).

Tracks are batched by similar length (:func:`~beatdbn.data.splits.bucketed_order`)
and come back in input order. With ``config.transpose_keys`` (a key model
trained with transposition augmentation) each step's posterior is averaged over
the 12 transpositions, exactly as :meth:`ConvMLP.predict_proba` does for the
track, so the mean of :func:`step_posteriors` equals :func:`split_posteriors`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from beatdbn.data.splits import bucketed_order, padded_batch
from beatdbn.inference.runs import Run, as_run, check_tracks
from beatdbn.metrics.calibration import apply_temperature
from beatdbn.models.convmlp import ConvMLP

__all__ = ["split_posteriors", "step_posteriors", "step_probabilities", "predict_features"]


def split_posteriors(model: ConvMLP, features: Sequence[np.ndarray], *, batch_size: int = 64,
                     device: str | torch.device | None = None) -> np.ndarray:
    """Track posteriors ``(n_tracks, n_classes)`` of a list of ``(n_beats, 24)`` tracks, in float64.

    Tracks are batched by similar length; the rows come back in input order.
    """
    device = model.layer1a.weight.device if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    out = np.zeros((len(features), model.config.n_classes), dtype=np.float64)
    lengths = np.array([len(f) for f in features], dtype=np.int64)
    with torch.no_grad():
        for idx in bucketed_order(lengths, batch_size, rng=None):
            x, xl = padded_batch([features[i] for i in idx], device=device)
            out[idx] = model.predict_proba(x, xl).double().cpu().numpy()
    model.train(was_training)
    return out


def step_probabilities(model: ConvMLP, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step posteriors ``(batch, n_classes, T4)`` (0 past a track's end) and the valid steps of each track
    (:meth:`ConvMLP.step_proba`: with the transposition average of a key model)."""
    return model.step_proba(x, lengths)


def step_posteriors(model: ConvMLP, features: Sequence[np.ndarray], *, batch_size: int = 32,
                    device: str | torch.device | None = None) -> list[np.ndarray]:
    """Per track, the posterior of every layer-4 step: ``(n_steps, n_classes)`` float64 arrays, in input order.

    A track's row mean is its :func:`split_posteriors` row (tested).
    """
    device = model.layer1a.weight.device if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    out: list[np.ndarray | None] = [None] * len(features)
    lengths = np.array([len(f) for f in features], dtype=np.int64)
    with torch.no_grad():
        for idx in bucketed_order(lengths, batch_size, rng=None):
            x, xl = padded_batch([features[i] for i in idx], device=device)
            p, l4 = step_probabilities(model, x, xl)
            p = p.transpose(1, 2).double().cpu().numpy()  # (B, T4, C)
            for j, i in enumerate(idx):
                out[i] = p[j, :int(l4[j])]
    model.train(was_training)
    return out  # type: ignore[return-value]


def predict_features(run: Run | str, features: Sequence[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
    """Track posteriors ``(n_tracks, n_classes)`` for ``(n_beats, 24)`` feature arrays, with any run's model.

    With a calibrated run (``calibration.json`` beside the model: :attr:`Run.temperature`) the posteriors
    are rescaled by its temperature, so a probability shown is one (per-step posteriors are not).

    Raises
    ------
    ParameterError
        A track is not ``(n_beats, 24)`` or has 0 beats.
    """
    run = as_run(run)
    check_tracks(run, features)
    if not len(features):
        return np.zeros((0, run.n_classes))
    feats = [np.asarray(f, dtype=np.float32) for f in features]
    if run.has_steps:
        post = split_posteriors(run.model, feats, batch_size=batch_size)
    else:
        post = np.asarray(run.model.predict_proba(feats), dtype=np.float64)
    return apply_temperature(post, run.temperature)  # calibrated (run.calibration); T = 1 leaves it as it is
