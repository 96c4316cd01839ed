"""Key transposition for training a key model: rotate the chroma, move the label with it."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from beatdbn.exceptions import ParameterError
from beatdbn.labels import KEY_NAMES
from beatdbn.models.convmlp import rotate_chroma

__all__ = ["key_class_map", "transpose_batch"]


def key_class_map(classes: Sequence[str]) -> np.ndarray:
    """Key index (0 = C ... 11 = B) of each class of a key task.

    Raises
    ------
    ParameterError
        The classes are not the 12 key names :data:`~beatdbn.labels.KEY_NAMES`.
    """
    if sorted(classes) != sorted(KEY_NAMES):
        raise ParameterError(f"augment='transpose' needs a key task whose classes are the 12 keys {list(KEY_NAMES)}; "
                             f"this task has {list(classes)[:12]}{' ...' if len(classes) > 12 else ''}: use "
                             f"--augment none for the artist and genre tasks")
    return np.array([KEY_NAMES.index(c) for c in classes], dtype=np.int64)


def transpose_batch(x: torch.Tensor, labels: torch.Tensor, shifts: torch.Tensor, key_of_class: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each track's chroma by ``shifts`` semitones and shift its key label to match.

    Parameters
    ----------
    x : torch.Tensor [shape=(batch, 24, T)]
        Chroma (channels 0-11) then timbre (unchanged).
    labels : torch.Tensor [shape=(batch,)], int
        Class indices.
    shifts : torch.Tensor [shape=(batch,)], int
        Semitones ``k``: chroma bin ``c`` moves to ``(c + k) mod 12``.
    key_of_class : torch.Tensor [shape=(12,)], int
        Key index of each class (:func:`key_class_map`).

    Returns
    -------
    x : torch.Tensor [shape=(batch, 24, T)]
    labels : torch.Tensor [shape=(batch,)]

    Examples
    --------
    >>> x = torch.zeros(1, 24, 2); x[0, 0] = 1.0  # all energy on C
    >>> keys = torch.arange(12)
    >>> y, lab = transpose_batch(x, torch.tensor([0]), torch.tensor([2]), keys)
    >>> int(y[0, :12, 0].argmax()), int(lab[0])  # now on D, label D
    (2, 2)
    """
    shifts = shifts.to(x.device).long()
    key_of_class = key_of_class.to(labels.device)
    class_of_key = torch.empty_like(key_of_class)
    class_of_key[key_of_class] = torch.arange(len(key_of_class), device=labels.device)
    new_labels = class_of_key[(key_of_class[labels] + shifts.to(labels.device)) % 12]
    return rotate_chroma(x, shifts), new_labels
