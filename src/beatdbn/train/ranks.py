"""Pretraining on several processes or machines, at the paper's one track per CD-1 update.

What flows where (``W`` ranks, ``K = sync_every``)::

    the batch plan: the same on every rank (a pure function of the store, the
    exclusion list and the seed), cut into rounds of W x K batches
      --dealt longest first to the rank with the least work (Ranks.mine)-->
    K CD-1 steps on each rank's own copy of the stage's parameters, each on
    one track, with its own hidden-sample generator (seeded by seed and rank)
      --exchange: ONE all_reduce (sum) of one flat float32 vector-->
          [each parameter's change since the round began | momentum buffers
           (only with momentum) | update counts | the round's monitoring
           statistics, one slot per batch]
    every rank: parameter = its value when the round began + g x the MEAN
    of the ranks' changes, g = min(W, 2) (``combine='capped-sum'``, the
    default: the sum for 2 ranks); rank 0 writes every batch's statistics in
    plan order (pretrain.csv reads as a serial run's)

**The combine rule.** ``capped-sum`` (the default) is the sum of the ranks' changes up to two ranks and
twice their mean beyond: the sum diverged with 4 ranks, the mean (local SGD) moves a pass only 1/W as far,
Hogwild gives up determinism and exact resume. The measurements behind the choice are in
``docs/measurements/pretrain-ranks-combine.md``.

What the rounds give: determinism (the result is a function of the seed, W,
K and the rule); exact resume (checkpoints fall between rounds, where every
rank holds the same parameters, with every rank's generator state); and
one code path for one machine (``beatdbn pretrain --workers N``: N-1
processes spawned beside this one, gloo over localhost) and many
(``torchrun ... -m beatdbn pretrain --distributed``: gloo on CPU, NCCL on
GPU), where shared memory does not exist. The exchange is one all_reduce a
round; K amortizes its latency (``benchmarks/bench_pretrain.py``,
``scripts/pretrain_scaling.py`` measure the rates).

A single process (:meth:`Ranks.solo`) is the special case W = K = 1 and
runs the unchanged serial loop: its results equal those of earlier versions.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Sequence

import torch

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.train.rank_settings import COMBINE, DEFAULT_COMBINE, SYNC_EVERY  # torch-free: `pretrain --help` reads them

__all__ = ["Ranks", "STAT_KEYS", "COMBINE", "DEFAULT_COMBINE", "SYNC_EVERY", "rank_seed"]

#: The largest factor over the mean that ``capped-sum`` applies.
CAP = 2

#: The monitoring statistics of one CD-1 step that travel in the exchange (see ConvRBM.partial_fit).
STAT_KEYS = ("reconstruction_error", "mean_hidden", "free_energy_data", "free_energy_recon", "n_positions")


def rank_seed(seed: int, rank: int) -> int:
    """The hidden-sample seed of ``rank`` in a run of several ranks (independent streams per rank)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/rank/{rank}".encode()).digest()[:7], "little")


class Ranks:
    """This process's place among the ranks of one pretraining run, and the exchange between them.

    Parameters
    ----------
    rank, world : int
        This process's rank and the number of ranks (``torch.distributed`` is
        initialized when ``world > 1``).
    sync_every : int
        K: CD-1 steps (batches) each rank takes between two exchanges.
    group : torch.distributed.ProcessGroup or None
        The group to exchange in (None: the default group).
    """

    def __init__(self, rank: int = 0, world: int = 1, *, sync_every: int = 1, combine: str = DEFAULT_COMBINE,
                 group: Any = None) -> None:
        if not (isinstance(world, int) and world >= 1 and 0 <= rank < world):
            raise ParameterError(f"rank {rank} of {world}: need 0 <= rank < world, world >= 1")
        if not (isinstance(sync_every, int) and sync_every >= 1):
            raise ParameterError(f"sync_every={sync_every!r}: must be an int >= 1")
        if combine not in COMBINE:
            raise ParameterError(f"combine={combine!r}: must be one of {COMBINE}")
        self.rank, self.world, self.group = rank, world, group
        self.sync_every = sync_every if world > 1 else 1
        self.combine = combine

    @classmethod
    def solo(cls) -> "Ranks":
        """One process: rounds of one batch, no exchange."""
        return cls()

    @classmethod
    def from_process_group(cls, *, sync_every: int, combine: str = DEFAULT_COMBINE, group: Any = None) -> "Ranks":
        """The ranks of the initialized default process group (``torchrun``, or :mod:`beatdbn.train.launch`)."""
        import torch.distributed as dist

        if not dist.is_initialized():
            raise ParameterError("torch.distributed is not initialized: launch with torchrun, or use --workers N")
        return cls(dist.get_rank(group), dist.get_world_size(group), sync_every=sync_every, combine=combine,
                   group=group)

    @property
    def lead(self) -> bool:
        """Rank 0: the one that writes files and reports progress."""
        return self.rank == 0

    @property
    def round_size(self) -> int:
        return self.world * self.sync_every

    def identity(self) -> dict:
        """What a run's settings must record beyond the pretraining config (empty for one process)."""
        return {} if self.world == 1 else {"workers": self.world, "sync_every": self.sync_every,
                                           "combine": self.combine}

    def mine(self, start: int, costs: Sequence[float]) -> list[int]:
        """Positions in the plan of this rank's batches in the round that begins at ``start``.

        ``costs`` are the round's batches' sizes (beats). They are dealt out
        longest first, each to the rank with the least work so far (ties: the
        lower rank), so that the ranks reach the exchange together; each rank
        then takes its batches in plan order. The deal depends on the plan
        alone: every rank computes the same one.
        """
        if self.world == 1:
            return [start + i for i in range(len(costs))]
        load = [0.0] * self.world
        owner = [0] * len(costs)
        for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
            r = min(range(self.world), key=lambda r: (load[r], r))
            owner[i] = r
            load[r] += costs[i]
        return [start + i for i in range(len(costs)) if owner[i] == self.rank]

    # -- objects (rare: start, checkpoints) --------------------------------------------------------

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.lead else None]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def gather(self, obj: Any) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list = [None] * self.world
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def agree(self, settings: dict) -> None:
        """Stop every rank, naming the difference, unless all ranks hold the same ``settings``.

        Raises
        ------
        DataError
            A rank's store, exclusion list or settings differ from rank 0's.
        """
        every = self.gather(settings)
        for rank, other in enumerate(every):
            for key in sorted(set(every[0]) | set(other)):
                if other.get(key) != every[0].get(key):
                    raise DataError(f"the ranks disagree: rank {rank} has {key.replace('_', ' ')} "
                                    f"{other.get(key)!r}, rank 0 has {every[0].get(key)!r}; give every rank "
                                    f"the same store, --exclude list and settings")

    # -- the exchange (every round) ----------------------------------------------------------------

    @property
    def gain(self) -> float:
        """The factor on the mean of the ranks' parameter changes: 1 (mean), W (sum) or min(W, CAP) (capped-sum)."""
        return {"mean": 1.0, "sum": float(self.world), "capped-sum": float(min(self.world, CAP))}[self.combine]

    def _tensors(self, layers: Iterable[torch.nn.Module]) -> list[tuple[float, torch.Tensor]]:
        """(factor on the mean change, tensor): parameters by ``combine``; momentum buffers averaged; update
        counts summed."""
        out = []
        for layer in layers:
            moving = bool(getattr(getattr(layer, "config", None), "momentum", 1))  # without momentum they stay 0
            out += [(self.gain, p) for p in layer.parameters()]
            out += [(1.0 if name.endswith("velocity") else float(self.world), b) for name, b in layer.named_buffers()
                    if moving or not name.endswith("velocity")]
        return out

    def begin(self, layers: Iterable[torch.nn.Module]) -> list[torch.Tensor] | None:
        """The state the round starts from (None for one process: nothing to exchange)."""
        if self.world == 1:
            return None
        return [t.detach().clone() for _, t in self._tensors(layers)]

    def exchange(self, layers: Iterable[torch.nn.Module], start_state: list[torch.Tensor] | None,
                 local: dict[int, dict[str, dict]], stages: tuple[str, ...], start: int,
                 n_batches: int) -> dict[int, dict[str, dict]]:
        """Combine the round's updates of every rank; return every batch's statistics (by plan position).

        ``local`` maps this rank's batch positions to ``{stage: partial_fit's dict}``.
        """
        if self.world == 1:
            return local
        import torch.distributed as dist

        layers = list(layers)
        tensors = self._tensors(layers)
        like = tensors[0][1]
        n_round = min(self.round_size, n_batches - start)
        stats = torch.zeros(n_round, len(stages), len(STAT_KEYS), dtype=torch.float32)
        for b, per_stage in local.items():
            for j, s in enumerate(stages):
                stats[b - start, j] = torch.tensor([float(per_stage[s][k]) for k in STAT_KEYS])
        # one float32 vector: changes within a round are small, and n_positions < 2**24 per batch is exact
        parts = [(t - t0).reshape(-1).float() for (_, t), t0 in zip(tensors, start_state)]  # changes
        flat = torch.cat(parts + [stats.reshape(-1).to(like.device)])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
        offset = 0
        for (how, t), t0 in zip(tensors, start_state):
            part = flat[offset:offset + t.numel()].view(t.shape)
            offset += t.numel()
            t.copy_(t0 + (part * (how / self.world)).to(t.dtype))  # the mean change times its factor
        stats = flat[offset:].view(n_round, len(stages), len(STAT_KEYS)).cpu()
        return {start + i: {s: {k: (int(v) if k == "n_positions" else float(v))
                                for k, v in zip(STAT_KEYS, stats[i, j].tolist())}
                            for j, s in enumerate(stages)}
                for i in range(n_round)}
