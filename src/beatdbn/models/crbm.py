"""Convolutional restricted Boltzmann machines over time (layers 1a, 1b and 3).

A 1-D convolutional RBM (CRBM) sees a batch of sequences shaped
``(batch, channels, time)``: ``channels`` are feature dimensions (12 chroma or
12 timbre coefficients) or the feature maps of the layer below. It has
``n_hidden`` feature maps of binary hidden units, one unit per map and time
step, whose weights ``W`` (shape ``(n_hidden, n_visible, width)``) are shared
over time. The convolution is 'valid': ``T`` visible steps give
``T - width + 1`` hidden steps.

Energy (``*`` is the valid cross-correlation of :func:`torch.nn.functional.conv1d`,
``(W * v)[j, t] = sum_{c, k} W[j, c, k] v[c, t + k]``)::

    binary visible   E(v, h) = - sum_{c,t} b_v[c] v[c,t] - sum_{j,t} h[j,t] ((W * v)[j,t] + b_h[j])
    Gaussian visible E(v, h) = sum_{c,t} (v[c,t] - b_v[c])^2 / 2 - sum_{j,t} h[j,t] ((W * v)[j,t] + b_h[j])

(Gaussian units have unit variance: the input is normalized per track). Hence::

    P(h[j,t] = 1 | v) = sigmoid((W * v)[j,t] + b_h[j])
    E[v[c,s] | h]     = sigmoid(a[c,s]) (binary)  or  a[c,s] (Gaussian),
                        a[c,s] = b_v[c] + sum_{j,k} W[j,c,k] h[j,s-k]   (conv_transpose1d)
    free energy F(v)  = -sum b_v v  (binary)  or  sum (v - b_v)^2 / 2  (Gaussian)
                        - sum_{j,t} softplus((W * v)[j,t] + b_h[j])

Training (:meth:`ConvRBM.partial_fit`) is one CD-1 step, as in section 5.2 of
Dieleman, Brakel & Schrauwen (2011): mean field everywhere except the hidden
states that drive the reconstruction (Hinton's practical guide, sec. 3)::

    h0 = P(h | v0)                      probabilities (data statistics)
    hs ~ Bernoulli(h0)                  the only sampling step
    v1 = E[v | hs]                      mean-field reconstruction (no visible noise)
    h1 = P(h | v1)                      probabilities (model statistics)

**Sparsity** after Goh, Thome & Cord (2010) as the first author's RBM library
(morb, ``SparsityUpdater``) applies it: in the *positive* phase the hidden
statistics entering the weight and hidden-bias gradients are replaced by::

    h0' = (1 - lam) * h0 + lam * p      lam = sparsity_cost (0.1), p = sparsity_target

(morb adds ``-lam * grad(v0, h0 - p)`` to the CD update, which is the same
thing). The visible bias is untouched. ``sparsity='goh-rank'`` replaces the
constant ``p`` by Goh's rank-based target: at each time step the ``n_hidden``
activations are ranked (rank ``r`` in ``(0, 1]``, 1 for the largest) and mapped
to ``r ** (1/p - 1)`` (whose mean over uniform ranks is ``p``); the result is
then ranked and mapped the same way per unit, over all valid (example, time)
positions of the batch. ``sparsity='none'`` switches sparsity off.

**Gradient normalization**: sums over time positions, means over examples
(sequences, i.e. tracks): the learning rate is *per track*, as in the first
author's library morb (whose convolutional gradients are sums) with one track
per minibatch. With ``N`` sequences that have at least one valid hidden
position (padding, given by ``lengths`` or ``mask``, is excluded
everywhere)::

    dW[j,c,k] = (1/N) sum_n sum_t ( h0'[n,j,t] v0[n,c,t+k] - h1[n,j,t] v1[n,c,t+k] )
    db_h[j]   = (1/N) sum_n sum_t ( h0'[n,j,t] - h1[n,j,t] )
    db_v[c]   = (1/N) sum_n sum_s ( v0[n,c,s] - v1[n,c,s] )

A batch of 32 tracks moves the parameters as far as one track would, on
average, so the paper's learning rates keep their meaning for any batch
size. Per time position the effective rate is ``lr`` times the hidden length
of a track: for a 512-beat track 0.005 x 505 = 2.5 (layer 1a), 0.0001 x 505
= 0.05 (layer 1b) and 0.005 x 119 = 0.6 (layer 3). These train stably, and
so do rates a few times larger (tracks of 1000-2000 beats); the checks are in
``tests/test_crbm.py``. (Means over time positions as well would make the
Gaussian layer move ~500 times slower: over one pass of the MSD it would
barely leave its initial weights.) Training on fixed-length crops instead of
whole tracks scales the step by ``crop length / track length``.
Optional weight decay ``wd`` and momentum ``m`` (both 0 by default) follow
Hinton's guide: ``vel = m * vel + lr * (grad - wd * W)``; ``W += vel``
(weight decay on ``W`` only).

Initial values (Hinton's guide, sec. 8): ``W ~ N(0, 0.01^2)``; hidden biases
``log(p / (1 - p))`` when sparsity is on (0 otherwise); visible biases 0.

Monitoring (the dict :meth:`ConvRBM.partial_fit` returns):
``reconstruction_error`` (mean squared ``v0 - v1`` per visible unit),
``mean_hidden`` (mean of ``h0``; settles near the sparsity target),
``free_energy_data`` / ``free_energy_recon`` (``F(v0)`` and ``F(v1)`` per
valid visible time step, averaged over the batch; free energy is what a
binary RBM assigns low values to, so a data/reconstruction gap that keeps
growing flags overfitting) and ``n_positions`` (valid hidden positions).
With monitoring on, a step that would produce NaN/inf raises
:class:`~beatdbn.exceptions.ParameterError` and leaves the parameters as
they were.

Implementation: every statistic is computed in closed form under
``torch.no_grad()``, vectorized (no Python loop over time or maps). Two
kernels compute the same update (:attr:`ConvRBM.cd_kernel`):

* ``'conv'``: ``conv1d`` up, ``conv_transpose1d`` down, ``conv1d`` up, and
  one weight-gradient convolution serving both phases at once (data and
  reconstruction batches side by side, the negative phase negated);
* ``'gemm'``: the two up passes and the weight gradient as matrix products
  on im2col buffers (``cols[n*T'+t, c*w+k] = v[n,c,t+k]``), all
  in memory kept per model that only grows (tracks of any length get views
  of it); the down pass (the transposed convolution) as one matrix product per
  filter tap for one track, else as a ``conv1d`` with flipped filters over the
  samples written into a zero-margined buffer. On CPU, fresh multi-megabyte
  conv outputs each step cost page faults that took longer than the
  arithmetic for layers 1a/1b. ``'auto'`` picks it on CPU for layers 1a/1b
  and for any batch of at most :data:`AUTO_GEMM_ROWS` hidden positions (layer
  3 at one track a step).

With monitoring on, the 'gemm' kernel computes the free energies' softplus
terms on CPU as ``pre - log(sigmoid(pre))`` from the probabilities it needs
anyway (within float32 rounding of ``softplus``; see ``free_energy_sum``).

The constant-target sparsity term is added analytically
(``lam * p * sum_t v0[., c, t + k]``), so it costs no pass over the hidden
units. On CPU the Bernoulli samples use 16-bit uniforms (``P(1)`` exact to
``2 ** -16``), four per 64-bit draw, which is ~4x faster than ``torch.rand``.
``benchmarks/bench_crbm.py`` measures both kernels against autograd.

Everything runs on the device and dtype of the module's parameters;
randomness comes from an explicit :class:`torch.Generator` (``generator=``),
or, when none is given, from a private generator seeded with
``config.seed`` (never the global RNG).

Examples
--------
>>> import torch
>>> from beatdbn.models.crbm import BernoulliCRBM, CRBMConfig
>>> rbm = BernoulliCRBM(CRBMConfig(n_visible=12, n_hidden=16, width=8))
>>> v = torch.rand(4, 12, 64)
>>> stats = rbm.partial_fit(v, generator=torch.Generator().manual_seed(0))
>>> sorted(stats)[:3]
['free_energy_data', 'free_energy_recon', 'mean_hidden']
>>> rbm.transform(v).shape
torch.Size([4, 16, 57])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from beatdbn.exceptions import ParameterError
from beatdbn.models.config import JsonConfig, check_layer_size
from beatdbn.models.crbm_kernels import bernoulli, cd1_conv, cd1_gemm
from beatdbn.models.masks import hidden_mask, valid_mask

__all__ = [
    "CRBMConfig",
    "ConvRBM",
    "BernoulliCRBM",
    "GaussianCRBM",
    "DEFAULT_LEARNING_RATES",
    "valid_mask",
    "hidden_mask",
]

#: Paper learning rates (section 5.2) by kind of visible unit.
DEFAULT_LEARNING_RATES = {"binary": 0.005, "gaussian": 0.0001}

#: 'auto' kernel choice: 'gemm' on CPU for batches of at most this many hidden positions (N * T'), any layer.
AUTO_GEMM_ROWS = 512

_VISIBLE_KINDS = ("binary", "gaussian")
_SPARSITY_KINDS = ("goh", "goh-rank", "none")


@dataclass(frozen=True)
class CRBMConfig(JsonConfig):
    """Hyperparameters of one convolutional RBM (saved as JSON with :meth:`to_dict`).

    Parameters
    ----------
    n_visible : int
        Visible channels (feature dimensions, or maps of the layer below).
    n_hidden : int
        Hidden feature maps.
    width : int
        Filter width in time steps (beats for layer 1, pooled steps for layer 3).
    visible : {'binary', 'gaussian'}
        Kind of visible unit: mean-field Bernoulli or unit-variance Gaussian.
    learning_rate : float or None
        ``None`` picks the paper's rate for the kind (0.005 binary, 0.0001 Gaussian).
    sparsity : {'goh', 'goh-rank', 'none'}
        Sparsity rule, see the module docstring.
    sparsity_target : float
        Target mean hidden activation ``p`` (0.05 layers 1a/1b, 0.1 layer 3).
    sparsity_cost : float
        Relative sparsity cost ``lam`` in ``[0, 1]``.
    momentum : float
        Momentum in ``[0, 1)``; 0 (off) by default.
    weight_decay : float
        L2 weight decay on ``W``; 0 (off) by default.
    sample_hiddens : bool
        Sample the hidden states that drive the reconstruction (CD-1 as the
        paper does it). ``False`` gives deterministic mean-field CD (tests).
    init_std : float
        Standard deviation of the initial weights.
    hidden_bias_init : float or None
        Initial hidden bias; ``None`` means ``log(p / (1 - p))`` with sparsity
        on and 0 without.
    seed : int
        Seed of the initial weights and of the default sampling generator.
    """

    n_visible: int
    n_hidden: int = 100  # feature maps
    width: int = 8  # filter width (time steps)
    visible: str = "binary"  # 'binary' (mean field) | 'gaussian' (unit variance)
    learning_rate: float | None = None  # None -> 0.005 binary / 0.0001 gaussian
    sparsity: str = "goh"  # 'goh' | 'goh-rank' | 'none'
    sparsity_target: float = 0.05  # p: 0.05 for layers 1a/1b, 0.1 for layer 3
    sparsity_cost: float = 0.1  # lam: relative sparsity cost
    momentum: float = 0.0  # off unless asked
    weight_decay: float = 0.0  # off unless asked
    sample_hiddens: bool = True  # sample the hidden states driving the reconstruction
    init_std: float = 0.01  # initial weights ~ N(0, init_std^2)
    hidden_bias_init: float | None = None  # None -> logit(sparsity_target) (0 if no sparsity)
    seed: int = 0  # initial weights and default generator

    def __post_init__(self) -> None:
        checks = [
            ("n_visible", self.n_visible, isinstance(self.n_visible, int) and self.n_visible >= 1, "an int >= 1"),
            ("n_hidden", self.n_hidden, isinstance(self.n_hidden, int) and self.n_hidden >= 1, "an int >= 1"),
            ("width", self.width, isinstance(self.width, int) and self.width >= 1, "an int >= 1"),
            ("visible", self.visible, self.visible in _VISIBLE_KINDS, f"one of {_VISIBLE_KINDS}"),
            ("learning_rate", self.learning_rate,
             self.learning_rate is None or (_finite(self.learning_rate) and self.learning_rate > 0),
             "None or a finite float > 0"),
            ("sparsity", self.sparsity, self.sparsity in _SPARSITY_KINDS, f"one of {_SPARSITY_KINDS}"),
            ("sparsity_target", self.sparsity_target,
             _finite(self.sparsity_target) and 0 < self.sparsity_target < 1, "in (0, 1)"),
            ("sparsity_cost", self.sparsity_cost,
             _finite(self.sparsity_cost) and 0 <= self.sparsity_cost <= 1, "in [0, 1]"),
            ("momentum", self.momentum, _finite(self.momentum) and 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay, _finite(self.weight_decay) and self.weight_decay >= 0, ">= 0"),
            ("init_std", self.init_std, _finite(self.init_std) and self.init_std >= 0, ">= 0"),
            ("hidden_bias_init", self.hidden_bias_init,
             self.hidden_bias_init is None or _finite(self.hidden_bias_init), "None or a finite float"),
            ("seed", self.seed, isinstance(self.seed, int), "an int"),
        ]
        for name, value, ok, want in checks:
            if not ok:
                raise ParameterError(f"CRBMConfig.{name}={value!r}: must be {want}")
        check_layer_size("CRBMConfig", "n_hidden", n_hidden=self.n_hidden, n_visible=self.n_visible, width=self.width)

    @property
    def lr(self) -> float:
        """The learning rate in use (the paper's default for the kind when unset)."""
        return DEFAULT_LEARNING_RATES[self.visible] if self.learning_rate is None else float(self.learning_rate)

    @property
    def initial_hidden_bias(self) -> float:
        """Initial hidden bias: ``log(p / (1 - p))`` with sparsity on, else 0."""
        if self.hidden_bias_init is not None:
            return float(self.hidden_bias_init)
        if self.sparsity == "none":
            return 0.0
        p = self.sparsity_target
        return math.log(p / (1.0 - p))


def _raw_sums(mon: tuple, gw: torch.Tensor, gbh: torch.Tensor) -> list[torch.Tensor]:
    """A step's raw monitoring sums (0-d tensors): reconstruction error, hidden activation, the two free
    energies and the update's size (``sum |dW| + sum |db_h|``)."""
    rec, sum_h0, fe0, fe1 = mon
    return [rec, sum_h0, fe0, fe1, gw.abs().sum() + gbh.abs().sum()]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ---------------------------------------------------------------------------
# masks for padded batches


# ---------------------------------------------------------------------------
# the model


class ConvRBM(nn.Module):
    """Base class of :class:`BernoulliCRBM` and :class:`GaussianCRBM` (see the module docstring).

    Parameters
    ----------
    config : CRBMConfig or None
        Hyperparameters; keyword ``overrides`` replace its fields (or build
        one when ``config`` is None).
    generator : torch.Generator or None
        CPU generator for the initial weights; default: seeded with ``config.seed``.
    device, dtype
        Where the parameters live (default CPU, float32).

    Attributes
    ----------
    weight : torch.nn.Parameter [shape=(n_hidden, n_visible, width)]
        Filters ``W`` (the ``conv1d`` weight layout).
    hidden_bias : torch.nn.Parameter [shape=(n_hidden,)]
    visible_bias : torch.nn.Parameter [shape=(n_visible,)]
    n_updates : torch.Tensor (buffer)
        Number of CD-1 updates applied so far.
    """

    _kind: str | None = None  # 'binary' or 'gaussian' in the subclasses
    #: CD-1 implementation, all computing the same update: 'conv' (conv1d / conv_transpose1d and
    #: one fused weight-gradient convolution), 'gemm' (the up passes and the weight gradient as
    #: im2col matrix products into buffers reused across calls), or 'auto' (the default): 'gemm'
    #: on CPU when ``n_visible * width <= 256`` (layers 1a/1b, whose large hidden tensors made
    #: fresh allocations cost more than the arithmetic), 'conv' otherwise (layer 3, CUDA).
    #: 'auto' also picks 'gemm' on CPU for any layer when a batch has at most ``AUTO_GEMM_ROWS`` hidden
    #: positions (layer 3 at one track a step, pretraining's default: 0.80x the time of 'conv'; equal at 8
    #: tracks of 123 steps, 1.17x at 32).
    cd_kernel: str = "auto"

    def __init__(
        self,
        config: CRBMConfig | None = None,
        /,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        **overrides: Any,
    ) -> None:
        super().__init__()
        if config is None:
            if self._kind is not None:
                overrides.setdefault("visible", self._kind)
            try:
                config = CRBMConfig(**overrides)
            except TypeError as exc:
                raise ParameterError(f"{type(self).__name__}: {exc}") from None
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        if self._kind is not None and config.visible != self._kind:
            raise ParameterError(
                f"{type(self).__name__} needs visible={self._kind!r}, got config.visible={config.visible!r}; "
                f"use ConvRBM.from_config(config) to pick the class from the config"
            )
        self.config = config
        c = config
        if generator is None:
            generator = torch.Generator().manual_seed(c.seed)
        w = torch.randn((c.n_hidden, c.n_visible, c.width), generator=generator, dtype=torch.float64) * c.init_std
        self.weight = nn.Parameter(w.to(device=device, dtype=dtype), requires_grad=False)
        self.hidden_bias = nn.Parameter(
            torch.full((c.n_hidden,), c.initial_hidden_bias, device=device, dtype=dtype), requires_grad=False)
        self.visible_bias = nn.Parameter(torch.zeros(c.n_visible, device=device, dtype=dtype), requires_grad=False)
        # momentum state (kept in the state dict so that training can resume)
        self.register_buffer("weight_velocity", torch.zeros_like(self.weight))
        self.register_buffer("hidden_bias_velocity", torch.zeros_like(self.hidden_bias))
        self.register_buffer("visible_bias_velocity", torch.zeros_like(self.visible_bias))
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.int64, device=device))
        self._generators: dict[str, torch.Generator] = {}

    # -- construction helpers -------------------------------------------

    @staticmethod
    def from_config(config: CRBMConfig, **kwargs: Any) -> "ConvRBM":
        """The right subclass for ``config.visible`` (``BernoulliCRBM`` or ``GaussianCRBM``)."""
        cls = BernoulliCRBM if config.visible == "binary" else GaussianCRBM
        return cls(config, **kwargs)

    def extra_repr(self) -> str:
        c = self.config
        return (f"n_visible={c.n_visible}, n_hidden={c.n_hidden}, width={c.width}, visible={c.visible!r}, "
                f"lr={c.lr:g}, sparsity={c.sparsity!r}")

    @property
    def device(self) -> torch.device:
        return self.weight.device

    # -- input handling --------------------------------------------------

    def _check_input(self, v: Any, name: str = "v") -> torch.Tensor:
        v = torch.as_tensor(v)
        if v.ndim != 3:
            raise ParameterError(
                f"{name} has shape {tuple(v.shape)}: expected (batch, {self.config.n_visible}, time)")
        if v.shape[1] != self.config.n_visible:
            raise ParameterError(
                f"{name} has {v.shape[1]} channels (shape {tuple(v.shape)}); this CRBM has "
                f"n_visible={self.config.n_visible}: is the input (batch, channels, time)?")
        if v.is_complex() or v.dtype == torch.bool:
            raise ParameterError(f"{name} has dtype {v.dtype}: expected a real floating-point tensor")
        return v.to(device=self.weight.device, dtype=self.weight.dtype)

    def _resolve_mask(self, v: torch.Tensor, lengths: Any, mask: Any) -> torch.Tensor | None:
        """Visible mask ``(batch, T)`` (bool) from ``lengths`` or ``mask``; None when all valid."""
        if lengths is not None and mask is not None:
            raise ParameterError("give lengths or mask, not both")
        n, _, t = v.shape
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=v.device)
            if lengths.shape != (n,):
                raise ParameterError(f"lengths has shape {tuple(lengths.shape)}: expected ({n},)")
            values = lengths.tolist()  # one host read for the three checks
            if any(x < 0 or x > t for x in values):
                raise ParameterError(f"lengths must lie in [0, {t}] (the padded length), got {values}")
            if all(x == t for x in values):
                return None
            return valid_mask(lengths, t)
        if mask is not None:
            mask = torch.as_tensor(mask, device=v.device)
            if mask.shape != (n, t):
                raise ParameterError(f"mask has shape {tuple(mask.shape)}: expected ({n}, {t})")
            mask = mask.to(torch.bool)
            return None if bool(mask.all()) else mask
        return None

    def _default_generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        g = self._generators.get(key)
        if g is None:
            g = torch.Generator(device=device).manual_seed(self.config.seed + 1)
            self._generators[key] = g
        return g

    def _check_generator(self, generator: torch.Generator | None) -> torch.Generator:
        if generator is None:
            return self._default_generator(self.weight.device)
        if generator.device.type != self.weight.device.type:
            raise ParameterError(
                f"generator is on {generator.device} but the model is on {self.weight.device}: "
                f"pass torch.Generator(device={str(self.weight.device)!r})")
        return generator

    # -- conditionals ----------------------------------------------------

    def _hidden_preactivation(self, v: torch.Tensor) -> torch.Tensor:
        """``(W * v)[j, t] + b_h[j]``: ``(batch, n_visible, T) -> (batch, n_hidden, T - width + 1)``."""
        return F.conv1d(v, self.weight, self.hidden_bias)

    def _visible_preactivation(self, h: torch.Tensor) -> torch.Tensor:
        """``a[c, s] = b_v[c] + sum_{j,k} W[j,c,k] h[j, s-k]``: ``(batch, n_hidden, T') -> (batch, n_visible, T' + width - 1)``."""
        return F.conv_transpose1d(h, self.weight, self.visible_bias)

    def _mean_hiddens(self, v: torch.Tensor) -> torch.Tensor:
        """Probabilities ``P(h[j,t] = 1 | v) = sigmoid((W * v)[j,t] + b_h[j])``.

        Parameters
        ----------
        v : torch.Tensor [shape=(batch, n_visible, T)]

        Returns
        -------
        torch.Tensor [shape=(batch, n_hidden, T - width + 1)]
        """
        return torch.sigmoid(self._hidden_preactivation(v))

    def _sample_hiddens(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Binary hidden states ``h ~ Bernoulli(P(h = 1 | v))``, same shape as :meth:`_mean_hiddens`."""
        return bernoulli(self._mean_hiddens(v), self._check_generator(generator))

    def _mean_visibles(self, h: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """``E[v | h]``; defined by the subclasses."""
        raise NotImplementedError

    def _sample_visibles(self, h: torch.Tensor, generator: torch.Generator) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _visible_energy(self, v: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Visible-only energy term per (example, channel, step)."""
        raise NotImplementedError

    # -- public inference ------------------------------------------------

    @torch.no_grad()
    def transform(self, v: Any, *, lengths: Any = None, mask: Any = None) -> torch.Tensor:
        """Hidden probabilities ``P(h = 1 | v)``.

        Parameters
        ----------
        v : torch.Tensor [shape=(batch, n_visible, T)]
        lengths : torch.Tensor [shape=(batch,)] or None
            Valid steps of each padded sequence; hidden positions whose window
            leaves a sequence are set to 0.
        mask : torch.Tensor [shape=(batch, T)] or None
            Alternative to ``lengths``: valid steps.

        Returns
        -------
        torch.Tensor [shape=(batch, n_hidden, T - width + 1)]
            Empty along time when ``T < width``.
        """
        v = self._check_input(v)
        vmask = self._resolve_mask(v, lengths, mask)
        if v.shape[2] < self.config.width:
            return v.new_zeros((v.shape[0], self.config.n_hidden, 0))
        if vmask is not None:
            v = v.masked_fill(~vmask[:, None, :], 0.0)  # padding (even NaN) never leaks in
        h = self._mean_hiddens(v)
        if vmask is not None:
            h = h.masked_fill(~hidden_mask(vmask, self.config.width)[:, None, :], 0.0)
        return h

    def forward(self, v: torch.Tensor, lengths: Any = None) -> torch.Tensor:
        """Same as :meth:`transform`: ``(batch, n_visible, T) -> (batch, n_hidden, T - width + 1)``."""
        return self.transform(v, lengths=lengths)

    @torch.no_grad()
    def gibbs(self, v: Any, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """One block Gibbs step ``v -> h ~ P(h | v) -> v' ~ P(v | h)``.

        Parameters
        ----------
        v : torch.Tensor [shape=(batch, n_visible, T)]
        generator : torch.Generator or None

        Returns
        -------
        torch.Tensor [shape=(batch, n_visible, T)]
            Visible samples (binary states, or Gaussian with unit variance).
        """
        v = self._check_input(v)
        g = self._check_generator(generator)
        return self._sample_visibles(bernoulli(self._mean_hiddens(v), g), g)

    @torch.no_grad()
    def free_energy(self, v: Any, *, lengths: Any = None, mask: Any = None) -> torch.Tensor:
        """Free energy ``F(v) = -log sum_h exp(-E(v, h))`` of each sequence.

        ``F(v) = E_vis(v) - sum_{j,t} softplus((W * v)[j,t] + b_h[j])`` with
        ``E_vis = -sum b_v v`` (binary) or ``sum (v - b_v)^2 / 2`` (Gaussian).
        With ``lengths``/``mask``, only valid visible steps and hidden
        positions whose window is valid are counted.

        Returns
        -------
        torch.Tensor [shape=(batch,)]
        """
        v = self._check_input(v)
        vmask = self._resolve_mask(v, lengths, mask)
        if vmask is not None:
            v = v.masked_fill(~vmask[:, None, :], 0.0)
        return self._free_energy(v, vmask)

    def _free_energy(self, v: torch.Tensor, vmask: torch.Tensor | None,
                     pre: torch.Tensor | None = None) -> torch.Tensor:
        vis = self._visible_energy(v)
        if vmask is not None:
            vis = vis * vmask[:, None, :].to(vis.dtype)
        vis = vis.sum(dim=(1, 2))
        if v.shape[2] < self.config.width:
            return vis
        if pre is None:
            pre = self._hidden_preactivation(v)
        sp = F.softplus(pre)
        if vmask is not None:
            sp = sp * hidden_mask(vmask, self.config.width)[:, None, :].to(sp.dtype)
        return vis - sp.sum(dim=(1, 2))

    @torch.no_grad()
    def energy(self, v: Any, h: Any) -> torch.Tensor:
        """Energy ``E(v, h)`` of each (visible, hidden) configuration.

        Parameters
        ----------
        v : torch.Tensor [shape=(batch, n_visible, T)]
        h : torch.Tensor [shape=(batch, n_hidden, T - width + 1)]

        Returns
        -------
        torch.Tensor [shape=(batch,)]
        """
        v = self._check_input(v)
        h = torch.as_tensor(h, device=v.device, dtype=v.dtype)
        pre = self._hidden_preactivation(v)
        if h.shape != pre.shape:
            raise ParameterError(f"h has shape {tuple(h.shape)}: expected {tuple(pre.shape)}")
        return self._visible_energy(v).sum(dim=(1, 2)) - (h * pre).sum(dim=(1, 2))

    # -- learning --------------------------------------------------------

    @torch.no_grad()
    def partial_fit(
        self,
        v: Any,
        *,
        lengths: Any = None,
        mask: Any = None,
        generator: torch.Generator | None = None,
        monitor: bool = True,
    ) -> dict[str, float]:
        """One CD-1 update on one batch (see the module docstring for the rule).

        Parameters
        ----------
        v : torch.Tensor [shape=(batch, n_visible, T)]
            A batch; binary layers expect values in ``[0, 1]`` (probabilities),
            the Gaussian layer per-track normalized values.
        lengths : torch.Tensor [shape=(batch,)] or None
            Valid steps of each sequence of a padded batch: padding adds
            nothing to any statistic (or to their normalization).
        mask : torch.Tensor [shape=(batch, T)] or None
            Alternative to ``lengths``: a boolean mask of valid steps.
        generator : torch.Generator or None
            Source of the hidden samples (on the model's device).
        monitor : bool
            Compute the monitoring statistics (one host sync per call); with
            ``False`` the update is the same and an empty dict is returned.

        Returns
        -------
        dict
            ``reconstruction_error``, ``mean_hidden``, ``free_energy_data``,
            ``free_energy_recon``, ``n_positions``. When no hidden position
            is valid (every sequence shorter than ``width``) nothing is
            updated and ``n_positions`` is 0.

        Raises
        ------
        ParameterError
            Bad shapes, ``lengths``/``mask`` or generator device; or (with
            ``monitor``) a step that would make the parameters non-finite,
            which is then not applied.
        """
        v0 = self._check_input(v)
        vmask = self._resolve_mask(v0, lengths, mask)
        g = self._check_generator(generator)
        return self._cd1(v0, vmask, g, monitor)

    def _cd1(self, v0: torch.Tensor, vmask: torch.Tensor | None, g: torch.Generator,
             monitor: bool) -> dict[str, float]:
        c = self.config
        n, n_vis, t = v0.shape
        empty = {"reconstruction_error": float("nan"), "mean_hidden": float("nan"),
                 "free_energy_data": float("nan"), "free_energy_recon": float("nan"), "n_positions": 0}
        if t < c.width or n == 0:
            return empty if monitor else {}
        t_h = t - c.width + 1
        if vmask is not None:
            hm = hidden_mask(vmask, c.width)[:, None, :].to(v0.dtype)  # (N, 1, T')
            vm = vmask[:, None, :].to(v0.dtype)  # (N, 1, T)
            per_seq = hm.sum(dim=(1, 2))  # valid hidden positions of each sequence
            n_h = per_seq.sum()
            if float(n_h) == 0:  # every sequence shorter than the filter: nothing to learn
                return empty if monitor else {}
            used = per_seq > 0  # sequences at least one filter width long: the others add nothing
            n_ex = used.sum().to(v0.dtype)
            vm = vm * used[:, None, None].to(v0.dtype)
            vmask = vmask & used[:, None]
            n_v = vm.sum()
            v0 = v0.masked_fill(~vmask[:, None, :], 0.0)  # padding (even NaN) never leaks in
        else:
            hm = vm = None
            n_h = float(n * t_h)
            n_v = float(n * t)
            n_ex = float(n)
        v0 = v0.contiguous()
        kernel = cd1_gemm if self._kernel_name(v0.device, rows=n * t_h) == "gemm" else cd1_conv
        gw, gbh, gbv, mon = kernel(self, v0, hm, vm, n_h, g, monitor)

        # sums over time, means over sequences (the learning rate is per track); one track: nothing to divide
        if not (isinstance(n_ex, float) and n_ex == 1.0):
            gw.div_(n_ex)
            gbh = gbh / n_ex
            gbv = gbv / n_ex
        if not monitor:
            self._apply_update(gw, gbh, gbv)
            return {}
        # one host read of the raw sums; the normalizing divisions in float64 on the host
        raw = torch.stack(_raw_sums(mon, gw, gbh)).tolist()
        stats = self.monitoring(raw, n_visible_steps=float(n_v), n_positions=float(n_h))
        self._apply_update(gw, gbh, gbv)
        return stats

    def monitoring(self, raw: list[float], *, n_visible_steps: float, n_positions: float) -> dict[str, float]:
        """The monitoring dict of :meth:`partial_fit` from a step's raw sums (host floats, in the order
        reconstruction error, hidden activation, free energy of the data, of the reconstruction, update size)
        and its valid visible steps and hidden positions (the divisions in float64).

        Raises
        ------
        ParameterError
            A value is not finite (the step is then not to be applied).
        """
        c = self.config
        n_v, n_h = float(n_visible_steps), float(n_positions)
        out = [raw[0] / (n_v * c.n_visible), raw[1] / (n_h * c.n_hidden), raw[2] / n_v, raw[3] / n_v, raw[4]]
        if not all(math.isfinite(x) for x in out):
            raise ParameterError(
                f"CD-1 produced non-finite values (reconstruction error {out[0]}, free energy {out[2]}): "
                f"either the batch holds NaN/inf or learning_rate={c.lr:g} is too high for this "
                f"{c.visible} layer; the parameters were left unchanged")
        return {"reconstruction_error": out[0], "mean_hidden": out[1], "free_energy_data": out[2],
                "free_energy_recon": out[3], "n_positions": int(n_h)}

    @torch.no_grad()
    def partial_fit_on_device(self, v: torch.Tensor, *, generator: torch.Generator, raw_out: torch.Tensor,
                              ok: torch.Tensor) -> None:
        """One CD-1 step on whole sequences (no padding) without a host read: the update of :meth:`partial_fit`.

        For a pass whose inputs already live on the device (:mod:`beatdbn.train.resident`): nothing here
        reads a device value on the host, so the host can queue the next steps while the device computes.
        Shapes are the caller's to check (``v`` is ``(batch, n_visible, T)`` with ``T >= width``, on the
        model's device and dtype).

        Parameters
        ----------
        v : torch.Tensor [shape=(batch, n_visible, T)]
        generator : torch.Generator
            On the model's device.
        raw_out : torch.Tensor [shape=(5,)]
            Receives the step's raw monitoring sums (:meth:`monitoring` turns them into :meth:`partial_fit`'s
            dict once read on the host).
        ok : torch.Tensor [shape=(), dtype=bool]
            A latch on the device: ``ok &= all(raw_out finite)``; the update is applied only while it holds,
            so a non-finite step and every later one leave the parameters as they were (the caller reads the
            latch with the sums and stops, as :meth:`partial_fit` raises).
        """
        c = self.config
        n, _, t = v.shape
        rows = n * (t - c.width + 1)
        v0 = v.contiguous()
        kernel = cd1_gemm if self._kernel_name(v0.device, rows=rows) == "gemm" else cd1_conv
        gw, gbh, gbv, mon = kernel(self, v0, None, None, float(rows), generator, True)
        if n != 1:
            gw.div_(n)
            gbh = gbh / n
            gbv = gbv / n
        torch.stack(_raw_sums(mon, gw, gbh), out=raw_out)
        torch.logical_and(ok, torch.isfinite(raw_out).all(), out=ok)
        self._apply_update(gw, gbh, gbv, gate=ok)

    def _kernel_name(self, device: torch.device, *, rows: int | None = None) -> str:
        """The kernel of a batch of ``rows`` hidden positions (``N * T'``; None: a large batch) on ``device``."""
        k = self.cd_kernel
        if k not in ("auto", "gemm", "conv"):
            raise ParameterError(f"cd_kernel={k!r}: must be 'auto', 'gemm' or 'conv'")
        if k == "auto":
            small = self.config.n_visible * self.config.width <= 256 or (rows is not None and rows <= AUTO_GEMM_ROWS)
            return "gemm" if device.type == "cpu" and small else "conv"
        return k

    def _mean_visibles_inplace(self, a: torch.Tensor) -> torch.Tensor:
        """Turn visible pre-activations ``a`` into ``E[v | h]`` in place."""
        raise NotImplementedError  # pragma: no cover

    def _apply_update(self, gw: torch.Tensor, gbh: torch.Tensor, gbv: torch.Tensor,
                      gate: torch.Tensor | None = None) -> None:
        """``W += lr * dW`` (and the biases), through momentum and weight decay when set; with a boolean
        ``gate`` on the device, only where it holds (no host read; the values are bitwise those of an
        ungated update where it does)."""
        c = self.config
        lr = c.lr
        if gate is not None:
            if c.momentum or c.weight_decay:  # the state moves even for a zero gradient: keep and restore it
                state = (self.weight, self.hidden_bias, self.visible_bias, self.weight_velocity,
                         self.hidden_bias_velocity, self.visible_bias_velocity)
                before = [t.clone() for t in state]
                self._apply_update(gw, gbh, gbv)
                for t, old in zip(state, before):
                    t.copy_(torch.where(gate, t, old))
                self.n_updates.sub_(1).add_(gate)
                return
            gw, gbh, gbv = (torch.where(gate, x, 0.0) for x in (gw, gbh, gbv))  # NaN-safe: not x * gate
            self.weight.add_(gw, alpha=lr)
            self.hidden_bias.add_(gbh, alpha=lr)
            self.visible_bias.add_(gbv, alpha=lr)
            self.n_updates.add_(gate)
            return
        if c.weight_decay:
            gw = gw - c.weight_decay * self.weight
        if c.momentum:
            for p, vel, grad in ((self.weight, self.weight_velocity, gw),
                                 (self.hidden_bias, self.hidden_bias_velocity, gbh),
                                 (self.visible_bias, self.visible_bias_velocity, gbv)):
                vel.mul_(c.momentum).add_(grad, alpha=lr)
                p.add_(vel)
        else:
            self.weight.add_(gw, alpha=lr)
            self.hidden_bias.add_(gbh, alpha=lr)
            self.visible_bias.add_(gbv, alpha=lr)
        self.n_updates += 1

    def fit(
        self,
        v: Any,
        *,
        lengths: Any = None,
        batch_size: int = 32,
        n_epochs: int = 1,
        generator: torch.Generator | None = None,
    ) -> "ConvRBM":
        """CD-1 over a whole tensor of sequences, in shuffled mini-batches.

        Parameters
        ----------
        v : torch.Tensor [shape=(n_sequences, n_visible, T)]
        lengths : torch.Tensor [shape=(n_sequences,)] or None
        batch_size, n_epochs : int
        generator : torch.Generator or None
            Drives both the shuffling and the hidden samples.

        Returns
        -------
        self
            With ``history_``: the list of :meth:`partial_fit` results.
        """
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ParameterError(f"batch_size={batch_size!r}: must be an int >= 1")
        if not (isinstance(n_epochs, int) and n_epochs >= 1):
            raise ParameterError(f"n_epochs={n_epochs!r}: must be an int >= 1")
        v = self._check_input(v)
        g = self._check_generator(generator)
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=v.device)
        self.history_: list[dict[str, float]] = []
        for _ in range(n_epochs):
            order = torch.randperm(v.shape[0], generator=g, device=g.device).to(v.device)
            for i in range(0, v.shape[0], batch_size):
                idx = order[i:i + batch_size]
                self.history_.append(self.partial_fit(
                    v[idx], lengths=None if lengths is None else lengths[idx], generator=g))
        return self


class BernoulliCRBM(ConvRBM):
    """Convolutional RBM with binary visible units used as probabilities (mean field).

    For chroma (values in ``[0, 1]``, layer 1a) and for the pooled hidden
    probabilities fed to layer 3. Default learning rate 0.005.

    Examples
    --------
    >>> import torch
    >>> rbm = BernoulliCRBM(n_visible=12, n_hidden=8, width=4)
    >>> rbm.transform(torch.rand(2, 12, 10)).shape
    torch.Size([2, 8, 7])
    """

    _kind = "binary"

    def _mean_visibles(self, h: torch.Tensor) -> torch.Tensor:
        """``E[v[c,s] | h] = sigmoid(b_v[c] + sum_{j,k} W[j,c,k] h[j,s-k])``.

        ``(batch, n_hidden, T') -> (batch, n_visible, T' + width - 1)``.
        """
        return torch.sigmoid(self._visible_preactivation(h))

    def _mean_visibles_inplace(self, a: torch.Tensor) -> torch.Tensor:
        return a.sigmoid_()

    def _sample_visibles(self, h: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Binary visible states ``v ~ Bernoulli(E[v | h])``."""
        return bernoulli(self._mean_visibles(h), generator)

    def _visible_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``-b_v[c] v[c, s]`` per element."""
        return -v * self.visible_bias[None, :, None]


class GaussianCRBM(ConvRBM):
    """Convolutional RBM with unit-variance Gaussian visible units.

    For timbre normalized per track to zero mean and unit variance (layer
    1b). Default learning rate 0.0001.

    Examples
    --------
    >>> import torch
    >>> rbm = GaussianCRBM(n_visible=12, n_hidden=8, width=4)
    >>> rbm.partial_fit(torch.randn(2, 12, 10))["n_positions"]
    14
    """

    _kind = "gaussian"

    def _mean_visibles(self, h: torch.Tensor) -> torch.Tensor:
        """``E[v[c,s] | h] = b_v[c] + sum_{j,k} W[j,c,k] h[j,s-k]`` (unit variance).

        ``(batch, n_hidden, T') -> (batch, n_visible, T' + width - 1)``.
        """
        return self._visible_preactivation(h)

    def _mean_visibles_inplace(self, a: torch.Tensor) -> torch.Tensor:
        return a

    def _sample_visibles(self, h: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``v ~ N(E[v | h], 1)``."""
        mean = self._mean_visibles(h)
        return mean + torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)

    def _visible_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``(v[c, s] - b_v[c])^2 / 2`` per element."""
        return 0.5 * (v - self.visible_bias[None, :, None]).square()


# ---------------------------------------------------------------------------
# kernels


