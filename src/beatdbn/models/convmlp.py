"""The convolutional MLP of sections 3.5 and 5.1 (Dieleman et al., 2011): the DBN, finetuned.

The DBN's layers become a feed-forward network of sigmoid units with the same
max-pooling, and a logistic-regression layer classifies every layer-4 time
step. For a batch ``x`` shaped ``(batch, 24, T)`` (channels 0-11 chroma,
12-23 timbre)::

    timbre normalized per track (as in the DBN); tracks < 51 beats padded (DBNConfig.short_track)
    chroma (12, T) --conv 1a, n_maps_1a x 8--> (n_1a, T-7) --+
    timbre (12, T) --conv 1b, n_maps_1b x 8--> (n_1b, T-7) --+-- concatenate, max-pool 4, sigmoid --> (n_1a + n_1b, T2)
    --conv 3, n_maps_3 x 8--> (n_3, T2-7) --max-pool 4, sigmoid--> layer 4 (n_3, T4)
    --logistic regression (a width-1 conv), per step--> logits (n_classes, T4)

Sigmoid is monotonic, so ``max_pool(sigmoid(z)) == sigmoid(max_pool(z))``
exactly (values and gradients): the sigmoid is applied after pooling, to a
quarter of the units. With the DBN's weights the layer-4 features equal
:meth:`ConvDBN.forward <beatdbn.models.dbn.ConvDBN.forward>`'s (tested).
Padding never reaches a valid output: a valid step only reads valid beats,
and :meth:`ConvMLP.forward` returns the valid layer-4 steps of each track.

**Track posterior.** Each valid layer-4 step ``t`` gets a posterior
``softmax(logits[:, t])``; a track's posterior is their mean over its valid
steps and its class the argmax (:func:`track_posteriors`).

**Training loss** (:meth:`ConvMLP.loss`): the cross-entropy of every valid
step against the track's label, summed over the track's steps and averaged
over the tracks of the batch. This is the convention of the CRBMs
(:mod:`beatdbn.models.crbm`: gradients summed over time, averaged over
tracks), so a learning rate is *per track* and keeps its meaning for any
batch size; per time step it is the learning rate times the track's
number of layer-4 steps (about 30 for a 500-beat track). Averaging over the
steps instead made the paper's rates (0.05 ... 0.0005) too small to move a
network whose pretrained weights are small: on the demo corpus the loss
stayed at ``log(n_classes)`` for 10 epochs at 0.05.

**Initializations** (:meth:`ConvMLP.from_dbn`, :meth:`ConvMLP.random_like`,
``ConvMLP(config)``):

* ``'pretrained'``: the DBN's filters and hidden biases (the visible biases
  are not used by a feed-forward network and are dropped);
* ``'random_like'`` (the paper's control): each layer's weights drawn from a
  Gaussian with the mean and variance of that layer's pretrained weights;
  each layer's hidden biases are all set to the mean of that layer's
  pretrained hidden biases, so that the units start at the same overall
  activation level (sparsity) without inheriting any learned per-unit
  structure;
* ``'random'`` (no DBN at hand): the initialization Theano's deep-learning
  tutorials use for sigmoid conv nets (Glorot & Bengio, 2010), uniform in
  ``+-4 sqrt(6 / (fan_in + fan_out))`` with ``fan_in = channels_in * width``
  and ``fan_out = maps * width / pool``; biases 0.

The output layer starts the same way in all three: weights uniform in
``+-4 sqrt(6 / (n_maps_3 + n_classes))`` (the Theano rule for sigmoid
inputs that the random hidden layers use too) drawn from a generator seeded
by ``seed`` alone, biases 0, so two models built with the same seed have
identical output layers. (The paper does not say how its output layer
started. A small start, ``N(0, 0.01^2)``, left both the pretrained and the
random-control networks on a plateau at chance on the demo corpus: their
layer-4 features vary little from track to track, and with tiny output
weights almost no gradient reaches the hidden layers; with this start both
learn, measured on the demo key task.)

**Saving**: :meth:`ConvMLP.save` writes ``model.pt`` (a plain state dict)
and ``config.json`` (``{"format": "beatdbn-convmlp", "version": 1,
"config": {...}}``); :meth:`ConvMLP.load` rebuilds the model from the JSON and
loads the tensors with ``weights_only=True`` (a model file never runs code).
A folder that is not a conv MLP, or one written by an incompatible version,
raises :class:`~beatdbn.exceptions.DataError` naming the file.

Examples
--------
>>> import torch
>>> from beatdbn.models.convmlp import ConvMLP, MLPConfig
>>> model = ConvMLP(MLPConfig(n_classes=3, n_maps_1a=4, n_maps_1b=4, n_maps_3=4))
>>> x = torch.cat([torch.rand(2, 12, 100), torch.randn(2, 12, 100)], dim=1)
>>> logits, lengths = model(x, torch.tensor([100, 40]))
>>> tuple(logits.shape), lengths.tolist()  # a 40-beat track is padded to 51 beats: one step
((2, 3, 4), [4, 1])
>>> torch.allclose(model.predict_proba(x).sum(dim=1), torch.ones(2))
True
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from beatdbn.exceptions import DataError
from beatdbn.models.dbn import ConvDBN
from beatdbn.models.forward import layer4, prepare_input
from beatdbn.models.layout import LAYERS, output_length
from beatdbn.models.mlp_config import INITS, MODEL_FORMAT, MODEL_VERSION, MLPConfig, read_model_config
from beatdbn.models.mlp_config import transposition_table as key_table
from beatdbn.models.numpy_mlp import save_npz
from beatdbn.models.masks import valid_mask
from beatdbn.utils.atomic import save_torch, write_json
from beatdbn.utils.moments import exact_moments
from beatdbn.utils.weights import load_weights

__all__ = ["MLPConfig", "ConvMLP", "track_posteriors", "rotate_chroma", "INITS", "MODEL_FORMAT", "MODEL_VERSION"]



class _Conv(nn.Module):
    """Weights ``(n_out, n_in, width)`` (the ``conv1d`` layout of the CRBMs) and a bias ``(n_out,)``."""

    def __init__(self, n_out: int, n_in: int, width: int, *, device=None, dtype=torch.float32) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros((n_out, n_in, width), device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros((n_out,), device=device, dtype=dtype))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return F.conv1d(v, self.weight, self.bias)


def _generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator for one layer, derived from ``seed`` and the layer's name."""
    key = int.from_bytes(hashlib.sha256(f"convmlp/{seed}/{name}".encode()).digest()[:8], "little")
    return torch.Generator().manual_seed(key & ((1 << 63) - 1))


def rotate_chroma(x: torch.Tensor, shifts: torch.Tensor | int) -> torch.Tensor:
    """Transpose tracks: chroma bin ``c`` moves to ``(c + k) mod 12``; timbre (channels 12..) is unchanged.

    Parameters
    ----------
    x : torch.Tensor [shape=(batch, 24, T)]
    shifts : torch.Tensor [shape=(batch,)] or int
        Semitones ``k`` per track (or one for all).

    Examples
    --------
    >>> x = torch.zeros(1, 24, 2); x[0, 0] = 1.0  # all energy on C
    >>> int(rotate_chroma(x, 2)[0, :12, 0].argmax())  # now on D
    2
    """
    shifts = torch.as_tensor(shifts, device=x.device).long().expand(x.shape[0])
    idx = (torch.arange(12, device=x.device)[None, :] - shifts[:, None]) % 12  # new[c] = old[(c - k) mod 12]
    chroma = torch.gather(x[:, :12], 1, idx[:, :, None].expand(-1, -1, x.shape[2]))
    return torch.cat((chroma, x[:, 12:]), dim=1)


def transposition_table(codes: Sequence[int]) -> torch.Tensor:
    """:func:`beatdbn.models.mlp_config.transposition_table` as a tensor: ``table[k, i]`` is the class of class
    ``i``'s key moved up ``k`` semitones, ``(12, n_classes)`` int64.

    Examples
    --------
    >>> transposition_table(range(24))[7, 21].item()  # A minor (class 21) up a fifth: E minor (class 16)
    16
    """
    return torch.from_numpy(key_table(codes))


def track_posteriors(logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean of the per-step softmax posteriors over each track's valid steps.

    Parameters
    ----------
    logits : torch.Tensor [shape=(batch, n_classes, T4)]
    lengths : torch.Tensor [shape=(batch,)]
        Valid steps of each track (at least 1).

    Returns
    -------
    torch.Tensor [shape=(batch, n_classes)]
        Rows sum to 1; ``argmax`` is the track's class.

    Examples
    --------
    >>> logits = torch.log(torch.tensor([[[0.9, 0.2, 0.5], [0.1, 0.8, 0.5]]]))
    >>> track_posteriors(logits, torch.tensor([2]))  # the third step is padding
    tensor([[0.5500, 0.4500]])
    """
    p = torch.softmax(logits.float(), dim=1)
    m = valid_mask(lengths.to(p.device), p.shape[2]).to(p.dtype)[:, None, :]  # (B, 1, T4)
    return (p * m).sum(dim=2) / m.sum(dim=2).clamp_min(1.0)


def _masked_softmax(logits: torch.Tensor, l4: torch.Tensor) -> torch.Tensor:
    """Softmax over classes of ``(B, C, T4)`` logits, 0 at steps past each track's end."""
    p = torch.softmax(logits.float(), dim=1)
    return p * valid_mask(l4.to(p.device), p.shape[2]).to(p.dtype)[:, None, :]


#: Beats (batch x length) one forward pass of the transposition average may hold; past it the 12
#: rotations run in chunks, so a long track costs passes, not memory.
_ROTATION_BEATS = 1 << 19


class ConvMLP(nn.Module):
    """The conv MLP: layers 1a, 1b, 3 (sigmoid, max-pooled) and a per-step logistic regression.

    Parameters
    ----------
    config : MLPConfig
    device, dtype
        Where the parameters live.

    Attributes
    ----------
    layer1a, layer1b, layer3 : module with ``weight [shape=(maps, channels, width)]`` and ``bias [shape=(maps,)]``
    output : module with ``weight [shape=(n_classes, n_maps_3, 1)]`` and ``bias [shape=(n_classes,)]``

    Notes
    -----
    ``ConvMLP(config)`` initializes at random (``config.init`` is then
    ``'random'``; see the module docstring for the scale). Use
    :meth:`from_dbn` or :meth:`random_like` to start from a DBN.
    """

    def __init__(self, config: MLPConfig | None = None, *, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.config = c = MLPConfig() if config is None else config
        kw = dict(device=device, dtype=dtype)
        for spec in LAYERS:
            setattr(self, spec.attr, _Conv(getattr(c, spec.maps), c.n_visible(spec), getattr(c, spec.width), **kw))
        self.output = _Conv(c.n_classes, c.n_maps_3, 1, **kw)
        self._init_random()
        self._init_output()

    # -- initialization -------------------------------------------------------

    @torch.no_grad()
    def _init_random(self) -> None:
        """Glorot-style uniform weights for sigmoid units (Theano tutorials), zero biases."""
        c = self.config
        for spec in LAYERS:
            layer = getattr(self, spec.attr)
            n_out, n_in, width = layer.weight.shape
            bound = 4.0 * math.sqrt(6.0 / (n_in * width + n_out * width / getattr(c, spec.pool)))
            w = torch.rand(layer.weight.shape, generator=_generator(c.seed, spec.attr), dtype=torch.float64)
            layer.weight.copy_((2.0 * w - 1.0) * bound)
            layer.bias.zero_()

    @torch.no_grad()
    def _init_output(self) -> None:
        """Output weights uniform in ``+-4 sqrt(6 / (fan_in + fan_out))`` from ``seed`` alone, biases 0
        (the same for every init)."""
        n_out, n_in = self.output.weight.shape[:2]
        bound = 4.0 * math.sqrt(6.0 / (n_in + n_out))
        w = torch.rand(self.output.weight.shape, generator=_generator(self.config.seed, "output"), dtype=torch.float64)
        self.output.weight.copy_((2.0 * w - 1.0) * bound)
        self.output.bias.zero_()

    @staticmethod
    def _layers_of(dbn: ConvDBN):
        return {spec.attr: getattr(dbn, spec.attr) for spec in LAYERS}

    def params(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Stage -> (weight, bias) of the hidden layers: what :func:`~beatdbn.models.forward.layer4` computes with."""
        return {spec.stage: (getattr(self, spec.attr).weight, getattr(self, spec.attr).bias) for spec in LAYERS}

    @classmethod
    def from_dbn(cls, dbn: ConvDBN, n_classes: int, *, seed: int = 0, classes: Sequence[str] = (),
                 task: str = "") -> "ConvMLP":
        """A conv MLP starting from a pretrained DBN's filters and hidden biases.

        Parameters
        ----------
        dbn : ConvDBN
        n_classes : int
        seed : int
            Seed of the output layer's initial weights.
        classes : sequence of str, optional
            Class names, kept in the config for prediction.
        task : str, optional

        Returns
        -------
        ConvMLP
            On the DBN's device, ``config.init == 'pretrained'``.
        """
        model = cls(MLPConfig.like(dbn.config, n_classes, classes=tuple(classes), task=task, init="pretrained",
                                   seed=seed), device=dbn.layer1a.weight.device)
        with torch.no_grad():
            for name, rbm in cls._layers_of(dbn).items():
                layer = getattr(model, name)
                layer.weight.copy_(rbm.weight)
                layer.bias.copy_(rbm.hidden_bias)
        return model

    @classmethod
    def random_like(cls, dbn: ConvDBN, n_classes: int, *, seed: int = 0, classes: Sequence[str] = (),
                    task: str = "") -> "ConvMLP":
        """The paper's random control: Gaussian weights with each DBN layer's weight mean and variance.

        Each layer's weights are drawn from ``N(mean(W), var(W))`` of the
        corresponding pretrained layer (population variance over all its
        weights), the draw then shifted and scaled so that its sample mean
        and variance equal the pretrained layer's exactly; its hidden biases are all set to the mean of that layer's
        pretrained hidden biases. The output layer starts as in
        :meth:`from_dbn` with the same ``seed``.

        Returns
        -------
        ConvMLP
            On the DBN's device, ``config.init == 'random_like'``.
        """
        model = cls(MLPConfig.like(dbn.config, n_classes, classes=tuple(classes), task=task, init="random_like",
                                   seed=seed), device=dbn.layer1a.weight.device)
        with torch.no_grad():
            for name, rbm in cls._layers_of(dbn).items():
                layer = getattr(model, name)
                # statistics summed exactly (exact_moments), not by a threaded reduction: the start must not
                # depend on the thread count of the process that draws it
                mean, std = exact_moments(rbm.weight)
                z = torch.randn(rbm.weight.shape, generator=_generator(seed, name), dtype=torch.float64)
                z_mean, z_std = exact_moments(z)
                z = (z - z_mean) / max(z_std, 1e-12)  # exact sample mean/variance
                layer.weight.copy_(mean + std * z)
                layer.bias.fill_(exact_moments(rbm.hidden_bias)[0])
        return model

    # -- input --------------------------------------------------------------------

    def _prepare(self, x: Any, lengths: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Checked input on the model's device, padding zeroed, timbre normalized, short tracks padded
        (:func:`~beatdbn.models.forward.prepare_input`, shared with the DBN)."""
        return prepare_input(self.config, x, lengths, like=self.layer1a.weight)

    # -- the network ------------------------------------------------------------------

    def _layer4(self, x: torch.Tensor) -> torch.Tensor:
        """Layer-4 probabilities of prepared input: ``(B, 24, T) -> (B, n_maps_3, T4)`` (padding not masked)."""
        return layer4(self.config, self.params(), x)

    def hidden(self, x: Any, lengths: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-4 features, as :meth:`ConvDBN.forward` computes them.

        Parameters
        ----------
        x : torch.Tensor [shape=(batch, 24, T)]
        lengths : torch.Tensor [shape=(batch,)] or None

        Returns
        -------
        features : torch.Tensor [shape=(batch, n_maps_3, T4)]
            Steps past a track's end are 0.
        lengths : torch.Tensor [shape=(batch,)]
            Valid layer-4 steps of each track (:func:`output_length`, at least 1).
        """
        x, lengths = self._prepare(x, lengths)
        h = self._layer4(x)
        l4 = output_length(lengths, self.config)
        return h.masked_fill(~valid_mask(l4, h.shape[2])[:, None, :], 0.0), l4

    def forward(self, x: Any, lengths: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step class logits and the valid steps of each track.

        Parameters
        ----------
        x : torch.Tensor [shape=(batch, 24, T)]
            Chroma then timbre (raw timbre: it is normalized here), zero-padded.
        lengths : torch.Tensor [shape=(batch,)] or None
            Valid beats per track (``T`` for all when None); a track needs >= 1.

        Returns
        -------
        logits : torch.Tensor [shape=(batch, n_classes, T4)]
            Steps past a track's end are 0 (and must be ignored: use ``lengths``).
        lengths : torch.Tensor [shape=(batch,)]
            Valid layer-4 steps (``((n - 7) // 4 - 7) // 4``, at least 1).
        """
        return self._logits(*self._prepare(x, lengths))

    def _logits(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` of prepared input."""
        logits = self.output(self._layer4(x))  # (B, n_3, T4) -> (B, C, T4)
        l4 = output_length(lengths, self.config)
        if bool((l4 < logits.shape[2]).any()):
            logits = logits.masked_fill(~valid_mask(l4, logits.shape[2])[:, None, :], 0.0)
        return logits, l4

    @property
    def rows_per_track(self) -> int:
        """Forward-pass rows one input track costs in :meth:`step_proba`: 12 for a key model (its transposition
        average), else 1. Batching code sizes its passes by it (:func:`beatdbn.inference.classifier.conv_posteriors`)."""
        return 12 if self.config.transpose_keys else 1

    def step_proba(self, x: Any, lengths: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step posteriors ``(batch, n_classes, T4)`` (0 past a track's end) and the valid steps of each track.

        With ``config.transpose_keys`` (a key model trained with transposition
        augmentation) each step's posterior is averaged over the 12
        transpositions of the input: the chroma rotated by ``k`` semitones is
        classified and its posterior moved back by ``k``
        (:func:`transposition_table`). The 12 rotations go through the network
        as one batch (in a few chunks for very long inputs), so the answer is
        exactly transposition-equivariant at the cost of one larger forward pass.
        """
        if not self.config.transpose_keys:
            logits, l4 = self.forward(x, lengths)
            return _masked_softmax(logits, l4), l4
        x, lengths = self._prepare(x, lengths)
        table = transposition_table(self.config.transpose_keys).to(x.device)  # (12, C)
        b, rotations = x.shape[0], self.rows_per_track
        per_pass = max(1, min(rotations, _ROTATION_BEATS // max(1, b * x.shape[2])))  # rotations in one pass
        total, l4 = None, None
        for k0 in range(0, rotations, per_pass):
            ks = torch.arange(k0, min(rotations, k0 + per_pass), device=x.device)
            xr = rotate_chroma(x.repeat(len(ks), 1, 1), ks.repeat_interleave(b))  # (R*B, 24, T)
            logits, l4r = self._logits(xr, lengths.repeat(len(ks)))
            p = _masked_softmax(logits, l4r).reshape(len(ks), b, -1, logits.shape[2])  # (R, B, C, T4)
            # original class i of rotation k is the rotated track's class table[k, i]
            idx = table[ks][:, None, :, None].expand(-1, b, -1, p.shape[3])
            p = torch.gather(p, 2, idx).sum(dim=0)
            total, l4 = (p if total is None else total + p), l4r[:b]
        return total / rotations, l4

    def predict_proba(self, x: Any, lengths: Any = None) -> torch.Tensor:
        """Track posteriors ``(batch, n_classes)``: the mean of the valid steps' posteriors (:meth:`step_proba`).

        With ``config.transpose_keys`` the prediction is exactly
        transposition-equivariant: transposing a track transposes its predicted key.
        """
        return self.posteriors(x, lengths)[0]

    def posteriors(self, x: Any, lengths: Any = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Track posteriors ``(batch, n_classes)``, per-step posteriors ``(batch, n_classes, T4)`` and the valid
        steps of each track, from one forward pass (:meth:`step_proba`): a track's posterior is the mean of its
        valid steps' posteriors."""
        p, l4 = self.step_proba(x, lengths)
        return p.sum(dim=2) / l4.to(p.dtype).clamp_min(1.0)[:, None], p, l4

    @staticmethod
    def loss(logits: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-step cross-entropy against the track's label, summed over a track's steps, mean over tracks.

        Parameters
        ----------
        logits : torch.Tensor [shape=(batch, n_classes, T4)]
        lengths : torch.Tensor [shape=(batch,)]
            Valid steps of each track.
        labels : torch.Tensor [shape=(batch,)], int
            Class index of each track.

        Returns
        -------
        torch.Tensor (scalar)
        """
        logits = logits.float()
        t4 = logits.shape[2]
        ce = F.cross_entropy(logits, labels.to(logits.device)[:, None].expand(-1, t4), reduction="none")  # (B, T4)
        m = valid_mask(lengths.to(ce.device), t4).to(ce.dtype)
        return (ce * m).sum(dim=1).mean()

    # -- persistence ----------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``model.pt`` (state dict) and ``config.json`` into ``directory``; returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_torch({k: v.detach().cpu() for k, v in self.state_dict().items()}, directory / "model.pt")
        write_json(directory / "config.json",
                   {"format": MODEL_FORMAT, "version": MODEL_VERSION, "config": self.config.to_dict()})
        return directory

    def save_numpy(self, directory: str | Path) -> Path:
        """Write ``model.npz``, the same float32 tensors for the torch-free forward
        (:class:`~beatdbn.models.numpy_mlp.NumpyConvMLP`), into ``directory`` (beside :meth:`save`'s files)."""
        return save_npz({k: v.detach().cpu().float().numpy() for k, v in self.state_dict().items()}, directory)

    @classmethod
    def load(cls, directory: str | Path, *, device: torch.device | str = "cpu") -> "ConvMLP":
        """Rebuild a model written by :meth:`save` (``weights_only=True``: no code is run).

        Parameters
        ----------
        directory : path
            The model folder (or its ``model.pt``).
        device : str or torch.device

        Raises
        ------
        DataError
            The folder lacks a file, is not a conv MLP, was written by an
            incompatible version, or its tensors do not fit its config.
        """
        directory = Path(directory)
        if directory.is_file():
            directory = directory.parent
        cfg_path, pt_path = directory / "config.json", directory / "model.pt"
        config = read_model_config(directory, "model.pt")
        state = load_weights(pt_path, map_location=device, what="beatdbn model file",
                             fix="finetune again, or use a model folder written by beatdbn")  # never torch's advice
        model = cls(config, device=device)
        expect = config.weight_shapes()
        if not isinstance(state, dict):
            raise DataError(f"{pt_path}: not a state dict")
        got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
        if got != expect:
            missing = sorted(set(expect) - set(got))
            wrong = sorted(k for k in set(expect) & set(got) if expect[k] != got[k])
            extra = sorted(set(state) - set(expect))
            raise DataError(f"{pt_path}: does not match {cfg_path} (missing {missing}, wrong shape {wrong}, "
                            f"unexpected {extra})")
        model.load_state_dict(state)
        return model
