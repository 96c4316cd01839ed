"""The conv MLP's training protocol: :class:`FinetuneConfig` and its named recipes ('paper', 'beatdbn').

Why each setting of the 'beatdbn' recipe is what it is, with the measurements,
is in the docstring of :mod:`beatdbn.train.finetune`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from beatdbn.exceptions import ParameterError
from beatdbn.experiments.kinds.convmlp import INITS, RECIPES, model_name, updates_per_epoch
from beatdbn.models.config import JsonConfig

__all__ = ["FinetuneConfig", "RECIPES", "BEATDBN_RECIPE", "INIT_CHOICES", "model_name", "updates_per_epoch"]

#: Initializations ``run_convmlp`` accepts (the model name is ``convmlp_<init>``); the recipes (:data:`RECIPES`),
#: the inits and the experiment names (:func:`model_name`) live with the conv MLP kind of the experiment
#: registry (:mod:`beatdbn.experiments.kinds.convmlp`).
INIT_CHOICES = INITS
_PRECISIONS = ("fp32", "bf16")
_AUGMENTS = ("none", "transpose", "auto")

_OPTIMIZERS = ("sgd", "adam")
_SCHEDULES = ("constant", "warmup_cosine")


@dataclass(frozen=True)
class FinetuneConfig(JsonConfig):
    """The training protocol of the conv MLP; saved as JSON with :meth:`to_dict`.

    The defaults are the paper's section 6 (the ``'paper'`` recipe); use
    :meth:`for_recipe` for a named recipe (``'beatdbn'``: the one that
    converges on small real corpora).
    """

    learning_rates: tuple[float, ...] = (0.05, 0.005, 0.0005)  # swept; chosen on validation
    epochs: int = 30  # training epochs per learning rate
    snapshot_epochs: tuple[int, ...] = (20, 30)  # models kept and tested (those <= epochs, and the last)
    batch_size: int = 16  # tracks per SGD step (loss: mean over tracks)
    eval_batch_size: int = 64  # tracks per forward pass when evaluating
    momentum: float = 0.0  # plain SGD unless asked
    seed: int = 0  # initial weights, batch order, transpositions
    precision: str = "fp32"  # 'fp32' | 'bf16' (autocast for training; evaluation is fp32)
    augment: str = "none"  # 'none' | 'transpose' (key task only) | 'auto' (transpose when the task is key)
    recipe: str = "paper"  # the named recipe these settings start from ('paper' | 'beatdbn'); in the model name
    overrides: tuple[str, ...] = ()  # settings changed from the named recipe (recorded, so a run says so)
    optimizer: str = "sgd"  # 'sgd' (paper) | 'adam'
    schedule: str = "constant"  # 'constant' (paper) | 'warmup_cosine' (linear warm-up, cosine decay per update)
    warmup: float = 0.0  # fraction of all updates spent warming up (warmup_cosine)
    min_updates: int = 0  # an epoch makes at least ceil(min_updates / epochs) updates (more passes on small tasks)
    crop: int = 0  # beats per random training crop (0: whole tracks); evaluation always uses whole tracks
    weight_decay: float = 0.0  # decoupled for adam (AdamW), L2 for sgd

    def __post_init__(self) -> None:
        for name in ("learning_rates", "snapshot_epochs"):
            value = getattr(self, name)
            if isinstance(value, (int, float)):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "overrides", tuple(self.overrides))
        lrs = self.learning_rates
        if not lrs or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r) and r > 0
                              for r in lrs):
            raise ParameterError(f"learning_rates={list(lrs)!r}: need one or more finite rates > 0")
        if len(set(lrs)) != len(lrs):
            raise ParameterError(f"learning_rates={list(lrs)!r}: a rate is repeated")
        object.__setattr__(self, "learning_rates", tuple(float(r) for r in lrs))
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ParameterError(f"{name}={value!r}: must be an int >= 1")
        for name in ("min_updates", "crop"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise ParameterError(f"{name}={value!r}: must be an int >= 0")
        if not all(isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in self.snapshot_epochs):
            raise ParameterError(f"snapshot_epochs={list(self.snapshot_epochs)!r}: must be ints >= 1")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise ParameterError(f"momentum={self.momentum!r}: must be in [0, 1)")
        if not (isinstance(self.warmup, (int, float)) and 0 <= self.warmup < 1):
            raise ParameterError(f"warmup={self.warmup!r}: must be a fraction in [0, 1)")
        if not (isinstance(self.weight_decay, (int, float)) and 0 <= self.weight_decay < 1):
            raise ParameterError(f"weight_decay={self.weight_decay!r}: must be in [0, 1)")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ParameterError(f"seed={self.seed!r}: must be an int")
        for name, allowed in (("precision", _PRECISIONS), ("augment", _AUGMENTS), ("optimizer", _OPTIMIZERS),
                              ("schedule", _SCHEDULES), ("recipe", RECIPES)):
            if getattr(self, name) not in allowed:
                raise ParameterError(f"{name}={getattr(self, name)!r}: must be one of {allowed}")

    @classmethod
    def for_recipe(cls, name: str, *, quick: bool = False, **overrides: Any) -> "FinetuneConfig":
        """The settings of a named recipe, with ``overrides`` on top.

        * ``'paper'``: section 6 exactly: plain SGD at 0.05 / 0.005 / 0.0005,
          batches of 16 whole tracks, 30 epochs, snapshots at 20 and 30.
        * ``'beatdbn'``: the recipe that converges on small real corpora
          (see :data:`BEATDBN_RECIPE` for every setting and why).

        ``quick`` shrinks either to a smoke run (10 epochs, snapshot at 7,
        two learning rates). The names of the ``overrides`` that change a
        training setting of the recipe (anything but ``seed``, ``precision``
        and ``eval_batch_size``) are recorded in ``overrides``.

        Examples
        --------
        >>> FinetuneConfig.for_recipe("paper").learning_rates
        (0.05, 0.005, 0.0005)
        >>> FinetuneConfig.for_recipe("beatdbn", epochs=5).overrides
        ('epochs',)
        """
        if name not in RECIPES:
            raise ParameterError(f"recipe {name!r}: must be one of {RECIPES}")
        base: dict[str, Any] = {"recipe": name}
        if name == "beatdbn":
            base.update(BEATDBN_RECIPE)
        if quick:
            base.update(epochs=10, snapshot_epochs=(7, 10),
                        learning_rates=tuple((base.get("learning_rates") or cls.learning_rates)[:2]))
        neutral = {"seed", "precision", "eval_batch_size"}
        recipe, full = cls(**base), cls(**{**base, **overrides})
        changed = tuple(sorted(k for k in overrides if k not in neutral and getattr(recipe, k) != getattr(full, k)))
        return dataclasses.replace(full, overrides=changed)

    @property
    def snapshots(self) -> tuple[int, ...]:
        """Epochs evaluated on test and kept: ``snapshot_epochs`` up to ``epochs``, plus ``epochs``."""
        return tuple(sorted({e for e in self.snapshot_epochs if e <= self.epochs} | {self.epochs}))


#: The ``'beatdbn'`` recipe's settings (on top of the paper's); the measurements behind each are in the
#: module docstring.
BEATDBN_RECIPE: dict[str, Any] = {
    "learning_rates": (0.003, 0.001),
    "optimizer": "adam",
    "schedule": "warmup_cosine",
    "warmup": 0.05,
    "min_updates": 1500,
    "crop": 128,
    "batch_size": 32,
    "augment": "auto",
}
