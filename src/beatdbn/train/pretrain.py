"""Greedy layer-wise pretraining of the convolutional DBN, streamed from a feature store.

What flows where::

    FeatureStore rows, minus the exclusion list (every task's valid/test tracks
    and the dropped duplicates: TASKS/exclude.txt)
      --batch_plan(seed, phase, pass)--> batches of rows: shards in random order;
          inside a shard the tracks are shuffled, sorted by length and cut into
          batches of ``batch_size`` tracks (similar lengths, little padding),
          and the shard's batches are shuffled
      --read one shard at a time--> padded (batch, 24, T) + lengths
    phase "layer1": every batch trains 1a (chroma) and 1b (timbre), one CD-1 step each
    phase "layer3": every batch trains 3 on the pooled layer-1 probabilities
    (each phase runs ``passes`` passes over the data; the paper uses one)
      --> DBN_DIR/model.pt + config.json (ConvDBN.save), pretrain.csv (one row of
          monitoring statistics per stage and batch), pretrain.json (summary),
          plots/ (filters, statistics)

No track is dropped for being short: a batch is padded to its longest track
and ``lengths`` keeps padding out of every statistic; a track shorter than a
layer's filter simply contributes no window to that layer.

**Checkpoints and exact resume.** Every ``checkpoint_every`` batches (and at
the end of every pass) ``DBN_DIR/checkpoint.pt`` is written atomically: the
model's state dict (weights, biases, momentum buffers, update counts), the
state of the one ``torch.Generator`` that drives every hidden sample, the
position (phase, pass, batch) and the number of statistics rows written. The
batch plan is a pure function of the store, the exclusion list and the seed,
so a rerun after a kill rebuilds it, skips the batches already done without
reading them, truncates ``pretrain.csv`` to the checkpoint and continues:
the final weights equal an uninterrupted run's with the same seed (tested).
A checkpoint made with other settings or another exclusion list is refused
with a message naming it.

**Batch size.** The CRBM gradient is summed over time and averaged over the
tracks of a batch, so a batch of B tracks makes B times fewer updates per
pass. The default is one track per CD-1 step, as in the first author's morb
and the paper's one pass: on the 1,636 demo pretraining tracks a pass at
batch 32 made 51 updates per layer, whose features barely varied between
tracks and left the finetuned network at chance; at batch 1 (1,636 updates)
it finetuned to 0.83 validation accuracy on the key task. Summing over the
tracks instead (the same step count, 32x the step size) diverges in the
Gaussian layer. Larger batches trade updates for arithmetic throughput.

Memory stays a few shards (the store's LRU cache) plus one batch: the data is
streamed, never loaded whole.

**The resident pass** (``resident='auto'``, the default, on CUDA; ``'on'``
anywhere; :mod:`beatdbn.train.resident`): at one track a step and one process,
each phase's inputs are loaded once into device memory, the steps read
nothing back on the host, and the statistics are read every
``monitor_every`` steps (256) instead of every step; rows, checkpoints and
the DBN are those of the streaming pass (bitwise on the CPU, tested). A phase
whose inputs exceed the memory budget streams, saying why in one warning;
the summary's ``"pass"`` records how each phase ran.

Examples
--------
>>> from beatdbn.train.pretrain import PretrainConfig, pretrain
>>> summary = pretrain("demo/store", "demo/dbn", exclude=None)   # doctest: +SKIP
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from beatdbn.data.splits import padded_batch
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.models.config import JsonConfig
from beatdbn.models.dbn import ConvDBN, DBNConfig
from beatdbn.models.layout import PHASES
from beatdbn.plots import plot_filters, plot_pretraining
from beatdbn.store.reader import FeatureStore, check_representations
from beatdbn.train.checkpoint import load_checkpoint
from beatdbn.train.ranks import Ranks, rank_seed
from beatdbn.train.resident import ResidentConfig, ResidentPhase, resident_budget
from beatdbn.utils.atomic import save_torch, write_json

__all__ = ["PretrainConfig", "ResidentConfig", "pretrain", "batch_plan", "read_exclusion", "iter_stats", "write_plots", "PHASES", "STATS_COLUMNS"]

log = logging.getLogger(__name__)

#: Columns of ``pretrain.csv``.
STATS_COLUMNS = ("stage", "pass", "batch", "tracks", "beats", "reconstruction_error", "mean_hidden",
                 "free_energy_data", "free_energy_recon", "seconds")
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "beatdbn-pretrain-checkpoint/1"


@dataclass(frozen=True)
class PretrainConfig(JsonConfig):
    """How the DBN is trained from the store (the network itself is a :class:`DBNConfig`)."""

    batch_size: int = 1  # tracks per CD-1 step (gradients: summed over time, mean over tracks; see below)
    passes: int = 1  # passes over the data per phase (the paper: one)
    checkpoint_every: int = 2000  # batches between checkpoints
    seed: int = 0  # batch order and hidden samples
    min_beats: int = 0  # small corpora: more passes, until each phase has trained on at least this many beats

    def __post_init__(self) -> None:
        for name in ("batch_size", "passes", "checkpoint_every"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ParameterError(f"{name}={value!r}: must be an int >= 1")
        if not (isinstance(self.min_beats, int) and not isinstance(self.min_beats, bool) and self.min_beats >= 0):
            raise ParameterError(f"min_beats={self.min_beats!r}: must be an int >= 0")

    def passes_for(self, n_beats: int) -> int:
        """Passes per phase over a corpus of ``n_beats``: ``passes``, or more to reach ``min_beats`` (at most 100).

        Examples
        --------
        >>> PretrainConfig(min_beats=1_000_000).passes_for(147_289)  # the 295 real tracks of subset-AA
        7
        >>> PretrainConfig(min_beats=1_000_000).passes_for(4.6e8)  # the whole MSD: the paper's one pass
        1
        """
        need = -(-self.min_beats // max(int(n_beats), 1)) if self.min_beats else 1
        return max(self.passes, min(need, 100))


#: More unknown ids than this fraction of an exclusion list stop pretraining (the list belongs to another store).
MAX_UNKNOWN_EXCLUDED = 0.5


def read_exclusion(tasks_dir, known_ids=None) -> set[str]:
    """Track ids to leave out of pretraining: ``TASKS/exclude.txt`` (valid/test of every task, duplicates).

    ``tasks_dir`` is a tasks folder or an exclusion file itself (one track id
    a line; blank lines and ``#`` comments ignored). With ``known_ids`` (the
    store's track ids), ids the store does not hold are logged as a warning
    (with an example), and a list where most ids are unknown stops with a
    :class:`DataError`: it was built from another store, and using it would
    let valid/test tracks into pretraining.
    """
    path = Path(tasks_dir)
    if path.is_dir() or not path.exists():
        path = path / "exclude.txt"
    if not path.exists():
        raise DataError(f"{path}: no exclusion list; build the tasks first with `beatdbn tasks STORE --out {tasks_dir}`")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # a BOM must not hide the first id
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable exclusion list ({exc})") from None
    ids = {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}
    if known_ids is None:
        return ids
    known = known_ids if isinstance(known_ids, (set, frozenset, dict)) else set(known_ids)
    unknown = sorted(i for i in ids if i not in known)
    if unknown and len(unknown) > MAX_UNKNOWN_EXCLUDED * len(ids):
        raise DataError(f"{path}: {len(unknown)} of {len(ids)} ids are not in the store (e.g. {unknown[0]!r}); "
                        f"was this tasks folder built from another store? Build it from this one with "
                        f"`beatdbn tasks STORE --out TASKS`")
    if unknown:
        log.warning("%s: %d of %d ids are not in the store (e.g. %r); they are ignored",
                    path, len(unknown), len(ids), unknown[0])
    return ids


def batch_plan(shards: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator
               ) -> list[np.ndarray]:
    """Batches of positions into ``shards``/``lengths``, one shard at a time (see the module docstring).

    Examples
    --------
    >>> plan = batch_plan(np.array([0, 0, 0, 1]), np.array([5, 9, 7, 3]), 2, np.random.default_rng(0))
    >>> sorted(len(b) for b in plan)
    [1, 1, 2]
    """
    plan = []
    for shard in rng.permutation(np.unique(shards)):
        pos = np.flatnonzero(shards == shard)
        pos = rng.permutation(pos)
        pos = pos[np.argsort(lengths[pos], kind="stable")]
        batches = [pos[i:i + batch_size] for i in range(0, len(pos), batch_size)]
        plan.extend(batches[i] for i in rng.permutation(len(batches)))
    return plan


def _plan_seed(seed: int, phase: str, pass_: int) -> np.random.Generator:
    key = int.from_bytes(hashlib.sha256(f"{seed}/{phase}/{pass_}".encode()).digest()[:8], "little")
    return np.random.default_rng(key)


def _fingerprint(track_ids: Iterable[str]) -> str:
    h = hashlib.sha256()
    for t in track_ids:
        h.update(t.encode() + b"\n")
    return h.hexdigest()[:16]


class _StatsLog:
    """``pretrain.csv``, appended row by row; truncated to a checkpoint on resume."""

    def __init__(self, path: Path, keep_rows: int) -> None:
        self.path = path
        rows = []
        if keep_rows and path.exists():
            with path.open(newline="") as f:
                rows = list(csv.reader(f))[1:keep_rows + 1]
            if len(rows) < keep_rows:
                raise DataError(f"{path}: has {len(rows)} rows but the checkpoint counts {keep_rows}; "
                                f"delete {path.parent / CHECKPOINT} to start afresh")
        self._f = path.open("w", newline="")
        self._w = csv.writer(self._f)
        self._w.writerow(STATS_COLUMNS)
        self._w.writerows(rows)
        self.n_rows = len(rows)

    def add(self, row: dict) -> None:
        self._w.writerow([row[c] for c in STATS_COLUMNS])
        self.n_rows += 1

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def pretrain(
    store,
    out,
    *,
    exclude: Iterable[str] | None = None,
    config: PretrainConfig = PretrainConfig(),
    dbn_config: DBNConfig = DBNConfig(),
    device: str | torch.device = "cpu",
    progress: Callable[[dict], None] | None = None,
    ranks: Ranks | None = None,
    resident: ResidentConfig | str = "auto",
) -> dict | None:
    """Pretrain a :class:`ConvDBN` on every track of ``store`` not in ``exclude``; resumes from ``out``.

    Parameters
    ----------
    store : FeatureStore or path
    out : path
        The DBN folder (created): model, statistics, checkpoint, plots.
    exclude : iterable of str, optional
        Track ids to leave out (:func:`read_exclusion` of a tasks folder).
    config : PretrainConfig
    dbn_config : DBNConfig
        The network (paper defaults).
    device : str or torch.device
    progress : callable, optional
        Called after every batch with ``{"phase", "pass", "passes",
        "tracks_done", "tracks_total", "beats_done", "beats_total",
        "beats_per_s"}``: ``pass`` counts from 0 up to ``passes`` (per
        phase), the track and beat counts are over the whole job (both phases
        and every pass), and ``beats_per_s`` is the current phase's beats so
        far (every pass) over its training seconds so far, the measure of the
        summary's ``beats_per_s`` (its value at the phase's end). Called before
        the batch's checkpoint: an exception raised in it stops the run as a
        kill would.
    ranks : Ranks, optional
        This process's place in a run of several processes or machines
        (:mod:`beatdbn.train.ranks`; :mod:`beatdbn.train.launch` starts them).
        Rank 0 alone writes ``out`` and reports progress. Default: one process.
    resident : ResidentConfig or str
        Keep each phase's inputs in device memory and read the monitoring every ``monitor_every`` steps
        (:mod:`beatdbn.train.resident`): ``'auto'`` (CUDA, when they fit), ``'on'``, ``'off'``, or a
        :class:`ResidentConfig`. The same DBN either way (bitwise on the CPU); what was used is recorded in
        the summary's ``"pass"``. A phase whose inputs do not fit streams, with a warning saying why.

    Returns
    -------
    dict or None
        The summary also written to ``out/pretrain.json``: tracks, beats,
        seconds and beats/s per phase, and ``"complete"`` (None on ranks
        other than 0).

    Raises
    ------
    DataError
        No track left to train on, or a checkpoint made with other settings.
    """
    ranks = ranks or Ranks.solo()
    lead = ranks.lead
    resident = ResidentConfig(mode=resident) if isinstance(resident, str) else resident
    fs = store if isinstance(store, FeatureStore) else FeatureStore.open(store)
    out = Path(out)
    device = torch.device(device)
    rows = fs.select_rows(exclude=exclude)
    if not len(rows):
        raise DataError(f"{fs.path}: no track left to pretrain on after the exclusion list")
    ids = fs.metadata.column("track_id").to_numpy(zero_copy_only=False)[rows]
    representation = check_representations(fs.representations(ids), what=f"the tracks to pretrain on in {fs.path}")
    lengths = fs.metadata.column("n_beats").to_numpy()[rows]
    shards = fs.shard_of(rows)
    identity = {k: v for k, v in config.to_dict().items() if k != "checkpoint_every"}  # may change on resume
    identity.update(ranks.identity())
    expect = {"pretrain_config": identity, "dbn_config": dbn_config.to_dict(),
              "tracks": _fingerprint(fs.metadata.column("track_id").to_numpy(zero_copy_only=False)[rows])}
    ranks.agree(expect)

    done = state = None
    if lead:
        out.mkdir(parents=True, exist_ok=True)
        summary_path = out / "pretrain.json"
        if summary_path.exists() and not (out / CHECKPOINT).exists():
            done = json.loads(summary_path.read_text())
            if done.get("complete") and {k: done.get(k) for k in expect} != expect:
                raise DataError(f"{out}: holds a DBN pretrained with other settings or on other tracks; "
                                f"use a new --out")
            done = done if done.get("complete") else None
        if done is None:
            state = load_checkpoint(out / CHECKPOINT, fmt=CHECKPOINT_FORMAT, expect=expect, what="pretraining")
    done, state = ranks.broadcast((done, state))
    if done is not None:
        log.info("%s: already pretrained", out)
        return done if lead else None
    dbn = ConvDBN(dbn_config, device=device)
    gen = torch.Generator(device=device).manual_seed(
        config.seed if ranks.world == 1 else rank_seed(config.seed, ranks.rank))
    use_resident, why_not = resident.wanted(device, batch_size=config.batch_size, world=ranks.world)
    how = {"resident": resident.to_dict(), "phases": {}}  # the summary's "pass": how each phase ran
    position = (0, 0, 0)  # where to resume: phase index, pass, batches done in that pass
    elapsed = {name: 0.0 for name in PHASES}
    if state is not None:
        dbn.load_state_dict(state["model"])
        gen.set_state(state["generator"] if ranks.world == 1 else state["generators"][ranks.rank])
        position = tuple(state["position"])
        elapsed = dict(state["elapsed"])
        if lead:
            log.info("%s: resuming at phase %s, pass %d, batch %d", out, *position)
    stats = _StatsLog(out / "pretrain.csv", state["stats_rows"] if state else 0) if lead else None

    n_tracks, n_beats = len(rows), int(lengths.sum())
    passes = config.passes_for(n_beats)
    if passes > config.passes and lead:
        log.warning("%s: %d passes per layer over this small corpus (%d beats) to reach min_beats=%d",
                    out, passes, n_beats, config.min_beats)
    total = n_tracks * passes * len(PHASES)
    done_tracks = done_beats = 0
    t_start = time.perf_counter()

    def checkpoint(phase_i: int, pass_: int, batch_i: int) -> None:
        generators = ranks.gather(gen.get_state())  # a collective: every rank takes part
        if not lead:
            return
        stats.flush()
        where = {"generator": generators[0]} if ranks.world == 1 else {"generators": generators}
        save_torch({"format": CHECKPOINT_FORMAT, "expect": expect, "model": dbn.state_dict(), **where,
                    "position": [phase_i, pass_, batch_i], "stats_rows": stats.n_rows, "elapsed": elapsed},
                   out / CHECKPOINT)

    def non_finite(pos: np.ndarray, message: str) -> DataError:
        ids = fs.metadata.column("track_id").to_numpy(zero_copy_only=False)[rows[pos]]
        bad = [t for t, f in zip(ids, fs.read_features(rows[pos])) if not np.isfinite(f).all()]
        who = (f"track {bad[0]} holds non-finite features (run `beatdbn check {fs.path}`)" if bad
               else f"batch of track(s) {', '.join(map(str, ids[:5]))}")
        return DataError(f"{phase} pass {pass_ + 1}, {who}: {message}")

    def step(stages, pos: np.ndarray) -> dict[str, dict]:
        x, xl = padded_batch(fs.read_features(rows[pos]), device=device)
        try:
            return {s: dbn.partial_fit(s, x, lengths=xl, generator=gen) for s in stages}
        except ParameterError as exc:
            if "non-finite" not in str(exc):
                raise
            raise non_finite(pos, str(exc)) from None

    def resident_phase(phase: str) -> ResidentPhase | None:
        """The phase's inputs in device memory, or None (the streaming pass) with the reason recorded."""
        if not use_resident:
            how["phases"][phase] = {"resident": False, "why": why_not}
            return None
        need = ResidentPhase.bytes_needed(dbn_config, phase, lengths)
        budget = resident_budget(device, resident.budget_bytes)
        derive = need > budget[0] and ResidentPhase.bytes_needed(
            dbn_config, phase, lengths, from_layer1_input=True) <= budget[0]
        if derive:
            need = ResidentPhase.bytes_needed(dbn_config, phase, lengths, from_layer1_input=True)
            if lead:
                log.info("%s: %s keeps the layer-1 input (its own would exceed %s)", out, phase, budget[1])
        if need > budget[0]:
            why = (f"its inputs need {need / 2**20:,.0f} MiB, over the budget of {budget[0] / 2**20:,.0f} MiB "
                   f"({budget[1]})")
            if lead:
                log.warning("%s: %s streams from the store: %s", out, phase, why)
            how["phases"][phase] = {"resident": False, "why": why, "bytes": need, "budget_bytes": budget[0]}
            return None
        res = ResidentPhase(fs, rows, lengths, dbn, phase, monitor_every=resident.monitor_every,
                            load_batch=resident.load_batch_on(device), from_layer1_input=derive)
        how["phases"][phase] = res.record(budget)
        if lead:
            log.info("%s: %s resident on %s (%.0f MiB, loaded in %.1f s)", out, phase, device, need / 2**20,
                     res.load_seconds)
        elapsed[phase] += res.load_seconds  # loading is part of the pass's work (the streaming pass reads too)
        return res

    try:
        for phase_i, (phase, stages) in enumerate(PHASES.items()):
            layers = [dbn.layer(s) for s in stages]
            res = None if (phase_i, passes) <= position[:2] else resident_phase(phase)  # phases left to train
            for pass_ in range(passes):
                plan = batch_plan(shards, lengths, config.batch_size, _plan_seed(config.seed, phase, pass_))
                skip = position[2] if (phase_i, pass_) == position[:2] else 0
                if (phase_i, pass_) < position[:2]:
                    skip = len(plan)
                stage_tracks = sum(len(b) for b in plan[:skip])
                stage_beats = int(sum(lengths[b].sum() for b in plan[:skip]))
                done_tracks += stage_tracks
                done_beats += stage_beats
                end = skip
                while end < len(plan):
                    start = end
                    t0 = time.perf_counter()
                    if res is not None:  # steps queued on the device, then one host read
                        end = res.chunk_end(start, len(plan), config.checkpoint_every)
                        res.launch(plan, start, end, gen)
                        results = res.read(plan, start, end, non_finite)
                    else:
                        begun = ranks.begin(layers)
                        costs = [float(lengths[b].sum()) for b in plan[start:start + ranks.round_size]]
                        local = {b: step(stages, plan[b]) for b in ranks.mine(start, costs)}
                        results = ranks.exchange(layers, begun, local, stages, start, len(plan))
                        end = start + len(results)
                    elapsed[phase] += time.perf_counter() - t0
                    if lead:
                        for batch_i in sorted(results):
                            pos = plan[batch_i]
                            beats = int(lengths[pos].sum())
                            stage_tracks += len(pos)
                            stage_beats += beats
                            done_tracks += len(pos)
                            done_beats += beats
                            for s, r in results[batch_i].items():
                                stats.add({"stage": s, "pass": pass_, "batch": batch_i, "tracks": stage_tracks,
                                           "beats": stage_beats, "seconds": round(elapsed[phase], 4), **r})
                            if progress is not None:
                                # the phase's beats (its earlier passes and this one) over the phase's
                                # seconds: the measure of the summary's beats_per_s, which is its last value
                                progress({"phase": phase, "pass": pass_, "passes": passes,
                                          "tracks_done": done_tracks, "tracks_total": total,
                                          "beats_done": done_beats, "beats_total": n_beats * passes * len(PHASES),
                                          "beats_per_s": (pass_ * n_beats + stage_beats)
                                          / max(elapsed[phase], 1e-9)})
                    last = end == len(plan)
                    if last or end // config.checkpoint_every > start // config.checkpoint_every:
                        checkpoint(*((phase_i, pass_ + 1, 0) if last else (phase_i, pass_, end)))
            if res is not None:
                res.release()
    finally:
        if stats is not None:
            stats.close()
    if not lead:
        return None
    dbn.save(out)
    summary = _summary(out, n_tracks, n_beats, passes, expect, elapsed, complete=True)
    summary["representation"] = representation  # what a conv MLP started from this DBN must be trained on
    summary["pass"] = how  # resident or streamed, per phase (this run's; not part of the settings compared)
    write_json(out / "pretrain.json", summary)
    (out / CHECKPOINT).unlink(missing_ok=True)
    log.info("%s: pretrained in %.1f s", out, time.perf_counter() - t_start)
    return summary


def _summary(out: Path, n_tracks: int, n_beats: int, passes: int, expect: dict, elapsed: dict,
             *, complete: bool) -> dict:
    beats = n_beats * passes
    summary = {
        "complete": complete,
        "n_tracks": n_tracks,
        "n_beats": n_beats,
        "passes": passes,
        **expect,
        "phases": {p: {"stages": list(PHASES[p]), "seconds": round(s, 3),
                       "beats_per_s": (beats / s if s and complete else math.nan)}
                   for p, s in elapsed.items()},
    }
    write_json(out / "pretrain.json", summary)
    return summary


def iter_stats(out) -> Iterator[dict]:
    """Rows of ``out/pretrain.csv`` as dicts (numbers as floats, stage as str)."""
    with (Path(out) / "pretrain.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            yield {k: (v if k == "stage" else float(v)) for k, v in row.items()}


def write_plots(out) -> list[Path]:
    """Plot the learned filters (one PNG per layer) and the training statistics into ``out/plots``."""
    out = Path(out)
    plots = out / "plots"
    paths = list(plot_filters(ConvDBN.load(out), plots).values())
    paths.append(plot_pretraining(out / "pretrain.csv", plots / "pretrain_stats.png"))
    return paths
