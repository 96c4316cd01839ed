"""A saved conv MLP run in numpy: the posteriors of :meth:`ConvMLP.posteriors
<beatdbn.models.convmlp.ConvMLP.posteriors>` without importing torch.

Why: a one-song ``beatdbn predict --task key`` is mostly process start, and
importing torch is about 0.9 s of it on two cores; the network itself, the
12 transpositions of a 3-minute song included, is a few milliseconds of
matrix products. The shipped key model therefore carries its weights twice:
``model.pt`` (the model, loaded with ``weights_only=True``; training and
every torch path use it) and ``model.npz``, the same float32 tensors under
the same state-dict names (:func:`save_npz`), read with
``allow_pickle=False``. A test holds the two files equal and the two
forwards within float rounding of each other.

What flows where, per track (time-major ``(T, channels)`` throughout)::

    features (T, 24) -- timbre normalized over the track, tracks < 51 beats padded (MLPConfig.short_track)
    chroma rotated by k = 0..11 semitones -> (12, T, 12); timbre the same for all 12 (its conv runs once)
    conv 1a (12, T-7, 100) ++ conv 1b (T-7, 100) -> max-pool 4, sigmoid -> (12, T2, 200)
    conv 3 -> (12, T2-7, 100) -> max-pool 4, sigmoid -> layer 4 (12, T4, 100)
    output layer, softmax per step -> (12, T4, C); class i of rotation k read at table[k, i]; mean over k
    track posterior = mean over the T4 steps

A convolution is one matrix product of the input's sliding windows
(:func:`numpy.lib.stride_tricks.sliding_window_view`) with the filters
reshaped to ``(maps, channels * width)``, the layout of ``conv1d``'s weights.
A model without ``transpose_keys`` runs once, unrotated.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from beatdbn.exceptions import DataError
from beatdbn.models.layout import LAYERS
from beatdbn.models.mlp_config import MLPConfig, read_model_config, transposition_table

__all__ = ["NumpyConvMLP", "save_npz", "NPZ_FILE"]

#: The numpy copy of a model's weights, beside ``model.pt``.
NPZ_FILE = "model.npz"
#: Floats one rotation chunk's widest im2col matrix (layer 3's) may hold: a long recording is classified in
#: chunks of rotations, not in one matrix of its whole length times 12
_CHUNK_FLOATS = 1 << 24


def save_npz(state: Mapping[str, np.ndarray], directory: str | Path) -> Path:
    """Write ``state`` (state-dict name -> float32 array) as ``directory/model.npz``, atomically."""
    from beatdbn.utils.atomic import write_bytes  # reason: lazy, only writers of models need it

    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()})
    path = Path(directory) / NPZ_FILE
    write_bytes(path, buf.getvalue())
    return path


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Valid 1-d convolution (cross-correlation, as ``conv1d``), time-major: ``(..., T, C)`` with
    ``weight (O, C, W)`` -> ``(..., T - W + 1, O)``."""
    width = weight.shape[2]
    cols = sliding_window_view(x, width, axis=-2)  # (..., T', C, W): the C x W window of each step
    cols = cols.reshape(*cols.shape[:-2], -1)  # (..., T', C*W), the order of weight.reshape(O, -1)
    return cols @ weight.reshape(weight.shape[0], -1).T + bias


def _pool_sigmoid(h: np.ndarray, size: int) -> np.ndarray:
    """``sigmoid(max_pool(h))`` over time (floor), time-major ``(..., T, O)`` -> ``(..., T // size, O)``."""
    t = h.shape[-2] // size
    pooled = h[..., :t * size, :].reshape(*h.shape[:-2], t, size, h.shape[-1]).max(axis=-2)
    return 0.5 + 0.5 * np.tanh(0.5 * pooled)  # the logistic function, without exp's overflow


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class NumpyConvMLP:
    """A conv MLP's forward pass in numpy (see the module docstring).

    Parameters
    ----------
    config : MLPConfig
    weights : mapping
        State-dict name -> array (``layer1a.weight`` ..., ``output.bias``), the shapes of
        :meth:`MLPConfig.weight_shapes`.

    Examples
    --------
    >>> cfg = MLPConfig(n_classes=3, n_maps_1a=4, n_maps_1b=4, n_maps_3=4)
    >>> rng = np.random.default_rng(0)
    >>> model = NumpyConvMLP(cfg, {k: rng.normal(size=s) for k, s in cfg.weight_shapes().items()})
    >>> tracks, steps = model.posteriors([rng.random((100, 24)), rng.random((40, 24))])
    >>> tracks.shape, [s.shape for s in steps]  # a 40-beat track is padded to 51 beats: one step
    ((2, 3), [(4, 3), (1, 3)])
    """

    def __init__(self, config: MLPConfig, weights: Mapping[str, np.ndarray]):
        expect = config.weight_shapes()
        got = {k: tuple(np.shape(v)) for k, v in weights.items()}
        if got != expect:
            raise DataError(f"numpy conv MLP weights do not fit the config (expected {expect}, got {got})")
        self.config = config
        self.weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        self._table = transposition_table(config.transpose_keys) if config.transpose_keys else None

    @classmethod
    def load(cls, directory: str | Path) -> "NumpyConvMLP":
        """The model of a folder holding ``config.json`` and ``model.npz`` (:func:`save_npz`).

        Raises
        ------
        DataError
            A file is missing or unreadable, or its tensors do not fit its config.
        """
        directory = Path(directory)
        config = read_model_config(directory, NPZ_FILE)
        path = directory / NPZ_FILE
        try:
            with np.load(path, allow_pickle=False) as npz:
                weights = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: not a numpy model file ({exc}); rebuild it with `make model`") from None
        try:
            return cls(config, weights)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None

    @property
    def n_inputs(self) -> int:
        return self.config.n_inputs

    def _prepare(self, features: np.ndarray) -> np.ndarray:
        """``(T, 24)`` -> the network's input: timbre normalized, padded to the receptive field (float32)."""
        c = self.config
        x = np.asarray(features, dtype=np.float32)
        if c.normalize_timbre:  # population statistics over the track; a constant dimension becomes exactly 0
            timbre = x[:, c.n_chroma:]
            centred = timbre - timbre.mean(axis=0)
            centred[:, timbre.max(axis=0) == timbre.min(axis=0)] = 0.0  # as models.forward.normalize_timbre
            std = np.sqrt(np.square(centred).mean(axis=0))
            x = np.concatenate((x[:, :c.n_chroma], centred / np.where(std < 1e-6, 1.0, std)), axis=1)
        n, field = len(x), c.receptive_field
        if n < field:
            ar = np.arange(field)
            x = x[ar % n if c.short_track == "wrap" else np.minimum(ar, n - 1)]
            if c.short_track == "zeros":
                x[n:] = 0.0
        return x.astype(np.float32, copy=False)

    def _layer4(self, chroma: np.ndarray, timbre_1b: np.ndarray) -> np.ndarray:
        """Layer 4 ``(R, T4, n_maps_3)`` of ``R`` chroma rotations ``(R, T, 12)`` beside one layer-1b output."""
        w = self.weights
        h1a = _conv(chroma, w["layer1a.weight"], w["layer1a.bias"])  # (R, T1, n_1a)
        h1 = np.concatenate((h1a, np.broadcast_to(timbre_1b, h1a.shape[:-1] + timbre_1b.shape[-1:])), axis=-1)
        h2 = _pool_sigmoid(h1, self.config.pool_1)
        return _pool_sigmoid(_conv(h2, w["layer3.weight"], w["layer3.bias"]), self.config.pool_3)

    def step_proba(self, features: np.ndarray) -> np.ndarray:
        """Per-step posteriors ``(T4, n_classes)`` of one track ``(n_beats >= 1, 24)``: with ``transpose_keys``
        the mean over the 12 transpositions (as :meth:`ConvMLP.step_proba
        <beatdbn.models.convmlp.ConvMLP.step_proba>`)."""
        c, w = self.config, self.weights
        x = self._prepare(features)
        chroma, timbre = x[:, :c.n_chroma], x[:, c.n_chroma:]
        spec_1b = next(s for s in LAYERS if s.inputs == "timbre")
        timbre_1b = _conv(timbre, w[f"{spec_1b.attr}.weight"], w[f"{spec_1b.attr}.bias"])  # (T1, n_1b)
        out_w, out_b = w["output.weight"][:, :, 0], w["output.bias"]
        if self._table is None:
            return _softmax(self._layer4(chroma[None], timbre_1b)[0] @ out_w.T + out_b).astype(np.float64)
        # rotation k: new chroma bin c holds old bin (c - k) mod 12
        rotate = (np.arange(12)[None, :] - np.arange(12)[:, None]) % 12  # (12 rotations, 12 bins)
        t2 = (len(x) - c.width_1 + 1) // c.pool_1
        per = int(max(1, min(12, _CHUNK_FLOATS // max(1, t2 * (c.n_maps_1a + c.n_maps_1b) * c.width_3))))
        total = None
        for k0 in range(0, 12, per):
            ks = np.arange(k0, min(12, k0 + per))
            h4 = self._layer4(np.moveaxis(chroma[:, rotate[ks]], 1, 0), timbre_1b)  # (R, T4, n_3)
            p = _softmax(h4 @ out_w.T + out_b)  # (R, T4, C)
            # class i of the original is class table[k, i] of the track rotated by k
            p = np.take_along_axis(p, np.broadcast_to(self._table[ks][:, None, :], p.shape), axis=2).sum(axis=0)
            total = p if total is None else total + p
        return total.astype(np.float64) / 12.0

    def posteriors(self, features: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Track posteriors ``(n_tracks, n_classes)`` float64 (the mean of each track's steps) and each
        track's per-step posteriors ``(T4, n_classes)``."""
        steps = [self.step_proba(f) for f in features]
        tracks = np.array([s.mean(axis=0) for s in steps]).reshape(len(steps), self.config.n_classes)
        return tracks, steps
