"""Table 1 end to end: the paper's twelve experiments on one corpus, resumable.

What flows where (``RUN_DIR`` layout, read by :mod:`beatdbn.evaluate.report`)::

    STORE --build_tasks--> RUN_DIR/tasks/           artist, genre, key + exclude.txt
          --pretrain (once; every task's valid/test and duplicates excluded)--> RUN_DIR/dbn/
    for each task (splits loaded once):
          naive Bayes           --> RUN_DIR/experiments/<task>/naive_bayes/result.json
          windowed logistic reg --> RUN_DIR/experiments/<task>/logreg/          (5 learning rates)
          conv MLP, random init --> RUN_DIR/experiments/<task>/convmlp_random/  (3 learning rates, 30 epochs)
          conv MLP, pretrained  --> RUN_DIR/experiments/<task>/convmlp_pretrained/
    --> RUN_DIR/table.md, table.json (Table 1 beside the paper's), report.html/.md, config.json

Every stage resumes: finished tasks, DBN and experiments are skipped on a
rerun (each trainer checks its own ``result.json`` and checkpoints), so a
killed ``beatdbn reproduce`` picks up where it stopped. ``config.json``
records the configuration, versions, git commit, the wall time of every
stage and the projected wall time of the full protocol at the paper's
scale, extrapolated from this run's measured rates.

``quick=True`` shrinks the sweeps and epochs for a smoke run (the table
says which epochs it shows); the tasks and the DBN are the same.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from beatdbn.exceptions import DataError
from beatdbn.models.config import JsonConfig
from beatdbn.models.dbn import DBNConfig
from beatdbn.tasks.build import TaskConfig
from beatdbn.train.baselines import BaselineConfig
from beatdbn.train.finetune import FinetuneConfig
from beatdbn.train.pretrain import PretrainConfig

__all__ = ["ReproduceConfig", "reproduce", "EXPERIMENTS", "PAPER_SCALE"]

#: Model names in Table 1 order.
EXPERIMENTS = ("naive_bayes", "logreg", "convmlp_random", "convmlp_pretrained")
#: The paper's corpus: training tracks per task (80 % of 5,000 / 5,000 / 3,000), pretraining tracks, beats a track.
PAPER_SCALE = {"train_tracks": {"artist": 4000, "genre": 4000, "key": 2400}, "pretrain_tracks": 50_000,
               "beats_per_track": 500}


@dataclass(frozen=True)
class ReproduceConfig(JsonConfig):
    """Everything a reproduction run depends on (saved in ``config.json``)."""

    tasks: TaskConfig = field(default_factory=TaskConfig)
    dbn: DBNConfig = field(default_factory=DBNConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    quick: bool = False

    @classmethod
    def make(cls, *, quick: bool = False, seed: int = 0, tasks: TaskConfig | None = None) -> "ReproduceConfig":
        """The paper's protocol, or with ``quick`` a smoke run: 2 learning rates of each sweep, 10 epochs
        (snapshot at 7, standing in for the paper's 20 of 30)."""
        tasks = tasks or TaskConfig(seed=seed)
        if not quick:
            return cls(tasks=tasks, dbn=DBNConfig(seed=seed), pretrain=PretrainConfig(seed=seed),
                       finetune=FinetuneConfig(seed=seed), baselines=BaselineConfig(seed=seed))
        return cls(tasks=tasks, dbn=DBNConfig(seed=seed), pretrain=PretrainConfig(seed=seed),
                   finetune=FinetuneConfig(learning_rates=(0.05, 0.005), epochs=10, snapshot_epochs=(7, 10), seed=seed),
                   baselines=BaselineConfig(learning_rates=(5e-4, 5e-5), epochs=10, seed=seed), quick=True)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def _build_tasks(fs, out: Path, config: TaskConfig) -> list[str]:
    from beatdbn.tasks.build import TASK_NAMES, build_tasks, write_tasks

    summary = out / "tasks.json"
    if summary.exists():
        done = json.loads(summary.read_text())
        if done.get("config") == dataclasses.asdict(config) | {"tasks": list(config.tasks)}:
            return [t for t in TASK_NAMES if t in done["tasks"]]
        raise DataError(f"{out}: tasks were built with other settings; use a new RUN_DIR")
    built, errors, stats = build_tasks(fs.metadata, config)
    if not built:
        raise DataError("no task could be built from this store: " + "; ".join(errors.values()))
    write_tasks(out, built, config=config, errors=errors, stats=stats, dropped=set(), store=str(fs.path))
    return [t for t in TASK_NAMES if t in built]


def _cost(model: str, config: ReproduceConfig, beats: int) -> float:
    """Rough relative cost of one experiment, in conv-MLP beat-epochs (for the overall ETA)."""
    if model == "naive_bayes":
        return 0.02 * beats
    if model == "logreg":
        return 0.03 * beats * config.baselines.epochs * len(config.baselines.learning_rates)
    return 1.2 * beats * config.finetune.epochs * len(config.finetune.learning_rates)


def reproduce(
    store,
    out,
    *,
    config: ReproduceConfig = ReproduceConfig(),
    device: str = "cpu",
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Run (or resume) the whole protocol into ``out``; returns the ``config.json`` content.

    ``progress`` receives ``{"stage", "step", "total", "message", "work_done",
    "work_total"}``: ``stage`` names what runs now (``"tasks"``,
    ``"pretrain"``, ``"<task>/<model>"``), ``step``/``total`` its own
    progress, ``work_*`` the whole run's in relative cost units (for an ETA).
    """
    from beatdbn.evaluate.report import write_report
    from beatdbn.evaluate.table import Table1
    from beatdbn.models.dbn import ConvDBN
    from beatdbn.store.reader import FeatureStore
    from beatdbn.tasks.build import load_task
    from beatdbn.train.baselines import run_logreg, run_naive_bayes
    from beatdbn.train.data import load_split
    from beatdbn.train.finetune import run_convmlp
    from beatdbn.train.provenance import run_versions
    from beatdbn.train.pretrain import pretrain, read_exclusion, write_plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fs = store if isinstance(store, FeatureStore) else FeatureStore.open(store)
    record_path = out / "config.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    wanted = json.loads(json.dumps(config.to_dict()))  # tuples as lists, as read back
    if record.get("config") not in (None, wanted):
        raise DataError(f"{record_path}: this run was started with other settings; use a new RUN_DIR "
                        f"(or the same options as before to resume it)")
    timings: dict[str, float] = record.get("timings", {})
    record.update(config=wanted, store=str(fs.path), **run_versions())
    notify = progress or (lambda info: None)

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        value = fn()
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
        record["timings"] = timings
        _write_json(record_path, record)
        return value

    notify({"stage": "tasks", "step": 0, "total": 1, "message": "building tasks", "work_done": 0, "work_total": 1})
    task_names = timed("tasks", lambda: _build_tasks(fs, out / "tasks", config.tasks))
    tasks = {name: load_task(out / "tasks", name) for name in task_names}
    exclude = read_exclusion(out / "tasks")
    n_pretrain = len(fs.select_rows(exclude=exclude))
    pretrain_beats = int(fs.n_beats * n_pretrain / max(len(fs), 1))
    train_beats = {name: int(sum(fs.metadata.column("n_beats").to_numpy()[fs.select_rows(t.track_ids("train"))]))
                   for name, t in tasks.items()}
    work = {("pretrain", ""): 3.0 * pretrain_beats * config.pretrain.passes}
    for name in task_names:
        for model in EXPERIMENTS:
            work[(name, model)] = _cost(model, config, train_beats[name])
    work_total = sum(work.values())
    work_done = 0.0

    def relay(stage: str, key: tuple, step_info: dict) -> None:
        frac = step_info["step"] / max(step_info["total"], 1)
        notify({"stage": stage, "step": step_info["step"], "total": step_info["total"],
                "message": step_info.get("message", ""), "work_done": work_done + frac * work[key],
                "work_total": work_total})

    def on_pretrain(p: dict) -> None:
        relay("pretrain", ("pretrain", ""), {"step": p["tracks_done"], "total": p["tracks_total"],
                                             "message": f"{p['phase']}: {p['beats_per_s']:,.0f} beats/s"})

    dbn_dir = out / "dbn"
    timed("pretrain", lambda: pretrain(fs, dbn_dir, exclude=exclude, config=config.pretrain,
                                       dbn_config=config.dbn, device=device, progress=on_pretrain))
    if not (dbn_dir / "plots").exists():
        timed("pretrain plots", lambda: write_plots(dbn_dir))
    work_done += work[("pretrain", "")]
    dbn = ConvDBN.load(dbn_dir, device=device)

    for name in task_names:
        splits = [load_split(fs, tasks[name], s) for s in ("train", "valid", "test")]
        for model in EXPERIMENTS:
            stage = f"{name}/{model}"
            exp_dir = out / "experiments" / name / model
            key = (name, model)

            def step(info: dict, stage=stage, key=key) -> None:
                relay(stage, key, info)

            relay(stage, key, {"step": 0, "total": 1, "message": "starting"})
            if model == "naive_bayes":
                run = lambda: run_naive_bayes(*splits, task=name, out=exp_dir, config=config.baselines,  # noqa: E731
                                              progress=step)
            elif model == "logreg":
                run = lambda: run_logreg(*splits, task=name, out=exp_dir, config=config.baselines,  # noqa: E731
                                         progress=step, device=device)
            else:
                init = model.removeprefix("convmlp_")
                run = lambda init=init: run_convmlp(*splits, task=name, init=init, dbn=dbn, out=exp_dir,  # noqa: E731
                                                    config=config.finetune, device=device, progress=step)
            timed(stage, run)
            work_done += work[key]

    notify({"stage": "report", "step": 0, "total": 1, "message": "writing Table 1 and the report",
            "work_done": work_total, "work_total": work_total})
    record["projected"] = projected_time(record["timings"], config, fs, n_pretrain, train_beats)
    _write_json(record_path, record)
    table = Table1.from_run(out)
    table.write(out)
    write_report(out)
    return record


def projected_time(timings: dict[str, float], config: ReproduceConfig, fs, n_pretrain: int,
                   train_beats: dict[str, int]) -> dict[str, Any]:
    """Wall time of the full protocol at the paper's scale, extrapolated from this run's rates.

    Each stage's measured seconds per training beat (and per epoch and
    learning rate for the sweeps) is multiplied by the paper's sizes
    (:data:`PAPER_SCALE`) and the full protocol's sweeps (30 epochs, 3 / 5
    learning rates). Evaluation and start-up costs scale the same way, which
    slightly overstates small fixed costs.
    """
    full = ReproduceConfig.make()
    per_track = PAPER_SCALE["beats_per_track"]
    seconds: dict[str, float] = {}
    if timings.get("pretrain") and n_pretrain:
        beats_here = fs.n_beats * n_pretrain / max(len(fs), 1) * config.pretrain.passes
        seconds["pretrain"] = timings["pretrain"] / beats_here * PAPER_SCALE["pretrain_tracks"] * per_track
    for task, beats in train_beats.items():
        paper_beats = PAPER_SCALE["train_tracks"][task] * per_track
        for model in EXPERIMENTS:
            t = timings.get(f"{task}/{model}")
            if not t or not beats:
                continue
            if model == "naive_bayes":
                factor = 1.0
            elif model == "logreg":
                factor = (full.baselines.epochs * len(full.baselines.learning_rates)
                          / (config.baselines.epochs * len(config.baselines.learning_rates)))
            else:
                factor = (full.finetune.epochs * len(full.finetune.learning_rates)
                          / (config.finetune.epochs * len(config.finetune.learning_rates)))
            seconds[f"{task}/{model}"] = t / beats * paper_beats * factor
    total = sum(seconds.values())
    return {"total_seconds": total, "stages_seconds": seconds,
            "basis": "this run's seconds per training beat x the paper's corpus (5,000/5,000/3,000 task tracks, "
                     "50,000 pretraining tracks, 500 beats a track) x the full sweeps (30 epochs; 3 and 5 rates)"}
