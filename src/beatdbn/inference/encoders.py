"""Layer-4 encoders for embeddings: a pretrained DBN folder, or a finetuned conv MLP run.

Both give the same kind of features (:meth:`ConvDBN.forward` and
:meth:`ConvMLP.hidden` agree on a DBN's weights): ``(batch, n_maps_3, T4)``
max-pooled layer-3 probabilities with the valid steps of each track.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from beatdbn.exceptions import BeatdbnError, DataError
from beatdbn.inference.runs import load_run
from beatdbn.models.dbn import ConvDBN, DBNConfig

__all__ = ["Encoder", "load_encoder"]


@dataclass
class Encoder:
    """Something that maps padded batches to layer-4 features.

    Attributes
    ----------
    path : Path
    kind : str
        ``"dbn"`` or ``"convmlp"``.
    config : DBNConfig
        The layout (receptive field and hop give each step's beats).
    representation : str or None
        What the model was trained on, when recorded.
    """

    path: Path
    kind: str
    model: Any
    config: DBNConfig
    representation: str | None = None

    @property
    def n_features(self) -> int:
        return self.config.n_maps_3

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            if self.kind == "dbn":
                return self.model(x, lengths)
            return self.model.hidden(x, lengths)


def load_encoder(path: str | Path, *, device: str | torch.device = "cpu") -> Encoder:
    """A DBN folder (``beatdbn pretrain --out``) or a conv MLP run/model folder.

    Raises
    ------
    DataError
        Neither (the message says what was expected).
    """
    path = Path(path)
    cfg_file = path / "config.json"
    cfg = {}
    if cfg_file.is_file():
        try:
            cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        except ValueError:
            raise DataError(f"{cfg_file}: not valid JSON") from None
    is_dbn = isinstance(cfg, dict) and (path / "model.pt").is_file() and "format" not in cfg and "model" not in cfg
    if is_dbn:
        try:
            dbn = ConvDBN.load(path, device=device).eval()
        except BeatdbnError:
            raise
        except Exception as exc:  # noqa: BLE001 - a foreign or damaged file: one line
            raise DataError(f"{path}: not a readable beatdbn DBN ({type(exc).__name__}); give the --out folder of "
                            f"`beatdbn pretrain` or a finetuned run") from None
        return Encoder(path, "dbn", dbn, dbn.config)
    if not path.exists():
        raise DataError(f"{path}: no such DBN or run folder")
    run = load_run(path, device=device)
    if not run.answers_over_time:
        raise DataError(f"{path}: a {run.kind} run has no layer-4 features; give a DBN folder or a conv MLP run")
    return Encoder(path, "convmlp", run.model, run.model.config.dbn_config, run.representation)
