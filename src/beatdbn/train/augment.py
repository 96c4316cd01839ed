"""Key transposition for training a key model: rotate the chroma, move the label with it."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from beatdbn.exceptions import ParameterError
from beatdbn.labels import KEY_NAMES, KEY_NAMES_24, NO_KEY
from beatdbn.models.convmlp import rotate_chroma, transposition_table

__all__ = ["key_class_map", "is_key_task", "transpose_batch"]


def key_class_map(classes: Sequence[str]) -> np.ndarray:
    """Key code of each class of a key task (:attr:`~beatdbn.models.convmlp.MLPConfig.transpose_keys`).

    The classes are the 12 tonics :data:`~beatdbn.labels.KEY_NAMES` (codes 0-11), or the 24 keys
    :data:`~beatdbn.labels.KEY_NAMES_24` ("C major" 0 ... "B major" 11, "C minor" 12 ... "B minor" 23),
    either optionally with :data:`~beatdbn.labels.NO_KEY` (code -1: no transposition moves it).

    Raises
    ------
    ParameterError
        The classes are not such a set.

    Examples
    --------
    >>> key_class_map(["A minor", "C major"] + [k for k in KEY_NAMES_24 if k not in ("A minor", "C major")]
    ...               + [NO_KEY])[[0, 1, -1]].tolist()
    [21, 0, -1]
    """
    names = [c for c in classes if c != NO_KEY]
    for vocabulary in (KEY_NAMES, KEY_NAMES_24):
        if sorted(names) == sorted(vocabulary) and len(classes) - len(names) <= 1:
            return np.array([-1 if c == NO_KEY else vocabulary.index(c) for c in classes], dtype=np.int64)
    raise ParameterError(f"augment='transpose' needs a key task whose classes are the 12 keys {list(KEY_NAMES)} or "
                         f"the 24 major and minor keys (either optionally with {NO_KEY!r}); this task has "
                         f"{list(classes)[:12]}{' ...' if len(classes) > 12 else ''}: use --augment none for the "
                         f"artist and genre tasks")


def is_key_task(classes: Sequence[str]) -> bool:
    """True when :func:`key_class_map` accepts ``classes`` (so ``augment='auto'`` transposes)."""
    try:
        key_class_map(classes)
    except ParameterError:
        return False
    return True


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
    key_of_class : torch.Tensor [shape=(n_classes,)], int
        Key code of each class (:func:`key_class_map`).

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
    table = transposition_table(key_of_class.tolist()).to(labels.device)  # (12, n_classes)
    new_labels = table[shifts.to(labels.device), labels]
    return rotate_chroma(x, shifts), new_labels
