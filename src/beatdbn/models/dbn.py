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
from torch import nn

from beatdbn.exceptions import ParameterError
from beatdbn.models.config import JsonConfig
from beatdbn.models.crbm import BernoulliCRBM, CRBMConfig, ConvRBM, GaussianCRBM
from beatdbn.models.forward import layer2, layer4, normalize_timbre, pad_short_tracks, prepare_input
from beatdbn.models.layout import LAYERS, STAGES, Layout, layer_spec, output_length
from beatdbn.models.masks import valid_mask
from beatdbn.utils.atomic import save_torch, write_json
from beatdbn.utils.weights import load_weights

__all__ = ["DBNConfig", "ConvDBN", "STAGES", "LAYERS", "normalize_timbre", "pad_short_tracks", "output_length"]

@dataclass(frozen=True)
class DBNConfig(Layout, JsonConfig):
    """Sizes (:class:`~beatdbn.models.layout.Layout`) and pretraining hyperparameters of the convolutional DBN
    (paper defaults).

    Saved as JSON with :meth:`to_dict`, rebuilt with :meth:`from_dict`.
    """

    learning_rate_1a: float = 0.005  # binary visible
    learning_rate_1b: float = 0.0001  # Gaussian visible
    learning_rate_3: float = 0.005  # binary visible (pooled probabilities)
    sparsity: str = "goh"  # 'goh' | 'goh-rank' | 'none'
    sparsity_target_1: float = 0.05  # layers 1a and 1b
    sparsity_target_3: float = 0.1  # layer 3
    sparsity_cost: float = 0.1  # relative sparsity cost, all layers
    momentum: float = 0.0  # off unless asked
    weight_decay: float = 0.0  # off unless asked
    seed: int = 0  # initial weights (each layer gets its own derived seed)

    def __post_init__(self) -> None:
        self.check_layout()  # sizes, and each layer's weights bounded (10**9 feature maps is one line)
        if not isinstance(self.seed, int):
            raise ParameterError(f"DBNConfig.seed={self.seed!r}: must be an int")
        for stage in STAGES:  # the layer configs validate the rest (rates, sparsity, ...)
            self.layer_config(stage)

    def layer_config(self, stage: str) -> CRBMConfig:
        """The :class:`CRBMConfig` of stage ``'1a'``, ``'1b'`` or ``'3'``, from its row of :data:`LAYERS`."""
        spec = layer_spec(stage)
        return CRBMConfig(n_visible=self.n_visible(spec), n_hidden=getattr(self, spec.maps),
                          width=getattr(self, spec.width), visible=spec.visible,
                          learning_rate=getattr(self, spec.learning_rate),
                          sparsity_target=getattr(self, spec.sparsity_target),
                          seed=self.seed * len(LAYERS) + STAGES.index(stage), sparsity=self.sparsity,
                          sparsity_cost=self.sparsity_cost, momentum=self.momentum, weight_decay=self.weight_decay)


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
        kinds = {"binary": BernoulliCRBM, "gaussian": GaussianCRBM}
        for spec in LAYERS:
            setattr(self, spec.attr, kinds[spec.visible](config.layer_config(spec.stage), device=device, dtype=dtype))

    def layer(self, stage: str) -> ConvRBM:
        """The CRBM of stage ``'1a'``, ``'1b'`` or ``'3'``."""
        return getattr(self, layer_spec(stage).attr)

    def params(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Stage -> (weight, hidden bias): what :func:`~beatdbn.models.forward.layer4` computes with."""
        return {spec.stage: (getattr(self, spec.attr).weight, getattr(self, spec.attr).hidden_bias)
                for spec in LAYERS}

    # -- stage by stage --------------------------------------------------------

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
            ``(batch, 200, (T - 7) // 4)``, steps past each track zeroed.
        lengths : torch.Tensor [shape=(batch,)] or None
            Valid steps of ``v`` (None when ``lengths`` was None).
        """
        spec = layer_spec(stage)
        given = lengths is not None
        x, lengths = self._prepared(x, lengths)
        if spec.inputs == "layer2":
            v, vl = layer2(self.config, self.params(), x, lengths)
        else:
            c = self.config
            v, vl = (x[:, :c.n_chroma] if spec.inputs == "chroma" else x[:, c.n_chroma:]), lengths
        return v, (vl if given else None)

    def _prepared(self, x: Any, lengths: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``prepare_input`` of a training batch, reused when the next stage gets the same, unchanged tensors.

        Pretraining trains 1a and 1b on every batch, each from the whole ``(batch, 24, T)`` input; the second
        stage reuses the first one's checked, masked and timbre-normalized input (11 % of a 500-beat one-track
        step). Reused only for the very same tensor objects, on the same device and dtype, none changed in
        place since (their version counters, the prepared input's included).
        """
        like = self.layer1a.weight
        key = None
        if isinstance(x, torch.Tensor) and (lengths is None or isinstance(lengths, torch.Tensor)):
            key = (x, x._version, lengths, None if lengths is None else lengths._version, like.device, like.dtype)
        memo = getattr(self, "_input_memo", None)
        if key is not None and memo is not None and len(memo[0]) == len(key) and all(
                a is b if isinstance(a, torch.Tensor) or a is None else a == b for a, b in zip(memo[0], key)):
            out, versions = memo[1], memo[2]
            if (out[0]._version, out[1]._version) == versions:
                return out
        out = prepare_input(self.config, x, lengths, like=like, pad_short=False)
        self._input_memo = None if key is None else (key, out, (out[0]._version, out[1]._version))
        return out

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
        """Layer-4 features and their valid lengths (the forward pass of :func:`~beatdbn.models.forward.layer4`,
        shared with the conv MLP).

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
        x, lengths = prepare_input(self.config, x, lengths, like=self.layer1a.weight)
        h = layer4(self.config, self.params(), x)
        l4 = output_length(lengths, self.config)
        return h.masked_fill(~valid_mask(l4, h.shape[2])[:, None, :], 0.0), l4

    def transform(self, x: Any, *, lengths: Any = None) -> torch.Tensor:
        """Layer-4 features ``(batch, n_maps_3, T4)`` (see :meth:`forward`, which also returns lengths)."""
        return self.forward(x, lengths)[0]

    # -- persistence -----------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``model.pt`` (state dict) and ``config.json`` into ``directory``; returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_torch(self.state_dict(), directory / "model.pt")
        write_json(directory / "config.json", self.config.to_dict())
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, device: torch.device | str = "cpu") -> "ConvDBN":
        """Rebuild from :meth:`save` output on ``device`` (``weights_only=True``: no code is run)."""
        directory = Path(directory)
        config = DBNConfig.from_dict(json.loads((directory / "config.json").read_text()))
        model = cls(config, device=device)
        state = load_weights(directory / "model.pt", map_location=device, what="beatdbn DBN file",
                             fix="pretrain again, or use a DBN folder written by `beatdbn pretrain`")
        model.load_state_dict(state)
        return model
