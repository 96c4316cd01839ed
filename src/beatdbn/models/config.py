"""JSON round trip shared by the frozen config dataclasses of the models."""

from __future__ import annotations

import dataclasses
from typing import Any

from beatdbn.exceptions import ParameterError

__all__ = ["JsonConfig"]


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
