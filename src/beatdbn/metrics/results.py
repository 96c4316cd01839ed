"""One experiment's outcome, as every trainer writes it (``result.json``).

An *experiment* is one model family on one task (``naive_bayes``, ``logreg``,
``convmlp_random``, ``convmlp_pretrained``), swept over its hyperparameter
(the learning rate; none for naive Bayes). ``runs`` holds one row per
hyperparameter value and evaluation point (``epoch``: 20 and 30 for the
conv MLP, 30 for logistic regression, 0 for naive Bayes) with its validation
and test accuracy; :meth:`ExperimentResult.select` picks, for one epoch, the
row of best validation accuracy (ties: the first in sweep order), whose test
accuracy is what Table 1 reports.

**Key tasks.** When the classes are keys (12 tonics or 24 major/minor keys),
:meth:`ExperimentResult.save` adds ``test_weighted_key_score`` (the MIREX
weighted score, :func:`~beatdbn.metrics.scores.weighted_key_score`) to every
run that has a test ``confusion``, and ``extra["key_score"]`` says how it was
computed (the mir_eval version and its fifth convention).

Examples
--------
>>> r = ExperimentResult("key", "logreg", classes=["C", "D"], chance=0.5)
>>> r.runs += [{"learning_rate": 5e-3, "epoch": 30, "valid_accuracy": 0.6, "test_accuracy": 0.55},
...            {"learning_rate": 5e-4, "epoch": 30, "valid_accuracy": 0.7, "test_accuracy": 0.65}]
>>> r.select(30)["learning_rate"]
0.0005
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from beatdbn.metrics.scores import KEY_SCORE_RULE, fifth_convention, mirex_keys, weighted_key_score
from beatdbn.exceptions import DataError
from beatdbn.utils.atomic import write_text

__all__ = ["ExperimentResult", "RESULT_FILE"]

RESULT_FILE = "result.json"


@dataclass
class ExperimentResult:
    """Outcome of one experiment (see the module docstring).

    Attributes
    ----------
    task, model : str
    classes : list of str
    chance : float
        Accuracy of always answering the most frequent training class.
    runs : list of dict
        ``{"learning_rate": float | None, "epoch": int, "valid_accuracy": float,
        "test_accuracy": float, ...}``; trainers may add keys (e.g.
        ``test_accuracy_sum_log`` for naive Bayes, ``per_class_accuracy``,
        ``confusion``).
    seconds : float
        Wall time of the whole experiment.
    extra : dict
        Anything else worth keeping (config, versions, notes).
    """

    task: str
    model: str
    classes: list[str] = field(default_factory=list)
    chance: float = float("nan")
    runs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def select(self, epoch: int | None = None) -> dict[str, Any]:
        """The run of best validation accuracy (at ``epoch``; default: the last epoch)."""
        if not self.runs:
            raise DataError(f"{self.model} on {self.task}: no runs recorded")
        if epoch is None:
            epoch = max(r["epoch"] for r in self.runs)
        rows = [r for r in self.runs if r["epoch"] == epoch]
        if not rows:
            raise DataError(f"{self.model} on {self.task}: no run evaluated at epoch {epoch}")
        return max(rows, key=lambda r: (r["valid_accuracy"], -rows.index(r)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add_key_scores(self) -> bool:
        """On a key task, set ``test_weighted_key_score`` on every run with a test ``confusion``.

        Returns True when this is a key task (classes are keys), else False (nothing changes).
        """
        if mirex_keys(self.classes) is None:
            return False
        for row in self.runs:
            if row.get("confusion") is not None:
                row["test_weighted_key_score"] = weighted_key_score(row["confusion"], self.classes)
        self.extra["key_score"] = {"rule": KEY_SCORE_RULE, "fifth": fifth_convention()}
        return True

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/result.json`` atomically (key tasks: with :meth:`add_key_scores`); returns its path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.add_key_scores()
        path = directory / RESULT_FILE
        write_text(path, json.dumps(self.to_dict(), indent=2, default=float))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ExperimentResult":
        """Read a ``result.json`` (or the one inside a directory)."""
        path = Path(path)
        if path.is_dir():
            path = path / RESULT_FILE
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"{path}: not a beatdbn result file ({exc})") from None
