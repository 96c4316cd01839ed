"""The defaults of pretraining over several ranks, without torch: ``beatdbn pretrain --help`` shows them fast.

:mod:`beatdbn.train.ranks` (which needs torch) re-exports them; the command line reads them from here.
"""

from __future__ import annotations

__all__ = ["COMBINE", "DEFAULT_COMBINE", "SYNC_EVERY"]

#: CD-1 steps each rank takes between two exchanges, by default (``pretrain --sync-every``).
SYNC_EVERY = 32

#: How the ranks' parameter changes of a round are combined: ``capped-sum`` (the default) adds them up to two
#: ranks' worth (mean x min(W, 2): the sum for 2 ranks), ``mean`` averages them (local SGD), ``sum`` adds them.
COMBINE = ("capped-sum", "mean", "sum")

#: The default rule (``pretrain --combine``).
DEFAULT_COMBINE = COMBINE[0]
