"""The conv MLP's configuration (:class:`MLPConfig`) and its key-transposition table, without torch.

:mod:`beatdbn.models.convmlp` builds the torch network from an
:class:`MLPConfig`; :mod:`beatdbn.models.numpy_mlp` runs a saved one in
numpy. Both read the same ``config.json`` (``MLPConfig.from_dict``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.models.config import JsonConfig
from beatdbn.models.layout import LAYERS, Layout

__all__ = ["MLPConfig", "INITS", "transposition_table", "read_model_config", "MODEL_FORMAT", "MODEL_VERSION"]

#: How a model's weights were initialized (``MLPConfig.init``).
INITS = ("pretrained", "random_like", "random")
#: ``config.json`` marker and the version this code writes and reads.
MODEL_FORMAT = "beatdbn-convmlp"
MODEL_VERSION = 1


@dataclass(frozen=True)
class MLPConfig(Layout, JsonConfig):
    """The conv MLP: the stack's sizes (:class:`~beatdbn.models.layout.Layout`, shared with the DBN) plus the
    classes; saved as JSON with :meth:`to_dict`."""

    n_classes: int = 2  # outputs of the logistic-regression layer
    classes: tuple[str, ...] = ()  # class names (empty: "0", "1", ...)
    task: str = ""  # task the model was trained for ('artist', 'genre', 'key', ...), informative
    init: str = "random"  # 'pretrained' | 'random_like' | 'random': how the weights started
    seed: int = 0  # initial weights
    # key code of each class, to average posteriors over the 12 transpositions (empty: none): 0-11 a tonic
    # (C .. B) or a major key, 12-23 the minor key of tonic code-12, -1 a class no transposition moves ("no key")
    transpose_keys: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.check_layout()
        if isinstance(self.classes, list):
            object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "transpose_keys", tuple(self.transpose_keys))
        if self.transpose_keys:
            try:
                transposition_table(self.transpose_keys)
            except ParameterError as exc:
                raise ParameterError(f"MLPConfig.transpose_keys: {exc}") from None
            if len(self.transpose_keys) != self.n_classes or self.n_chroma != 12:
                raise ParameterError(f"MLPConfig.transpose_keys={list(self.transpose_keys)!r}: needs one key code per "
                                     f"class ({self.n_classes}) and 12 chroma channels")
        if not (isinstance(self.n_classes, int) and not isinstance(self.n_classes, bool) and self.n_classes >= 1):
            raise ParameterError(f"MLPConfig.n_classes={self.n_classes!r}: must be an int >= 1")
        if not all(isinstance(c, str) for c in self.classes):
            raise ParameterError(f"MLPConfig.classes={self.classes!r}: must be strings")
        if self.classes and len(self.classes) != self.n_classes:
            raise ParameterError(f"MLPConfig.classes has {len(self.classes)} names but n_classes={self.n_classes}")
        if self.init not in INITS:
            raise ParameterError(f"MLPConfig.init={self.init!r}: must be one of {INITS}")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool)):
            raise ParameterError(f"MLPConfig.seed={self.seed!r}: must be an int")

    @classmethod
    def like(cls, dbn_config: Layout, n_classes: int, **kw: Any) -> "MLPConfig":
        """The conv MLP of a DBN's layout, with ``n_classes`` outputs."""
        return cls(n_classes=n_classes, **dbn_config.layout_fields(), **kw)

    @property
    def class_names(self) -> list[str]:
        """``classes``, or ``"0" .. "n_classes - 1"`` when none were given."""
        return list(self.classes) if self.classes else [str(i) for i in range(self.n_classes)]

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """The model's tensors by state-dict name, with their shapes: ``layer1a.weight`` ``(maps, channels,
        width)``, ``layer1a.bias`` ``(maps,)``, ... ``output.weight`` ``(n_classes, n_maps_3, 1)``."""
        shapes: dict[str, tuple[int, ...]] = {}
        for spec in LAYERS:
            maps = getattr(self, spec.maps)
            shapes[f"{spec.attr}.weight"] = (maps, self.n_visible(spec), getattr(self, spec.width))
            shapes[f"{spec.attr}.bias"] = (maps,)
        shapes["output.weight"], shapes["output.bias"] = (self.n_classes, self.n_maps_3, 1), (self.n_classes,)
        return shapes

    @property
    def dbn_config(self) -> Layout:
        """The stack's sizes alone (for :func:`output_length` and friends)."""
        return self.layout


def transposition_table(codes: Sequence[int]) -> np.ndarray:
    """Where each class goes under each transposition: ``table[k, i]`` is the class of class ``i``'s key moved up
    ``k`` semitones.

    Parameters
    ----------
    codes : sequence of int [shape=(n_classes,)]
        Key code of each class (:attr:`MLPConfig.transpose_keys`): 0-11 a tonic or major key, 12-23 the minor
        key of tonic ``code - 12``, -1 a class that no transposition moves (e.g. "no key"). Every key class
        must have its 11 transpositions among the classes.

    Returns
    -------
    np.ndarray [shape=(12, n_classes)], int64

    Raises
    ------
    ParameterError
        A code out of range, a repeated code, or a key whose transpositions are not all classes.

    Examples
    --------
    >>> t = transposition_table([0, 2, 1] + list(range(3, 12)) + [-1])  # 12 tonics (D before C#) and "no key"
    >>> int(t[2, 0]), int(t[1, 0]), int(t[5, 12])   # C up 2 -> D (class 1), C up 1 -> C# (class 2)
    (1, 2, 12)
    """
    codes = [int(c) for c in codes]
    keys = [c for c in codes if c != -1]
    if any(not -1 <= c < 24 for c in codes) or len(set(keys)) != len(keys):
        raise ParameterError(f"key codes {codes!r}: must be distinct codes 0-23 (or -1 for a class without a key)")
    index = {c: i for i, c in enumerate(codes) if c != -1}
    table = np.empty((12, len(codes)), dtype=np.int64)
    for i, c in enumerate(codes):
        for k in range(12):
            moved = c if c == -1 else 12 * (c // 12) + (c % 12 + k) % 12
            if c != -1 and moved not in index:
                raise ParameterError(f"key codes {codes!r}: code {c} moved up {k} semitones ({moved}) is no class; "
                                     f"give every transposition of each key")
            table[k, i] = i if c == -1 else index[moved]
    return table


def read_model_config(directory: Path, weights_file: str) -> MLPConfig:
    """The :class:`MLPConfig` of a conv MLP folder (``config.json``), after checking that the folder holds it
    and ``weights_file``.

    Raises
    ------
    DataError
        A file is missing, the config is not a conv MLP's, or another format version wrote it.
    """
    cfg_path = directory / "config.json"
    for p in (cfg_path, directory / weights_file):
        if not p.is_file():
            raise DataError(f"{p}: missing; is {directory} a conv MLP folder written by `beatdbn finetune`?")
    try:
        doc = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{cfg_path}: not a beatdbn conv MLP config ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
        raise DataError(f"{cfg_path}: not a beatdbn conv MLP config (no \"format\": \"{MODEL_FORMAT}\"); "
                        f"a DBN folder is used with `--init`, not as a classifier")
    if doc.get("version") != MODEL_VERSION:
        raise DataError(f"{cfg_path}: conv MLP format version {doc.get('version')!r}, but this beatdbn reads "
                        f"version {MODEL_VERSION}; use the beatdbn that wrote it, or finetune again")
    try:
        return MLPConfig.from_dict(doc.get("config") or {})
    except (ParameterError, TypeError) as exc:
        raise DataError(f"{cfg_path}: invalid conv MLP config ({exc})") from None
