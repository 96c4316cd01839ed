"""Windowed logistic regression: the paper's second baseline (section 6).

One linear layer from a standardized 32-beat window (768 values) to the
class logits, softmax cross-entropy, trained with plain minibatch SGD
(:func:`beatdbn.train.baselines.run_logreg` owns the loop); a track's class is
the argmax of the *mean of its windows' posteriors*
(:meth:`WindowedLogReg.track_proba`).

Weights start at zero (the convex problem needs no symmetry breaking, and
the start is then the same for every seed; the seed only orders the
minibatches).

**Gradient normalization: sum over the minibatch.** The loss whose gradient
SGD follows is the *sum* of the per-window cross-entropies of a minibatch
(``reduction='sum'``), not their mean. With full minibatches of ``B``
windows, "mean at rate ``lr``" is exactly "sum at rate ``lr / B``", so the
choice only shifts the paper's sweep (5e-3 ... 5e-7) by a factor ``B`` — but
that decides whether the sweep means anything. With the sum, the weights
move by about ``lr * n_windows`` gradient units an epoch whatever ``B`` is
(as in per-example SGD, the classic setting of such rates); with the mean,
by ``lr * n_windows / B``. Measured on the demo corpus (``make demo``,
batch 100, 30 epochs, seed 0; train loss per window after 30 epochs, start
``log C``)::

    rate        key (C=12, log C 2.48)    genre (C=20, log C 3.00)
                sum      mean             sum      mean
    5e-3        0.003    0.155            0.003    0.230
    5e-4        0.036    0.473            0.028    0.934
    5e-5        0.155    1.655            0.231    2.414
    5e-6        0.474    2.373            0.936    2.929
    5e-7        1.658    2.473            2.416    2.989

With the mean, 5e-6 and 5e-7 leave the weights almost at zero (loss within
1-4 % of ``log C``; validation accuracy at its floor) and the best rate is
always the largest tried: the sweep's useful range lies above it. The
paper's optimum, 5e-5 (artist, key) and 5e-6 (genre), sits in the middle of
its sweep, which is where the *sum* puts the transition from under- to
over-fitting: 5e-7 underfits, 5e-3 interpolates the training windows. The
cross-entropy gradient is bounded (``|softmax - onehot| * |x|``), so large
rates overshoot but never blow up to NaN. ``BaselineConfig.grad_norm``
switches to ``'mean'``.

Saving: ``state_dict()`` (plain tensors; ``torch.load(..., weights_only=True)``)
plus the training config as JSON.

Examples
--------
>>> import torch
>>> model = WindowedLogReg(768, 12)
>>> logits, loss = model(torch.zeros(5, 768), torch.zeros(5, dtype=torch.long))
>>> tuple(logits.shape), round(loss.item(), 4)  # sum of 5 x log(12)
((5, 12), 12.4245)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from beatdbn.exceptions import ParameterError
from beatdbn.models.windows import WindowedTracks, pool_window_scores

__all__ = ["WindowedLogReg", "GRAD_NORMS"]

GRAD_NORMS = ("sum", "mean")


class WindowedLogReg(nn.Module):
    """Multinomial logistic regression on flattened windows.

    Parameters
    ----------
    n_inputs : int
        Values per window (``32 * 24 = 768``).
    n_classes : int
    """

    def __init__(self, n_inputs: int = 768, n_classes: int = 2):
        super().__init__()
        if int(n_inputs) < 1 or int(n_classes) < 2:
            raise ParameterError(f"n_inputs={n_inputs}, n_classes={n_classes}: need >= 1 input and >= 2 classes")
        self.linear = nn.Linear(int(n_inputs), int(n_classes))
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    @property
    def n_classes(self) -> int:
        return self.linear.out_features

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None, *,
                reduction: str = "sum") -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits, and the cross-entropy when ``targets`` are given.

        Parameters
        ----------
        x : torch.Tensor [shape=(batch, n_inputs)]
        targets : torch.Tensor [shape=(batch,), dtype=int64] or None
        reduction : {'sum', 'mean'}
            How the per-window losses of the batch combine (see the module docstring).

        Returns
        -------
        logits : torch.Tensor [shape=(batch, n_classes)]
        loss : torch.Tensor [shape=()] or None
        """
        logits = self.linear(x)  # (batch, 768) -> (batch, n_classes)
        if targets is None:
            return logits, None
        if reduction not in GRAD_NORMS:
            raise ParameterError(f"reduction={reduction!r}: must be one of {GRAD_NORMS}")
        return logits, F.cross_entropy(logits, targets, reduction=reduction)

    @torch.no_grad()
    def window_log_proba(self, view: torch.Tensor, starts: torch.Tensor, *, chunk_size: int = 8192) -> torch.Tensor:
        """Log-posteriors of the windows at rows ``starts`` of ``view``, shape ``(n_windows, n_classes)``.

        ``view, starts`` as returned by :meth:`WindowedTracks.torch_view`.
        """
        out = [torch.log_softmax(self(view.index_select(0, starts[s:s + chunk_size]))[0], dim=1)
               for s in range(0, len(starts), chunk_size)]
        return torch.cat(out) if out else torch.zeros(0, self.n_classes)

    @torch.no_grad()
    def track_proba(self, windows: WindowedTracks, *, device="cpu", tensors=None) -> dict[str, np.ndarray]:
        """Per-track scores: mean window posterior and summed window log-posterior.

        Parameters
        ----------
        windows : WindowedTracks
        device : torch device
        tensors : (view, starts) or None
            ``windows.torch_view(device)``, when already built.

        Returns
        -------
        scores : dict
            ``{"mean": (n_tracks, n_classes), "sum_log": (n_tracks, n_classes)}``; the track
            class is ``scores["mean"].argmax(1)``.
        """
        view, starts = tensors if tensors is not None else windows.torch_view(device)
        log_p = self.window_log_proba(view, starts).double().cpu().numpy()
        return {"mean": pool_window_scores(np.exp(log_p), windows.track, windows.n_tracks, how="mean"),
                "sum_log": pool_window_scores(log_p, windows.track, windows.n_tracks, how="sum")}
