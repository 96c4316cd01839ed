"""The untrained conv MLP of an experiment: from a pretrained DBN, its random control, or plain random."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch

from beatdbn.exceptions import ParameterError
from beatdbn.models.convmlp import ConvMLP, MLPConfig
from beatdbn.models.dbn import ConvDBN
from beatdbn.train.finetune_config import INIT_CHOICES

__all__ = ["initial_model"]


def initial_model(init: str, dbn: ConvDBN | None, classes: Sequence[str], *, seed: int, task: str = "",
                  device: str | torch.device = "cpu", template: MLPConfig | None = None,
                  transpose_keys: Sequence[int] = ()) -> ConvMLP:
    """The untrained conv MLP of an experiment.

    ``transpose_keys`` (the key of each class; a key model trained with
    transposition augmentation) makes the model average its posteriors over
    the 12 transpositions (:meth:`ConvMLP.predict_proba`).

    ``init='pretrained'`` copies ``dbn`` (:meth:`ConvMLP.from_dbn`);
    ``init='random'`` draws the paper's control from ``dbn``'s weight
    statistics (:meth:`ConvMLP.random_like`), or, without a DBN, uses the
    plain random initialization of ``ConvMLP(config)`` on the layout of
    ``template`` (paper sizes by default).
    """
    if init not in INIT_CHOICES:
        raise ParameterError(f"init={init!r}: must be one of {INIT_CHOICES}")
    n = len(classes)
    if init == "pretrained":
        if dbn is None:
            raise ParameterError("init='pretrained' needs a pretrained DBN (`--init DBN_DIR`, from `beatdbn pretrain`)")
        model = ConvMLP.from_dbn(dbn, n, seed=seed, classes=classes, task=task)
    elif dbn is not None:
        model = ConvMLP.random_like(dbn, n, seed=seed, classes=classes, task=task)
    else:
        base = (template or MLPConfig()).to_dict()
        base.update(n_classes=n, classes=tuple(classes), task=task, init="random", seed=seed)
        model = ConvMLP(MLPConfig.from_dict(base))
    if transpose_keys:
        model.config = dataclasses.replace(model.config, transpose_keys=tuple(transpose_keys))
    return model.to(device)
