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
from beatdbn.inference.answer import page_answer, track_answer
from beatdbn.inference.classifier import Track, TrackRefused, admit
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


def _model_answer(run: Run, name: str, meta: dict, track: Track, top_k: int) -> dict[str, Any]:
    """One model's answer about an admitted track, in the page's shape (:func:`page_answer`)."""
    out: dict[str, Any] = {"model": run.name, "task": run.task, "representation": run.representation}
    mismatch = representation_mismatch(run, meta, Path(name).name)
    if mismatch:
        return {**out, "error": mismatch}
    post = run.predict_proba([track], over_time=run.answers_over_time)
    answer = track_answer(run, post.tracks[0], top_k=top_k, steps=post.steps[0] if post.steps else None,
                          n_beats=len(track.features), beats=track.beats)
    return {**out, **page_answer(answer)}


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
        try:  # every model here reads (n_beats, 24); each checks its representation in _model_answer
            track = admit(name, meta, feats, beats, n_inputs=24)
        except TrackRefused as exc:
            raise DataError(str(exc)) from None
        feats, beats = track.features, track.beats
        tracks.append({
            "track_id": str(meta.get("track_id", "")), "title": str(meta.get("title") or ""),
            "artist": str(meta.get("artist_name") or ""), "tempo": _num(meta.get("tempo")),
            "duration": _num(meta.get("duration")), "representation": meta.get("representation"),
            "n_beats": int(len(feats)), "beats_per_bar": BEATS_PER_BAR,
            "beats": np.round(beats, 3).tolist(),
            "chroma": np.round(feats[:, :12], 4).tolist(), "timbre": np.round(feats[:, 12:], 4).tolist(),
            "models": [_model_answer(r, name, meta, track, top_k) for r in runs]})
    if not tracks:
        raise DataError(f"{name}: holds no track")
    return {"file": Path(name).name, "tracks": tracks}
