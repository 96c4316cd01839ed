"""One output row per answer, written as CSV or JSON Lines while answers stream in.

Columns: ``file, track_id, label, probability, error`` (probability: of the
top label; empty for a failed input). The file appears under its final name
only when every row is written (:func:`beatdbn.utils.atomic.atomic_path`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from pathlib import Path
from typing import Any, Callable, Iterator

from beatdbn.exceptions import ParameterError
from beatdbn.utils.atomic import atomic_path

__all__ = ["ROW_COLUMNS", "answer_row", "row_writer", "OUTPUT_SUFFIXES"]

ROW_COLUMNS = ("file", "track_id", "label", "probability", "error")
OUTPUT_SUFFIXES = (".csv", ".jsonl")


def answer_row(answer: dict[str, Any]) -> dict[str, Any]:
    """The row of one answer (see :func:`beatdbn.inference.files.iter_predictions`)."""
    probs = answer.get("probabilities") or {}
    label = answer.get("label")
    p = probs.get(label) if label is not None else None
    if p is not None and not math.isfinite(p):
        p = None
    return {"file": answer.get("file", ""), "track_id": answer.get("track_id", ""),
            "label": label if "error" not in answer else None,
            "probability": None if "error" in answer else p, "error": answer.get("error")}


@contextlib.contextmanager
def row_writer(path: str | Path) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Yield ``write(answer)``; the file (``.csv`` or ``.jsonl``) is complete when the block ends.

    Raises
    ------
    ParameterError
        Another suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ParameterError(f"--out {path}: must end in .csv or .jsonl")
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        if suffix == ".csv":
            w = csv.DictWriter(f, fieldnames=ROW_COLUMNS)
            w.writeheader()

            def write(answer: dict[str, Any]) -> None:
                w.writerow({k: ("" if v is None else v) for k, v in answer_row(answer).items()})
        else:
            def write(answer: dict[str, Any]) -> None:
                f.write(json.dumps(answer_row(answer), allow_nan=False) + "\n")
        yield write
