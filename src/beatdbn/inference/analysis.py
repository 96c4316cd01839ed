"""Everything a page shows about one file: its tracks, features, beats, and every model's answer over time.

:func:`analyse_file` reads the file once and applies each run; a run whose
representation differs from the track's is named with the reason instead of
being applied. A key model's answer also holds ``"key"``: the key fields of
:func:`~beatdbn.inference.key_answer.key_answer` (the spelled key or None for
"no key", mode, Camelot code, confidence, tonal, reason, alternatives). The
result is strict JSON (no NaN).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from beatdbn.exceptions import DataError
from beatdbn.features.sources import read_features
from beatdbn.inference.files import over_time
from beatdbn.inference.key_answer import task_key_answer
from beatdbn.inference.posteriors import predict_features, step_posteriors
from beatdbn.inference.runs import Run, representation_mismatch
from beatdbn.inference.steps import BEATS_PER_BAR

__all__ = ["analyse_file", "MAX_TRACKS"]

#: Tracks of one (aggregate) file shown at most.
MAX_TRACKS = 5


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _model_answer(run: Run, name: str, meta: dict, feats: np.ndarray, beats: np.ndarray,
                  top_k: int) -> dict[str, Any]:
    out: dict[str, Any] = {"model": run.name, "task": run.task, "representation": run.representation}
    mismatch = representation_mismatch(run, meta, Path(name).name)
    if mismatch:
        return {**out, "error": mismatch}
    post = predict_features(run, [feats])[0]
    if not np.all(np.isfinite(post)):
        return {**out, "error": "the model gave non-finite posteriors for this track"}
    order = np.argsort(-post, kind="stable")[:top_k]
    out["top"] = [{"label": run.labels[int(j)], "probability": float(post[j])} for j in order]
    key = task_key_answer(run.task, run.labels, post, tonal_threshold=run.tonal_threshold, top_k=top_k)
    if key is not None:
        out["key"] = key
    if run.has_steps:
        out["over_time"] = over_time(run, step_posteriors(run.model, [feats])[0], len(feats), beats)
    return out


def analyse_file(runs: Sequence[Run], path: str | Path, *, name: str | None = None, top_k: int = 5) -> dict[str, Any]:
    """``{"file", "tracks": [{"track_id", "title", "artist", "tempo", "duration", "representation",
    "n_beats", "beats", "chroma", "timbre", "beats_per_bar", "models": [...]}]}``.

    Each model's entry: ``{"model", "task", "representation", "top": [{"label", "probability"}],
    "over_time", ["key"]}``, or ``{..., "error"}`` when the model does not apply to the track.

    Raises
    ------
    DataError
        The file cannot be read, holds no track, or a track has no beats.
    """
    name = name or str(path)
    tracks = []
    for i, (meta, feats, beats) in enumerate(read_features(path)):
        if i >= MAX_TRACKS:
            break
        feats = np.asarray(feats, dtype=np.float32)
        beats = np.asarray(beats, dtype=np.float64)
        if feats.ndim != 2 or len(feats) == 0:
            raise DataError(f"{name}: track {meta.get('track_id', '')} has no beats; nothing to classify")
        if not np.all(np.isfinite(feats)):
            raise DataError(f"{name}: track {meta.get('track_id', '')} has non-finite feature values")
        tracks.append({
            "track_id": str(meta.get("track_id", "")), "title": str(meta.get("title") or ""),
            "artist": str(meta.get("artist_name") or ""), "tempo": _num(meta.get("tempo")),
            "duration": _num(meta.get("duration")), "representation": meta.get("representation"),
            "n_beats": int(len(feats)), "beats_per_bar": BEATS_PER_BAR,
            "beats": np.round(beats, 3).tolist(),
            "chroma": np.round(feats[:, :12], 4).tolist(), "timbre": np.round(feats[:, 12:], 4).tolist(),
            "models": [_model_answer(r, name, meta, feats, beats, top_k) for r in runs]})
    if not tracks:
        raise DataError(f"{name}: holds no track")
    return {"file": Path(name).name, "tracks": tracks}
