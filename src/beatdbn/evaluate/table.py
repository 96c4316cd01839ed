"""Table 1 of Dieleman, Brakel & Schrauwen (2011), from this run's results.

Layout, as in the paper: columns genre, artist, key; rows naive Bayes, then
(30 epochs) windowed logistic regression, conv. MLP without pretraining,
conv. MLP with pretraining, then (20 epochs) conv. MLP without / with
pretraining. A cell is the test accuracy of the run chosen on validation
(:meth:`~beatdbn.metrics.results.ExperimentResult.select`) with the chosen
learning rate in parentheses, e.g. ``29.52% (0.005)``. As in the paper the
best cell of each column is bold within each block (naive Bayes and the
30-epoch rows; the 20-epoch rows), ties all bold. A chance row gives each
task's chance level (the results' ``chance``: always answering the most
frequent training class). An experiment that is missing shows as ``—``; a
task the corpus could not give (``tasks.json`` errors) shows as ``—`` with its
reason in a footnote. The header gives each task's scale (classes × tracks
per class) beside the paper's 20×250, 50×100 and 12×250, and the footnotes
say how the genre splits were drawn (random, as the paper, or
artist-filtered) and, on the key task, the MIREX weighted key score of every
selected run.

**Recipes.** The conv MLP rows are the paper's recipe
(``convmlp_random`` / ``convmlp_pretrained``); a run with the ``beatdbn``
finetuning recipe adds the rows "conv. MLP (beatdbn recipe), random init /
pretrained" (``convmlp_*_beatdbn``) in both epoch blocks; ``recipes``
chooses which rows are shown (default: those the results hold).

**Honesty.** Every number in the *this run* columns comes from the
:class:`~beatdbn.metrics.results.ExperimentResult` objects passed in; the
paper's own numbers (:data:`PAPER_TABLE1`, transcribed from its Table 1) are
only ever shown in columns of their own, headed *paper*, never mixed in.

**Epochs.** The two blocks are the *final* epoch and the *early* snapshot.
By default they are inferred from the results: the final epoch is the
largest epoch any logistic-regression or conv-MLP run was evaluated at (30
for the paper's protocol), the early one the largest conv-MLP epoch below it
(20). A ``--quick`` run that trains 4 epochs with a snapshot at 2 thus gives
the blocks "4 epochs (paper: 30)" and "2 epochs (paper: 20)". An experiment
evaluated only at another final epoch is shown at its own last epoch, with a
note.

Examples
--------
>>> from beatdbn.metrics.results import ExperimentResult
>>> r = ExperimentResult("key", "naive_bayes", classes=["C", "D"], chance=0.5)
>>> r.runs.append({"learning_rate": None, "epoch": 0, "valid_accuracy": 0.6, "test_accuracy": 0.7})
>>> t = Table1([r])
>>> t.cell("naive_bayes", "final", "key").text
'70.00%'
>>> t.cell("logreg", "final", "key") is None
True
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from beatdbn.metrics.results import RESULT_FILE, ExperimentResult
from beatdbn.metrics.scores import KEY_SCORE_RULE, fifth_convention
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.tasks import registry
from beatdbn.utils.atomic import write_text

__all__ = ["Table1", "Cell", "TASKS", "MODELS", "ROWS", "RECIPE_MODELS", "PAPER_SCALES", "table_rows", "PAPER_TABLE1", "PAPER_EPOCHS", "PAPER_SOURCE",
           "format_accuracy", "format_learning_rate", "load_results"]

#: Columns: every registered task, in table order (the paper's genre, artist, key first).
TASKS = registry.task_names()
#: The tasks the paper ran: the columns of its side of the table.
PAPER_TASKS = tuple(name for name, spec in registry.specs().items() if spec.paper is not None)
#: Model keys of :class:`ExperimentResult` and their names in the table.
MODELS = {
    "naive_bayes": "naive Bayes",
    "logreg": "windowed logistic regression",
    "convmlp_random": "conv. MLP without pretraining",
    "convmlp_pretrained": "conv. MLP with pretraining",
    "convmlp_random_beatdbn": "conv. MLP (beatdbn recipe), random init",
    "convmlp_pretrained_beatdbn": "conv. MLP (beatdbn recipe), pretrained",
}
_SHORT = {"naive_bayes": "naive Bayes", "logreg": "windowed log. regression",
          "convmlp_random": "conv. MLP, random init", "convmlp_pretrained": "conv. MLP, pretrained",
          "convmlp_random_beatdbn": "conv. MLP (beatdbn), random init",
          "convmlp_pretrained_beatdbn": "conv. MLP (beatdbn), pretrained"}
#: Finetuning recipes whose conv MLP rows Table 1 can show, and their model keys (random, pretrained).
RECIPE_MODELS = {"paper": ("convmlp_random", "convmlp_pretrained"),
                 "beatdbn": ("convmlp_random_beatdbn", "convmlp_pretrained_beatdbn")}
#: Rows, in the paper's order: (model, block).
ROWS = (
    ("naive_bayes", "final"),
    ("logreg", "final"),
    ("convmlp_random", "final"),
    ("convmlp_pretrained", "final"),
    ("convmlp_random", "early"),
    ("convmlp_pretrained", "early"),
)
#: Epochs of the paper's two blocks.
PAPER_EPOCHS = {"final": 30, "early": 20}
PAPER_SOURCE = ("Dieleman, Brakel & Schrauwen, \"Audio-based music classification with a pretrained "
                "convolutional network\", ISMIR 2011, Table 1")
#: The paper's Table 1: (model, block) -> task -> (test accuracy, chosen learning rate).
PAPER_TABLE1: dict[tuple[str, str], dict[str, tuple[float, float | None]]] = {
    row: {t: registry.spec(t).paper.results[row] for t in PAPER_TASKS} for row in ROWS}
#: Classes per task in the paper (balanced tasks: chance = 1 / classes).
PAPER_CLASSES = {t: registry.spec(t).paper.classes for t in PAPER_TASKS}
#: The paper's scale of each task (classes × tracks per class).
PAPER_SCALES = {t: f"{registry.spec(t).paper.classes}\u00d7{registry.spec(t).paper.per_class}" for t in PAPER_TASKS}


def table_rows(recipes: Iterable[str] = ("paper",)) -> tuple[tuple[str, str], ...]:
    """(model, block) rows in order: naive Bayes, logistic regression, then each recipe's conv MLP rows in
    the final block, then the same conv MLP rows in the early block.

    Examples
    --------
    >>> table_rows(("paper",)) == ROWS
    True
    >>> table_rows(("beatdbn",))[2]
    ('convmlp_random_beatdbn', 'final')
    """
    convs = [m for r in recipes for m in RECIPE_MODELS[r]]
    return (("naive_bayes", "final"), ("logreg", "final"), *((m, "final") for m in convs),
            *((m, "early") for m in convs))

_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")
_DASH = "\u2014"


def format_accuracy(value: float | None) -> str:
    """``0.2952 -> '29.52%'``; None or NaN -> an em dash."""
    if value is None or not math.isfinite(value):
        return _DASH
    return f"{100.0 * value:.2f}%"


def format_learning_rate(lr: float | None) -> str:
    """The paper's notation: ``0.005``, ``0.0005``, ``5·10⁻⁵``; None -> ``''``.

    Examples
    --------
    >>> [format_learning_rate(x) for x in (0.05, 5e-4, 5e-5, 2.5e-7, None)]
    ['0.05', '0.0005', '5·10⁻⁵', '2.5·10⁻⁷', '']
    """
    if lr is None or (isinstance(lr, float) and math.isnan(lr)):
        return ""
    lr = float(lr)
    if lr == 0 or abs(lr) >= 1e-4:
        return f"{lr:g}"
    mantissa, exponent = f"{lr:.3g}".split("e")
    return f"{mantissa}\u00b710{str(int(exponent)).translate(_SUPERSCRIPT)}"


@dataclass(frozen=True)
class Cell:
    """One cell: the chosen run's test accuracy and learning rate.

    Attributes
    ----------
    test_accuracy : float
    learning_rate : float or None
        None for naive Bayes.
    valid_accuracy : float or None
        The validation accuracy it was chosen on (None for the paper's cells).
    epoch : int or None
    best : bool
        Best of its column within its block (drawn bold).
    note : str
        E.g. that the experiment was evaluated at another epoch than its block.
    """

    test_accuracy: float
    learning_rate: float | None = None
    valid_accuracy: float | None = None
    epoch: int | None = None
    best: bool = False
    note: str = ""

    @property
    def text(self) -> str:
        """``'29.52% (0.005)'``; just the accuracy when there is no learning rate."""
        lr = format_learning_rate(self.learning_rate)
        return f"{format_accuracy(self.test_accuracy)} ({lr})" if lr else format_accuracy(self.test_accuracy)

    def to_dict(self) -> dict[str, Any]:
        return {"test_accuracy": _json_float(self.test_accuracy), "learning_rate": _json_float(self.learning_rate),
                "valid_accuracy": _json_float(self.valid_accuracy), "epoch": self.epoch, "best": self.best,
                "text": self.text, "note": self.note}


def _json_float(x: Any) -> Any:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _mark_best(cells: dict[tuple[str, str], dict[str, Cell | None]], tasks: Iterable[str]) -> None:
    """Set ``best`` on the top cell(s) of each column within each block, in place."""
    for block in ("final", "early"):
        keys = [k for k in cells if k[1] == block]
        for task in tasks:
            values = [cells[k][task].test_accuracy for k in keys
                      if cells[k].get(task) is not None and math.isfinite(cells[k][task].test_accuracy)]
            if not values:
                continue
            top = max(values)
            for k in keys:
                c = cells[k].get(task)
                if c is not None and c.test_accuracy == top:
                    cells[k][task] = replace(c, best=True)


def load_results(experiments_dir: str | Path) -> tuple[list[ExperimentResult], list[str]]:
    """Read every ``<task>/<model>/result.json`` under ``experiments_dir``.

    Returns
    -------
    results : list of ExperimentResult
    problems : list of str
        One line per file that could not be read (it is skipped, not fatal).
    """
    root = Path(experiments_dir)
    results, problems = [], []
    if not root.is_dir():
        return results, [f"{root}: no experiments folder"]
    for path in sorted(root.glob(f"*/*/{RESULT_FILE}")):
        try:
            results.append(ExperimentResult.load(path))
        except DataError as exc:
            problems.append(str(exc))
    return results, problems


class Table1:
    """Table 1 in the paper's layout from a list of results (see the module docstring).

    Parameters
    ----------
    results : iterable of ExperimentResult
        Any subset of the twelve experiments (tasks :data:`TASKS`, models
        :data:`MODELS`); others are listed in :attr:`notes` and ignored. When
        the same (task, model) comes twice the last one is used.
    final_epoch, early_epoch : int, optional
        Epochs of the two blocks (default: inferred, see the module docstring).
    chance : dict, optional
        Task -> chance accuracy, used for tasks no result gives one for
        (e.g. from ``tasks.json``).
    tasks : tuple of str
        Columns (default: the paper's three; :meth:`from_run`: the tasks the run asked for). Any of
        :data:`TASKS` (every registered task).
    recipes : tuple of str, optional
        Finetuning recipes whose conv MLP rows are shown ('paper', 'beatdbn');
        default: the paper's, plus 'beatdbn' when a result of it is given (only
        'beatdbn' when every conv MLP result is of that recipe).
    scales : dict, optional
        Task -> scale text of this run (``'3×3'``), shown in the header.
    unbuilt : dict, optional
        Task -> why the corpus could not give it (shown as a footnote).
    protocols : dict, optional
        Task -> split protocol ('random' or 'artist-filtered').

    Attributes
    ----------
    cells : dict
        ``(model, block) -> task -> Cell or None`` for this run.
    paper : dict
        The same for the paper (:data:`PAPER_TABLE1`).
    chance : dict
        Task -> chance accuracy or None.
    missing : list of str
        The experiments (or evaluation epochs) that have no result.
    notes : list of str
        Remarks about the inputs (ignored or duplicate results, epoch fallbacks).
    """

    def __init__(self, results: Iterable[ExperimentResult] = (), *, final_epoch: int | None = None,
                 early_epoch: int | None = None, chance: Mapping[str, float] | None = None,
                 tasks: tuple[str, ...] = PAPER_TASKS, recipes: tuple[str, ...] | None = None,
                 scales: Mapping[str, str] | None = None, unbuilt: Mapping[str, str] | None = None,
                 protocols: Mapping[str, str] | None = None) -> None:
        for task in tasks:
            if task not in registry.task_names():
                raise ParameterError(f"tasks={tasks!r}: each must be one of {registry.task_names()}")
        self.tasks = tuple(tasks)
        self.scales = dict(scales or {})
        self.unbuilt = {t: str(v) for t, v in (unbuilt or {}).items() if t in self.tasks}
        self.protocols = dict(protocols or {})
        self.notes: list[str] = []
        by_key: dict[tuple[str, str], ExperimentResult] = {}
        for r in results:
            if not isinstance(r, ExperimentResult):
                raise ParameterError(f"Table1 takes ExperimentResult objects, got {type(r).__name__}")
            if r.task not in self.tasks or r.model not in MODELS:
                self.notes.append(f"ignored: {r.model} on {r.task} is not part of Table 1")
                continue
            if (r.task, r.model) in by_key:
                self.notes.append(f"{r.model} on {r.task} given twice: the last one is used")
            by_key[(r.task, r.model)] = r
        self.results = by_key
        if recipes is None:
            convs = {m for (_, m) in by_key if m.startswith("convmlp")}
            recipes = tuple(r for r, models in RECIPE_MODELS.items()
                            if convs & set(models) or (r == "paper" and not convs))
        unknown = [r for r in recipes if r not in RECIPE_MODELS]
        if unknown or not recipes:
            raise ParameterError(f"recipes={recipes!r}: choose from {tuple(RECIPE_MODELS)}")
        self.recipes = tuple(recipes)
        self.rows = table_rows(self.recipes)

        epochs = [int(row["epoch"]) for (_, m), r in by_key.items() if m != "naive_bayes" for row in r.runs
                  if "epoch" in row]
        self.final_epoch = int(final_epoch) if final_epoch is not None else (max(epochs) if epochs else
                                                                              PAPER_EPOCHS["final"])
        if early_epoch is not None:
            self.early_epoch: int | None = int(early_epoch)
        else:
            early = [int(row["epoch"]) for (_, m), r in by_key.items() if m.startswith("convmlp")
                     for row in r.runs if int(row.get("epoch", -1)) < self.final_epoch]
            self.early_epoch = max(early) if early else (
                PAPER_EPOCHS["early"] if self.final_epoch == PAPER_EPOCHS["final"] else None)

        self.chance: dict[str, float | None] = {}
        for task in self.tasks:
            found = [r.chance for (t, _), r in by_key.items() if t == task and _finite(r.chance)]
            if found:
                self.chance[task] = float(found[0])
            elif chance is not None and _finite(chance.get(task)):
                self.chance[task] = float(chance[task])
            else:
                self.chance[task] = None

        self.missing: list[str] = []
        self.cells: dict[tuple[str, str], dict[str, Cell | None]] = {}
        for model, block in self.rows:
            self.cells[(model, block)] = {task: self._cell(task, model, block) for task in self.tasks}
        _mark_best(self.cells, self.tasks)

        self.paper: dict[tuple[str, str], dict[str, Cell | None]] = {
            key: {task: Cell(acc, lr, epoch=PAPER_EPOCHS[key[1]]) for task, (acc, lr) in row.items()}
            for key, row in PAPER_TABLE1.items()}
        _mark_best(self.paper, PAPER_TASKS)

    # -- building ----------------------------------------------------------

    def _cell(self, task: str, model: str, block: str) -> Cell | None:
        name = f"{task} / {MODELS[model]}"
        r = self.results.get((task, model))
        if r is None:
            if block == "final" and task not in self.unbuilt:
                self.missing.append(f"{name}: no result")
            return None
        if not r.runs:
            if block == "final":
                self.missing.append(f"{name}: result has no runs")
            return None
        note = ""
        try:
            if model == "naive_bayes":
                row = r.select()
            elif block == "final":
                try:
                    row = r.select(self.final_epoch)
                except DataError:
                    row = r.select()
                    note = f"evaluated at epoch {row['epoch']}, not {self.final_epoch}"
                    self.notes.append(f"{name}: {note}")
            else:
                if self.early_epoch is None:
                    self.missing.append(f"{name}: no early snapshot epoch in this run")
                    return None
                row = r.select(self.early_epoch)
        except DataError:
            self.missing.append(f"{name}: not evaluated at epoch {self.early_epoch}")
            return None
        lr = row.get("learning_rate")
        return Cell(float(row["test_accuracy"]), None if lr is None else float(lr),
                    valid_accuracy=_json_float(row.get("valid_accuracy")),
                    epoch=None if row.get("epoch") is None else int(row["epoch"]), note=note)

    @classmethod
    def from_run(cls, run_dir: str | Path, **kwargs: Any) -> "Table1":
        """Build from ``run_dir/experiments/*/*/result.json``; chance, scales, split protocols and unbuilt
        tasks from ``run_dir/tasks/tasks.json``, the recipes from ``run_dir/config.json``.

        Unreadable result files are skipped and listed in :attr:`notes`.
        """
        run_dir = Path(run_dir)
        results, problems = load_results(run_dir / "experiments")
        info = _tasks_info(run_dir / "tasks" / "tasks.json")
        kwargs.setdefault("chance", info["chance"])
        if info["asked"]:
            kwargs.setdefault("tasks", tuple(t for t in registry.task_names() if t in info["asked"]))
        for key in ("scales", "unbuilt", "protocols"):
            kwargs.setdefault(key, info[key])
        if "recipes" not in kwargs:
            recipes = _run_recipes(run_dir / "config.json")
            if recipes:
                kwargs["recipes"] = recipes
        table = cls(results, **kwargs)
        table.notes[:0] = problems
        return table

    # -- access ------------------------------------------------------------

    def cell(self, model: str, block: str, task: str) -> Cell | None:
        """This run's cell of ``model`` in block ``'final'`` or ``'early'`` for ``task``."""
        try:
            return self.cells[(model, block)][task]
        except KeyError:
            raise ParameterError(f"no cell ({model!r}, {block!r}, {task!r}) in Table 1; models "
                                 f"{tuple(dict.fromkeys(m for m, _ in self.rows))}, "
                                 f"blocks ('final', 'early'), tasks {self.tasks}") from None

    def block_label(self, block: str, *, paper: bool = False) -> str:
        """``'30 epochs'``, or ``'4 epochs (paper: 30)'`` when this run differs from the paper."""
        if paper:
            return f"{PAPER_EPOCHS[block]} epochs"
        epoch = self.final_epoch if block == "final" else self.early_epoch
        if epoch is None:
            return f"(no early snapshot; paper: {PAPER_EPOCHS[block]})"
        if epoch == PAPER_EPOCHS[block]:
            return f"{epoch} epochs"
        return f"{epoch} epochs (paper: {PAPER_EPOCHS[block]})"

    def _lines(self) -> list[tuple[str, str, tuple[str, str] | None]]:
        """(block label shown, model name, row key) for every row, chance first."""
        out: list[tuple[str, str, tuple[str, str] | None]] = [("", "chance level", None)]
        previous = None
        for model, block in self.rows:
            label = "" if model == "naive_bayes" or block == previous else self.block_label(block)
            if model != "naive_bayes":
                previous = block
            out.append((label, MODELS[model], (model, block)))
        return out

    def _paper_chance(self, task: str) -> str:
        n = PAPER_CLASSES[task]
        return f"{100.0 / n:.2f}% (1/{n})"

    def _header(self, task: str, *, paper: bool = False) -> str:
        """Column title with the task's scale: ``'genre 3×3'`` (this run), ``'genre 20×250'`` (paper)."""
        scale = PAPER_SCALES[task] if paper else self.scales.get(task)
        title = registry.spec(task).title
        return f"{title} {scale}" if scale else title

    def _paper_cell(self, key: tuple[str, str], task: str) -> Cell | None | str:
        """The paper's cell, or ``''`` for a row the paper does not have (the beatdbn recipe)."""
        return self.paper[key][task] if key in self.paper else ""

    def key_scores(self) -> list[tuple[str, str, float]]:
        """(block, model, test weighted key score) of every selected run of a task scored by key distance
        (``TaskSpec.key_scores``: the key task) that has one."""
        out = []
        for task in (t for t in self.tasks if registry.spec(t).key_scores):
            for model, block in self.rows:
                c = self.cells[(model, block)].get(task)
                r = self.results.get((task, model))
                if c is None or r is None:
                    continue
                row = r.select() if model == "naive_bayes" else r.select(c.epoch)
                score = row.get("test_weighted_key_score")
                if score is not None:
                    out.append((block, model, float(score)))
        return out

    @property
    def footnotes(self) -> list[str]:
        """The explanations printed under the table."""
        notes = [
            "Test accuracy of the run chosen on validation, its learning rate in parentheses; "
            "**bold**: best of its column within its block (naive Bayes + final epoch; early snapshot).",
            "Chance level: accuracy of always answering the most frequent training class "
            "(paper columns: 1 / number of classes, the paper's tasks being balanced).",
            f"Columns marked *paper* are transcribed from {PAPER_SOURCE}; they are not results of this run.",
            f"{_DASH}: experiment missing from this run.",
        ]
        if self.scales:
            notes.append("Header: each task's scale in this run (classes \u00d7 tracks per class) beside the "
                         "paper's.")
        for task, why in self.unbuilt.items():
            notes.append(f"{task}: not built on this corpus ({_DASH} in every row): {why}")
        if "genre" in self.tasks and "genre" not in self.unbuilt:
            protocol = self.protocols.get("genre", "random")
            notes.append("Genre splits: " + ("artist-filtered (all of an artist's tracks in one split)"
                                             if protocol == "artist-filtered"
                                             else "random per class, as in the paper (an artist's tracks may be "
                                                  "on both sides)") + ".")
        scores = self.key_scores()
        if scores:
            shown = ", ".join(f"{_SHORT[m]}{'' if b == 'final' or m == 'naive_bayes' else f' ({self.early_epoch} ep.)'}"
                              f" {s:.3f}" for b, m, s in scores)
            notes.append(f"Key task, MIREX weighted key score of the same runs (test): {shown}. "
                         f"{KEY_SCORE_RULE}; {fifth_convention()}.")
        if any(c is not None and c.note for row in self.cells.values() for c in row.values()):
            notes.append("\u2020: evaluated at another epoch than its block (see the notes).")
        nb = [f"{t} {format_accuracy(r.select().get('test_accuracy_sum_log'))}"
              for (t, m), r in sorted(self.results.items(), key=lambda kv: registry.task_names().index(kv[0][0]))
              if m == "naive_bayes" and r.runs
              and r.select().get("test_accuracy_sum_log") is not None]
        if nb:
            notes.append("Naive Bayes combines a track's windows by the mean of their posteriors (shown); "
                         "by the sum of log-posteriors instead: " + ", ".join(nb) + ".")
        return notes

    # -- outputs -----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything in the table as JSON-serializable data (NaN becomes null)."""
        def rows(cells, paper: bool) -> list[dict[str, Any]]:
            return [{"model": model, "name": MODELS[model], "block": block,
                     "epoch": PAPER_EPOCHS[block] if paper else
                     (None if model == "naive_bayes" else
                      (self.final_epoch if block == "final" else self.early_epoch)),
                     "cells": {t: (c.to_dict() if c is not None else None) for t, c in cells[(model, block)].items()}}
                    for model, block in (self.rows if not paper else ROWS)]

        return {
            "title": "Table 1: test accuracy (chosen learning rate)",
            "tasks": list(self.tasks),
            "final_epoch": self.final_epoch,
            "early_epoch": self.early_epoch,
            "chance": {t: _json_float(v) for t, v in self.chance.items()},
            "recipes": list(self.recipes),
            "scales": dict(self.scales),
            "paper_scales": dict(PAPER_SCALES),
            "unbuilt": dict(self.unbuilt),
            "protocols": dict(self.protocols),
            "key_scores": [{"block": b, "model": m, "test_weighted_key_score": s} for b, m, s in self.key_scores()],
            "rows": rows(self.cells, False),
            "missing": list(self.missing),
            "notes": list(self.notes),
            "paper": {"source": PAPER_SOURCE, "epochs": dict(PAPER_EPOCHS),
                      "chance": {t: 1.0 / n for t, n in PAPER_CLASSES.items()},
                      "rows": rows(self.paper, True)},
        }

    def to_markdown(self, *, paper: bool = True) -> str:
        """The table as GitHub Markdown, the paper's numbers in columns of their own after ``‖``."""
        head = ["", ""] + [self._header(t) for t in self.tasks]
        align = ["---", "---"] + ["---:"] * len(self.tasks)
        if paper:
            head += ["\u2016"] + [f"*paper:* {self._header(t, paper=True)}" for t in PAPER_TASKS]
            align += [":-:"] + ["---:"] * len(PAPER_TASKS)
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
        for label, name, key in self._lines():
            if key is None:
                ours = [format_accuracy(self.chance[t]) for t in self.tasks]
                theirs = [self._paper_chance(t) for t in PAPER_TASKS]
                name = f"*{name}*"
            else:
                ours = [_md_cell(self.cells[key][t]) for t in self.tasks]
                theirs = [_md_cell(self._paper_cell(key, t)) for t in PAPER_TASKS]
            row = [label, name] + ours + (["\u2016"] + theirs if paper else [])
            lines.append("| " + " | ".join(row) + " |")
        out = "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in self.footnotes) + "\n"
        if self.missing:
            out += "\nMissing from this run:\n\n" + "\n".join(f"- {m}" for m in self.missing) + "\n"
        if self.notes:
            out += "\nNotes:\n\n" + "\n".join(f"- {n}" for n in self.notes) + "\n"
        return out

    def to_html(self, *, paper: bool = True) -> str:
        """The table as an HTML ``<table>`` (class ``table1``), with grouped headers."""
        e = html.escape
        n_ours = len(self.tasks)
        top = (f'<tr><th rowspan="2"></th><th rowspan="2"></th>'
               f'<th colspan="{n_ours}" class="ours">this run</th>')
        if paper:
            top += f'<th colspan="{len(PAPER_TASKS)}" class="paper">paper (Dieleman et al. 2011, Table 1)</th>'
        sub = "".join(f'<th class="ours">{e(self._header(t))}</th>' for t in self.tasks)
        if paper:
            sub += "".join(f'<th class="paper">{e(self._header(t, paper=True))}</th>' for t in PAPER_TASKS)
        body = []
        for label, name, key in self._lines():
            if key is None:
                ours = [f'<td class="chance">{e(format_accuracy(self.chance[t]))}</td>' for t in self.tasks]
                theirs = [f'<td class="paper chance">{e(self._paper_chance(t))}</td>' for t in PAPER_TASKS]
            else:
                ours = [_html_cell(self.cells[key][t], "ours") for t in self.tasks]
                theirs = [_html_cell(self._paper_cell(key, t), "paper") for t in PAPER_TASKS]
            sep = ' class="block"' if label else ""
            body.append(f"<tr{sep}><th class=\"group\">{e(label)}</th><th class=\"model\">{e(name)}</th>"
                        + "".join(ours) + ("".join(theirs) if paper else "") + "</tr>")
        return (f'<table class="table1">\n<thead>{top}</tr>\n<tr>{sub}</tr></thead>\n<tbody>\n'
                + "\n".join(body) + "\n</tbody>\n</table>\n")

    def to_rich(self, *, paper: bool = True):
        """The table as a :class:`rich.table.Table` (bold best cells, paper columns dimmed)."""
        from rich.table import Table

        table = Table(title="Table 1: test accuracy (chosen learning rate)", show_lines=False,
                      caption=f"paper columns: {PAPER_SOURCE}" if paper else None)
        table.add_column("", no_wrap=True)
        table.add_column("")
        for t in self.tasks:
            table.add_column(self._header(t), justify="right", no_wrap=True)
        if paper:
            for t in PAPER_TASKS:
                table.add_column(f"paper: {self._header(t, paper=True)}", justify="right", style="dim",
                                 no_wrap=True)
        last_final = [k for k in self.rows if k[1] == "final"][-1]
        for label, name, key in self._lines():
            if key is None:
                ours = [format_accuracy(self.chance[t]) for t in self.tasks]
                theirs = [self._paper_chance(t) for t in PAPER_TASKS]
                name = f"[italic]{name}[/italic]"
            else:
                name = _SHORT[key[0]]
                ours = [_rich_cell(self.cells[key][t]) for t in self.tasks]
                theirs = [_rich_cell(self._paper_cell(key, t)) for t in PAPER_TASKS]
            table.add_row(label.replace(" (paper", "\n(paper"), name, *ours, *(theirs if paper else []),
                          end_section=key is None or key == last_final)
        return table

    def write(self, directory: str | Path) -> dict[str, Path]:
        """Write ``table.md`` and ``table.json`` into ``directory``; returns ``{"markdown": ..., "json": ...}``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        out = {"markdown": directory / "table.md", "json": directory / "table.json"}
        texts = {"markdown": "# Table 1\n\n" + self.to_markdown(),
                 "json": json.dumps(self.to_dict(), indent=2, ensure_ascii=False)}
        for kind, path in out.items():
            write_text(path, texts[kind])
        return out


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _tasks_info(path: Path) -> dict[str, dict[str, Any]]:
    """Chance, scale and protocol of each task, and the unbuilt tasks' reasons, from ``tasks.json``."""
    info: dict[str, Any] = {"chance": {}, "scales": {}, "unbuilt": {}, "protocols": {}, "asked": ()}
    try:
        data = json.loads(path.read_text())
        tasks = data.get("tasks", {})
        info["chance"] = {n: float(t["chance"]) for n, t in tasks.items() if _finite(t.get("chance"))}
        info["scales"] = {n: t["scale"] for n, t in tasks.items() if t.get("scale")}
        info["protocols"] = {n: t["protocol"] for n, t in tasks.items() if t.get("protocol")}
        info["unbuilt"] = {n: str(why) for n, why in (data.get("errors") or {}).items()}
        info["asked"] = tuple(data.get("config", {}).get("tasks") or (*PAPER_TASKS, *tasks, *info["unbuilt"]))
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        pass
    return info


def _run_recipes(path: Path) -> tuple[str, ...] | None:
    """The finetuning recipes a reproduction run records in ``config.json`` (None: not recorded)."""
    try:
        recipes = json.loads(path.read_text())["config"]["recipes"]
        return tuple(r for r in recipes if r in RECIPE_MODELS) or None
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _md_cell(c: Cell | None | str) -> str:
    if isinstance(c, str):
        return c
    if c is None:
        return _DASH
    text = c.text
    if c.best:
        acc, _, rest = text.partition(" ")
        text = f"**{acc}**" + (f" {rest}" if rest else "")
    return text + (" \u2020" if c.note else "")


def _rich_cell(c: Cell | None | str) -> str:
    if isinstance(c, str):
        return c
    if c is None:
        return _DASH
    text = c.text.replace("[", "\\[")
    return f"[bold]{text}[/bold]" if c.best else text


def _html_cell(c: Cell | None | str, kind: str) -> str:
    if isinstance(c, str):
        return f'<td class="{kind}">{html.escape(c)}</td>'
    if c is None:
        return f'<td class="{kind} missing">{_DASH}</td>'
    acc = html.escape(format_accuracy(c.test_accuracy))
    if c.best:
        acc = f"<b>{acc}</b>"
    lr = format_learning_rate(c.learning_rate)
    lr = f' <span class="lr">({html.escape(lr)})</span>' if lr else ""
    title = f' title="{html.escape(c.note)}"' if c.note else ""
    mark = " \u2020" if c.note else ""
    return f'<td class="{kind}"{title}>{acc}{lr}{mark}</td>'
