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

**Seeds** (``beatdbn reproduce --seeds N``; :meth:`Table1.from_run` reads ``seeds.json`` and each finished
seed's ``seed-<s>/`` run): a cell is the mean ± sd of the seeds' test accuracies, their number and the 95 %
interval, ``62.12 ± 1.20% (n=3) [59.14–65.10]`` (:mod:`beatdbn.metrics.intervals`: t over seeds, never
narrower than the Wilson interval of the seeds' test tracks pooled); each seed's learning rate is in the
JSON. A single run's cells are as before (its Wilson interval is in the JSON).

**Which differences are real.** When the results hold per-track test predictions
(:mod:`beatdbn.metrics.predictions`), a top cell is bold only when its paired difference with the
runner-up of its block (exact McNemar on the same test tracks, pooled over seeds) excludes 0; results
without them (an older beatdbn) keep the old rule, said in a footnote. A result that did not leave chance
(:data:`CHANCE_MARK`; one run: at most chance plus one test track; over seeds: the pooled interval holds
chance, or the mean is within one track of it) is never bold, and :attr:`Table1.warnings` names it with
what would help (more epochs after ``--quick``/``--epochs``, ``--recipe beatdbn``; read from the run's
``config.json`` or ``seeds.json``). Every conv MLP row is compared with windowed logistic regression
(:attr:`Table1.comparisons`): ▲/▼ on the cell when the difference is real, one line each under the table,
in the JSON and in the rich table's caption.

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

import numpy as np

from beatdbn.metrics.intervals import Paired, Summary, left_chance, paired_comparison, summarize
from beatdbn.metrics.predictions import predictions_of
from beatdbn.metrics.results import RESULT_FILE, ExperimentResult
from beatdbn.metrics.scores import KEY_SCORE_RULE, fifth_convention
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.experiments import registry as model_kinds
from beatdbn.tasks import registry
from beatdbn.utils.atomic import write_text

__all__ = ["Table1", "Cell", "TASKS", "MODELS", "ROWS", "RECIPE_MODELS", "PAPER_SCALES", "table_rows", "PAPER_TABLE1", "PAPER_EPOCHS", "PAPER_SOURCE",
           "format_accuracy", "format_learning_rate", "load_results", "SEEDS_FILE", "CHANCE_MARK"]

#: A multi-seed run's record in its folder (``beatdbn reproduce --seeds``): {"seeds", "config", "finished"}.
SEEDS_FILE = "seeds.json"
#: The footnote of a table some of whose results hold no per-track test predictions.
NO_PREDICTIONS = ("Paired comparisons need per-track test predictions; results of an older beatdbn have none, so "
                  "their differences are untested (rerun them into a new folder).")
#: Mark of a result that did not leave chance.
CHANCE_MARK = "\u2248chance"
#: Marks of a conv MLP significantly above / below windowed logistic regression (paired test).
_ABOVE, _BELOW = "\u25b2", "\u25bc"

#: Columns: every registered task, in table order (the paper's genre, artist, key first).
TASKS = registry.task_names()
#: The tasks the paper ran: the columns of its side of the table.
PAPER_TASKS = tuple(name for name, spec in registry.specs().items() if spec.paper is not None)
#: Model keys of :class:`ExperimentResult` and their names in the table: every experiment of the registry
#: (:mod:`beatdbn.experiments.registry`).
MODELS = model_kinds.labels()
_SHORT = {name: v.short for name, v in model_kinds.variants().items()}
#: Finetuning recipes whose conv MLP rows Table 1 can show, and their model keys (random, pretrained).
RECIPE_MODELS = {r: tuple(name for name, v in model_kinds.variants().items() if v.recipe == r)
                 for r in model_kinds.recipes()}
#: Rows, in the paper's order: (model, block).
ROWS = model_kinds.table_rows(("paper",))
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


def table_rows(recipes: Iterable[str] = ("paper",), extra: Iterable[str] = ()) -> tuple[tuple[str, str], ...]:
    """(model, block) rows in order: naive Bayes (and the added models of ``extra``), logistic regression, then
    each recipe's conv MLP rows in the final block, then the same conv MLP rows in the early block
    (:func:`beatdbn.experiments.registry.table_rows`).

    Examples
    --------
    >>> table_rows(("paper",)) == ROWS
    True
    >>> table_rows(("beatdbn",))[2]
    ('convmlp_random_beatdbn', 'final')
    """
    return model_kinds.table_rows(tuple(recipes), extra)


def _epochless(model: str) -> bool:
    """A model fit once (naive Bayes): its row shows no epoch and stands before the blocks' labels."""
    return not model_kinds.variant(model).epochs


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
    """One cell: the chosen run's test accuracy and learning rate (over seeds: their mean and interval).

    Attributes
    ----------
    test_accuracy : float
        The chosen run's test accuracy; over seeds, the mean of each seed's.
    learning_rate : float or None
        None for naive Bayes, and over seeds when the seeds chose different ones (``learning_rates``).
    valid_accuracy : float or None
        The validation accuracy it was chosen on (None for the paper's cells; over seeds, the mean).
    epoch : int or None
    best : bool
        Best of its column within its block (drawn bold).
    note : str
        E.g. that the experiment was evaluated at another epoch than its block.
    summary : Summary or None
        Over seeds: mean, sd and 95 % interval (:func:`beatdbn.metrics.intervals.summarize`); one run: the
        Wilson interval over its test tracks when their number is known.
    seeds : tuple of int
        The seeds averaged (empty for a single run).
    learning_rates : tuple
        Each seed's chosen learning rate.
    at_chance : bool
        Did not leave chance (:data:`CHANCE_MARK`): over seeds, the interval contains chance or the mean is at
        most chance plus one test track; one run, its accuracy is at most chance plus one test track.
    versus : Paired or None
        A conv MLP's paired comparison with windowed logistic regression on the same test tracks.
    """

    test_accuracy: float
    learning_rate: float | None = None
    valid_accuracy: float | None = None
    epoch: int | None = None
    best: bool = False
    note: str = ""
    summary: Summary | None = None
    seeds: tuple[int, ...] = ()
    learning_rates: tuple[float | None, ...] = ()
    at_chance: bool = False
    versus: Paired | None = None

    @property
    def text(self) -> str:
        """``'29.52% (0.005)'``; just the accuracy when there is no learning rate. Over seeds:
        ``'62.12 ± 1.20% (n=3) [59.14–65.10]'``."""
        if self.seeds and self.summary is not None:
            s = self.summary
            sd = f" \u00b1 {100 * s.sd:.2f}" if s.sd is not None else ""
            return (f"{100 * s.mean:.2f}{sd}% (n={s.n}) [{100 * s.low:.2f}\u2013{100 * s.high:.2f}]")
        lr = format_learning_rate(self.learning_rate)
        return f"{format_accuracy(self.test_accuracy)} ({lr})" if lr else format_accuracy(self.test_accuracy)

    @property
    def marks(self) -> str:
        """The marks after the value: ``' ≈chance'``, ``' ▲'`` / ``' ▼'`` (a real difference with windowed
        logistic regression), ``' †'`` (another epoch)."""
        out = f" {CHANCE_MARK}" if self.at_chance else ""
        if self.versus is not None and self.versus.real:
            out += f" {_ABOVE if self.versus.difference > 0 else _BELOW}"
        return out + (" \u2020" if self.note else "")

    def to_dict(self) -> dict[str, Any]:
        d = {"test_accuracy": _json_float(self.test_accuracy), "learning_rate": _json_float(self.learning_rate),
             "valid_accuracy": _json_float(self.valid_accuracy), "epoch": self.epoch, "best": self.best,
             "text": self.text, "note": self.note, "at_chance": self.at_chance}
        if self.summary is not None:
            s = self.summary
            d["interval"] = {"mean": s.mean, "sd": s.sd, "low": s.low, "high": s.high, "method": s.method,
                             "confidence": 0.95, "values": list(s.values), "test_tracks": s.tracks}
        if self.seeds:
            d["seeds"] = list(self.seeds)
            d["learning_rates"] = [_json_float(v) for v in self.learning_rates]
        if self.versus is not None:
            d["versus_logreg"] = self.versus.to_dict()
        return d


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
                 protocols: Mapping[str, str] | None = None,
                 seeds: Mapping[int, Iterable[ExperimentResult]] | None = None,
                 run_config: Mapping[str, Any] | None = None) -> None:
        for task in tasks:
            if task not in registry.task_names():
                raise ParameterError(f"tasks={tasks!r}: each must be one of {registry.task_names()}")
        self.tasks = tuple(tasks)
        self.scales = dict(scales or {})
        self.unbuilt = {t: str(v) for t, v in (unbuilt or {}).items() if t in self.tasks}
        self.protocols = dict(protocols or {})
        self.run_config = dict(run_config or {})
        self.notes: list[str] = []
        if seeds is not None:
            results = list(results)
            if results:
                raise ParameterError("Table1: give the results either flat (one run) or by seed (seeds=), not both")
            if not seeds:
                self.notes.append("no finished seed: every cell is empty")
            self.seed_ids: tuple[int | None, ...] = tuple(sorted(int(s) for s in seeds))
            given = {int(s): rs for s, rs in seeds.items()}
        else:
            self.seed_ids = (None,)
            given = {None: results}
        #: seed (None: a single run) -> (task, model) -> result
        self.by_seed: dict[int | None, dict[tuple[str, str], ExperimentResult]] = {
            s: self._index(given[s], s) for s in self.seed_ids}
        self.results = self.by_seed[self.seed_ids[0]] if self.seed_ids else {}
        every = [r for by_key in self.by_seed.values() for r in by_key.values()]
        if recipes is None:
            convs = {r.model for r in every if model_kinds.variant(r.model).recipe is not None}
            recipes = tuple(r for r, models in RECIPE_MODELS.items()
                            if convs & set(models) or (r == "paper" and not convs))
        unknown = [r for r in recipes if r not in RECIPE_MODELS]
        if unknown or not recipes:
            raise ParameterError(f"recipes={recipes!r}: choose from {tuple(RECIPE_MODELS)}")
        self.recipes = tuple(recipes)
        # an opt-in model of the registry (``reproduce --models +NAME``) has a row when it has a result
        self.rows = table_rows(self.recipes, [m for m in model_kinds.optional() if any(r.model == m for r in every)])

        epochs = [int(row["epoch"]) for r in every if not _epochless(r.model) for row in r.runs if "epoch" in row]
        self.final_epoch = int(final_epoch) if final_epoch is not None else (max(epochs) if epochs else
                                                                              PAPER_EPOCHS["final"])
        if early_epoch is not None:
            self.early_epoch: int | None = int(early_epoch)
        else:
            early = [int(row["epoch"]) for r in every if "early" in model_kinds.variant(r.model).blocks
                     for row in r.runs if int(row.get("epoch", -1)) < self.final_epoch]
            self.early_epoch = max(early) if early else (
                PAPER_EPOCHS["early"] if self.final_epoch == PAPER_EPOCHS["final"] else None)

        self.chance: dict[str, float | None] = {}
        for task in self.tasks:
            found = [r.chance for r in every if r.task == task and _finite(r.chance)]
            if found:
                self.chance[task] = float(found[0]) if len(set(found)) == 1 else float(np.mean(found))
            elif chance is not None and _finite(chance.get(task)):
                self.chance[task] = float(chance[task])
            else:
                self.chance[task] = None

        self.missing: list[str] = []
        #: (model, block, task) -> seed -> (result, selected row)
        self.selected: dict[tuple[str, str, str], dict[int | None, tuple[ExperimentResult, dict[str, Any]]]] = {}
        self.cells: dict[tuple[str, str], dict[str, Cell | None]] = {}
        for model, block in self.rows:
            self.cells[(model, block)] = {task: self._cell(task, model, block) for task in self.tasks}
        #: (task, model, block) -> the conv MLP's paired comparison with windowed LR (None: no predictions)
        self.comparisons: dict[tuple[str, str, str], Paired | None] = {}
        self._compare_with_logreg()
        #: how each bold mark was decided: 'paired' (a real difference with the runner-up) or 'untested'
        self.bold_rules: set[str] = set()
        self._mark_best_paired()

        self.paper: dict[tuple[str, str], dict[str, Cell | None]] = {
            key: {task: Cell(acc, lr, epoch=PAPER_EPOCHS[key[1]]) for task, (acc, lr) in row.items()}
            for key, row in PAPER_TABLE1.items()}
        _mark_best(self.paper, PAPER_TASKS)

    @property
    def multi_seed(self) -> bool:
        """Whether the cells are over seeds (a ``--seeds`` run), not one run's."""
        return self.seed_ids != (None,)

    # -- building ----------------------------------------------------------

    def _index(self, results: Iterable[ExperimentResult], seed: int | None) -> dict[tuple[str, str], ExperimentResult]:
        where = "" if seed is None else f" (seed {seed})"
        by_key: dict[tuple[str, str], ExperimentResult] = {}
        for r in results:
            if not isinstance(r, ExperimentResult):
                raise ParameterError(f"Table1 takes ExperimentResult objects, got {type(r).__name__}")
            if r.task not in self.tasks or r.model not in MODELS:
                self.notes.append(f"ignored: {r.model} on {r.task} is not part of Table 1{where}")
                continue
            if (r.task, r.model) in by_key:
                self.notes.append(f"{r.model} on {r.task} given twice{where}: the last one is used")
            by_key[(r.task, r.model)] = r
        return by_key

    def _select(self, r: ExperimentResult, task: str, model: str, block: str,
                where: str) -> tuple[dict[str, Any] | None, str]:
        """(selected row or None, note) of one result in one block; records what is missing."""
        name = f"{task} / {MODELS[model]}{where}"
        if not r.runs:
            if block == "final":
                self.missing.append(f"{name}: result has no runs")
            return None, ""
        note = ""
        try:
            if _epochless(model):
                return r.select(), ""
            if block == "final":
                try:
                    return r.select(self.final_epoch), ""
                except DataError:
                    row = r.select()
                    note = f"evaluated at epoch {row['epoch']}, not {self.final_epoch}"
                    self.notes.append(f"{name}: {note}")
                    return row, note
            if self.early_epoch is None:
                self.missing.append(f"{name}: no early snapshot epoch in this run")
                return None, ""
            return r.select(self.early_epoch), ""
        except DataError:
            self.missing.append(f"{name}: not evaluated at epoch {self.early_epoch}")
            return None, ""

    def _cell(self, task: str, model: str, block: str) -> Cell | None:
        name = f"{task} / {MODELS[model]}"
        rows: dict[int | None, tuple[ExperimentResult, dict[str, Any]]] = {}
        notes = []
        for seed in self.seed_ids:
            r = self.by_seed[seed].get((task, model))
            if r is None:
                continue
            row, note = self._select(r, task, model, block, "" if seed is None else f" (seed {seed})")
            if row is not None:
                rows[seed] = (r, row)
                notes.append(note)
        present = [s for s in self.seed_ids if (task, model) in self.by_seed[s]]
        if not present:
            if block == "final" and task not in self.unbuilt:
                self.missing.append(f"{name}: no result")
            return None
        if self.multi_seed and block == "final" and len(present) < len(self.seed_ids):
            absent = [s for s in self.seed_ids if s not in present]
            self.missing.append(f"{name}: no result in seed{'s' if len(absent) > 1 else ''} "
                                f"{', '.join(map(str, absent))}")
        if not rows:
            return None
        self.selected[(model, block, task)] = rows
        accs = [float(row["test_accuracy"]) for _, row in rows.values()]
        lrs = tuple(None if row.get("learning_rate") is None else float(row["learning_rate"])
                    for _, row in rows.values())
        per_seed = [_test_tracks(r, row) for r, row in rows.values()]
        tracks = per_seed if all(per_seed) else None
        try:
            summary = summarize(accs, tracks=tracks) if all(0.0 <= a <= 1.0 for a in accs) else None
        except ParameterError:  # one run with no known number of test tracks: no interval
            summary = None
        chance = self.chance.get(task)
        if len(accs) >= 2 and summary is not None:  # over seeds: the pooled interval, or within one track
            at_chance = not left_chance(summary, chance)
        else:  # one run or one seed: at most chance plus one test track
            track = 1.0 / per_seed[0] if per_seed[0] else 0.0
            at_chance = chance is not None and accs[0] <= chance + track + 1e-12
        valid = [row.get("valid_accuracy") for _, row in rows.values()]
        epoch = next(iter(rows.values()))[1].get("epoch")
        return Cell(float(np.mean(accs)), lrs[0] if len(set(lrs)) == 1 else None,
                    valid_accuracy=_json_float(np.mean(valid)) if all(_finite(v) for v in valid) else None,
                    epoch=None if epoch is None else int(epoch), note=next((n for n in notes if n), ""),
                    summary=summary, seeds=tuple(s for s in rows if s is not None), learning_rates=lrs,
                    at_chance=at_chance)

    def paired(self, task: str, a: tuple[str, str], b: tuple[str, str]) -> Paired | None:
        """The exact McNemar comparison of row ``a`` against row ``b`` (``(model, block)``) on ``task``'s test
        tracks, pooled over the seeds where both have per-track predictions on the same tracks; None when none
        has."""
        rows_a, rows_b = self.selected.get((*a, task), {}), self.selected.get((*b, task), {})
        triples = []
        for seed in rows_a.keys() & rows_b.keys():
            try:
                ids_a, targets, pred_a = predictions_of(*rows_a[seed])
                ids_b, _, pred_b = predictions_of(*rows_b[seed])
            except DataError:
                continue
            if ids_a != ids_b:
                note = (f"{task}: {MODELS[a[0]]} and {MODELS[b[0]]} were tested on different tracks"
                        + ("" if seed is None else f" in seed {seed}") + "; not compared there")
                if note not in self.notes:
                    self.notes.append(note)
                continue
            triples.append((targets, pred_a, pred_b))
        return paired_comparison(triples) if triples else None

    def _compare_with_logreg(self) -> None:
        for task in self.tasks:
            if self.cells[(model_kinds.REFERENCE, "final")].get(task) is None:
                continue
            for model, block in self.rows:
                cell = self.cells[(model, block)].get(task)
                if not model_kinds.variant(model).compare or cell is None:
                    continue
                p = self.paired(task, (model, block), (model_kinds.REFERENCE, "final"))
                self.comparisons[(task, model, block)] = p
                if p is not None:
                    self.cells[(model, block)][task] = replace(cell, versus=p)

    def _mark_best_paired(self) -> None:
        """Bold the top cell of each column within each block when it is best beyond the interval: its paired
        difference with the runner-up excludes 0. A cell that did not leave chance is never bold. Without
        per-track predictions (results of an older beatdbn) the top cell(s) are bold, as before, untested."""
        for block in ("final", "early"):
            keys = [k for k in self.cells if k[1] == block]
            for task in self.tasks:
                cells = [(k, self.cells[k][task]) for k in keys
                         if self.cells[k].get(task) is not None and math.isfinite(self.cells[k][task].test_accuracy)]
                if not cells:
                    continue
                top = max(c.test_accuracy for _, c in cells)
                for k, c in cells:
                    if c.test_accuracy != top or c.at_chance:
                        continue
                    others = [(k2, c2) for k2, c2 in cells if k2 != k]
                    if not others:
                        self.cells[k][task] = replace(c, best=True)
                        continue
                    runner = max(others, key=lambda kc: kc[1].test_accuracy)[0]
                    p = self.paired(task, k, runner)
                    if p is None:
                        self.bold_rules.add("untested")
                        self.cells[k][task] = replace(c, best=True)
                    else:
                        self.bold_rules.add("paired")
                        if p.real and p.difference > 0:
                            self.cells[k][task] = replace(c, best=True)

    @classmethod
    def from_run(cls, run_dir: str | Path, **kwargs: Any) -> "Table1":
        """Build from ``run_dir/experiments/*/*/result.json``; chance, scales, split protocols and unbuilt
        tasks from ``run_dir/tasks/tasks.json``, the recipes and options from ``run_dir/config.json``.

        A multi-seed run (``run_dir/seeds.json``, ``beatdbn reproduce --seeds``): the finished seeds'
        ``run_dir/seed-<s>/`` runs, each cell over seeds (tasks from the first finished seed's ``tasks.json``,
        the options from ``seeds.json``).

        Unreadable result files are skipped and listed in :attr:`notes`.
        """
        run_dir = Path(run_dir)
        record_path = run_dir / SEEDS_FILE
        if not record_path.exists():
            results, problems = load_results(run_dir / "experiments")
            info = _tasks_info(run_dir / "tasks" / "tasks.json")
            config = _run_config(run_dir / "config.json")
        else:
            try:
                record = json.loads(record_path.read_text())
                finished = [int(s) for s in record.get("finished", [])]
                config = record.get("config") if isinstance(record.get("config"), dict) else {}
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                raise DataError(f"{record_path}: not a seeds record ({exc}); rerun `beatdbn reproduce --seeds N` "
                                f"into this folder to rewrite it") from None
            by_seed, problems = {}, []
            for s in finished:
                rs, ps = load_results(run_dir / f"seed-{s}" / "experiments")
                by_seed[s] = rs
                problems += [f"seed {s}: {p}" for p in ps]
            info = _tasks_info(run_dir / f"seed-{finished[0]}" / "tasks" / "tasks.json") if finished else \
                _tasks_info(record_path.with_name("tasks.json"))
            kwargs.setdefault("seeds", by_seed)
            results = []
        kwargs.setdefault("chance", info["chance"])
        if info["asked"]:
            kwargs.setdefault("tasks", tuple(t for t in registry.task_names() if t in info["asked"]))
        for key in ("scales", "unbuilt", "protocols"):
            kwargs.setdefault(key, info[key])
        if "recipes" not in kwargs:
            recipes = tuple(r for r in (config.get("recipes") or ()) if r in RECIPE_MODELS)
            if recipes:
                kwargs["recipes"] = recipes
        kwargs.setdefault("run_config", config)
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
        return f"{epoch} epoch{'s' if epoch != 1 else ''} (paper: {PAPER_EPOCHS[block]})"

    def _lines(self) -> list[tuple[str, str, tuple[str, str] | None]]:
        """(block label shown, model name, row key) for every row, chance first."""
        out: list[tuple[str, str, tuple[str, str] | None]] = [("", "chance level", None)]
        previous = None
        for model, block in self.rows:
            label = "" if _epochless(model) or block == previous else self.block_label(block)
            if not _epochless(model):
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
        (``TaskSpec.key_scores``: the key task) that has one; over seeds, the mean of the seeds'."""
        out = []
        for task in (t for t in self.tasks if registry.spec(t).key_scores):
            for model, block in self.rows:
                rows = self.selected.get((model, block, task), {})
                scores = [float(row["test_weighted_key_score"]) for _, row in rows.values()
                          if row.get("test_weighted_key_score") is not None]
                if scores:
                    out.append((block, model, float(np.mean(scores))))
        return out

    def _seeds_text(self) -> str:
        return f"{len(self.seed_ids)} seed{'s' if len(self.seed_ids) != 1 else ''}"

    @property
    def footnotes(self) -> list[str]:
        """The explanations printed under the table (the first three: how to read it, chance, the paper)."""
        if self.multi_seed:
            first = (f"Test accuracy over {self._seeds_text()} ({', '.join(map(str, self.seed_ids))}; each seed its "
                     "own split, DBN and initial weights; each the run chosen on validation): mean \u00b1 sd "
                     "(n seeds) [95 % interval: t over seeds, never narrower than the Wilson interval of the "
                     "seeds' test tracks pooled; one seed: Wilson over its test tracks]; each seed's learning "
                     "rate is in table.json. ")
        else:
            first = "Test accuracy of the run chosen on validation, its learning rate in parentheses; "
        if "paired" in self.bold_rules or self.multi_seed:
            first += ("**bold**: best of its column within its block (naive Bayes + final epoch; early snapshot) "
                      "beyond the interval: its paired difference with the runner-up on the same test tracks "
                      "(exact McNemar, pooled over seeds) excludes 0.")
            if "untested" in self.bold_rules:
                first += (" Where the results hold no per-track predictions (an older beatdbn) the highest is "
                          "bold, untested.")
        else:
            first += "**bold**: best of its column within its block (naive Bayes + final epoch; early snapshot)."
        notes = [
            first,
            "Chance level: accuracy of always answering the most frequent training class "
            "(paper columns: 1 / number of classes, the paper's tasks being balanced).",
            f"Columns marked *paper* are transcribed from {PAPER_SOURCE}; they are not results of this run.",
            f"{_DASH}: experiment missing from this run.",
        ]
        if any(c is not None and c.at_chance for row in self.cells.values() for c in row.values()):
            rule = ("over seeds, the 95 % Wilson interval of every seed's test predictions pooled contains chance, "
                    "or the mean is at most chance plus one test track; one seed, its test accuracy is at most "
                    "chance plus one test track" if self.multi_seed
                    else "its test accuracy is at most chance plus one test track")
            notes.append(f"{CHANCE_MARK}: did not leave chance ({rule}); never bold. See the warnings.")
        if any(p is not None and p.real for p in self.comparisons.values()):
            notes.append(f"{_ABOVE} / {_BELOW}: a conv MLP above / below windowed logistic regression beyond the "
                         "interval (paired comparisons below).")
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
            shown = ", ".join(f"{_SHORT[m]}{'' if b == 'final' or _epochless(m) else f' ({self.early_epoch} ep.)'}"
                              f" {s:.3f}" for b, m, s in scores)
            notes.append(f"Key task, MIREX weighted key score of the same runs (test"
                         f"{'; mean over seeds' if self.multi_seed else ''}): {shown}. "
                         f"{KEY_SCORE_RULE}; {fifth_convention()}.")
        if any(c is not None and c.note for row in self.cells.values() for c in row.values()):
            notes.append("\u2020: evaluated at another epoch than its block (see the notes).")
        nb = []
        for task in self.tasks:
            rows = self.selected.get(("naive_bayes", "final", task), {})
            values = [row.get("test_accuracy_sum_log") for _, row in rows.values()]
            if values and all(v is not None for v in values):
                nb.append(f"{task} {format_accuracy(float(np.mean(values)))}")
        if nb:
            notes.append("Naive Bayes combines a track's windows by the mean of their posteriors (shown); "
                         "by the sum of log-posteriors instead: " + ", ".join(nb) + ".")
        if self.comparisons and any(p is None for p in self.comparisons.values()):
            notes.append(NO_PREDICTIONS)
        return notes

    @property
    def comparison_rows(self) -> list[dict[str, Any]]:
        """Each conv MLP row against windowed logistic regression on each task: ``{"task", "model", "block",
        "epoch", "paired"}`` (``paired`` None without per-track predictions)."""
        return [{"task": t, "model": m, "block": b,
                 "epoch": self.final_epoch if b == "final" else self.early_epoch, "paired": p}
                for (t, m, b), p in self.comparisons.items()]

    @property
    def comparison_lines(self) -> list[str]:
        """One line per paired comparison with windowed logistic regression."""
        out = []
        for c in self.comparison_rows:
            p = c["paired"]
            if p is None:  # no per-track predictions: said once, in a footnote
                continue
            what = f"{c['task']}: {_SHORT[c['model']]}" + ("" if c["block"] == "final" else f" ({c['epoch']} ep.)")
            verdict = ("real" if p.real else "within the interval (not shown to differ)")
            out.append(f"{what} \u2212 windowed LR: {p.text()}: {verdict}")
        return out

    @property
    def warnings(self) -> list[str]:
        """One line per model that did not leave chance (final block and naive Bayes), with what would help."""
        config = self.run_config
        out = []
        for model, block in self.rows:
            if block != "final":
                continue
            for task in self.tasks:
                c = self.cells[(model, block)].get(task)
                if c is None or not c.at_chance:
                    continue
                chance = self.chance.get(task)
                if c.summary is not None and self.multi_seed:
                    got = (f"{c.text} over seeds {', '.join(map(str, c.seeds))} "
                           f"(each: {', '.join(format_accuracy(v) for v in c.summary.values)})")
                else:
                    got = format_accuracy(c.test_accuracy)
                tracks = c.summary.tracks if c.summary is not None else None
                line = (f"{task} / {MODELS[model]} did not leave chance: {got} against chance "
                        f"{format_accuracy(chance)}" + (f" on {tracks} test tracks" if tracks else ""))
                out.append(line + "; " + _advice(model, c.epoch, config))
        return out

    # -- outputs -----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything in the table as JSON-serializable data (NaN becomes null)."""
        def rows(cells, paper: bool) -> list[dict[str, Any]]:
            return [{"model": model, "name": MODELS[model], "block": block,
                     "epoch": PAPER_EPOCHS[block] if paper else
                     (None if _epochless(model) else
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
            "seeds": [s for s in self.seed_ids if s is not None] if self.multi_seed else None,
            "intervals": ("95 %: t over seeds, at least the Wilson interval of the pooled test tracks (one "
                          "seed: Wilson over its test tracks)" if self.multi_seed else
                          "95 % Wilson over the test tracks"),
            "comparisons": [dict(c, versus="logreg", paired=None if c["paired"] is None else c["paired"].to_dict())
                            for c in self.comparison_rows],
            "warnings": self.warnings,
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
        if self.comparison_lines:
            out += ("\nPaired comparisons with windowed logistic regression (same test tracks; exact McNemar, "
                    "pooled over seeds):\n\n" + "\n".join(f"- {n}" for n in self.comparison_lines) + "\n")
        if self.warnings:
            out += "\nWarnings:\n\n" + "\n".join(f"- \u26a0 {w}" for w in self.warnings) + "\n"
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

        caption = [f"paper columns: {PAPER_SOURCE}"] if paper else []
        caption += [f"paired: {line}" for line in self.comparison_lines]
        caption += [f"warning: {w}" for w in self.warnings]
        title = ("Table 1: test accuracy, mean \u00b1 sd over seeds [95 % interval]" if self.multi_seed
                 else "Table 1: test accuracy (chosen learning rate)")
        table = Table(title=title, show_lines=False, caption="\n".join(caption).replace("[", "\\[") or None,
                      caption_justify="left")
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


def _run_config(path: Path) -> dict[str, Any]:
    """The options a reproduction run records in ``config.json`` (``{}``: not recorded)."""
    try:
        config = json.loads(path.read_text())["config"]
        return config if isinstance(config, dict) else {}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def _test_tracks(result: ExperimentResult, row: dict[str, Any]) -> int | None:
    """Test tracks of one selected row: its predictions' length, else its confusion matrix's sum."""
    n = len(result.extra.get("test_track_ids") or row.get("test_predicted") or [])
    if not n and row.get("confusion") is not None:
        try:
            n = int(np.asarray(row["confusion"]).sum())
        except (TypeError, ValueError):
            n = 0
    return n or None


def _advice(model: str, epoch: int | None, config: Mapping[str, Any]) -> str:
    """What would help a model that did not leave chance, from the run's options (``config.json``)."""
    tips = []
    if not _epochless(model):
        trained = f"this run trained {epoch}" if epoch else "this run's epochs"
        if config.get("quick"):
            trained += ", --quick"
        elif config.get("epochs"):
            trained += f", --epochs {config['epochs']}"
        more = 2 * int(epoch) if epoch and epoch >= 30 else 30
        tips.append(f"more epochs (`beatdbn reproduce ... --epochs {more}`; {trained})")
    if model in RECIPE_MODELS["paper"]:
        tips.append("the beatdbn recipe (`--recipe beatdbn`: Adam with warm-up on crops)"
                    if "beatdbn" not in (config.get("recipes") or ()) else
                    "its beatdbn-recipe rows (this run has them)")
    if _epochless(model):
        tips.append(f"more training tracks per class (a larger task scale); {_SHORT[model]} has no schedule to "
                    f"change")
    return "try " + " or ".join(tips)


def _md_cell(c: Cell | None | str) -> str:
    if isinstance(c, str):
        return c
    if c is None:
        return _DASH
    text = c.text
    if c.best:
        if c.seeds:
            acc, _, rest = text.partition(" (n=")
            text = f"**{acc}**" + (f" (n={rest}" if rest else "")
        else:
            acc, _, rest = text.partition(" ")
            text = f"**{acc}**" + (f" {rest}" if rest else "")
    return text + c.marks


def _rich_cell(c: Cell | None | str) -> str:
    if isinstance(c, str):
        return c
    if c is None:
        return _DASH
    text = (c.text + c.marks.replace(" \u2020", "")).replace("[", "\\[")
    return f"[bold]{text}[/bold]" if c.best else text


def _html_cell(c: Cell | None | str, kind: str) -> str:
    if isinstance(c, str):
        return f'<td class="{kind}">{html.escape(c)}</td>'
    if c is None:
        return f'<td class="{kind} missing">{_DASH}</td>'
    if c.seeds and c.summary is not None:
        value, _, rest = c.text.partition(" (n=")
        acc = html.escape(value)
        lr = f' <span class="lr">(n={html.escape(rest)}</span>'
    else:
        acc = html.escape(format_accuracy(c.test_accuracy))
        lr = format_learning_rate(c.learning_rate)
        lr = f' <span class="lr">({html.escape(lr)})</span>' if lr else ""
    if c.best:
        acc = f"<b>{acc}</b>"
    titles = [c.note] if c.note else []
    if c.versus is not None:
        titles.append(f"minus windowed LR: {c.versus.text()}")
    title = f' title="{html.escape("; ".join(titles))}"' if titles else ""
    cls = f"{kind} at-chance" if c.at_chance else kind
    marks = html.escape(c.marks)
    return f'<td class="{cls}"{title}>{acc}{lr}{marks}</td>'
