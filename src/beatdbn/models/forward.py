"""The stack's input preparation and its one forward pass, in torch (the sizes are :mod:`beatdbn.models.layout`'s).

The DBN (:mod:`beatdbn.models.dbn`) and the conv MLP
(:mod:`beatdbn.models.convmlp`) both prepare a batch with
:func:`prepare_input` (padding zeroed, timbre normalized per track
(:func:`normalize_timbre`), tracks shorter than the receptive field padded
(:func:`pad_short_tracks`)) and compute layer 4 with :func:`layer4`::

    chroma (12, T) --1a: conv n_maps_1a x width_1--+
    timbre (12, T) --1b: conv n_maps_1b x width_1--+-- concatenate, max-pool pool_1, sigmoid --> layer 2
    layer 2 --3: conv n_maps_3 x width_3--> max-pool pool_3, sigmoid --> layer 4 (n_maps_3, T4)

Sigmoid is monotonic, so ``max_pool(sigmoid(z)) == sigmoid(max_pool(z))``:
the sigmoid is applied after pooling, to a quarter of the units.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F

from beatdbn.exceptions import ParameterError
from beatdbn.models.layout import SHORT_TRACK_RULES, Layout
from beatdbn.models.masks import valid_mask

__all__ = ["prepare_input", "layer2", "layer4", "normalize_timbre", "pad_short_tracks", "Params"]


def normalize_timbre(timbre: torch.Tensor, lengths: torch.Tensor | None = None, *,
                     eps: float = 1e-6) -> torch.Tensor:
    """Normalize each track's timbre to zero mean and unit variance over its valid beats.

    Parameters
    ----------
    timbre : torch.Tensor [shape=(batch, n_timbre, T)]
    lengths : torch.Tensor [shape=(batch,)] or None
        Valid beats per track; padding is ignored by the statistics and set to 0.
    eps : float
        A dimension whose standard deviation (population, over the track) is
        below ``eps`` is centred but not scaled. A dimension that holds one value over the track becomes
        exactly 0 (its float32 mean can miss the value by a rounding error larger than ``eps``, which would
        scale that error to +-1; the numpy forward, :mod:`beatdbn.models.numpy_mlp`, does the same).

    Returns
    -------
    torch.Tensor [shape=(batch, n_timbre, T)]

    Examples
    --------
    >>> x = torch.tensor([[[1.0, 3.0, 5.0], [2.0, 2.0, 2.0]]])
    >>> normalize_timbre(x)
    tensor([[[-1.2247,  0.0000,  1.2247],
             [ 0.0000,  0.0000,  0.0000]]])
    >>> bool((normalize_timbre(torch.full((1, 1, 5), 37.77)) == 0).all())  # 37.77: its float32 mean is inexact
    True
    """
    if timbre.ndim != 3:
        raise ParameterError(f"timbre has shape {tuple(timbre.shape)}: expected (batch, channels, T)")
    n, _, t = timbre.shape
    if lengths is None:
        mean = timbre.mean(dim=2, keepdim=True)
        centred = timbre - mean
        var = centred.square().mean(dim=2, keepdim=True)
        flat = timbre.amax(dim=2, keepdim=True) == timbre.amin(dim=2, keepdim=True) if t else None
    else:
        lengths = torch.as_tensor(lengths, device=timbre.device)
        m = valid_mask(lengths, t)[:, None, :].to(timbre.dtype)
        cnt = lengths.to(timbre.dtype).clamp_min(1)[:, None, None]
        x = torch.where(m > 0, timbre, torch.zeros((), dtype=timbre.dtype, device=timbre.device))
        mean = x.sum(dim=2, keepdim=True) / cnt
        centred = (x - mean) * m
        var = centred.square().sum(dim=2, keepdim=True) / cnt
        inf = torch.tensor(float("inf"), dtype=timbre.dtype, device=timbre.device)
        flat = (torch.where(m > 0, timbre, -inf).amax(dim=2, keepdim=True)
                == torch.where(m > 0, timbre, inf).amin(dim=2, keepdim=True)) if t else None
    if flat is not None:
        centred = centred.masked_fill(flat, 0.0)  # one value over the track: exactly 0, whatever its mean's rounding
    std = var.sqrt()
    std = torch.where(std < eps, torch.ones_like(std), std)
    return centred / std


def pad_short_tracks(x: torch.Tensor, lengths: torch.Tensor | None, *, min_length: int,
                     mode: str = "wrap") -> tuple[torch.Tensor, torch.Tensor]:
    """Extend every track shorter than ``min_length`` beats to exactly ``min_length``.

    Parameters
    ----------
    x : torch.Tensor [shape=(batch, channels, T)]
    lengths : torch.Tensor [shape=(batch,)] or None
        Valid beats per track (``T`` for all when None).
    min_length : int
        Target length (the receptive field, 51, in :class:`ConvDBN`).
    mode : {'wrap', 'edge', 'zeros'}
        Repeat the track cyclically, repeat its last beat, or append zeros.

    Returns
    -------
    x : torch.Tensor [shape=(batch, channels, max(T, min_length))]
    lengths : torch.Tensor [shape=(batch,)]
        ``max(lengths, min_length)``.

    Raises
    ------
    ParameterError
        A track has 0 beats, or ``mode`` is unknown.
    """
    if mode not in SHORT_TRACK_RULES:
        raise ParameterError(f"mode={mode!r}: must be one of {SHORT_TRACK_RULES}")
    n, ch, t = x.shape
    if lengths is None:
        lengths = torch.full((n,), t, dtype=torch.long, device=x.device)
    lengths = torch.as_tensor(lengths, device=x.device).long()
    if n and bool((lengths <= 0).any()):
        bad = torch.nonzero(lengths <= 0).flatten().tolist()
        raise ParameterError(f"tracks {bad} of the batch have 0 beats: a track needs at least one beat")
    if n == 0 or bool((lengths >= min_length).all()):
        return x, lengths
    t_out = max(t, min_length)
    new_lengths = lengths.clamp_min(min_length)
    ar = torch.arange(t_out, device=x.device)[None, :]  # (1, T_out)
    short = (lengths < min_length)[:, None]  # (N, 1)
    if mode == "wrap":
        src = ar % lengths[:, None]
    else:  # 'edge' or 'zeros': past the end, read the last beat
        src = torch.minimum(ar, lengths[:, None] - 1)
    src = torch.where(short, src, ar.clamp_max(t - 1).expand(n, -1))
    out = torch.gather(x, 2, src[:, None, :].expand(n, ch, t_out))
    if mode == "zeros":
        pad = short & (ar >= lengths[:, None])
        out = out.masked_fill(pad[:, None, :], 0.0)
    if t_out > t:  # long tracks: zero the new padding columns
        out = out.masked_fill((~short & (ar >= t))[:, None, :], 0.0)
    return out, new_lengths


def prepare_input(layout: Layout, x: Any, lengths: Any, *, like: torch.Tensor, pad_short: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's input, checked once for both models.

    ``x`` ``(batch, 24, T)`` is moved to ``like``'s device and dtype; padding
    past each track's ``lengths`` is zeroed (even NaN never enters a layer);
    the timbre is normalized per track (``layout.normalize_timbre``); with
    ``pad_short`` tracks shorter than the receptive field are padded
    (``layout.short_track``) so that each has a layer-4 step.

    Raises
    ------
    ParameterError
        ``x`` is not ``(batch, 24, T)``, or ``lengths`` is not ``(batch,)`` within ``[0, T]``.
    """
    c = layout
    x = torch.as_tensor(x)
    if x.ndim != 3 or x.shape[1] != c.n_inputs:
        raise ParameterError(
            f"x has shape {tuple(x.shape)}: expected (batch, {c.n_inputs}, n_beats) with {c.n_chroma} chroma "
            f"then {c.n_timbre} timbre channels; a (n_beats, 24) track needs x.T[None]")
    x = x.to(device=like.device, dtype=like.dtype)
    n, _, t = x.shape
    if lengths is None:
        lengths = torch.full((n,), t, dtype=torch.long, device=x.device)
    else:
        lengths = torch.as_tensor(lengths, device=x.device).long()
        if lengths.shape != (n,):
            raise ParameterError(f"lengths has shape {tuple(lengths.shape)}: expected ({n},)")
        if n and (bool((lengths < 0).any()) or bool((lengths > t).any())):
            raise ParameterError(f"lengths must lie in [0, {t}] (the padded length), got {lengths.tolist()}")
        if n and bool((lengths < t).any()):
            x = x.masked_fill(~valid_mask(lengths, t)[:, None, :], 0.0)
    if c.normalize_timbre:  # before padding short tracks, so that padding does not shift the statistics
        x = torch.cat((x[:, :c.n_chroma], normalize_timbre(x[:, c.n_chroma:], lengths)), dim=1)
    if not pad_short:
        return x, lengths
    return pad_short_tracks(x, lengths, min_length=c.receptive_field, mode=c.short_track)


Params = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


def _pool_sigmoid(h: torch.Tensor, size: int, lengths: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``sigmoid(max_pool(h))`` (floor), and the pooled valid lengths; steps past them zeroed when given."""
    if h.shape[2] < size:
        out = h.new_zeros((h.shape[0], h.shape[1], 0))
    else:
        out = torch.sigmoid(F.max_pool1d(h, size, stride=size))
    if lengths is None:
        return out, None
    lengths = torch.div(lengths, size, rounding_mode="floor")
    if out.shape[2]:
        out = out.masked_fill(~valid_mask(lengths, out.shape[2])[:, None, :], 0.0)
    return out, lengths


def _conv(params: Params, stage: str, v: torch.Tensor, lengths: torch.Tensor | None
          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    weight, bias = params[stage]
    width = weight.shape[2]
    if v.shape[2] < width:
        return v.new_zeros((v.shape[0], weight.shape[0], 0)), None if lengths is None else lengths.clamp_max(0)
    h = F.conv1d(v, weight, bias)
    return h, None if lengths is None else (lengths - width + 1).clamp_min(0)


def layer2(layout: Layout, params: Params, x: torch.Tensor, lengths: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pooled layer-1 probabilities ``(batch, n_maps_1a + n_maps_1b, T2)`` of prepared input (layer 3's input).

    ``params``: stage -> (weight ``(maps, channels, width)``, hidden bias). With ``lengths`` the steps past
    each track's valid ones are zeroed (pretraining statistics); without, the valid steps are the same and
    the rest is left as computed (a forward pass masks layer 4 only).
    """
    c = layout
    ha, la = _conv(params, "1a", x[:, :c.n_chroma], lengths)
    hb, _ = _conv(params, "1b", x[:, c.n_chroma:], lengths)
    return _pool_sigmoid(torch.cat((ha, hb), dim=1), c.pool_1, la)


def layer4(layout: Layout, params: Params, x: torch.Tensor, lengths: torch.Tensor | None = None
           ) -> torch.Tensor:
    """Layer-4 probabilities ``(batch, n_maps_3, T4)`` of prepared input (steps past a track's end not masked)."""
    h2, l2 = layer2(layout, params, x, lengths)
    h3, l3 = _conv(params, "3", h2, l2)
    return _pool_sigmoid(h3, layout.pool_3, l3)[0]
