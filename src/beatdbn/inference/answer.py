"""The one answer of a model about one track, built from its posteriors: what ``predict``, ``serve`` and the
report's examples show.

:func:`track_answer` gives ``{"label", [key fields], "probabilities": {label: p}, ["over_time"]}``:
``top_k`` labels, most probable first (0: all); a key model's answer holds the
key fields of :func:`~beatdbn.inference.key_answer.key_answer` and its
``label`` is the answer's class ("no key" when the track has none);
``over_time`` (:func:`over_time`) is every layer-4 step's posterior with the
beats and seconds it covers (:func:`~beatdbn.inference.steps.step_table`, the table ``embed``
writes). A posterior that is not finite gives ``{"error"}`` instead: a
probability shown is always finite. :func:`page_answer` is the same answer in
the shape the ``serve`` page reads (``top``, ``key``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from beatdbn.inference.key_answer import KEY_FIELDS, task_key_answer
from beatdbn.inference.runs import Run
from beatdbn.inference.steps import step_table

__all__ = ["track_answer", "over_time", "page_answer"]


def over_time(run: Run, steps: np.ndarray, n_beats: int, beats: np.ndarray | None) -> dict[str, Any]:
    """The JSON form of one track's per-step posteriors ``(n_steps, n_classes)``."""
    ranges, seconds = step_table(run.model.config.dbn_config, n_beats, len(steps), beats)
    return {"labels": list(run.labels), "beats": ranges.tolist(), "seconds": np.round(seconds, 3).tolist(),
            "posteriors": np.round(steps, 6).tolist()}


def track_answer(run: Run, posterior: np.ndarray, *, top_k: int = 3, steps: np.ndarray | None = None,
                 n_beats: int = 0, beats: np.ndarray | None = None, name: str = "") -> dict[str, Any]:
    """One track's answer from its posterior (and per-step posteriors, when given); ``{"error"}`` when any is
    not finite (``name``: the input, for the message)."""
    if not np.all(np.isfinite(posterior)) or (steps is not None and not np.all(np.isfinite(steps))):
        return {"error": f"{name + ': ' if name else ''}the model gave non-finite posteriors for this track"}
    k = run.n_classes if top_k == 0 else min(top_k, run.n_classes)
    order = np.argsort(-posterior, kind="stable")[:k]
    answer: dict[str, Any] = {"label": run.labels[int(order[0])]}
    answer.update(task_key_answer(run.task, run.labels, posterior, tonal_threshold=run.tonal_threshold,
                                  top_k=top_k) or {})  # a key model: the key fields, and the answer's class
    answer["probabilities"] = {run.labels[int(j)]: float(posterior[j]) for j in order}
    if steps is not None:
        answer["over_time"] = over_time(run, steps, n_beats, beats)
    return answer


def page_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """:func:`track_answer` as the ``serve`` page reads it: ``{"top": [{"label", "probability"}], ["key"],
    ["over_time"]}`` (``key``: the label and the key fields), or ``{"error"}``."""
    if "error" in answer:
        return {"error": answer["error"]}
    out: dict[str, Any] = {"top": [{"label": lab, "probability": p} for lab, p in answer["probabilities"].items()]}
    if "key" in answer:
        out["key"] = {f: answer[f] for f in ("label", *KEY_FIELDS)}
    if "over_time" in answer:
        out["over_time"] = answer["over_time"]
    return out
