"""Table 1 end to end: the paper's twelve experiments on one corpus, resumable.

What flows where (``RUN_DIR`` layout, read by :mod:`beatdbn.evaluate.report`)::

    STORE --prepare_tasks--> RUN_DIR/tasks/         every registered task + exclude.txt (or a copy of --tasks DIR)
          --pretrain (once; every task's valid/test and duplicates excluded)--> RUN_DIR/dbn/
    for each task (splits loaded once):
          naive Bayes           --> RUN_DIR/experiments/<task>/naive_bayes/result.json
          windowed logistic reg --> RUN_DIR/experiments/<task>/logreg/          (5 learning rates)
          conv MLP, random init --> RUN_DIR/experiments/<task>/convmlp_random/  (3 learning rates, 30 epochs)
          conv MLP, pretrained  --> RUN_DIR/experiments/<task>/convmlp_pretrained/
          (recipe 'beatdbn': convmlp_random_beatdbn/, convmlp_pretrained_beatdbn/ instead or as well)
          (--models +meanstd_lr: an opt-in model of the registry, experiments/<task>/meanstd_lr/, as well)
    --> RUN_DIR/table.md, table.json (Table 1 beside the paper's), report.html/.md, config.json

The experiments are the experiment registry's (:mod:`beatdbn.experiments.registry`: one module per model
kind, declaring its names, Table 1 rows, learning rates, cost and projection, and its trainer by name):
:func:`experiments` is its plan for the run's recipes and added models, and each experiment trains through
:func:`~beatdbn.pipeline.sweep.train_experiment`, here or in a sweep job.

Every stage resumes: finished tasks, DBN and experiments are skipped on a
rerun (each trainer checks its own ``result.json`` and checkpoints), so a
killed ``beatdbn reproduce`` picks up where it stopped. ``config.json``
records the configuration, versions, git commit, the wall time of every
stage and the projected wall time of the full protocol at the paper's
scale, extrapolated from this run's measured rates.

**Where the sweep runs** (``scheduler``): by default on a CPU, a Dask LocalCluster of single-thread
workers, one per CPU; or a running Dask scheduler's address; or ``'sync'``, this process (the default
on a GPU). The cluster starts in the background once the tasks are built, while the DBN is pretrained,
and this process runs jobs itself until it is up; every experiment x learning rate is one resumable job,
and the experiment's result is assembled by one more (:mod:`beatdbn.pipeline.sweep`). The tasks, the
pretraining and the report run in this process either way, and the results are the same.

**One thread for every number.** The pretraining, the serial path's experiments and every sweep job
compute with one torch intra-op thread, whatever this process has (``beatdbn --threads``): a threaded
sum rounds differently on 1 and 2 threads, so a DBN pretrained on 2 threads differs from one pretrained
on 1 in the last bits, and every conv MLP started from it (pretrained or its random control) ends with
other numbers. With one thread, a run's results are a function of its configuration (seeds) and data
alone: not of the scheduler, the process that ran a job, the caller's threads, or a kill and a resume
in between. The parallelism is the sweep's processes (and the pretraining's default of one track per
update gains nothing from threads, see :mod:`beatdbn.cli.pretrain`); a serial run on a CPU is therefore
single-threaded.

``quick=True`` shrinks the sweeps and epochs for a smoke run (the table
says which epochs it shows); the tasks and the DBN are the same. ``epochs``
(``--epochs N``) sets the conv MLPs' and windowed logistic regression's
epochs, with the earlier snapshot at the paper's 20 of 30 scaled
(:func:`snapshot_epoch`), and is recorded in ``config.json``.

**Seeds** (:func:`reproduce_seeds`, ``--seeds N`` / ``--seed-list``): one
whole run per seed (its own split, DBN, initial weights and batch orders)::

    OUT/seeds.json            {"seeds": [0, 1, 2], "config": <options shared by the seeds>, "finished": [0, 1]}
    OUT/seed-<s>/             a single run's RUN_DIR (above), made with config.with_seed(s)
    OUT/table.md, table.json, report.html/.md   Table 1 over the finished seeds (Table1.from_run(OUT))

A rerun with more seeds runs only the new ones; without ``--seeds`` the
layout is the single run above.

**Real corpora.** The tasks take every option of ``beatdbn tasks``
(:class:`~beatdbn.tasks.build.TaskConfig`: ``scale='auto'``, genres, 24 keys,
the artist filter) plus a tagtraum genre file and ``msd_duplicates.txt``, or
come ready-made from a tasks folder (``tasks_dir``, checked against the
store). A task the corpus cannot give is skipped (Table 1 shows it as "—"
with the reason); the run stops only when no task can be built.

**Recipes.** ``recipe='paper'`` (default) trains the conv MLPs with the
paper's section 6 protocol, ``'beatdbn'`` with
:meth:`FinetuneConfig.for_recipe('beatdbn') <beatdbn.train.finetune.FinetuneConfig.for_recipe>`
(experiments ``convmlp_*_beatdbn``), ``'both'`` with each.

**Projection.** The paper pretrained on the whole MSD: 1,000,000 tracks less
about 78,000 duplicates and the tasks' held-out tracks, about 920,000 tracks
or 4.6·10⁸ beats, in one pass. :func:`projected_time` multiplies this run's
measured seconds per beat by those sizes, and records the machine's load
average at the start and end of the run (rates measured on a loaded machine
overstate the time).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from beatdbn.data.splits import load_split
from beatdbn.evaluate.report import write_report
from beatdbn.evaluate.table import Table1
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.experiments import registry as model_kinds
from beatdbn.models.config import JsonConfig
from beatdbn.models.dbn import ConvDBN, DBNConfig
from beatdbn.pipeline.sweep import WORKER_IMPORTS, one_thread, plan_jobs, run_jobs, settings_of, train_experiment
from beatdbn.store.reader import FeatureStore
from beatdbn.tasks.build import check_tasks_in_store, load_task, prepare_tasks, write_tasks
from beatdbn.train.pretrain import pretrain, read_exclusion, write_plots
from beatdbn.train.provenance import run_versions
from beatdbn.utils.atomic import atomic_path, write_json
from beatdbn.utils.cluster import BackgroundClient, check_scheduler
from beatdbn.utils.processes import Stopped, stop_on_signals
from beatdbn.tasks import registry
from beatdbn.tasks.registry import TaskConfig
from beatdbn.train.baselines import BaselineConfig
from beatdbn.train.finetune import FinetuneConfig
from beatdbn.train.pretrain import PretrainConfig

__all__ = ["ReproduceConfig", "reproduce", "reproduce_seeds", "seed_dir", "parse_seeds", "parse_models",
           "snapshot_epoch", "experiments", "projected_time", "default_scheduler", "EXPERIMENTS", "PAPER_SCALE",
           "RECIPE_CHOICES", "SEEDS_FILE"]

#: Model names in Table 1 order (the paper's recipe): the experiment registry's default plan.
EXPERIMENTS = tuple(v.name for v in model_kinds.plan(("paper",)))
#: ``recipe`` values of :class:`ReproduceConfig`: each recipe of the registry, or all of them.
RECIPE_CHOICES = (*model_kinds.recipes(), "both")
#: The paper's corpus: training tracks per task (80 % of 5,000 / 5,000 / 3,000); pretraining: the whole MSD,
#: 1,000,000 tracks less ~78,000 duplicates and the held-out tracks (~920,000), ~500 beats a track
#: (~4.6e8 beats, the paper's section 5.2).
#: (Training tracks per task: each task's ``TaskSpec.paper.train_tracks``.)
PAPER_SCALE = {"pretrain_tracks": 920_000, "beats_per_track": 500, "pretrain_beats": 4.6e8}
#: A multi-seed run's record in OUT (:func:`reproduce_seeds`): ``{"seeds", "config", "finished"}``.
SEEDS_FILE = "seeds.json"


def snapshot_epoch(epochs: int) -> int:
    """The earlier test snapshot of a run of ``epochs`` epochs: the paper's 20 of 30, scaled (2/3, rounded;
    at least 1).

    Examples
    --------
    >>> [snapshot_epoch(n) for n in (1, 2, 3, 10, 30, 45)]
    [1, 1, 2, 7, 20, 30]
    """
    return max(1, round(2 * epochs / 3))


def _epoch_settings(epochs: int | None) -> dict[str, Any]:
    """The conv MLP overrides of ``--epochs`` (none when None)."""
    if epochs is None:
        return {}
    return {"epochs": epochs, "snapshot_epochs": (snapshot_epoch(epochs), epochs)}


def _check_epochs(epochs: Any) -> None:
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ParameterError(f"--epochs {epochs!r}: must be an int >= 1 (the conv MLPs' and windowed logistic "
                             f"regression's epochs; the paper's 30)")


@dataclass(frozen=True)
class ReproduceConfig(JsonConfig):
    """Everything a reproduction run depends on (saved in ``config.json``)."""

    tasks: TaskConfig = field(default_factory=TaskConfig)
    dbn: DBNConfig = field(default_factory=DBNConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    quick: bool = False
    recipe: str = "paper"  # conv MLP finetuning: 'paper' | 'beatdbn' | 'both'
    finetune_beatdbn: FinetuneConfig | None = None  # the 'beatdbn' recipe's settings (recipe 'beatdbn' or 'both')
    genre_labels: str = ""  # tagtraum genre file ('' : MusicBrainz tags)
    duplicates: str = ""  # msd_duplicates.txt ('' : none dropped)
    tasks_dir: str = ""  # tasks built beforehand ('' : built from the store with ``tasks``)
    epochs: int | None = None  # --epochs: conv MLPs' and windowed LR's epochs (None: the protocol's, 30 or quick's 10)
    models: tuple[str, ...] = ()  # --models +NAME: opt-in experiments of the registry added to the default ones

    def __post_init__(self) -> None:
        if self.recipe not in RECIPE_CHOICES:
            raise ParameterError(f"recipe {self.recipe!r}: choose from {', '.join(RECIPE_CHOICES)}")
        _check_epochs(self.epochs)
        object.__setattr__(self, "models", model_kinds.check_models(self.models))
        if "beatdbn" in self.recipes and self.finetune_beatdbn is None:
            object.__setattr__(self, "finetune_beatdbn",
                               FinetuneConfig.for_recipe("beatdbn", quick=self.quick, seed=self.finetune.seed,
                                                         **_epoch_settings(self.epochs)))

    @property
    def recipes(self) -> tuple[str, ...]:
        """The finetuning recipes run: ``('paper',)``, ``('beatdbn',)`` or both."""
        return model_kinds.recipes() if self.recipe == "both" else (self.recipe,)

    def finetune_for(self, recipe: str) -> FinetuneConfig:
        """The conv MLP settings of one recipe."""
        return self.finetune if recipe == "paper" else self.finetune_beatdbn

    def to_dict(self) -> dict[str, Any]:
        d = dict(super().to_dict(), tasks=self.tasks.to_dict(), recipes=list(self.recipes))
        if self.epochs is None:  # not recorded unless given: a run folder of an older beatdbn still resumes
            del d["epochs"]
        if not self.models:  # the same: recorded only when a model is added
            del d["models"]
        return d

    def with_seed(self, seed: int) -> "ReproduceConfig":
        """This configuration with ``seed`` for everything random (the split, the DBN's weights and pretraining,
        every trainer's initial weights and batch order); ``make(seed=s, ...)`` equals ``make(...).with_seed(s)``."""
        def seeded(c):
            return None if c is None else dataclasses.replace(c, seed=seed)

        return dataclasses.replace(self, tasks=self.tasks.replace(seed=seed), dbn=seeded(self.dbn),
                                   pretrain=seeded(self.pretrain), finetune=seeded(self.finetune),
                                   baselines=seeded(self.baselines), finetune_beatdbn=seeded(self.finetune_beatdbn))

    @classmethod
    def make(cls, *, quick: bool = False, seed: int = 0, tasks: TaskConfig | None = None, recipe: str = "paper",
             genre_labels=None, duplicates=None, tasks_dir=None, pretrain_min_beats: int = 0,
             epochs: int | None = None, models: Sequence[str] = ()) -> "ReproduceConfig":
        """The paper's protocol, or with ``quick`` a smoke run: 2 learning rates of each sweep, 10 epochs
        (snapshot at 7, standing in for the paper's 20 of 30); conv MLPs by ``recipe``; pretraining makes
        more than the paper's one pass when the corpus has fewer than ``pretrain_min_beats`` beats.

        ``epochs`` (with or without ``quick``): the conv MLPs (either recipe) and windowed logistic regression
        train this many epochs, and the conv MLPs' earlier snapshot scales as the paper's 20 of 30
        (:func:`snapshot_epoch`); recorded as ``epochs`` in ``config.json``. ``models``: opt-in experiments of
        the registry (:func:`beatdbn.experiments.registry.optional`, e.g. ``meanstd_lr``) trained beside the
        default ones, with their own Table 1 rows."""
        tasks = tasks or TaskConfig(seed=seed)
        if recipe not in RECIPE_CHOICES:
            raise ParameterError(f"--recipe {recipe!r}: choose from {', '.join(RECIPE_CHOICES)}")
        _check_epochs(epochs)
        more = _epoch_settings(epochs)
        beatdbn = (FinetuneConfig.for_recipe("beatdbn", quick=quick, seed=seed, **more) if recipe != "paper"
                   else None)
        baselines = (BaselineConfig(learning_rates=(5e-4, 5e-5), epochs=10, seed=seed) if quick
                     else BaselineConfig(seed=seed))
        if epochs is not None:
            baselines = dataclasses.replace(baselines, epochs=epochs)
        return cls(tasks=tasks, dbn=DBNConfig(seed=seed), pretrain=PretrainConfig(seed=seed, min_beats=pretrain_min_beats),
                   finetune=FinetuneConfig.for_recipe("paper", quick=quick, seed=seed, **more), baselines=baselines,
                   quick=quick, recipe=recipe, finetune_beatdbn=beatdbn,
                   genre_labels=str(genre_labels or ""), duplicates=str(duplicates or ""),
                   tasks_dir=str(tasks_dir or ""), epochs=epochs, models=tuple(models))


def experiments(config: ReproduceConfig) -> tuple[tuple[str, str | None], ...]:
    """(model name, recipe) of every experiment per task, in Table 1 order (recipe None for the baselines): the
    experiment registry's plan for the run's recipes and added models (:func:`beatdbn.experiments.registry.plan`)."""
    return tuple((v.name, v.recipe) for v in model_kinds.plan(config.recipes, config.models))


def _build_tasks(fs, out: Path, config: ReproduceConfig) -> list[str]:
    """Build the tasks into ``out`` (or copy ``config.tasks_dir`` there, checked against the store); returns
    the names of the tasks built. Resumes when ``out`` already holds the same tasks."""
    summary = out / "tasks.json"
    if config.tasks_dir:
        source = Path(config.tasks_dir)
        check_tasks_in_store(source, fs.track_ids, store=str(fs.path))
        if summary.exists():
            if json.loads(summary.read_text()) != json.loads((source / "tasks.json").read_text()):
                raise DataError(f"{out}: holds other tasks than {source}; use a new RUN_DIR")
        else:
            with atomic_path(out) as tmp:
                shutil.copytree(source, tmp)
        done = json.loads(summary.read_text())
        if not done.get("tasks"):
            raise DataError(f"{source}: holds no task ({'; '.join((done.get('errors') or {}).values())})")
        return [t for t in registry.task_names() if t in done["tasks"]]
    if summary.exists():
        done = json.loads(summary.read_text())
        if done.get("config") == json.loads(json.dumps(config.tasks.to_dict())):
            return [t for t in registry.task_names() if t in done["tasks"]]
        raise DataError(f"{out}: tasks were built with other settings; use a new RUN_DIR")
    built, errors, stats, dropped = prepare_tasks(fs, config.tasks, duplicates=config.duplicates or None,
                                                  genre_labels=config.genre_labels or None)
    if not built:
        hint = "" if config.tasks.scale == "auto" else " (try --scale auto: the largest scale the corpus supports)"
        raise DataError("no task could be built from this store" + hint + ": " + "; ".join(errors.values()))
    write_tasks(out, built, config=config.tasks, errors=errors, stats=stats, dropped=dropped, store=str(fs.path))
    return [t for t in registry.task_names() if t in built]


def _load() -> dict[str, Any]:
    """The 1/5/15-minute load averages and the CPU count now (None where the OS has none)."""
    try:
        avg = [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        avg = None
    return {"load_average": avg, "cpus": os.cpu_count()}


def default_scheduler(device: str = "cpu") -> str:
    """Where the sweep runs when not told: ``'local'`` (a Dask LocalCluster, one single-thread worker per CPU)
    on a CPU; ``'sync'`` (this process) on a GPU, which one process keeps busy (several would each hold a
    CUDA context on the same device)."""
    return "local" if str(device) == "cpu" else "sync"


class _Run:
    """One run's record (``config.json``: configuration, versions, stage timings) and its progress, counted in
    relative cost units (:attr:`work`: the pretraining's and each experiment's, from its kind's cost)."""

    def __init__(self, out: Path, fs, config: ReproduceConfig, progress: Callable[[dict], None] | None) -> None:
        self.path = out / "config.json"
        self.record = json.loads(self.path.read_text()) if self.path.exists() else {}
        wanted = json.loads(json.dumps(config.to_dict()))  # tuples as lists, as read back
        if self.record.get("config") not in (None, wanted):
            raise DataError(f"{self.path}: this run was started with other settings; use a new RUN_DIR "
                            f"(or the same options as before to resume it)")
        self.timings: dict[str, float] = self.record.get("timings", {})
        self.record.update(config=wanted, store=str(fs.path), **run_versions())
        self.record["machine"] = {"start": _load()}
        self.progress = progress
        self.work: dict[tuple[str, str], float] = {}
        self.work_total, self.work_done = 1.0, 0.0

    def notify(self, info: dict) -> None:
        if self.progress is not None:
            self.progress(info)

    def save(self) -> None:
        write_json(self.path, self.record)

    def add_time(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds
        self.record["timings"] = self.timings
        self.save()

    def timed(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, its seconds added to stage ``name``'s timing."""
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        self.add_time(name, time.perf_counter() - t0)
        return value

    def plan_work(self, fs, config: ReproduceConfig, tasks: dict, exclude) -> None:
        """The pretraining's beats, each task's training beats and the cost of every stage."""
        self.n_pretrain = len(fs.select_rows(exclude=exclude))
        pretrain_beats = int(fs.n_beats * self.n_pretrain / max(len(fs), 1))
        n_beats = fs.metadata.column("n_beats").to_numpy()
        self.train_beats = {name: int(sum(n_beats[fs.select_rows(t.track_ids("train"))])) for name, t in tasks.items()}
        self.work = {("pretrain", ""): 3.0 * pretrain_beats * config.pretrain.passes_for(pretrain_beats)}
        for name, task in tasks.items():
            for model, _ in experiments(config):
                self.work[(name, model)] = model_kinds.kind(model).cost(
                    settings_of(model, config), self.train_beats[name], tracks=len(task.track_ids("train")), task=name)
        self.work_total = sum(self.work.values())

    def cost(self, task: str, model: str, recipe: str | None = None) -> float:
        return self.work[(task, model)]

    def relay(self, stage: str, key: tuple, step_info: dict) -> None:
        """A stage's own progress, and the run's: ``work_done`` plus that fraction of the stage's cost."""
        frac = step_info["step"] / max(step_info["total"], 1)
        self.notify({"stage": stage, "step": step_info["step"], "total": step_info["total"],
                     "message": step_info.get("message", ""), "work_done": self.work_done + frac * self.work[key],
                     "work_total": self.work_total})

    def on_pretrain(self, p: dict) -> None:
        self.relay("pretrain", ("pretrain", ""), {"step": p["tracks_done"], "total": p["tracks_total"],
                                                  "message": f"{p['phase']}: {p['beats_per_s']:,.0f} beats/s"})


class _SweepProgress:
    """The sweep's callbacks (:func:`~beatdbn.pipeline.sweep.run_jobs`' ``done`` and ``running``): each job's
    seconds into the run's timings, and the jobs done (with the running ones' fractions; never shown going
    back) as the run's progress. The run's ``work_done`` counts each job at its cost (:attr:`Job.cost`), not
    as 1/n of the sweep (they differ a hundredfold); ``sweep_left`` is the cost of the sweep not yet done and
    each running job carries its ``cost``, for the CLI's ETA from the running jobs' epoch rates."""

    def __init__(self, run: _Run, jobs: list) -> None:
        self.run, self.n_jobs, self.count, self.shown = run, len(jobs), 0, 0.0
        self.costs = {job.name: job.cost for job in jobs}
        self.sweep_work = sum(self.costs.values())
        self.finished_cost, self.cost_shown = 0.0, 0.0
        # job name -> its cost times its share done, at the last poll: a new dict each time (the sweep's
        # progress thread and this one both read it)
        self.running_cost: dict[str, float] = {}

    def step(self, step: float) -> dict:
        run = self.run
        self.shown = max(self.shown, min(step, self.n_jobs))
        done = self.finished_cost + sum(self.running_cost.values())
        self.cost_shown = max(self.cost_shown, min(done, self.sweep_work))
        share = self.cost_shown / self.sweep_work if self.sweep_work > 0 else self.shown / max(self.n_jobs, 1)
        return {"step": self.shown, "total": self.n_jobs, "work_total": run.work_total,
                "work_done": run.work_done + share * (run.work_total - run.work_done),
                "sweep_left": max(self.sweep_work - done, 0.0)}

    def done(self, info: dict) -> None:
        if info["kind"] == "side":
            key = info["name"]
        else:
            job = info.get("job")
            key = f"{job.task}/{job.model}" if job is not None else f"{info['task']}/{info['model']}"
        self.run.add_time(key, info["seconds"])
        if info["kind"] != "rate":
            return
        self.count += 1
        name = info["job"].name
        self.finished_cost += self.costs.get(name, 0.0)
        self.running_cost = {k: v for k, v in self.running_cost.items() if k != name}
        self.run.notify({"stage": "sweep", "message": f"{name} done", **self.step(self.count)})

    def running(self, info: dict) -> None:  # from the sweep's progress thread: epochs inside the jobs
        running = [{**r, "cost": self.costs.get(r.get("job"))} for r in info["running"]]
        self.running_cost = {r["job"]: min(r.get("step", 0) / r["total"], 1.0) * r["cost"] for r in running
                             if r.get("total") and r["cost"] is not None}
        self.run.notify({"stage": "sweep", "message": info["message"], "running": running,
                         **self.step(self.count + info["fraction"])})


def reproduce(
    store,
    out,
    *,
    config: ReproduceConfig = ReproduceConfig(),
    device: str = "cpu",
    progress: Callable[[dict], None] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    poll_seconds: float = 1.5,
) -> dict:
    """Run (or resume) the whole protocol into ``out``; returns the ``config.json`` content.

    ``scheduler``: ``'sync'`` trains every experiment in this process; ``'local'`` (a Dask LocalCluster of
    ``workers`` single-thread processes, default one per CPU) or a scheduler address runs every experiment x
    learning rate as its own job (:mod:`beatdbn.pipeline.sweep`), with the same results; None:
    :func:`default_scheduler` (``'local'`` on a CPU). The cluster starts in the background once the tasks are
    built, while the DBN is pretrained; the tasks and the pretraining run in this process either way, and
    so does the report. ``config.json`` records the sweep's wall time under ``"sweep"``.

    ``progress`` receives ``{"stage", "step", "total", "message", "work_done",
    "work_total"}``: ``stage`` names what runs now (``"tasks"``,
    ``"pretrain"``, ``"<task>/<model>"``, ``"sweep"``), ``step``/``total`` its own
    progress, ``work_*`` the whole run's in relative cost units (for an ETA). During a sweep it also
    comes every ``poll_seconds`` while the running jobs train (from a thread of the sweep:
    :func:`~beatdbn.pipeline.sweep.run_jobs`), with ``message`` "3 running: key/convmlp_random lr=0.05
    epoch 4/30 eta 2:10; ...", ``running`` (each job's epochs, ETA and estimated ``cost``) and ``work_done``
    counting the finished jobs and the running jobs' finished epochs, each job at its cost; every sweep
    progress has ``sweep_left``, the cost of the sweep not yet done (the units of ``running``'s costs).
    """
    scheduler = default_scheduler(device) if scheduler is None else scheduler
    check_scheduler(scheduler)
    out = Path(out)
    if (out / SEEDS_FILE).exists():
        raise DataError(f"{out}: holds a multi-seed run ({out / SEEDS_FILE}); rerun it with --seeds or --seed-list "
                        f"(the same options as before), or use a new --out for a single run")
    out.mkdir(parents=True, exist_ok=True)
    fs = store if isinstance(store, FeatureStore) else FeatureStore.open(store)
    run = _Run(out, fs, config, progress)
    run.notify({"stage": "tasks", "step": 0, "total": 1, "message": "building tasks", "work_done": 0,
                "work_total": 1})
    task_names = run.timed("tasks", _build_tasks, fs, out / "tasks", config)
    tasks = {name: load_task(out / "tasks", name) for name in task_names}
    exclude = read_exclusion(out / "tasks")
    run.plan_work(fs, config, tasks, exclude)
    # SIGTERM/SIGINT: the cluster's workers and fork server are stopped, none left; one torch thread for
    # every number (the module's docstring): the caller's thread count must not change the results
    with stop_on_signals(), one_thread():
        cluster, jobs = _start_cluster(run, out, task_names, config, scheduler, workers)
        try:
            run.timed("pretrain", pretrain, fs, out / "dbn", exclude=exclude, config=config.pretrain,
                      dbn_config=config.dbn, device=device, progress=run.on_pretrain)
            run.work_done += run.work[("pretrain", "")]
            if cluster is None:
                if not (out / "dbn" / "plots").exists():
                    run.timed("pretrain plots", write_plots, out / "dbn")
                assembled: set[tuple[str, str]] = set()
            else:
                assembled = _sweep(run, cluster, jobs, fs=fs, out=out, config=config, scheduler=scheduler,
                                   device=device, poll_seconds=poll_seconds)
            _train_left(run, fs, out, tasks, assembled, config=config, device=device, timed=scheduler == "sync")
            _finish(run, fs, out, tasks, config)
        finally:
            if cluster is not None:
                cluster.join()
    return run.record


def _start_cluster(run: _Run, out: Path, task_names, config: ReproduceConfig, scheduler: str,
                   workers: int | None) -> tuple[BackgroundClient | None, list]:
    """The sweep's jobs and its cluster, started now (its workers start and import while the DBN is
    pretrained); none with ``scheduler='sync'``, or when nothing is left to run there."""
    if scheduler == "sync":
        return None, []
    jobs = plan_jobs(out, task_names, experiments(config), config, cost=run.cost)
    if not jobs and (out / "dbn" / "plots").exists():
        return None, jobs
    return BackgroundClient(scheduler, workers, setup=WORKER_IMPORTS, saturation=1.0), jobs


def _sweep(run: _Run, cluster: BackgroundClient, jobs: list, *, fs, out: Path, config: ReproduceConfig,
           scheduler: str, device: str, poll_seconds: float) -> set[tuple[str, str]]:
    """Run the jobs (and the DBN's plots) on the cluster; returns the (task, model) experiments they assembled."""
    dbn_dir = out / "dbn"
    side = [] if (dbn_dir / "plots").exists() else [("pretrain plots", write_plots, (dbn_dir,))]
    n_jobs = len(jobs)
    watch = _SweepProgress(run, jobs)
    run.notify({"stage": "sweep", "step": 0, "total": n_jobs, "message": f"{n_jobs} jobs on {scheduler}",
                "work_done": run.work_done, "work_total": run.work_total, "sweep_left": watch.sweep_work})
    swept = run_jobs(jobs, str(fs.path), str(out), config, cluster=cluster, device=device,
                     experiments=experiments(config), side=side, done=watch.done, running=watch.running,
                     poll_seconds=poll_seconds)
    workers_used = len(cluster.client().nthreads())
    cluster.close()  # in the background, while the rest is assembled and the report written
    run.record["sweep"] = {"scheduler": scheduler, "workers": workers_used, "jobs": n_jobs,
                           "jobs_here": swept["here"], "wall_seconds": swept["wall_seconds"]}
    run.save()
    return swept["assembled"]


def _train_left(run: _Run, fs, out: Path, tasks: dict, assembled: set[tuple[str, str]], *,
                config: ReproduceConfig, device: str, timed: bool) -> None:
    """Train (or, after a sweep, assemble) every experiment no sweep job assembled, task by task (splits loaded
    once per task, the DBN once); ``timed``: their seconds are the stages' timings (the serial path; a sweep's
    jobs timed themselves)."""
    dbn = functools.cache(functools.partial(ConvDBN.load, out / "dbn", device=device))
    plan = experiments(config)
    for name, task in tasks.items():
        left = [model for model, _ in plan if (name, model) not in assembled]
        splits = [load_split(fs, task, s) for s in ("train", "valid", "test")] if left else []
        for model, _ in plan:
            key = (name, model)
            if model in left:
                stage = f"{name}/{model}"
                run.relay(stage, key, {"step": 0, "total": 1, "message": "starting"})
                kwargs = {"device": device, "progress": functools.partial(run.relay, stage, key), "dbn": dbn}
                args = (name, model, splits, out / "experiments" / name / model, config)
                if timed:
                    run.timed(stage, train_experiment, *args, **kwargs)
                else:
                    train_experiment(*args, **kwargs)
            run.work_done += run.work[key]


def _finish(run: _Run, fs, out: Path, tasks: dict, config: ReproduceConfig) -> None:
    """The projection into ``config.json``, then Table 1 and the report."""
    run.notify({"stage": "report", "step": 0, "total": 1, "message": "writing Table 1 and the report",
                "work_done": run.work_total, "work_total": run.work_total})
    run.record["machine"]["end"] = _load()
    run.record["projected"] = projected_time(run.timings, config, fs, run.n_pretrain, run.train_beats,
                                             machine=run.record["machine"],
                                             train_tracks={n: len(t.track_ids("train")) for n, t in tasks.items()})
    run.save()
    Table1.from_run(out).write(out)
    write_report(out)


def parse_models(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """The opt-in models of ``--models +meanstd_lr,+knn`` (each added to the default ones, which always run).

    Raises
    ------
    ParameterError
        A name without its ``+``, or one that is not an opt-in model of the registry.

    Examples
    --------
    >>> parse_models("+meanstd_lr")
    ('meanstd_lr',)
    >>> parse_models("")
    ()
    """
    items = [x.strip() for x in (text.split(",") if isinstance(text, str) else (text or ())) if x.strip()]
    plain = [x for x in items if not x.startswith("+")]
    if plain:
        raise ParameterError(f"--models {plain[0]}: name a model to add with a '+' (--models +{plain[0]}); the "
                             f"default models ({', '.join(EXPERIMENTS)} and the recipes' conv MLPs) always run; "
                             f"to add: {', '.join('+' + m for m in model_kinds.optional()) or '(none)'}")
    return model_kinds.check_models(x[1:] for x in items)


def seed_dir(out: str | Path, seed: int) -> Path:
    """The folder of one seed's run in a multi-seed run folder: ``OUT/seed-<seed>``."""
    return Path(out) / f"seed-{int(seed)}"


def parse_seeds(*, seeds: int | None = None, seed_list: str | Sequence[int] | None = None) -> list[int] | None:
    """The seeds of ``--seeds N`` (0 .. N-1) or ``--seed-list 3,7,9``; None when neither is given (a single run).

    Raises
    ------
    ParameterError
        Both given, N < 1, or a list that is empty, has repeats or something other than ints >= 0.
    """
    if seeds is not None and seed_list is not None:
        raise ParameterError(f"--seeds {seeds} and --seed-list {seed_list}: give one (--seeds N runs seeds "
                             f"0..N-1, --seed-list names them)")
    if seeds is not None:
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ParameterError(f"--seeds {seeds!r}: must be an int >= 1 (e.g. --seeds 3 runs seeds 0, 1, 2)")
        return list(range(seeds))
    if seed_list is None:
        return None
    items = [x.strip() for x in seed_list.split(",")] if isinstance(seed_list, str) else list(seed_list)
    try:
        values = [int(x) for x in items if x != ""]
    except (TypeError, ValueError):
        values = []
    bad = not values or any(isinstance(x, float) for x in items) or any(v < 0 for v in values)
    if bad or len(set(values)) != len(values):
        raise ParameterError(f"--seed-list {seed_list!r}: expected distinct ints >= 0 separated by commas, "
                             f"e.g. --seed-list 3,7,9")
    return values


def _shared_options(config: ReproduceConfig) -> dict[str, Any]:
    """What every seed of a multi-seed run shares: ``config.to_dict()`` without its seeds."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "seed"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads(json.dumps(config.to_dict())))


def reproduce_seeds(
    store,
    out,
    *,
    seeds: Sequence[int],
    config: ReproduceConfig = ReproduceConfig(),
    device: str = "cpu",
    progress: Callable[[dict], None] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> dict:
    """One complete run of the protocol per seed, each in ``OUT/seed-<s>/``; then OUT's Table 1 and report.

    Each seed's run is :func:`reproduce` with ``config.with_seed(s)`` (``ReproduceConfig.make(seed=s, ...)``
    with the same options), into :func:`seed_dir`: the run-folder layout of a single run (``config.json``,
    ``tasks/``, ``dbn/``, ``experiments/<task>/<model>/result.json``, its own Table 1 and report). So each
    seed draws its own split, pretrains its own DBN with that split's valid/test tracks excluded, and draws
    its own initial weights and batch orders. ``config``'s own seeds are replaced.

    ``OUT/seeds.json`` (:data:`SEEDS_FILE`, written atomically after each finished seed, and at once when a rerun adds seeds)::

        {"seeds": [0, 1, 2], "config": <the options every seed shares>, "finished": [0, 1]}

    ``seeds``: every seed this folder was asked for, sorted (a rerun with more seeds adds them; with fewer
    it keeps the others); ``finished``: those whose run is complete (sorted); ``config``: the run's
    configuration without its seeds (:func:`_shared_options`). A rerun skips the finished seeds, runs the
    others (resuming an unfinished one where it stopped), and refuses other options. After the seeds,
    ``Table1.from_run(OUT)`` aggregates the finished seeds into ``OUT/table.md``, ``table.json`` and the report.

    ``progress`` receives :func:`reproduce`'s dicts with ``"seed"`` added, ``stage`` prefixed with
    ``"seed <s>: "`` and ``work_done`` / ``work_total`` counted in seeds (a finished seed counts whole).

    Returns
    -------
    dict
        The ``seeds.json`` content.

    Raises
    ------
    ParameterError
        No seed, repeated seeds, or a tasks folder (``config.tasks_dir``: one split for every seed).
    DataError
        OUT holds a single run, or a multi-seed run of other options.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ParameterError(f"seeds {seeds}: expected one or more distinct ints >= 0")
    if config.tasks_dir:
        raise ParameterError(f"--tasks {config.tasks_dir} with several seeds: a tasks folder holds one split, and "
                             f"each seed draws its own; give the task options (--task, --scale, ...) instead")
    out = Path(out)
    record_path = out / SEEDS_FILE
    shared = _shared_options(config)
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record.get("config") != shared:
            raise DataError(f"{record_path}: this multi-seed run was started with other settings; use a new --out "
                            f"(or the same options as before to resume it or add seeds)")
    elif (out / "config.json").exists():
        raise DataError(f"{out}: holds a single-seed run (config.json); use a new --out for --seeds/--seed-list")
    else:
        record = {"seeds": [], "config": shared, "finished": []}
    finished = {int(s) for s in record.get("finished", [])}
    record = {"seeds": sorted(set(record.get("seeds", [])) | set(seeds)), "config": shared,
              "finished": sorted(finished)}
    out.mkdir(parents=True, exist_ok=True)
    if record_path.exists():  # a new run's record waits for its first finished seed: a run that fails at once
        write_json(record_path, record)  # (tasks that cannot be built) can be rerun with other options
    notify = progress or (lambda info: None)
    n = len(record["seeds"])
    for s in record["seeds"]:
        if s in finished:
            continue
        before = len(finished)

        def relay(p: dict, s: int = s, before: int = before) -> None:
            frac = p["work_done"] / p["work_total"] if p.get("work_total") else 0.0
            notify({**p, "seed": s, "stage": f"seed {s}: {p['stage']}", "work_done": before + frac,
                    "work_total": n})

        reproduce(store, seed_dir(out, s), config=config.with_seed(s), device=device, progress=relay,
                  scheduler=scheduler, workers=workers)
        finished.add(s)
        record["finished"] = sorted(finished)
        write_json(record_path, record)
    notify({"stage": "report", "step": 0, "total": 1, "message": f"Table 1 over {n} seeds", "work_done": n,
            "work_total": n})
    table = Table1.from_run(out)
    table.write(out)
    write_report(out)
    return record


def _machine_note(machine: dict | None) -> str:
    """Whether the rates were measured on an idle machine, from the load average at the run's start."""
    start = (machine or {}).get("start") or {}
    avg, cpus = start.get("load_average"), start.get("cpus")
    if not avg:
        return "load average unknown: whether the machine was idle is not known"
    if avg[0] < 0.5:
        return f"measured on an idle machine (1-min load average {avg[0]} at the start, {cpus} CPUs)"
    return (f"measured on a loaded machine (1-min load average {avg[0]} at the start, {cpus} CPUs): other work "
            f"shared the CPUs, so the rates are lower and the projection longer than on an idle machine")


def projected_time(timings: dict[str, float], config: ReproduceConfig, fs, n_pretrain: int,
                   train_beats: dict[str, int], *, machine: dict | None = None,
                   train_tracks: dict[str, int] | None = None) -> dict[str, Any]:
    """Wall time of the full protocol at the paper's scale, extrapolated from this run's rates.

    Pretraining: this run's seconds per pretraining beat times the paper's one
    pass over the whole MSD (:data:`PAPER_SCALE`: ~920,000 tracks after
    duplicates and held-out tracks, ~4.6e8 beats). Each experiment: its
    measured seconds per training beat (and per epoch and learning rate for
    the sweeps) times the paper's task sizes (4,000 / 4,000 / 2,400 training
    tracks of 500 beats) and the full sweeps (30 epochs; 3 and 5 learning
    rates); each kind says how its time scales (:attr:`ModelKind.project
    <beatdbn.experiments.registry.ModelKind.project>`): a recipe that trains on fixed-size crops
    (``beatdbn``) costs its crops instead (updates x batch), so its time scales with the crops it would
    train on at the paper's task size (``train_tracks`` gives this run's). Evaluation and
    start-up costs scale the same way, which slightly overstates small fixed
    costs. ``machine`` (load averages) says whether the
    rates were measured on an idle machine.
    """
    full = ReproduceConfig.make(recipe=config.recipe, models=config.models)
    per_track = PAPER_SCALE["beats_per_track"]
    seconds: dict[str, float] = {}
    rates: dict[str, float] = {}
    if timings.get("pretrain") and n_pretrain:
        beats_here = fs.n_beats * n_pretrain / max(len(fs), 1)
        beats_here *= config.pretrain.passes_for(beats_here)
        rates["pretrain_beats_per_s"] = beats_here / timings["pretrain"]
        seconds["pretrain"] = timings["pretrain"] / beats_here * PAPER_SCALE["pretrain_beats"]
    for task, beats in train_beats.items():
        paper = registry.spec(task).paper
        if paper is None:  # a task the paper did not run (decade): no paper scale to project to
            continue
        for model, _ in experiments(config):
            t = timings.get(f"{task}/{model}")
            if not t or not beats:
                continue
            seconds[f"{task}/{model}"] = model_kinds.kind(model).project(
                t, beats=beats, paper_beats=paper.train_tracks * per_track, here=settings_of(model, config),
                full=settings_of(model, full), tracks=(train_tracks or {}).get(task), paper_tracks=paper.train_tracks)
    total = sum(seconds.values())
    return {"total_seconds": total, "pretrain_seconds": seconds.get("pretrain"), "stages_seconds": seconds,
            "measured_rates": rates, "machine": _machine_note(machine),
            "basis": "this run's seconds per beat x the paper's corpus: pretraining one pass over the whole MSD "
                     "(1,000,000 tracks less ~78,000 duplicates and the held-out tracks: ~920,000 tracks, "
                     "~4.6e8 beats); tasks of 5,000 / 5,000 / 3,000 tracks (80 % training) of 500 beats; the "
                     "full sweeps (30 epochs; 3 and 5 learning rates)"}
