"""JSON round trip shared by the frozen config dataclasses of the models, and the bound on a layer's size."""

from __future__ import annotations

import dataclasses
from typing import Any

from beatdbn.exceptions import ParameterError

__all__ = ["JsonConfig", "check_layer_size", "MAX_LAYER_WEIGHTS"]

#: The most weights one convolutional layer may have: 2**28 (1 GiB as float32), some 3,000 times the paper's
#: largest layer (layer 3: 100 maps x 200 inputs x width 8 = 160,000); a config past it is a typo, not a model.
MAX_LAYER_WEIGHTS = 2 ** 28


def check_layer_size(owner: str, field: str, *, n_hidden: int, n_visible: int, width: int) -> None:
    """Raise :class:`ParameterError` naming ``owner.field`` when a layer of ``n_hidden`` maps over ``n_visible``
    inputs of filter ``width`` would have more than :data:`MAX_LAYER_WEIGHTS` weights."""
    n = n_hidden * n_visible * width
    if n > MAX_LAYER_WEIGHTS:
        raise ParameterError(f"{owner}.{field}={n_hidden}: a layer of {n_hidden:,} maps x {n_visible:,} inputs x "
                             f"width {width:,} would have {n:.3g} weights ({4 * n / 2 ** 30:,.0f} GiB), more than "
                             f"the {MAX_LAYER_WEIGHTS:,} allowed; choose fewer feature maps (the paper: 100)")


class JsonConfig:
    """Mixin for a frozen dataclass: ``to_dict`` / ``from_dict`` (unknown keys raise)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-serializable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """Rebuild from :meth:`to_dict` output; unknown keys raise :class:`ParameterError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ParameterError(f"{cls.__name__}: unknown keys {unknown}; known keys are {sorted(names)}")
        return cls(**d)
