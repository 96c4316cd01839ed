"""What one epoch of finetuning feeds the model: its batches and crops, the learning-rate schedule, the optimizer."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from beatdbn.data.splits import bucketed_order
from beatdbn.models.convmlp import ConvMLP
from beatdbn.train.finetune_config import FinetuneConfig, updates_per_epoch

__all__ = ["epoch_batches", "lr_factor", "make_optimizer"]


def epoch_batches(lengths: np.ndarray, config: FinetuneConfig, rng: np.random.Generator
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(track indices, crop starts)`` of every update of one epoch.

    Passes over the tracks (each in length-bucketed random order) are
    chained until the epoch has :func:`updates_per_epoch` batches; every
    pass draws a fresh random crop start for each track (0 without ``crop``
    or for a track no longer than it).
    """
    want = updates_per_epoch(len(lengths), config)
    span = np.maximum(lengths - config.crop, 0) + 1 if config.crop else np.ones_like(lengths)
    eff = np.minimum(lengths, config.crop) if config.crop else lengths
    out: list[tuple[np.ndarray, np.ndarray]] = []
    while len(out) < want:
        starts = (rng.random(len(lengths)) * span).astype(np.int64)
        out.extend((idx, starts[idx]) for idx in bucketed_order(eff, config.batch_size, rng=rng))
    return out[:want]


def lr_factor(config: FinetuneConfig, total_updates: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate after ``step`` updates (constant, or warm-up then cosine to 0)."""
    if config.schedule == "constant":
        return lambda step: 1.0
    warm = max(1, int(round(config.warmup * total_updates)))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_updates - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def make_optimizer(model: ConvMLP, lr: float, config: FinetuneConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
