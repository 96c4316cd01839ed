"""The network's layout, declared once: the layer table, the shared input preparation, the one forward pass.

The DBN (:mod:`beatdbn.models.dbn`, pretrained layer by layer) and the conv
MLP (:mod:`beatdbn.models.convmlp`, finetuned) are the same stack of
layers; only their training differs. Both configs inherit :class:`Layout`
(the sizes: maps, filter widths, pools, input handling), both build their
layers from :data:`LAYERS` (stage name, attribute, visible units, input,
and which config fields give its size, learning rate and sparsity target),
and both compute layer 4 with :func:`layer4`::

    chroma (12, T) --1a: conv n_maps_1a x width_1--+
    timbre (12, T) --1b: conv n_maps_1b x width_1--+-- concatenate, max-pool pool_1, sigmoid --> layer 2
    layer 2 --3: conv n_maps_3 x width_3--> max-pool pool_3, sigmoid --> layer 4 (n_maps_3, T4)

Sigmoid is monotonic, so ``max_pool(sigmoid(z)) == sigmoid(max_pool(z))``:
the sigmoid is applied after pooling, to a quarter of the units; the values
are the DBN's hidden probabilities, max-pooled. Adding a layer type is a row
of :data:`LAYERS` plus its fields in the config that owns its training
settings.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from beatdbn.exceptions import ParameterError
from beatdbn.models.config import check_layer_size
from beatdbn.models.masks import valid_mask

__all__ = ["Layout", "LayerSpec", "LAYERS", "STAGES", "PHASES", "SHORT_TRACK_RULES", "layer_spec", "prepare_input", "layer2",
           "layer4", "output_length", "normalize_timbre", "pad_short_tracks"]

SHORT_TRACK_RULES = ("wrap", "edge", "zeros")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the stack.

    ``inputs``: ``'chroma'``, ``'timbre'`` (the raw channels) or ``'layer2'``
    (the pooled layer-1 maps); ``maps``/``width``/``pool``: the :class:`Layout`
    fields of its size; ``learning_rate``/``sparsity_target``: the
    :class:`~beatdbn.models.dbn.DBNConfig` fields of its pretraining;
    ``phase``: the greedy pretraining phase it is trained in (the layers of
    one phase train together, on every batch).
    """

    stage: str
    phase: str
    attr: str
    visible: str
    inputs: str
    maps: str
    width: str
    pool: str
    learning_rate: str
    sparsity_target: str


#: The paper's stack (section 5.1): stage names, units, inputs and the config fields of each layer.
LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("1a", "layer1", "layer1a", "binary", "chroma", "n_maps_1a", "width_1", "pool_1", "learning_rate_1a",
              "sparsity_target_1"),
    LayerSpec("1b", "layer1", "layer1b", "gaussian", "timbre", "n_maps_1b", "width_1", "pool_1", "learning_rate_1b",
              "sparsity_target_1"),
    LayerSpec("3", "layer3", "layer3", "binary", "layer2", "n_maps_3", "width_3", "pool_3", "learning_rate_3",
              "sparsity_target_3"),
)
STAGES = tuple(spec.stage for spec in LAYERS)
#: Greedy pretraining phases in order, and the stages each trains on every batch.
PHASES: dict[str, tuple[str, ...]] = {}
for _spec in LAYERS:
    PHASES.setdefault(_spec.phase, ())
    PHASES[_spec.phase] += (_spec.stage,)
del _spec


def layer_spec(stage: str) -> LayerSpec:
    """The :data:`LAYERS` row of ``stage``; a :class:`ParameterError` names the stages."""
    for spec in LAYERS:
        if spec.stage == stage:
            return spec
    raise ParameterError(f"stage={stage!r}: must be one of {STAGES}")


@dataclass(frozen=True)
class Layout:
    """Sizes of the stack (paper defaults), shared by ``DBNConfig`` and ``MLPConfig`` (both inherit it)."""

    n_chroma: int = 12  # input channels 0..11
    n_timbre: int = 12  # input channels 12..23
    n_maps_1a: int = 100  # chroma feature maps (layer 1a)
    n_maps_1b: int = 100  # timbre feature maps (layer 1b)
    width_1: int = 8  # layer-1 filter width, beats (two bars)
    pool_1: int = 4  # max-pool after layer 1 (one bar)
    n_maps_3: int = 100  # layer-3 feature maps
    width_3: int = 8  # layer-3 filter width, pooled steps (eight bars)
    pool_3: int = 4  # max-pool after layer 3 (layer 4)
    normalize_timbre: bool = True  # per-track zero mean / unit variance inside the network
    short_track: str = "wrap"  # 'wrap' | 'edge' | 'zeros': padding of tracks < receptive field

    def check_layout(self) -> None:
        """Raise :class:`ParameterError` naming the first bad size."""
        name = type(self).__name__
        for f in ("n_chroma", "n_timbre", "n_maps_1a", "n_maps_1b", "width_1", "pool_1", "n_maps_3", "width_3",
                  "pool_3"):
            value = getattr(self, f)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ParameterError(f"{name}.{f}={value!r}: must be an int >= 1")
        if self.short_track not in SHORT_TRACK_RULES:
            raise ParameterError(f"{name}.short_track={self.short_track!r}: must be one of {SHORT_TRACK_RULES}")
        for spec in LAYERS:  # before anything is allocated: 10**9 feature maps is one line, not a MemoryError
            check_layer_size(name, spec.maps, n_hidden=getattr(self, spec.maps), n_visible=self.n_visible(spec),
                             width=getattr(self, spec.width))

    @property
    def layout(self) -> "Layout":
        """The sizes alone (a plain :class:`Layout`)."""
        return Layout(**self.layout_fields())

    def layout_fields(self) -> dict[str, Any]:
        """The :class:`Layout` fields of this config, by name (to build another config of the same layout)."""
        return {f.name: getattr(self, f.name) for f in fields(Layout)}

    def n_visible(self, spec: LayerSpec) -> int:
        """Input channels of a layer."""
        return {"chroma": self.n_chroma, "timbre": self.n_timbre,
                "layer2": self.n_maps_1a + self.n_maps_1b}[spec.inputs]

    @property
    def n_inputs(self) -> int:
        """Input channels: chroma then timbre (24)."""
        return self.n_chroma + self.n_timbre

    @property
    def receptive_field(self) -> int:
        """Beats read by one layer-4 output: ``pool_1 * (pool_3 - 1 + width_3) + width_1 - 1`` (51)."""
        return self.pool_1 * (self.pool_3 - 1 + self.width_3) + self.width_1 - 1

    @property
    def hop(self) -> int:
        """Beats between consecutive layer-4 outputs: ``pool_1 * pool_3`` (16)."""
        return self.pool_1 * self.pool_3

    @property
    def n_features(self) -> int:
        """Channels of the layer-4 output (``n_maps_3``)."""
        return self.n_maps_3


def output_length(n_beats: int | torch.Tensor, config: "Layout" | None = None) -> int | torch.Tensor:
    """Layer-4 steps for a track of ``n_beats`` beats (0 when shorter than the receptive field).

    ``((n_beats - width_1 + 1) // pool_1 - width_3 + 1) // pool_3``, clipped at 0.
    """
    c = config if config is not None else Layout()
    if isinstance(n_beats, torch.Tensor):
        t1 = (n_beats - c.width_1 + 1).clamp_min(0)
        t3 = (torch.div(t1, c.pool_1, rounding_mode="floor") - c.width_3 + 1).clamp_min(0)
        return torch.div(t3, c.pool_3, rounding_mode="floor")
    t1 = max(int(n_beats) - c.width_1 + 1, 0)
    t3 = max(t1 // c.pool_1 - c.width_3 + 1, 0)
    return t3 // c.pool_3


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
        below ``eps`` is constant: it is centred but not scaled (becomes 0).

    Returns
    -------
    torch.Tensor [shape=(batch, n_timbre, T)]

    Examples
    --------
    >>> x = torch.tensor([[[1.0, 3.0, 5.0], [2.0, 2.0, 2.0]]])
    >>> normalize_timbre(x)
    tensor([[[-1.2247,  0.0000,  1.2247],
             [ 0.0000,  0.0000,  0.0000]]])
    """
    if timbre.ndim != 3:
        raise ParameterError(f"timbre has shape {tuple(timbre.shape)}: expected (batch, channels, T)")
    n, _, t = timbre.shape
    if lengths is None:
        mean = timbre.mean(dim=2, keepdim=True)
        centred = timbre - mean
        var = centred.square().mean(dim=2, keepdim=True)
    else:
        lengths = torch.as_tensor(lengths, device=timbre.device)
        m = valid_mask(lengths, t)[:, None, :].to(timbre.dtype)
        cnt = lengths.to(timbre.dtype).clamp_min(1)[:, None, None]
        x = torch.where(m > 0, timbre, torch.zeros((), dtype=timbre.dtype, device=timbre.device))
        mean = x.sum(dim=2, keepdim=True) / cnt
        centred = (x - mean) * m
        var = centred.square().sum(dim=2, keepdim=True) / cnt
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
