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

**One file per input** (:func:`embed_each`, ``embed --out-dir DIR``), as
openl3 does: ``song.mp3`` writes ``DIR/song.npz`` (or ``.parquet``) with the
columns above for its tracks. Two inputs that would write the same name are
refused before anything is embedded; a feature store goes to one ``--out``
file.

**Never a NaN embedding.** A store's shards are verified as they are read
(checksum, store id, finite values): a damaged shard stops the run with one
:class:`DataError` line naming it and ``beatdbn check --repair`` (no file is
written). A track whose features or layer-4 output are not finite is never
written; it is an error line and counts in ``"refused"``.

**One representation.** A store given to a model that records its
representation must hold only that kind; a store that mixes MSD and audio
tracks is refused whatever the model (DataError, before anything is
written). Among files, a track of another representation than the model's
(or, for a model that records none, than the first track's) is refused
(``"refused"``; the command exits 1).

**A store is embedded alone.** ``embed MODEL STORE FILES...`` (or a folder
holding a store) is a :class:`ParameterError`: a store's shards are not
input files, and its tracks would otherwise be dropped silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from beatdbn.data.splits import padded_batch
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.inference.embed_writers import embedding_writer
from beatdbn.inference.encoders import Encoder, load_encoder
from beatdbn.inference.classifier import TrackRefused, admit
from beatdbn.inference.files import read_input
from beatdbn.inference.inputs import iter_inputs
from beatdbn.inference.steps import step_table
from beatdbn.store.reader import FeatureStore, check_representations

__all__ = ["embed", "embed_each", "output_names", "iter_tracks", "encode_batch"]


def _is_store(path: Path) -> bool:
    return (path / "store.json").is_file() or (path / "store.json").is_symlink()


def _store_inside(folder: Path) -> Path | None:
    """A feature store at or below ``folder`` (its shards are not inputs), if any."""
    if not folder.is_dir():
        return None
    if _is_store(folder):
        return folder
    return next((m.parent for m in sorted(folder.rglob("store.json")) if (m.parent / "shards").exists()), None)


def iter_tracks(inputs: Iterable[str | Path], errors: list[str], *, representation: str | None = None,
                refused: list[str] | None = None, n_inputs: int = 24
                ) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
    """``(track_id, source, features, beat times in seconds)`` of every track of the inputs (files, folders, or one feature store).

    Unreadable inputs are appended to ``errors`` (one line each) and skipped;
    tracks refused for their representation go to ``errors`` and ``refused``
    both; tracks the door refuses (:func:`~beatdbn.inference.classifier.admit`: no
    beats, not ``(n_beats, n_inputs)``, non-finite values) go to ``errors``.

    Raises
    ------
    ParameterError
        A feature store given with other inputs, or inside a folder given.
    DataError
        A store that mixes representations or holds another one than
        ``representation``; a damaged shard.
    """
    refused = [] if refused is None else refused
    inputs = [Path(p) for p in inputs]
    if len(inputs) == 1 and _is_store(inputs[0]):
        store = FeatureStore.open(inputs[0])
        check_representations(store.representations(), expected=representation, what=f"the tracks of {store.path}")
        for batch in store.iter_batches(64):
            for rec in batch:
                feats = np.asarray(rec.features, dtype=np.float32)
                if len(feats) == 0 or not np.isfinite(feats).all():  # the reader verifies shards: a guard only
                    raise DataError(f"{store.path}: track {rec.track_id} has non-finite features; run "
                                    f"`beatdbn check {store.path} --repair`")
                yield rec.track_id, str(rec.meta.get("source", "")), feats, np.asarray(rec.beats, dtype=np.float64)
        return
    for p in inputs:
        inner = _store_inside(p)
        if inner is not None:
            raise ParameterError(f"{inner} is a feature store: embed it alone (`beatdbn embed MODEL {inner}`), and "
                                 f"files or folders without a store in a separate run; its tracks would otherwise "
                                 f"be dropped")
    want = representation
    for name, tracks in map(read_input, iter_inputs(inputs)):
        if isinstance(tracks, str):
            errors.append(tracks)
            continue
        for meta, feats, beats in tracks:
            have = meta.get("representation")
            if want and have and have != want:
                why = "the model was trained on" if representation else "earlier inputs of this run are"
                refused.append(f"{name}: {have} features, but {why} {want}; embed one representation per run")
                errors.append(refused[-1])
                continue
            try:
                track = admit(name, meta, feats, beats, n_inputs=n_inputs, verb="embed")
            except TrackRefused as exc:
                errors.append(str(exc))
                continue
            want = want or have
            yield track.track_id, name, track.features, track.beats


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
        ``{"out", "tracks", "steps", "n_features", "failed", "refused", "errors"}``
        (the first 20 error lines; ``refused``: tracks left out for their
        representation or a non-finite embedding, which the command reports
        with exit code 1).

    Raises
    ------
    DataError
        No track could be embedded, the model is not a DBN or conv MLP, a
        store mixes representations (or holds another than the model's), or
        a shard is damaged.
    ParameterError
        ``out`` has another suffix; a store given with other inputs.
    """
    encoder = model if isinstance(model, Encoder) else load_encoder(model, device=device)
    with embedding_writer(out, encoder.n_features) as write:
        summary = _embed_tracks(encoder, inputs, write, batch_size=batch_size, progress=progress)
    return {"out": str(out), **summary}


def output_names(inputs: Iterable[str | Path], out_dir: str | Path, fmt: str) -> dict[str, Path]:
    """The file each input writes in ``out_dir``: its name with the suffix of ``fmt`` (``song.mp3`` ->
    ``song.npz``), as openl3 names its outputs.

    Raises
    ------
    ParameterError
        ``fmt`` is not parquet or npz; a feature store (it is one input of many tracks: give ``--out``); two
        inputs that would write the same file (the first two are named).
    """
    if fmt not in ("parquet", "npz"):
        raise ParameterError(f"--format {fmt!r}: parquet or npz")
    out_dir = Path(out_dir)
    names: dict[str, Path] = {}
    taken: dict[Path, str] = {}
    inputs = [Path(p) for p in inputs]
    for p in inputs:
        inner = _store_inside(p)
        if inner is not None:
            raise ParameterError(f"{inner} is a feature store: --out-dir writes one file per input file; embed a "
                                 f"store into one file with --out FILE.{fmt}")
    for f in iter_inputs(inputs):
        target = out_dir / f"{f.stem}.{fmt}"
        if target in taken:
            raise ParameterError(f"--out-dir {out_dir}: {taken[target]} and {f} would both write {target.name}; "
                                 f"embed them in separate runs (another --out-dir) or rename one")
        taken[target] = str(f)
        names[str(f)] = target
    return names


def embed_each(model: str | Path | Encoder, inputs: Iterable[str | Path], out_dir: str | Path, *,
               fmt: str = "npz", batch_size: int = 16, progress: Callable[[int], None] | None = None,
               device: str | torch.device = "cpu") -> dict[str, Any]:
    """Write one file per input file into ``out_dir`` (``NAME.npz`` or ``NAME.parquet``, see
    :func:`output_names`), each with the columns of :func:`embed`'s file for that input's tracks.

    Names are checked before anything is embedded; an input whose tracks all fail writes no file. Tracks are
    encoded ``batch_size`` at a time across inputs, and each file appears only when complete.

    Returns
    -------
    dict
        :func:`embed`'s summary, ``"out"`` the folder, plus ``"files"``: the files written, in input order.

    Raises
    ------
    ParameterError
        See :func:`output_names`.
    DataError
        No track could be embedded, or the model is not a DBN or conv MLP.
    """
    targets = output_names(inputs, out_dir, fmt)
    encoder = model if isinstance(model, Encoder) else load_encoder(model, device=device)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    sink = _PerInput(targets, encoder.n_features)
    try:
        summary = _embed_tracks(encoder, list(targets), sink, batch_size=batch_size, progress=progress)
    except BaseException as exc:
        sink.close(exc)
        raise
    sink.close()
    return {"out": str(out_dir), **summary, "files": [str(f) for f in sink.written]}


class _PerInput:
    """A writer that sends each input's tracks to that input's file (one open at a time: inputs come in order)."""

    def __init__(self, targets: dict[str, Path], n_features: int):
        self.targets, self.n_features = targets, n_features
        self.source: str | None = None
        self.writer = None
        self.write: Callable | None = None
        self.written: list[Path] = []

    def __call__(self, track_id: str, source: str, *rest) -> None:
        if source != self.source:
            self.close()
            self.writer = embedding_writer(self.targets[source], self.n_features)
            self.write, self.source = self.writer.__enter__(), source
        self.write(track_id, source, *rest)

    def close(self, exc: BaseException | None = None) -> None:
        """Finish the open file (or, after ``exc``, drop it)."""
        writer, self.writer = self.writer, None
        if writer is None:
            return
        if exc is None:
            writer.__exit__(None, None, None)
            self.written.append(self.targets[self.source])
        else:
            writer.__exit__(type(exc), exc, exc.__traceback__)
        self.source = None


def _embed_tracks(encoder: Encoder, inputs: Iterable[str | Path], write: Callable, *, batch_size: int,
                  progress: Callable[[int], None] | None) -> dict[str, Any]:
    """Encode every track of ``inputs`` ``batch_size`` at a time and ``write`` each; the summary counts."""
    errors: list[str] = []
    refused: list[str] = []
    n_tracks = n_steps = 0
    buf: list[tuple[str, str, np.ndarray, np.ndarray]] = []

    def flush() -> None:
        nonlocal n_tracks, n_steps
        if not buf:
            return
        for (tid, src, f, beats), h in zip(buf, encode_batch(encoder, [f for _, _, f, _ in buf])):
            if not np.isfinite(h).all():  # never a NaN embedding
                refused.append(f"{src or tid}: track {tid}: the model gave non-finite layer-4 features")
                errors.append(refused[-1])
                continue
            write(tid, src, len(f), *step_table(encoder.config, len(f), len(h), beats), h)
            n_steps += len(h)
            n_tracks += 1
        buf.clear()
        if progress is not None:  # inputs done: embedded tracks and skipped ones
            progress(n_tracks + len(errors))

    for item in iter_tracks(inputs, errors, representation=encoder.representation, refused=refused,
                            n_inputs=encoder.config.n_inputs):
        buf.append(item)
        if len(buf) >= batch_size:
            flush()
    flush()
    if progress is not None:
        progress(n_tracks + len(errors))
    if not n_tracks:
        raise DataError("no track could be embedded" + (f": {errors[0]}" if errors else ": no input tracks"))
    return {"tracks": n_tracks, "steps": n_steps, "n_features": encoder.n_features, "failed": len(errors),
            "refused": len(refused), "errors": errors[:20]}
