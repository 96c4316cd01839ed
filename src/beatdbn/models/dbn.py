"""The convolutional deep belief network of section 5.1 (Dieleman et al., 2011).

Layout, for a batch of beat-aligned tracks ``x`` shaped ``(batch, 24, T)``
(channels 0-11 chroma in ``[0, 1]``, 12-23 timbre)::

    0a chroma (12, T) --1a BernoulliCRBM 100 maps x 8 beats--> (100, T-7) --max-pool 4--> (100, T2)
    0b timbre (12, T) --1b GaussianCRBM  100 maps x 8 beats--> (100, T-7) --max-pool 4--> (100, T2)
    concatenate --> (200, T2)  (T2 = (T - 7) // 4, about one bar a step)
    --3 BernoulliCRBM 100 maps x 8 steps--> (100, T2-7) --max-pool 4--> layer 4 (100, T4)
    T4 = (T2 - 7) // 4

Every layer passes on hidden *probabilities* ``P(h = 1 | v)``; max-pooling is
over non-overlapping blocks of 4 steps and drops an incomplete last block
(floor), so every output sees a complete input window.

**Receptive field.** One layer-4 output pools 4 consecutive layer-3 outputs,
which together read ``4 - 1 + 8 = 11`` pooled steps; each pooled step is 4
consecutive layer-1 outputs, so 44 layer-1 outputs, which read
``44 - 1 + 8 = 51`` beats. In general
``RF = pool_1 * (pool_3 - 1 + width_3) + width_1 - 1 = 4 * 11 + 7 = 51`` beats,
and consecutive layer-4 outputs are ``pool_1 * pool_3 = 16`` beats apart:
a track of ``T >= 51`` beats gives ``((T - 7) // 4 - 7) // 4`` outputs
(:func:`output_length`), output ``i`` reading beats ``[16 i, 16 i + 51)``.
(Per-track timbre normalization also makes every output depend, weakly, on
the whole track through the track's timbre mean and variance.)

**Short tracks.** A track shorter than 51 beats would give no layer-4 output.
:meth:`ConvDBN.transform` (and ``forward``) therefore extends each such track
to exactly 51 beats first, by the rule ``DBNConfig.short_track``:

* ``'wrap'`` (default): repeat the track cyclically (beat ``t`` is beat
  ``t mod length``). The padding stays in the data distribution: chroma keeps
  a maximum of 1 per beat and per-track timbre statistics barely change,
  whereas zeros would be silence-like chroma that no real beat has.
* ``'edge'``: repeat the last beat; ``'zeros'``: append zeros (after timbre
  normalization, zero is the track's mean timbre).

A track of 0 beats cannot be classified and raises
:class:`~beatdbn.exceptions.ParameterError`. Tracks of 51 beats or more are
never changed. Greedy training (:meth:`ConvDBN.layer_input`,
:meth:`ConvDBN.partial_fit`) does *not* pad: windows that do not fit in a
track are simply left out of the statistics (``lengths``).

**Timbre normalization.** With ``DBNConfig.normalize_timbre`` (default on)
the network normalizes the timbre of each track to zero mean and unit
variance over its valid beats (:func:`normalize_timbre`) before layer 1b.
Normalizing is idempotent, so already-normalized input passes unchanged. A
timbre dimension that is constant over a track (standard deviation below
``1e-6``) is only centred (it becomes 0) instead of divided by ~0.

Saving: ``state_dict()`` (plain tensors, loadable with
``torch.load(..., weights_only=True)``) plus ``config.to_dict()`` as JSON;
:meth:`ConvDBN.save` / :meth:`ConvDBN.load` do both.

Examples
--------
>>> import torch
>>> from beatdbn.models.dbn import ConvDBN, DBNConfig
>>> dbn = ConvDBN(DBNConfig(n_maps_1a=8, n_maps_1b=8, n_maps_3=4))
>>> x = torch.cat([torch.rand(2, 12, 100), torch.randn(2, 12, 100)], dim=1)
>>> dbn.transform(x).shape  # ((100 - 7) // 4 - 7) // 4 = 4 outputs
torch.Size([2, 4, 4])
>>> dbn.config.receptive_field
51
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from beatdbn.exceptions import ParameterError
from beatdbn.models.config import JsonConfig
from beatdbn.models.crbm import BernoulliCRBM, CRBMConfig, ConvRBM, GaussianCRBM, valid_mask

__all__ = ["DBNConfig", "ConvDBN", "STAGES", "normalize_timbre", "pad_short_tracks", "output_length"]

#: Names of the trainable stages, in greedy training order.
STAGES = ("1a", "1b", "3")

_SHORT_TRACK_RULES = ("wrap", "edge", "zeros")


@dataclass(frozen=True)
class DBNConfig(JsonConfig):
    """Sizes and pretraining hyperparameters of the convolutional DBN (paper defaults).

    Saved as JSON with :meth:`to_dict`, rebuilt with :meth:`from_dict`.
    """

    n_chroma: int = 12  # input channels 0..11
    n_timbre: int = 12  # input channels 12..23
    n_maps_1a: int = 100  # chroma feature maps (layer 1a)
    n_maps_1b: int = 100  # timbre feature maps (layer 1b)
    width_1: int = 8  # layer-1 filter width, beats (two bars)
    pool_1: int = 4  # max-pool after layer 1 (one bar)
    n_maps_3: int = 100  # layer-3 feature maps
    width_3: int = 8  # layer-3 filter width, pooled steps (eight bars)
    pool_3: int = 4  # max-pool after layer 3 (layer 4)
    learning_rate_1a: float = 0.005  # binary visible
    learning_rate_1b: float = 0.0001  # Gaussian visible
    learning_rate_3: float = 0.005  # binary visible (pooled probabilities)
    sparsity: str = "goh"  # 'goh' | 'goh-rank' | 'none'
    sparsity_target_1: float = 0.05  # layers 1a and 1b
    sparsity_target_3: float = 0.1  # layer 3
    sparsity_cost: float = 0.1  # relative sparsity cost, all layers
    momentum: float = 0.0  # off unless asked
    weight_decay: float = 0.0  # off unless asked
    normalize_timbre: bool = True  # per-track zero mean / unit variance inside the network
    short_track: str = "wrap"  # 'wrap' | 'edge' | 'zeros': padding of tracks < receptive field
    seed: int = 0  # initial weights (each layer gets its own derived seed)

    def __post_init__(self) -> None:
        ints = ("n_chroma", "n_timbre", "n_maps_1a", "n_maps_1b", "width_1", "pool_1",
                "n_maps_3", "width_3", "pool_3")
        for name in ints:
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ParameterError(f"DBNConfig.{name}={value!r}: must be an int >= 1")
        if self.short_track not in _SHORT_TRACK_RULES:
            raise ParameterError(
                f"DBNConfig.short_track={self.short_track!r}: must be one of {_SHORT_TRACK_RULES}")
        if not isinstance(self.seed, int):
            raise ParameterError(f"DBNConfig.seed={self.seed!r}: must be an int")
        for stage in STAGES:  # the layer configs validate the rest (rates, sparsity, ...)
            self.layer_config(stage)

    # -- derived sizes -----------------------------------------------------

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

    def layer_config(self, stage: str) -> CRBMConfig:
        """The :class:`CRBMConfig` of stage ``'1a'``, ``'1b'`` or ``'3'``."""
        common = dict(sparsity=self.sparsity, sparsity_cost=self.sparsity_cost, momentum=self.momentum,
                      weight_decay=self.weight_decay)
        if stage == "1a":
            return CRBMConfig(n_visible=self.n_chroma, n_hidden=self.n_maps_1a, width=self.width_1,
                              visible="binary", learning_rate=self.learning_rate_1a,
                              sparsity_target=self.sparsity_target_1, seed=self.seed * 3 + 0, **common)
        if stage == "1b":
            return CRBMConfig(n_visible=self.n_timbre, n_hidden=self.n_maps_1b, width=self.width_1,
                              visible="gaussian", learning_rate=self.learning_rate_1b,
                              sparsity_target=self.sparsity_target_1, seed=self.seed * 3 + 1, **common)
        if stage == "3":
            return CRBMConfig(n_visible=self.n_maps_1a + self.n_maps_1b, n_hidden=self.n_maps_3,
                              width=self.width_3, visible="binary", learning_rate=self.learning_rate_3,
                              sparsity_target=self.sparsity_target_3, seed=self.seed * 3 + 2, **common)
        raise ParameterError(f"stage={stage!r}: must be one of {STAGES}")


def output_length(n_beats: int | torch.Tensor, config: DBNConfig = DBNConfig()) -> int | torch.Tensor:
    """Layer-4 steps for a track of ``n_beats`` beats (0 when shorter than the receptive field).

    ``((n_beats - width_1 + 1) // pool_1 - width_3 + 1) // pool_3``, clipped at 0.
    """
    c = config
    if isinstance(n_beats, torch.Tensor):
        t1 = (n_beats - c.width_1 + 1).clamp_min(0)
        t3 = (torch.div(t1, c.pool_1, rounding_mode="floor") - c.width_3 + 1).clamp_min(0)
        return torch.div(t3, c.pool_3, rounding_mode="floor")
    t1 = max(int(n_beats) - c.width_1 + 1, 0)
    t3 = max(t1 // c.pool_1 - c.width_3 + 1, 0)
    return t3 // c.pool_3


# ---------------------------------------------------------------------------
# input helpers


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
    if mode not in _SHORT_TRACK_RULES:
        raise ParameterError(f"mode={mode!r}: must be one of {_SHORT_TRACK_RULES}")
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


# ---------------------------------------------------------------------------
# the network


class ConvDBN(nn.Module):
    """Convolutional DBN: layers 1a (chroma), 1b (timbre), 3, with max-pooling.

    Parameters
    ----------
    config : DBNConfig
        Sizes and hyperparameters (paper defaults).
    device, dtype
        Where the parameters live.

    Attributes
    ----------
    layer1a : BernoulliCRBM
    layer1b : GaussianCRBM
    layer3 : BernoulliCRBM

    Examples
    --------
    >>> import torch
    >>> dbn = ConvDBN(DBNConfig(n_maps_1a=4, n_maps_1b=4, n_maps_3=4))
    >>> x = torch.cat([torch.rand(3, 12, 80), torch.randn(3, 12, 80)], dim=1)
    >>> for stage in ("1a", "1b", "3"):
    ...     stats = dbn.partial_fit(stage, x, generator=torch.Generator().manual_seed(0))
    >>> dbn.transform(x).shape
    torch.Size([3, 4, 2])
    """

    def __init__(self, config: DBNConfig | None = None, *, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.config = config = DBNConfig() if config is None else config
        self.layer1a = BernoulliCRBM(config.layer_config("1a"), device=device, dtype=dtype)
        self.layer1b = GaussianCRBM(config.layer_config("1b"), device=device, dtype=dtype)
        self.layer3 = BernoulliCRBM(config.layer_config("3"), device=device, dtype=dtype)

    def layer(self, stage: str) -> ConvRBM:
        """The CRBM of stage ``'1a'``, ``'1b'`` or ``'3'``."""
        if stage == "1a":
            return self.layer1a
        if stage == "1b":
            return self.layer1b
        if stage == "3":
            return self.layer3
        raise ParameterError(f"stage={stage!r}: must be one of {STAGES}")

    # -- input ---------------------------------------------------------------

    def _check_input(self, x: Any, lengths: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = torch.as_tensor(x)
        c = self.config
        if x.ndim != 3 or x.shape[1] != c.n_inputs:
            raise ParameterError(
                f"x has shape {tuple(x.shape)}: expected (batch, {c.n_inputs}, n_beats) with "
                f"{c.n_chroma} chroma then {c.n_timbre} timbre channels; a (n_beats, 24) track needs "
                f"x.T[None]")
        x = x.to(device=self.layer1a.weight.device, dtype=self.layer1a.weight.dtype)
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=x.device).long()
            if lengths.shape != (x.shape[0],):
                raise ParameterError(f"lengths has shape {tuple(lengths.shape)}: expected ({x.shape[0]},)")
            if bool((lengths < 0).any()) or bool((lengths > x.shape[2]).any()):
                raise ParameterError(f"lengths must lie in [0, {x.shape[2]}], got {lengths.tolist()}")
            # padding is zeroed once here, so that nothing in it (even NaN) reaches a layer
            x = x.masked_fill(~valid_mask(lengths, x.shape[2])[:, None, :], 0.0)
        return x, lengths

    def split_input(self, x: torch.Tensor, lengths: torch.Tensor | None = None, *,
                    normalized: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Chroma ``(batch, 12, T)`` and timbre ``(batch, 12, T)``.

        The timbre is normalized per track (:func:`normalize_timbre`) when
        ``config.normalize_timbre`` is set, unless ``normalized`` says it already is.
        """
        c = self.config
        chroma = x[:, :c.n_chroma]
        timbre = x[:, c.n_chroma:]
        if c.normalize_timbre and not normalized:
            timbre = normalize_timbre(timbre, lengths)
        return chroma, timbre

    # -- stage by stage --------------------------------------------------------

    def _pool(self, h: torch.Tensor, lengths: torch.Tensor | None, size: int
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Max-pool ``size`` over time (floor), zeroing pooled steps beyond each track."""
        if h.shape[2] < size:
            out = h.new_zeros((h.shape[0], h.shape[1], 0))
        else:
            out = F.max_pool1d(h, size, stride=size)
        if lengths is None:
            return out, None
        lengths = torch.div(lengths, size, rounding_mode="floor")
        if out.shape[2]:
            out = out.masked_fill(~valid_mask(lengths, out.shape[2])[:, None, :], 0.0)
        return out, lengths

    def _layer(self, rbm: ConvRBM, v: torch.Tensor, lengths: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = rbm.transform(v, lengths=lengths)
        if lengths is not None:
            lengths = (lengths - rbm.config.width + 1).clamp_min(0)
        return h, lengths

    def _layer2(self, x: torch.Tensor, lengths: torch.Tensor | None, *, normalized: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pooled, concatenated layer-1 probabilities ``(batch, 200, T2)`` (layer-3 input)."""
        chroma, timbre = self.split_input(x, lengths, normalized=normalized)
        ha, la = self._layer(self.layer1a, chroma, lengths)
        hb, _ = self._layer(self.layer1b, timbre, lengths)
        pa, lp = self._pool(ha, la, self.config.pool_1)
        pb, _ = self._pool(hb, la, self.config.pool_1)
        return torch.cat((pa, pb), dim=1), lp

    @torch.no_grad()
    def layer_input(self, stage: str, x: Any, *, lengths: Any = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training input of one stage, for greedy layer-wise pretraining.

        Parameters
        ----------
        stage : {'1a', '1b', '3'}
        x : torch.Tensor [shape=(batch, 24, T)]
            Chroma then timbre, padded to a common ``T``.
        lengths : torch.Tensor [shape=(batch,)] or None
            Valid beats of each track.

        Returns
        -------
        v : torch.Tensor
            ``'1a'``: chroma ``(batch, 12, T)``; ``'1b'``: normalized timbre
            ``(batch, 12, T)``; ``'3'``: pooled layer-1 probabilities
            ``(batch, 200, (T - 7) // 4)``.
        lengths : torch.Tensor [shape=(batch,)] or None
            Valid steps of ``v`` (None when ``lengths`` was None).
        """
        if stage not in STAGES:
            raise ParameterError(f"stage={stage!r}: must be one of {STAGES}")
        x, lengths = self._check_input(x, lengths)
        if stage == "3":
            return self._layer2(x, lengths)
        chroma, timbre = self.split_input(x, lengths)
        return (chroma if stage == "1a" else timbre), lengths

    def partial_fit(self, stage: str, x: Any, *, lengths: Any = None,
                    generator: torch.Generator | None = None, monitor: bool = True) -> dict[str, float]:
        """One CD-1 step of stage ``stage`` on a batch of tracks ``x`` ``(batch, 24, T)``.

        Equivalent to ``self.layer(stage).partial_fit(*self.layer_input(stage, x, lengths=lengths))``;
        padding never enters the statistics. See :meth:`ConvRBM.partial_fit`.
        """
        v, vl = self.layer_input(stage, x, lengths=lengths)
        return self.layer(stage).partial_fit(v, lengths=vl, generator=generator, monitor=monitor)

    # -- inference ---------------------------------------------------------------

    @torch.no_grad()
    def forward(self, x: Any, lengths: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-4 features and their valid lengths.

        Parameters
        ----------
        x : torch.Tensor [shape=(batch, 24, T)]
        lengths : torch.Tensor [shape=(batch,)] or None

        Returns
        -------
        features : torch.Tensor [shape=(batch, n_maps_3, T4)]
            Max-pooled layer-3 probabilities; steps past a track's end are 0.
            Tracks shorter than the receptive field are padded first
            (``config.short_track``), so each track has at least one step.
        lengths : torch.Tensor [shape=(batch,)]
            Valid layer-4 steps of each track (:func:`output_length`).
        """
        x, lengths = self._check_input(x, lengths)
        c = self.config
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[2], dtype=torch.long, device=x.device)
        if c.normalize_timbre:  # before padding, so that padding does not shift the statistics
            x = torch.cat((x[:, :c.n_chroma], normalize_timbre(x[:, c.n_chroma:], lengths)), dim=1)
        x, lengths = pad_short_tracks(x, lengths, min_length=c.receptive_field, mode=c.short_track)
        v3, l3 = self._layer2(x, lengths, normalized=True)
        h3, l3 = self._layer(self.layer3, v3, l3)
        return self._pool(h3, l3, c.pool_3)

    def transform(self, x: Any, *, lengths: Any = None) -> torch.Tensor:
        """Layer-4 features ``(batch, n_maps_3, T4)`` (see :meth:`forward`, which also returns lengths)."""
        return self.forward(x, lengths)[0]

    # -- persistence -----------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``model.pt`` (state dict) and ``config.json`` into ``directory``; returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / "model.pt.tmp"
        torch.save(self.state_dict(), tmp)
        tmp.replace(directory / "model.pt")
        (directory / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, device: torch.device | str = "cpu") -> "ConvDBN":
        """Rebuild from :meth:`save` output on ``device`` (``weights_only=True``: no code is run)."""
        directory = Path(directory)
        config = DBNConfig.from_dict(json.loads((directory / "config.json").read_text()))
        model = cls(config, device=device)
        state = torch.load(directory / "model.pt", map_location=device, weights_only=True)
        model.load_state_dict(state)
        return model
