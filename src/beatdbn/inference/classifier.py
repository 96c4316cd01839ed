"""One classifier protocol for every finished run: what it takes (a track past the door) and what it gives
(``predict_proba(features, *, over_time) -> (tracks, steps)``).

**The door.** :func:`admit` is the one validity check of a track before any
model sees it: representation, shape, finite values. It turns what a reader
gave (``meta``, features, beat times) into a :class:`Track` (float32
features), or raises :class:`TrackRefused` with one line naming the input,
the track and what is wrong. ``predict``, ``serve``, ``embed`` and
:meth:`Run.predict_proba <beatdbn.inference.runs.Run.predict_proba>` admit
each track here once; a :class:`Track` is not checked again.

**The classifiers.**

* :class:`ConvMLPClassifier`: one batched forward pass per bucket of tracks
  (:meth:`ConvMLP.posteriors <beatdbn.models.convmlp.ConvMLP.posteriors>`: the
  12 transpositions of a key model in the same pass) gives the per-step
  posteriors, and the track posterior as their mean; ``over_time=True`` keeps
  the steps, it does not run the network again.
* :class:`NumpyConvMLPClassifier`: the same posteriors from the numpy forward
  (:class:`~beatdbn.models.numpy_mlp.NumpyConvMLP`) of a shipped model, one
  track at a time, without torch;
* :class:`WindowClassifier`: a window baseline (logistic regression, naive
  Bayes): the mean of its window posteriors; it has no steps.

:func:`classifier_of` wraps a model. Classifiers take float32 ``(n_beats, 24)``
arrays that passed the door and check nothing; :class:`~beatdbn.inference.runs.Run`
adds the door and the calibration.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

import numpy as np

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.models.numpy_mlp import NumpyConvMLP

if TYPE_CHECKING:  # torch is imported where a torch model runs: the shipped model's numpy forward needs none
    import torch

    from beatdbn.models.convmlp import ConvMLP

__all__ = ["Track", "TrackRefused", "admit", "Classifier", "ConvMLPClassifier", "NumpyConvMLPClassifier",
           "WindowClassifier", "classifier_of", "conv_posteriors", "is_conv_mlp"]


class TrackRefused(DataError):
    """A track that no model may see (another representation, no beats, a wrong shape, non-finite values)."""


@dataclass(frozen=True)
class Track:
    """A track past the door: ``features`` float32 ``(n_beats >= 1, n_inputs)``, all finite.

    Attributes
    ----------
    features : np.ndarray
    beats : np.ndarray or None
        Beat times in seconds (float64), when the reader gave them.
    track_id : str
    name : str
        The input it came from (a file name), for messages.
    chroma_ends : np.ndarray or None
        ``(2, 12)`` mean chroma energy of the recording's first and last tenth (an audio file's analysis gives
        it; a store's track has none): what :mod:`beatdbn.models.key_ends` adds to a key model's answer.
    """

    features: np.ndarray
    beats: np.ndarray | None = None
    track_id: str = ""
    name: str = ""
    chroma_ends: np.ndarray | None = None


def admit(name: str, meta: dict | None, features, beats=None, *, n_inputs: int,
          mismatch: Callable[[dict, str], str | None] | None = None, verb: str = "classify") -> Track:
    """The track as a :class:`Track`, or :class:`TrackRefused` saying why not.

    Parameters
    ----------
    name : str
        The input it came from.
    meta : dict or None
        The reader's metadata (``track_id``, ``representation``).
    n_inputs : int
        Features per beat the model reads (24: 12 chroma, 12 timbre).
    mismatch : callable, optional
        ``mismatch(meta, name)``: the error text when the track's representation is not the model's, else None.
    verb : str
        What is refused, for the message ("classify", "embed").

    Raises
    ------
    TrackRefused
        The representation, the shape (no beats, another width) or a non-finite value.
    """
    meta = meta if isinstance(meta, dict) else {}
    track_id = str(meta.get("track_id", ""))
    why = mismatch(meta, name) if mismatch is not None else None
    if why:
        raise TrackRefused(why)
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim != 2 or feats.shape[1] != n_inputs or len(feats) == 0:
        what = "no beats" if feats.ndim == 2 and len(feats) == 0 else \
            f"features of shape {feats.shape} (expected (n_beats, {n_inputs}))"
        raise TrackRefused(f"{name}: track {track_id} has {what}; nothing to {verb}")
    if not np.isfinite(feats).all():
        raise TrackRefused(f"{name}: track {track_id} has non-finite feature values; nothing to {verb}")
    return Track(feats, None if beats is None else np.asarray(beats, dtype=np.float64), track_id, name,
                 _ends(meta.get("chroma_ends")))


def _ends(value) -> np.ndarray | None:
    """The reader's ``chroma_ends`` when it is a finite, non-negative (2, 12) array; else None (no ends)."""
    if value is None:
        return None
    try:
        ends = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return ends if ends.shape == (2, 12) and np.isfinite(ends).all() and (ends >= 0).all() else None


Steps = list[np.ndarray] | None


class Classifier(Protocol):
    """What a finished run classifies with."""

    answers_over_time: bool
    n_inputs: int

    def predict_proba(self, features: Sequence[np.ndarray], *, over_time: bool = False
                      ) -> tuple[np.ndarray, Steps]:
        """Track posteriors ``(n_tracks, n_classes)`` float64, and with ``over_time`` each track's per-step
        posteriors ``(n_steps, n_classes)`` (else None)."""


#: Beats one forward pass holds, the 12 transpositions of a key model included: small enough for the caches
#: (32,768 beats x 200 layer-1 maps = 26 MB), large enough that per-pass overhead does not show
EVAL_BEATS = 1 << 15


def conv_posteriors(model: ConvMLP, features: Sequence[np.ndarray], *, over_time: bool = False,
                    batch_size: int = 32, device: str | torch.device | None = None) -> tuple[np.ndarray, Steps]:
    """A conv MLP's track posteriors (float64, input order) and, with ``over_time``, its per-step ones.

    Tracks are batched by length, at most ``batch_size`` tracks and :data:`EVAL_BEATS` padded beats
    (transpositions counted) per batch (:func:`~beatdbn.data.splits.budget_batches`); each batch is one
    forward pass (:meth:`ConvMLP.posteriors`). The model is in eval mode meanwhile (its mode is restored).
    """
    import torch  # reason: lazy, a torch model's caller has loaded it already

    from beatdbn.data.splits import budget_batches, padded_batch  # reason: lazy, torch

    device = model.layer1a.weight.device if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    tracks = np.zeros((len(features), model.config.n_classes), dtype=np.float64)
    steps: list[Any] = [None] * len(features)
    lengths = np.array([len(f) for f in features], dtype=np.int64)
    try:
        with torch.no_grad():
            for idx in budget_batches(lengths, batch_size, max(1, EVAL_BEATS // model.rows_per_track)):
                x, xl = padded_batch([features[i] for i in idx], device=device)
                track, p, l4 = model.posteriors(x, xl)
                tracks[idx] = track.double().cpu().numpy()
                if over_time:
                    p = p.transpose(1, 2).double().cpu().numpy()  # (B, T4, C)
                    for j, i in enumerate(idx):
                        steps[i] = p[j, :int(l4[j])]
    finally:
        model.train(was_training)
    return tracks, (steps if over_time else None)


class ConvMLPClassifier:
    """A conv MLP behind the protocol (see :func:`conv_posteriors`)."""

    answers_over_time = True

    def __init__(self, model: ConvMLP, *, batch_size: int = 32):
        self.model, self.batch_size = model, batch_size
        self.n_inputs = model.config.n_inputs

    def predict_proba(self, features: Sequence[np.ndarray], *, over_time: bool = False) -> tuple[np.ndarray, Steps]:
        return conv_posteriors(self.model, features, over_time=over_time, batch_size=self.batch_size)


class NumpyConvMLPClassifier:
    """A conv MLP's numpy forward behind the protocol: each track on its own (no padding), its 12
    transpositions in one pass (:meth:`NumpyConvMLP.posteriors <beatdbn.models.numpy_mlp.NumpyConvMLP.posteriors>`)."""

    answers_over_time = True

    def __init__(self, model: NumpyConvMLP):
        self.model = model
        self.n_inputs = model.n_inputs

    def predict_proba(self, features: Sequence[np.ndarray], *, over_time: bool = False) -> tuple[np.ndarray, Steps]:
        tracks, steps = self.model.posteriors(features)
        return tracks, (steps if over_time else None)


def is_conv_mlp(model: Any) -> bool:
    """True for a torch :class:`~beatdbn.models.convmlp.ConvMLP` (checked without importing torch: a model
    can only be one once its module is loaded)."""
    module = sys.modules.get("beatdbn.models.convmlp")
    return module is not None and isinstance(model, module.ConvMLP)


class WindowClassifier:
    """A window baseline (``predict_proba(list of tracks) -> (n, n_classes)``) behind the protocol."""

    answers_over_time = False
    n_inputs = 24

    def __init__(self, model: Any):
        self.model = model

    def predict_proba(self, features: Sequence[np.ndarray], *, over_time: bool = False) -> tuple[np.ndarray, Steps]:
        if over_time:
            raise ParameterError(f"a {getattr(self.model, 'kind', 'baseline')} model has no layer-4 steps; "
                                 f"posteriors over time need a conv MLP run")
        return np.asarray(self.model.predict_proba(list(features)), dtype=np.float64), None


def classifier_of(model: Any, *, batch_size: int = 32) -> Classifier:
    """The protocol's object for a conv MLP (torch: ``batch_size`` tracks a pass; numpy: a track a pass) or a
    window baseline."""
    if isinstance(model, NumpyConvMLP):
        return NumpyConvMLPClassifier(model)
    return ConvMLPClassifier(model, batch_size=batch_size) if is_conv_mlp(model) else WindowClassifier(model)
