"""Classify files: one answer per track (or per unreadable file), streamed in chunks.

:func:`iter_predictions` reads the inputs (optionally in parallel worker
processes), classifies a chunk of tracks at a time and yields one answer dict
per track, in input order; memory does not grow with the number of files.
:func:`predict_files` is its list form.

An answer is ``{"file", "track_id", "label", "probabilities": {label: p}}``
(``top_k`` labels, most probable first), plus with ``over_time=True`` an
``"over_time"`` entry (:func:`over_time`): the posterior of every layer-4
step with the beats and seconds it covers. A key model's answer also holds
the key fields of :func:`~beatdbn.inference.key_answer.key_answer` (``key``,
``key_ascii``, ``tonic``, ``mode``, ``camelot``, ``confidence``, ``tonal``,
``reason``, ``no_key_probability``, ``alternatives``), and its ``label`` is
the answer's class ("no key" when the track has none). A file that cannot be read, a
track without beats, a track of another representation than the model's
(:func:`~beatdbn.inference.runs.representation_mismatch`) or a track whose
posterior is not finite gets ``{"file", ["track_id"], "error"}`` instead:
probabilities are always finite.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence


from beatdbn.exceptions import ParameterError
from beatdbn.features.read_ahead import Ahead
from beatdbn.features.sources import error_text, read_input  # here for callers of inference.files
from beatdbn.inference.answer import over_time, track_answer
from beatdbn.inference.classifier import Track, TrackRefused
from beatdbn.inference.parallel import map_inputs
from beatdbn.inference.runs import Run, as_run

__all__ = ["predict_files", "iter_predictions", "read_input", "over_time", "error_text"]


def _admit(run: Run, name: str, meta: dict, feats, beats) -> dict[str, Any] | Track:
    """The track past the door, or its error answer."""
    try:
        return run.admit(name, meta, feats, beats)
    except TrackRefused as exc:
        track_id = str(meta.get("track_id", "")) if isinstance(meta, dict) else ""
        return {"file": name, "track_id": track_id, "error": str(exc)}


def iter_predictions(run_dir: Run | str | Path, files: Iterable[str | Path], *, top_k: int = 3,
                     batch_size: int = 32, over_time_steps: bool = False, workers: int = 1, chunk: int = 64,
                     scheduler: str | None = None, progress: Callable[[int], None] | None = None,
                     ahead: Ahead | None = None) -> Iterator[dict[str, Any]]:
    """Answers for every track of every file, in input order, classified ``chunk`` files at a time.

    Files are read (and audio analysed) in this process, or with ``workers > 1``
    on a local Dask cluster, or on the Dask ``scheduler`` given (see
    :func:`~beatdbn.inference.parallel.map_inputs`). ``progress(n_files_done)``
    is called after each file is read. The arguments and the run are checked when this is called, before
    the first answer is asked for (so a command can refuse before it prints anything). ``ahead``: the
    :func:`read_input` of the first file, already under way (:mod:`beatdbn.features.read_ahead`: a command
    starts it in a child process or a thread before its imports, so that they and the analysis overlap).
    """
    if not isinstance(top_k, int) or top_k < 0:
        raise ParameterError(f"top_k={top_k!r}: must be an int >= 0 (0 lists every class)")
    if not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"workers={workers!r}: must be an int >= 1")
    run = as_run(run_dir)
    files = iter(Path(f) for f in files)
    first = next(files, None)
    head = [] if first is None else [ahead if ahead is not None else first]
    files = itertools.chain(head, files)
    if over_time_steps and not run.answers_over_time:
        raise ParameterError(f"{run.path}: a {run.kind} model has no layer-4 steps; posteriors over time need a "
                             f"conv MLP run")
    return _iter_answers(run, files, top_k=top_k, batch_size=batch_size, over_time_steps=over_time_steps,
                         workers=workers, chunk=chunk, scheduler=scheduler, progress=progress)


def _iter_answers(run: Run, files: Iterable[str | Path], *, top_k: int, batch_size: int,
                  over_time_steps: bool, workers: int, chunk: int, scheduler: str | None,
                  progress: Callable[[int], None] | None) -> Iterator[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    pending: list[tuple[int, Track]] = []
    n_read = 0
    scheduler = scheduler or ("local" if workers > 1 else "sync")
    for name, tracks in map_inputs(_read, files, scheduler=scheduler, workers=workers):
        n_read += 1
        if isinstance(tracks, str):
            answers.append({"file": name, "error": tracks})
        else:
            for meta, feats, beats in tracks:
                t = _admit(run, name, meta, feats, beats)
                if isinstance(t, Track):
                    pending.append((len(answers), t))
                    t = {"file": name, "track_id": t.track_id}
                answers.append(t)
        if progress is not None:
            progress(n_read)
        if n_read % chunk == 0:
            yield from _answer_chunk(run, answers, pending, top_k, batch_size, over_time_steps)
            answers, pending = [], []
    yield from _answer_chunk(run, answers, pending, top_k, batch_size, over_time_steps)


def _read(path) -> tuple[str, Any]:
    """:func:`read_input`, or the result of a reading started ahead (read again here if the reader died, e.g. a
    child process killed: :func:`read_input` itself never raises)."""
    if not isinstance(path, Ahead):
        return read_input(path)
    try:
        return path.result()
    except Exception:  # noqa: BLE001 - a broken pool or a killed child: the file is read here instead
        return read_input(path.path)


def _answer_chunk(run: Run, answers: list[dict], pending: list[tuple[int, Track]], top_k: int, batch_size: int,
                  with_steps: bool) -> list[dict[str, Any]]:
    """Fill the answers of the admitted tracks of a chunk: one pass of the network for all of them."""
    if pending:
        tracks = [t for _, t in pending]
        post = run.predict_proba(tracks, over_time=with_steps, batch_size=batch_size)
        steps = post.steps if with_steps else [None] * len(tracks)
        for (i, t), p, s in zip(pending, post.tracks, steps):
            answers[i].update(track_answer(run, p, top_k=top_k, steps=s, n_beats=len(t.features), beats=t.beats,
                                           name=answers[i]["file"]))
    return answers


def predict_files(run_dir: Run | str | Path, files: Sequence[str | Path], *, top_k: int = 3, batch_size: int = 32,
                  over_time_steps: bool = False, workers: int = 1, scheduler: str | None = None
                  ) -> list[dict[str, Any]]:
    """Classify every track of every input file (the list form of :func:`iter_predictions`).

    Parameters
    ----------
    run_dir : path or Run
        A run directory (conv MLP or baseline), or a model folder.
    files : sequence of path
        MSD ``.h5`` or audio files (folders: expand them with
        :func:`~beatdbn.inference.inputs.iter_inputs`).
    top_k : int
        Classes listed per track, most probable first (``0``: all).
    over_time_steps : bool
        Add each track's per-step posteriors (``"over_time"``).

    Raises
    ------
    ParameterError
        ``top_k`` < 0, or ``over_time_steps`` with a model that has no steps.
    DataError
        ``run_dir`` is not a usable run.

    Examples
    --------
    >>> for answer in predict_files("runs/key-pretrained", ["TRAXLZU12903D05F94.h5"]):  # doctest: +SKIP
    ...     print(answer["label"], answer["probabilities"])
    G {'G': 0.81, 'D': 0.07, 'C': 0.05}
    """
    return list(iter_predictions(run_dir, files, top_k=top_k, batch_size=batch_size,
                                 over_time_steps=over_time_steps, workers=workers, scheduler=scheduler))
