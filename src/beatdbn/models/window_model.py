"""A trained window baseline as one object: the classifier, its standardizer and its windowing, saved and loaded.

The baselines of section 6 classify a track from windows of ``window`` beats,
standardized with the training split's statistics. :class:`WindowModel`
keeps the three together, so that a finished baseline run classifies new
tracks exactly as it classified its test split (``predict``, ``evaluate``)::

    MODEL_DIR/config.json   {"format": "beatdbn-window-model", "kind", "n_inputs", "n_classes", "window",
                             "stride", "classes", "task", "representation", "standardizer"}
    MODEL_DIR/model.pt      the classifier's state dict (tensors only: read with weights_only=True)

``predict_proba`` pools the window posteriors of each track by their mean,
the rule Table 1 uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.models.logreg import WindowedLogReg
from beatdbn.models.naive_bayes import WindowedNaiveBayes
from beatdbn.models.windows import Standardizer, make_windows
from beatdbn.utils.atomic import save_torch, write_json

__all__ = ["WindowModel", "FORMAT", "KINDS"]

FORMAT = "beatdbn-window-model"
KINDS = ("logreg", "naive_bayes")


@dataclass
class WindowModel:
    """A window classifier (``kind`` 'logreg' or 'naive_bayes') with the windowing and standardizer it was
    trained with."""

    kind: str
    model: Any
    standardizer: Standardizer
    window: int
    stride: int
    classes: list[str]
    task: str = ""
    representation: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ParameterError(f"kind={self.kind!r}: one of {KINDS}")

    @torch.no_grad()
    def predict_proba(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities of each track ``(n_tracks, n_classes)``: the mean of its window posteriors."""
        windows = make_windows(list(features), window=self.window, stride=self.stride,
                               standardizer=self.standardizer, name="input")
        if self.kind == "logreg":
            scores = self.model.track_proba(windows)
        else:
            scores = self.model.track_scores(windows)
        return np.asarray(scores["mean"], dtype=np.float64)

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.kind == "logreg":
            return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        return {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in self.model.state_dict().items()}

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.pt`` into ``directory`` (each atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        n_inputs = self.window * len(self.standardizer.mean)
        save_torch(self.state_dict(), directory / "model.pt")
        write_json(directory / "config.json", {
            "format": FORMAT, "kind": self.kind, "n_inputs": n_inputs, "n_classes": len(self.classes),
            "window": self.window, "stride": self.stride, "classes": list(self.classes), "task": self.task,
            "representation": self.representation, "standardizer": self.standardizer.to_dict(),
            "var_smoothing": getattr(self.model, "var_smoothing", None), **self.extra})
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> "WindowModel":
        """Read a folder written by :meth:`save` (tensors only; never unpickles code).

        Raises
        ------
        DataError
            Not such a folder, or its files are damaged (the message names the file).
        """
        directory = Path(directory)
        cfg_path, weights = directory / "config.json", directory / "model.pt"
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise DataError(f"{cfg_path}: missing or not JSON; not a saved window baseline") from None
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT or cfg.get("kind") not in KINDS:
            raise DataError(f"{cfg_path}: not a beatdbn window baseline (format {FORMAT!r} expected)")
        try:
            state = torch.load(weights, map_location=device, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - one line for any unreadable weights file
            raise DataError(f"{weights}: unreadable ({type(exc).__name__}); retrain the baseline") from None
        n_classes = int(cfg["n_classes"])
        if cfg["kind"] == "logreg":
            model = WindowedLogReg(int(cfg["n_inputs"]), n_classes).to(device)
            model.load_state_dict(state)
            model.eval()
        else:
            model = WindowedNaiveBayes(n_classes=n_classes, var_smoothing=float(cfg.get("var_smoothing") or 1e-9))
            model.load_state_dict({k: v.numpy() for k, v in state.items()})
        known = {"format", "kind", "n_inputs", "n_classes", "window", "stride", "classes", "task", "representation",
                 "standardizer", "var_smoothing"}
        return cls(cfg["kind"], model, Standardizer.from_dict(cfg["standardizer"]), int(cfg["window"]),
                   int(cfg["stride"]), list(cfg["classes"]), cfg.get("task", ""), cfg.get("representation"),
                   {k: v for k, v in cfg.items() if k not in known})
