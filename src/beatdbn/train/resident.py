"""A pretraining pass whose inputs live in device memory: no store reads and no host reads between steps.

The streaming pass (:func:`beatdbn.train.pretrain.pretrain`'s default on the CPU) reads each track from the
store, moves it to the device, prepares it and reads the step's monitoring back on the host, every step. On a
GPU at one track a step that host traffic, not the arithmetic, sets the rate (58 k / 125 k beats/s for layer 1
/ layer 3 on an H200, where batched CD-1 ran at 27-32 M). The resident pass does the same steps otherwise::

    phase start: every track's input to each stage of the phase, computed as the streaming pass computes it
      (dbn.layer_input: prepared chroma and timbre for layer 1, the pooled layer-1 probabilities for
      layer 3; one track at a time on the CPU, padded batches of similar lengths on a GPU: load_batch),
      written once into one flat tensor per stage on the device
      (track p at offsets[p], shape (1, channels, steps[p]); memory: ResidentPhase.bytes_needed)
    each pass: the same batch plan as the streaming pass (batch_plan, on the host, the same seed),
      one track per CD-1 step, the same torch.Generator for the hidden samples
      --> ConvRBM.partial_fit_on_device: the update, its raw monitoring sums into a device buffer,
          and a device-side latch that stops updates after a non-finite step
    every ``monitor_every`` steps (and at every checkpoint and the end of a pass): ONE host read of the
      buffer --> pretrain.csv rows, progress, the non-finite check (the same DataError as the streaming
      pass, parameters as they were before the bad step)

Between two reads nothing waits for the device: shapes and lengths are known on the host (the store's
metadata), tracks shorter than a filter are skipped on the host, the kernel is picked on the host. On the
CPU the result is bitwise the streaming pass's (same inputs, same kernels, same generator; tested), which is
what makes the GPU figure trustworthy without a GPU here.

**On the CPU** there is no device to wait for: resident against streaming, one process of one thread on 500
demo tracks (``benchmarks/bench_pretrain.py``, interleaved, same run), measured 1.07x / 0.98x, 1.30x / 1.60x
and 0.97x / 0.99x (layer 1 / layer 3) in three runs at load averages 4.6, 7.5 and 9.3 on 2 cores: no
reliable gain, so ``'auto'`` streams there.

**CUDA graphs: not used.** A graph replays fixed shapes, and every track has its own length (the 10k subset
has over 1,000 distinct lengths): one graph per length costs a capture each (more than the steps it would
save for most lengths), and padding tracks to a few bucket lengths changes the sums (the masked statistics
are the same maths but other floating-point reductions, and the normalizations by valid positions would need
device-side counts); capturing the hidden samples also needs the generator registered with each graph. Both
are for a machine that can test them.

**Memory guard.** A phase is resident only when its inputs fit ``budget_bytes`` (default: 80 % of the
device's free memory on CUDA, half the available memory elsewhere); otherwise that phase streams, with one
warning line saying why. Layer 3's input (200 pooled channels, a quarter of the steps) takes about twice
layer 1's: 4.6e8 beats need ~44 GB for layer 1 and ~92 GB for layer 3 in float32.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from beatdbn.data.splits import padded_batch
from beatdbn.exceptions import ParameterError
from beatdbn.models.config import JsonConfig
from beatdbn.models.dbn import ConvDBN
from beatdbn.models.forward import layer2, prepare_input
from beatdbn.models.layout import PHASES, layer_spec
from beatdbn.store.reader import FeatureStore

__all__ = ["ResidentConfig", "ResidentPhase", "RESIDENT_MODES", "MONITOR_EVERY", "LOAD_BATCH", "resident_budget",
           "stage_steps"]

log = logging.getLogger(__name__)

#: ``pretrain --resident``: ``auto`` (CUDA: resident when it fits; elsewhere the streaming pass), ``on``
#: (resident wherever the inputs fit), ``off`` (the streaming pass).
RESIDENT_MODES = ("auto", "on", "off")

#: Steps between two host reads of the monitoring statistics, by default.
MONITOR_EVERY = 256

#: Tracks prepared together when loading a phase's inputs on a GPU (:meth:`ResidentConfig.load_batch_on`).
LOAD_BATCH = 64

#: Share of the free device memory (CUDA) or of the available memory (elsewhere) a phase's inputs may take.
CUDA_SHARE, HOST_SHARE = 0.8, 0.5


@dataclass(frozen=True)
class ResidentConfig(JsonConfig):
    """How a pretraining pass keeps its inputs in device memory (recorded in ``pretrain.json``; not part of
    a run's identity: both passes compute the same DBN, so a run may resume with either)."""

    mode: str = "auto"  # 'auto' | 'on' | 'off' (RESIDENT_MODES)
    monitor_every: int = MONITOR_EVERY  # steps between host reads of the monitoring statistics
    budget_bytes: int | None = None  # a phase's inputs at most; None: 80 % of free CUDA memory / half of RAM
    load_batch: int | None = None  # tracks prepared together when loading; None: 1 on the CPU, 64 elsewhere

    def __post_init__(self) -> None:
        if self.mode not in RESIDENT_MODES:
            raise ParameterError(f"resident mode {self.mode!r}: must be one of {', '.join(RESIDENT_MODES)}")
        if not (isinstance(self.monitor_every, int) and not isinstance(self.monitor_every, bool)
                and self.monitor_every >= 1):
            raise ParameterError(f"monitor_every={self.monitor_every!r}: must be an int >= 1")
        if self.budget_bytes is not None and not (isinstance(self.budget_bytes, int) and self.budget_bytes >= 0):
            raise ParameterError(f"budget_bytes={self.budget_bytes!r}: must be None or an int >= 0 (bytes)")
        if self.load_batch is not None and not (isinstance(self.load_batch, int) and self.load_batch >= 1):
            raise ParameterError(f"load_batch={self.load_batch!r}: must be None or an int >= 1")

    def load_batch_on(self, device: torch.device) -> int:
        """Tracks prepared together when loading on ``device``: 1 on the CPU (each track's input then equals
        the streaming pass's bitwise), :data:`LOAD_BATCH` elsewhere (a padded batch of similar lengths: the
        same values to within float rounding, some 50 times fewer kernel launches and host reads)."""
        if self.load_batch is not None:
            return self.load_batch
        return 1 if device.type == "cpu" else LOAD_BATCH

    def wanted(self, device: torch.device, *, batch_size: int, world: int) -> tuple[bool, str]:
        """Whether this run should try the resident pass, and why (before the memory guard of each phase).

        Raises
        ------
        ParameterError
            ``mode='on'`` with more than one track a step or more than one process (the resident pass is the
            paper's one-track step on one device).
        """
        blocked = (f"{batch_size} tracks a step (the resident pass takes one)" if batch_size != 1 else
                   f"{world} processes (the resident pass runs on one)" if world != 1 else None)
        if self.mode == "on" and blocked:
            raise ParameterError(f"--resident on with {blocked}: use --batch-size 1 --workers 1, or --resident "
                                 f"auto/off")
        if self.mode == "off":
            return False, "--resident off"
        if blocked:
            return False, blocked
        if self.mode == "auto" and device.type != "cuda":
            return False, f"--resident auto streams on {device.type} (resident: --resident on)"
        return True, ""


def resident_budget(device: torch.device, given: int | None) -> tuple[int, str]:
    """Bytes a phase's inputs may take on ``device`` and how that figure was found."""
    if given is not None:
        return given, "given"
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(CUDA_SHARE * free), f"{CUDA_SHARE:.0%} of the free CUDA memory"
    return int(HOST_SHARE * _available_memory()), f"{HOST_SHARE:.0%} of the available memory"


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def stage_steps(dbn_config, stage: str, lengths: np.ndarray) -> np.ndarray:
    """Time steps of ``stage``'s input for tracks of ``lengths`` beats (what :meth:`ConvDBN.layer_input` gives).

    Examples
    --------
    >>> from beatdbn.models.dbn import DBNConfig
    >>> stage_steps(DBNConfig(), "3", np.array([5, 8, 500])).tolist()
    [0, 0, 123]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if layer_spec(stage).inputs != "layer2":
        return lengths
    c = dbn_config
    return np.maximum(lengths - c.width_1 + 1, 0) // c.pool_1


class ResidentPhase:
    """One phase's inputs in device memory, and its CD-1 steps with one host read per chunk of steps.

    Parameters
    ----------
    fs : FeatureStore
    rows : np.ndarray
        The store rows of the pass (position ``p`` in a batch plan is ``rows[p]``).
    lengths : np.ndarray
        Beats of each row.
    dbn : ConvDBN
        Its lower layers (already trained) compute the phase's input.
    phase : str
        ``'layer1'`` or ``'layer3'`` (:data:`~beatdbn.models.layout.PHASES`).
    monitor_every : int
        Steps between host reads.
    load_batch : int
        Tracks prepared together (sorted by length within every 1,024 tracks read, padded to the longest):
        1 gives each track exactly the streaming pass's input.
    from_layer1_input : bool
        Layer 3 only: keep the prepared layer-1 input (24 channels, every beat: about half the memory of
        layer 3's own input) and compute the pooled layer-1 probabilities of each step's track on the
        device (:func:`~beatdbn.models.forward.layer2`, two convolutions more a step; the same values).
    """

    def __init__(self, fs: FeatureStore, rows: np.ndarray, lengths: np.ndarray, dbn: ConvDBN, phase: str, *,
                 monitor_every: int = MONITOR_EVERY, load_batch: int = 1, from_layer1_input: bool = False) -> None:
        self.dbn, self.phase, self.stages = dbn, phase, PHASES[phase]
        self.layers = [dbn.layer(s) for s in self.stages]
        like = self.layers[0].weight
        self.device = like.device
        self.monitor_every, self.load_batch = monitor_every, load_batch
        self.from_layer1_input = from_layer1_input and any(layer_spec(s).inputs == "layer2" for s in self.stages)
        c = dbn.config
        self._steps = {s: stage_steps(c, s, lengths).tolist() for s in self.stages}  # host ints: no numpy a step
        # what is stored: each stage's input, or (from_layer1_input) the prepared network input, key "x"
        kept = {"x": (c.n_inputs, lengths)} if self.from_layer1_input else {
            s: (layer.config.n_visible, stage_steps(c, s, lengths)) for s, layer in zip(self.stages, self.layers)}
        t0 = time.perf_counter()
        self.inputs, self.offsets, self.channels = {}, {}, {}
        for key, (ch, steps) in kept.items():
            sizes = ch * np.asarray(steps, dtype=np.int64)
            self.channels[key] = ch
            self.offsets[key] = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64).tolist()
            self.inputs[key] = like.new_empty(int(sizes.sum()))
        self._steps.setdefault("x", np.asarray(lengths, dtype=np.int64).tolist())
        order = np.lexsort((rows, fs.shard_of(rows)))  # shard by shard: the store's LRU cache reads each once
        for i in range(0, len(order), 1024):
            part = order[i:i + 1024]
            feats = fs.read_features(rows[part])
            by_length = np.argsort(lengths[part], kind="stable")
            for j in range(0, len(part), load_batch):
                sel = by_length[j:j + load_batch].tolist()
                x, xl = padded_batch([feats[k] for k in sel], device=self.device)
                for key in kept:  # the streaming pass's input to each stage (layer_input), or its prepared input
                    v = (prepare_input(c, x, xl, like=like, pad_short=False)[0] if key == "x" else
                         dbn.layer_input(key, x, lengths=xl)[0])
                    ch = self.channels[key]
                    for n, p in enumerate(part[sel].tolist()):
                        t, o = self._steps[key][p], self.offsets[key][p]
                        self.inputs[key][o:o + ch * t].view(1, ch, t).copy_(v[n:n + 1, :, :t])
        dbn._input_memo = None  # the last batch's prepared input: not kept alive
        self.raw = like.new_empty((monitor_every, len(self.stages), 5))
        self.ok = torch.ones((), dtype=torch.bool, device=self.device)
        self.load_seconds = time.perf_counter() - t0

    @staticmethod
    def bytes_needed(dbn_config, phase: str, lengths: np.ndarray, *, from_layer1_input: bool = False,
                     itemsize: int = 4) -> int:
        """Bytes of the phase's inputs for tracks of ``lengths`` beats (float32: ``itemsize`` 4); with
        ``from_layer1_input``, of the prepared network input a layer-3 phase then keeps instead."""
        if from_layer1_input and any(layer_spec(s).inputs == "layer2" for s in PHASES[phase]):
            return dbn_config.n_inputs * int(np.sum(lengths)) * itemsize
        total = 0
        for s in PHASES[phase]:
            spec = layer_spec(s)
            total += dbn_config.n_visible(spec) * int(stage_steps(dbn_config, s, lengths).sum())
        return total * itemsize

    def chunk_end(self, start: int, n_batches: int, checkpoint_every: int) -> int:
        """The end of the chunk of steps that begins at ``start``: ``monitor_every`` steps, cut at the next
        checkpoint (a multiple of ``checkpoint_every``) and the end of the plan."""
        nxt = (start // checkpoint_every + 1) * checkpoint_every
        return min(start + self.monitor_every, nxt, n_batches)

    def launch(self, plan: list[np.ndarray], start: int, end: int, generator: torch.Generator) -> None:
        """Queue the CD-1 steps of batches ``start .. end - 1`` (one track each); reads nothing on the host."""
        raw = self.raw[:end - start]
        raw.fill_(math.nan)
        c, params = self.dbn.config, self.dbn.params()
        stages = [(layer, "x" if self.from_layer1_input else s, self._steps[s], layer.config.width)
                  for s, layer in zip(self.stages, self.layers)]
        for k, b in enumerate(range(start, end)):
            (p,) = plan[b].tolist()  # a host array: one track a step
            for j, (layer, key, steps, width) in enumerate(stages):
                if steps[p] < width:  # shorter than the filter: no window, no update (as partial_fit)
                    continue
                ch, t, o = self.channels[key], self._steps[key][p], self.offsets[key][p]
                v = self.inputs[key][o:o + ch * t].view(1, ch, t)
                if key == "x":  # the pooled layer-1 probabilities of this track, on the device
                    v = layer2(c, params, v)[0]
                layer.partial_fit_on_device(v, generator=generator, raw_out=raw[k, j], ok=self.ok)

    def read(self, plan: list[np.ndarray], start: int, end: int,
             fail: Callable[[np.ndarray, str], Exception]) -> dict[int, dict[str, dict]]:
        """The one host read of the chunk's statistics: ``{batch: {stage: partial_fit's dict}}``.

        Raises ``fail(batch's positions, message)`` at the first non-finite step (whose update, and every
        later one, the device latch left out).
        """
        raw = self.raw[:end - start].cpu().tolist()
        nan = float("nan")
        out: dict[int, dict[str, dict]] = {}
        for k, b in enumerate(range(start, end)):
            (p,) = plan[b].tolist()
            row = {}
            for j, (s, layer) in enumerate(zip(self.stages, self.layers)):
                t, width = self._steps[s][p], layer.config.width
                if t < width:
                    row[s] = {"reconstruction_error": nan, "mean_hidden": nan, "free_energy_data": nan,
                              "free_energy_recon": nan, "n_positions": 0}
                    continue
                try:
                    row[s] = layer.monitoring(raw[k][j], n_visible_steps=t, n_positions=t - width + 1)
                except ParameterError as exc:
                    raise fail(plan[b], str(exc)) from None
            out[b] = row
        return out

    def record(self, load_budget: tuple[int, str]) -> dict:
        """This phase's line of the run's provenance."""
        return {"resident": True, "device": str(self.device), "bytes": int(sum(t.numel() for t in self.inputs.values())
                                                                             * self.layers[0].weight.element_size()),
                "budget_bytes": load_budget[0], "budget": load_budget[1], "monitor_every": self.monitor_every,
                "load_batch": self.load_batch, "from_layer1_input": self.from_layer1_input,
                "load_seconds": round(self.load_seconds, 3), "cuda_graphs": False}

    def release(self) -> None:
        """Free the device memory of the inputs."""
        self.inputs.clear()
