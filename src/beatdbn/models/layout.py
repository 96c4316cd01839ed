"""The network's layout, declared once: the layer table and the sizes (no torch: a numpy forward reads it too).

The DBN (:mod:`beatdbn.models.dbn`, pretrained layer by layer) and the conv
MLP (:mod:`beatdbn.models.convmlp`, finetuned) are the same stack of
layers; only their training differs. Both configs inherit :class:`Layout`
(the sizes: maps, filter widths, pools, input handling), both build their
layers from :data:`LAYERS` (stage name, attribute, visible units, input,
and which config fields give its size, learning rate and sparsity target),
and both compute layer 4 with :func:`beatdbn.models.forward.layer4` (torch; the shared input
preparation is there too)::

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
from typing import Any

from beatdbn.exceptions import ParameterError
from beatdbn.models.config import check_layer_size

__all__ = ["Layout", "LayerSpec", "LAYERS", "STAGES", "PHASES", "SHORT_TRACK_RULES", "layer_spec", "output_length"]

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


def output_length(n_beats: Any, config: "Layout" | None = None) -> Any:
    """Layer-4 steps for a track of ``n_beats`` beats (0 when shorter than the receptive field): an int, or
    a tensor / array of them for one of lengths.

    ``((n_beats - width_1 + 1) // pool_1 - width_3 + 1) // pool_3``, clipped at 0.

    Examples
    --------
    >>> output_length(360), output_length(50), output_length(51)
    (20, 0, 1)
    """
    c = config if config is not None else Layout()
    if hasattr(n_beats, "clip"):  # a tensor or an array (no torch import: clip and // are both floor-exact here)
        t1 = (n_beats - c.width_1 + 1).clip(min=0)
        t3 = (t1 // c.pool_1 - c.width_3 + 1).clip(min=0)
        return t3 // c.pool_3
    t1 = max(int(n_beats) - c.width_1 + 1, 0)
    t3 = max(t1 // c.pool_1 - c.width_3 + 1, 0)
    return t3 // c.pool_3


