"""Output rows, written as CSV or JSON Lines while answers stream in: what ``--json`` shows, in a file.

**JSON Lines** (``.jsonl``): one object per answer holding everything the
answer has (``--json``'s object: key fields, ``probabilities``,
``over_time``), with ``file, track_id, label, probability, error`` always
present first (probability: of the label; None for a failed input).

**CSV** (``.csv``), one row per answer, columns (:func:`csv_columns`):

* ``file, track_id, label, probability``;
* for a key model (``key=True``): :data:`~beatdbn.inference.key_answer.KEY_FIELDS`
  (``key, key_ascii, tonic, mode, camelot, confidence, tonal, reason,
  no_key_probability, alternatives``); ``alternatives`` is one cell such as
  ``B♭ major (6B) 0.9100; G minor (6A) 0.0500``;
* with the model's ``classes``, one column per class, ``p:CLASS``: the
  probabilities the answer lists (all of them with ``--top-k 0``; the others
  empty);
* ``error`` last.

Posteriors over time have no place in a CSV row: asking for them there is a
:class:`~beatdbn.exceptions.ParameterError`, not silence.

Cells are neutralised against formula injection: a text cell starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``
(numbers, and text that is a plain number, stay as they are). The file
appears under its final name only when every row is written
(:func:`beatdbn.utils.atomic.atomic_path`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from beatdbn.exceptions import ParameterError
from beatdbn.inference.key_answer import KEY_FIELDS
from beatdbn.utils.atomic import atomic_path

__all__ = ["ROW_COLUMNS", "answer_row", "row_writer", "check_output", "csv_columns", "csv_cell", "OUTPUT_SUFFIXES"]

ROW_COLUMNS = ("file", "track_id", "label", "probability", "error")
OUTPUT_SUFFIXES = (".csv", ".jsonl")
#: Prefix of the per-class probability columns of a CSV file.
CLASS_PREFIX = "p:"

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def answer_row(answer: dict[str, Any]) -> dict[str, Any]:
    """The base row of one answer (see :func:`beatdbn.inference.files.iter_predictions`): ``ROW_COLUMNS``."""
    probs = answer.get("probabilities") or {}
    label = answer.get("label")
    p = probs.get(label) if label is not None else None
    if p is not None and not math.isfinite(p):
        p = None
    return {"file": answer.get("file", ""), "track_id": answer.get("track_id", ""),
            "label": label if "error" not in answer else None,
            "probability": None if "error" in answer else p, "error": answer.get("error")}


def csv_columns(*, classes: Sequence[str] | None = None, key: bool = False) -> list[str]:
    """The CSV header: base columns, the key fields of a key model, ``p:CLASS`` per class, then ``error``."""
    cols = list(ROW_COLUMNS[:-1])
    if key:
        cols += list(KEY_FIELDS)
    cols += [CLASS_PREFIX + str(c) for c in (classes or ())]
    return cols + ["error"]


def csv_cell(value: Any) -> Any:
    """One CSV cell: None -> empty, a number as it is, text neutralised against formula injection.

    Examples
    --------
    >>> csv_cell("=HYPERLINK(1)"), csv_cell("-0.5"), csv_cell(-0.5), csv_cell(None), csv_cell("B♭ major")
    ("'=HYPERLINK(1)", '-0.5', -0.5, '', 'B♭ major')
    """
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


def _alternatives_cell(alternatives: Sequence[dict] | None) -> str | None:
    if not alternatives:
        return None
    parts = []
    for a in alternatives:
        code = f" ({a['camelot']})" if a.get("camelot") else ""
        parts.append(f"{a['key']}{code} {a['probability']:.4f}")
    return "; ".join(parts)


def _csv_row(answer: dict[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    row = answer_row(answer)
    probs = answer.get("probabilities") or {}
    for col in columns:
        if col in row:
            continue
        if col.startswith(CLASS_PREFIX):
            row[col] = probs.get(col[len(CLASS_PREFIX):])
        elif col == "alternatives":
            row[col] = _alternatives_cell(answer.get("alternatives"))
        else:
            row[col] = answer.get(col)
    return {c: csv_cell(row.get(c)) for c in columns}


def _jsonl_row(answer: dict[str, Any]) -> dict[str, Any]:
    return {**answer_row(answer), **{k: v for k, v in answer.items() if k not in ROW_COLUMNS}}


def check_output(path: str | Path, *, over_time: bool = False) -> str:
    """The suffix of ``path`` (``.csv`` or ``.jsonl``) when it can hold the answers asked for.

    Raises
    ------
    ParameterError
        Another suffix, or posteriors over time for a CSV file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ParameterError(f"--out {path}: must end in .csv or .jsonl")
    if suffix == ".csv" and over_time:
        raise ParameterError(f"--out {path}: a CSV row has no place for the posteriors over time (--over-time); "
                             f"write {path.with_suffix('.jsonl').name} instead, or leave out --over-time")
    return suffix


@contextlib.contextmanager
def row_writer(path: str | Path, *, classes: Sequence[str] | None = None, key: bool = False,
               over_time: bool = False) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Yield ``write(answer)``; the file (``.csv`` or ``.jsonl``) is complete when the block ends.

    Parameters
    ----------
    path : path
        ``FILE.csv`` or ``FILE.jsonl``.
    classes : sequence of str, optional
        The model's classes: a CSV file gets a ``p:CLASS`` column for each.
    key : bool
        A key model: a CSV file gets the key fields.
    over_time : bool
        The answers hold posteriors over time: JSON Lines only.

    Raises
    ------
    ParameterError
        Another suffix, or ``over_time`` with a CSV file (checked before anything is written).
    """
    path = Path(path)
    suffix = check_output(path, over_time=over_time)
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        if suffix == ".csv":
            columns = csv_columns(classes=classes, key=key)
            w = csv.DictWriter(f, fieldnames=columns)
            w.writerow({c: csv_cell(c) for c in columns})

            def write(answer: dict[str, Any]) -> None:
                w.writerow(_csv_row(answer, columns))
        else:
            def write(answer: dict[str, Any]) -> None:
                f.write(json.dumps(_jsonl_row(answer), allow_nan=False, ensure_ascii=False) + "\n")
        yield write
