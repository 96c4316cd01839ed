"""What every trainer shares: the run directory, the "finished?" check, metrics, checkpoints, the run record.

The conv MLP (:mod:`beatdbn.train.finetune`), windowed logistic regression
and naive Bayes (:mod:`beatdbn.train.baselines`) write the same layout::

    RUN_DIR/config.json   the run record (write_record): model, task, representation, settings, splits
    RUN_DIR/lr-<v>/       one learning rate: metrics.csv (every epoch); checkpoint.pt after the last finished epoch
                          (the conv MLP: model, optimizer, position and the curve rows it resumes from)
    RUN_DIR/model/        the selected model: config.json + model.pt (a state dict), read back by
                          beatdbn.inference.load_run with weights_only=True (predict, evaluate, serve)
    RUN_DIR/result.json   the ExperimentResult, written last: its presence means "finished"

:func:`finished` is the one "already finished?" check: a result made with the
same settings is returned (after checking that its model loads); one made
with other settings raises :class:`~beatdbn.exceptions.DataError`. Checkpoints
go through :func:`save_checkpoint` / :func:`load_checkpoint` (a format name
and the settings they were made with; never unpickling code).

:func:`run_lock` holds ``RUN_DIR/.lock`` while a command writes the folder (the store's lock,
:class:`~beatdbn.store.lock.StoreLock`: an OS lock that dies with its process): a second run into the
same folder fails at once, naming the folder and the holder's pid, instead of both writing it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from beatdbn.exceptions import DataError
from beatdbn.metrics.results import RESULT_FILE, ExperimentResult
from beatdbn.store.lock import StoreLock
from beatdbn.train.checkpoint import load_checkpoint
from beatdbn.train.provenance import run_versions
from beatdbn.utils.atomic import save_torch, write_json, write_text

__all__ = ["lr_dir", "jsonable", "settings_of", "finished", "write_record", "write_metrics", "read_metrics",
           "save_checkpoint", "load_checkpoint", "run_lock", "MODEL_DIR"]

log = logging.getLogger(__name__)

MODEL_DIR = "model"


def lr_dir(out: str | Path, lr: float) -> Path:
    """Folder of one learning rate's run: ``RUN_DIR/lr-5e-05``."""
    return Path(out) / f"lr-{lr:g}"


@contextlib.contextmanager
def run_lock(out: str | Path) -> Iterator[Path]:
    """Hold the run folder ``out`` (created if needed) for this process while the block writes it.

    The lock is ``RUN_DIR/.lock``, taken with the store's lock
    (:class:`~beatdbn.store.lock.StoreLock`, ``flock``: released by the OS
    when the process dies, so a killed run never leaves it held).

    Raises
    ------
    DataError
        Another process holds the folder (the message names the folder and its pid), or the folder's
        file system has no locks.
    """
    out = Path(out)

    def busy(pid: int | None) -> None:  # called instead of waiting: a second run fails at once
        who = f"pid {pid}" if pid else "pid unknown"
        raise DataError(f"{out}: another beatdbn run is writing this run folder ({who}); wait for it to finish, "
                        f"or use another --out")

    with StoreLock(out, wait=True, on_wait=busy):
        yield out


def jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples as lists, non-finite floats as None)."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.loads(json.dumps(clean(value), default=str))


def settings_of(*, task: str, model: str, config: dict, splits: str) -> dict:
    """What a finished run must match to be reused: task, model name, its configuration, the splits' fingerprint."""
    return jsonable({"task": task, "model": model, "config": config, "splits": splits})


def finished(out: str | Path, settings: dict, *, load: Callable[[Path], Any] | None = None
             ) -> ExperimentResult | None:
    """The result of a finished run in ``out`` made with ``settings`` (:func:`settings_of`), or None.

    ``load(model_dir)`` is called on ``RUN_DIR/model`` to check that the saved model still loads. A run
    that differs only in its learning-rate sweep gives None: it is redone, and each learning rate it shares
    with the old sweep is reused from its ``lr-<v>/`` folder.

    Raises
    ------
    DataError
        ``out`` holds a finished run of other settings (the message names the first difference), or its
        model is missing or does not load (delete ``result.json`` to redo the run).
    """
    out = Path(out)
    path = out / RESULT_FILE
    if not path.exists():
        return None
    done = ExperimentResult.load(path)
    before = done.extra.get("settings")
    if before is not None and _without_sweep(before) == _without_sweep(settings) and before != settings:
        return None  # another learning-rate sweep: the run is redone, reusing the rates it shares (lr-<v>/)
    if before != settings:
        diff = _first_difference(before or {}, settings)
        raise DataError(f"{path}: a finished {done.model} run on {done.task!r} made with other settings ({diff}); "
                        f"use a new --out, or delete {path} to redo it")
    if load is not None:
        model_dir = out / MODEL_DIR
        try:
            load(model_dir)
        except Exception as exc:  # noqa: BLE001 - any failure to load is reported the same way
            raise DataError(f"{model_dir}: the finished run's model does not load ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); delete {path} to redo the "
                            f"run") from None
    log.info("%s: already finished", out)
    return done


def _without_sweep(settings: dict) -> dict:
    config = {k: v for k, v in (settings.get("config") or {}).items() if k != "learning_rates"}
    return {**settings, "config": config}


def _first_difference(before: dict, now: dict) -> str:
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and a != b:
            return f"{key}: " + _first_difference(a, b)
        if a != b:
            return f"{key} was {a!r}, now {b!r}"
    return "no recorded settings"


def write_record(out: str | Path, info: dict) -> None:
    """``RUN_DIR/config.json``: the run record (with the package versions), strict JSON."""
    write_json(Path(out) / "config.json", jsonable({**info, "versions": run_versions()}))


def write_metrics(path: str | Path, rows: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    """One CSV row per epoch (``columns``: default the keys of the first row), written atomically."""
    columns = list(columns or (rows[0].keys() if rows else []))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k) for k in columns})
    write_text(path, buf.getvalue())


def read_metrics(path: str | Path, upto: int | None = None) -> list[dict[str, float]]:
    """The rows :func:`write_metrics` wrote (numbers as floats), up to epoch ``upto``."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]
    return [r for r in rows if upto is None or r.get("epoch", 0) <= upto]


def save_checkpoint(state: dict, path: str | Path, *, fmt: str, expect: dict) -> None:
    """Save a resumable state with its format name and the settings it was made with (atomic)."""
    save_torch({"format": fmt, "expect": jsonable(expect), **state}, path)
