"""Embeddings: the layer-4 features of every track, per step and pooled (mean, max), streamed to a file.

Section 3.5 of the paper feeds the DBN's top-level features to other
classifiers; :func:`embed` writes them for any set of tracks (files, folders
or a feature store) so that other tools can do the same. Tracks are encoded
``batch_size`` at a time and written as they come, so memory does not grow
with the number of tracks.

Output (:mod:`beatdbn.inference.embed_writers`):

* **Parquet** (``.parquet``): one row per track: ``track_id``, ``source``,
  ``n_beats``, ``n_steps``, ``step_beats`` (``[[first, end), ...]``),
  ``steps`` (``n_steps`` lists of ``n_features`` floats), ``mean``, ``max``.
* **NPZ** (``.npz``): ``track_id`` (n,), ``source`` (n,), ``n_beats`` (n,),
  ``mean`` and ``max`` (n, F), ``steps`` (S, F) for all steps of all tracks,
  ``step_track`` (S,) the row of each step's track, ``step_beats`` (S, 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from beatdbn.data.splits import padded_batch
from beatdbn.exceptions import DataError
from beatdbn.inference.embed_writers import embedding_writer
from beatdbn.inference.encoders import Encoder, load_encoder
from beatdbn.inference.files import read_input
from beatdbn.inference.inputs import iter_inputs
from beatdbn.inference.steps import step_beat_ranges
from beatdbn.store.reader import FeatureStore

__all__ = ["embed", "iter_tracks", "encode_batch"]


def iter_tracks(inputs: Iterable[str | Path], errors: list[str], *,
                representation: str | None = None) -> Iterator[tuple[str, str, np.ndarray]]:
    """``(track_id, source, features)`` of every track of the inputs (files, folders, or one feature store).

    Failures are appended to ``errors`` (one line each) and skipped.
    """
    inputs = [Path(p) for p in inputs]
    if len(inputs) == 1 and (inputs[0] / "store.json").is_file():
        store = FeatureStore.open(inputs[0])
        for batch in store.iter_batches(64):
            for rec in batch:
                have = rec.meta.get("representation") or "echonest"
                if representation and have != representation:
                    errors.append(f"{rec.track_id}: {have} features, the model was trained on {representation}")
                    continue
                yield rec.track_id, str(rec.meta.get("source", "")), np.asarray(rec.features, dtype=np.float32)
        return
    for name, tracks in map(read_input, iter_inputs(inputs)):
        if isinstance(tracks, str):
            errors.append(tracks)
            continue
        for meta, feats, _ in tracks:
            tid = str(meta.get("track_id", ""))
            have = meta.get("representation")
            if representation and have and have != representation:
                errors.append(f"{name}: {have} features, the model was trained on {representation}")
            elif len(feats) == 0 or not np.all(np.isfinite(feats)):
                errors.append(f"{name}: track {tid} has no beats or non-finite features")
            else:
                yield tid, name, feats


def encode_batch(encoder: Encoder, feats: list[np.ndarray]) -> list[np.ndarray]:
    """Layer-4 features ``(n_steps, n_features)`` float32 of each track."""
    device = next(encoder.model.parameters()).device
    x, lengths = padded_batch(feats, device=device)
    h, l4 = encoder(x, lengths)
    h = h.transpose(1, 2).float().cpu().numpy()  # (B, T4, F)
    return [h[i, :int(n)] for i, n in enumerate(l4.tolist())]


def embed(model: str | Path | Encoder, inputs: Iterable[str | Path], out: str | Path, *, batch_size: int = 16,
          progress: Callable[[int], None] | None = None, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Write the embeddings of every track of ``inputs`` to ``out`` (``.parquet`` or ``.npz``).

    ``progress(n)`` is called after each batch with the inputs done (tracks
    embedded plus inputs skipped).

    Returns
    -------
    dict
        ``{"out", "tracks", "steps", "n_features", "failed", "errors"}`` (the
        first 20 error lines).

    Raises
    ------
    DataError
        No track could be embedded, or the model is not a DBN or conv MLP.
    ParameterError
        ``out`` has another suffix.
    """
    encoder = model if isinstance(model, Encoder) else load_encoder(model, device=device)
    errors: list[str] = []
    n_tracks = n_steps = 0
    with embedding_writer(out, encoder.n_features) as write:
        buf: list[tuple[str, str, np.ndarray]] = []

        def flush() -> None:
            nonlocal n_tracks, n_steps
            if not buf:
                return
            for (tid, src, f), h in zip(buf, encode_batch(encoder, [f for _, _, f in buf])):
                write(tid, src, len(f), step_beat_ranges(len(f), len(h), encoder.config), h)
                n_steps += len(h)
            n_tracks += len(buf)
            buf.clear()
            if progress is not None:  # inputs done: embedded tracks and skipped ones
                progress(n_tracks + len(errors))

        for item in iter_tracks(inputs, errors, representation=encoder.representation):
            buf.append(item)
            if len(buf) >= batch_size:
                flush()
        flush()
        if progress is not None:
            progress(n_tracks + len(errors))
        if not n_tracks:
            raise DataError("no track could be embedded" + (f": {errors[0]}" if errors else ": no input tracks"))
    return {"out": str(out), "tracks": n_tracks, "steps": n_steps, "n_features": encoder.n_features,
            "failed": len(errors), "errors": errors[:20]}
