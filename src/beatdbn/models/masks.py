"""Masks of padded batches: which steps of each sequence are valid."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["valid_mask", "hidden_mask"]


def valid_mask(lengths: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Boolean mask ``(batch, n_steps)``: True where ``t < lengths[n]``.

    Parameters
    ----------
    lengths : torch.Tensor [shape=(batch,)]
        Valid length of each sequence.
    n_steps : int
        Padded length.
    """
    ar = torch.arange(n_steps, device=lengths.device)
    return ar[None, :] < lengths[:, None]


def hidden_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    """Hidden positions whose whole receptive field is valid.

    Parameters
    ----------
    mask : torch.Tensor [shape=(batch, T)], bool
        Valid visible steps.
    width : int
        Filter width.

    Returns
    -------
    torch.Tensor [shape=(batch, T - width + 1)], bool
        ``out[n, t] = all(mask[n, t:t + width])`` (a sliding minimum).
    """
    if mask.shape[1] < width:
        return mask.new_zeros((mask.shape[0], 0))
    m = mask.to(torch.float32)[:, None, :]
    return (-F.max_pool1d(-m, width, stride=1))[:, 0, :] > 0.5
