"""Fixed-length windows of beat-aligned tracks, for the window-based baselines.

Section 6 of Dieleman et al. (2011) trains naive Bayes and logistic regression
on *windows of 32 beats* (8 bars) of the 24-d beat features, 768 values a
window, with chroma and timbre standardized. This module cuts a split's
tracks into such windows without copying them:

1. :func:`make_windows` concatenates the tracks into one C-contiguous
   ``(n_beats_total, 24)`` float32 array ``beats`` (standardized if a
   :class:`Standardizer` is given) and computes, fully vectorized, the first
   row of every window (``starts``) and the track it belongs to (``track``).
2. :meth:`WindowedTracks.view` is a zero-copy sliding-window view of
   ``beats`` (``(n_rows - window + 1, window * 24)``, via NumPy stride
   tricks; :meth:`WindowedTracks.torch_view` is the same with
   ``Tensor.unfold``): because ``beats`` is beat-major, the 768 values of the
   window starting at row ``s`` are the contiguous memory
   ``beats[s:s + window].ravel()``. Indexing the view with ``starts`` gathers
   a batch of windows in one copy, so a stride of 1 never materializes 32
   copies of the data.

**Layout of a window.** Beat-major: value ``b * 24 + f`` is feature ``f``
(0-11 chroma, 12-23 timbre) of the window's beat ``b``.

**Where windows go.** In a track of ``n >= window`` beats, windows start at
beats ``0, stride, 2 * stride, ...`` as long as they fit:
``1 + (n - window) // stride`` windows. The beats after the last whole window
(fewer than ``stride`` with the default ``stride == window``) are not seen.

**Short tracks.** A track of ``0 < n < window`` beats would have no window;
so that every track is still classified, it is *wrap-padded* to exactly
``window`` beats (beat ``t`` of the padded track is beat ``t mod n``), the
``'wrap'`` rule of :func:`beatdbn.models.dbn.pad_short_tracks`, and gives one
window. Repeating the track keeps the padding inside the data distribution
(zeros would be silence-like chroma no real beat has). Padding happens after
standardization, so the padded beats are standardized copies. A track of 0
beats raises :class:`~beatdbn.exceptions.DataError`.

**Standardization.** :class:`Standardizer` holds the mean and standard
deviation of each of the 24 features over *all beats of the training
tracks* (each beat once, before any padding), shared by the 32 positions of
a window; the baselines fit it on the training split only and apply it to
the validation and test splits unchanged.

**From windows to tracks.** :func:`pool_window_scores` sums or averages
per-window scores over each track's windows (``np.add.reduceat`` over the
sorted track index, no loop): the mean of window posteriors, or the sum of
window log-posteriors.

Examples
--------
>>> import numpy as np
>>> tracks = [np.ones((70, 24), np.float32), np.ones((10, 24), np.float32)]
>>> w = make_windows(tracks, window=32, stride=32)
>>> len(w), w.track.tolist(), w.windows().shape
(3, [0, 0, 1], (3, 768))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from beatdbn.exceptions import DataError, ParameterError

__all__ = [
    "N_FEATURES",
    "WindowedTracks",
    "Standardizer",
    "check_tracks",
    "window_counts",
    "make_windows",
    "pool_window_scores",
]

N_FEATURES = 24


def check_tracks(features: Sequence[np.ndarray], *, name: str = "split",
                 n_features: int = N_FEATURES) -> np.ndarray:
    """Validate a list of ``(n_beats, n_features)`` tracks; return their lengths.

    Parameters
    ----------
    features : sequence of np.ndarray [shape=(n_beats, n_features)]
    name : str
        What the tracks are (``'train split'``...), quoted in error messages.
    n_features : int

    Returns
    -------
    lengths : np.ndarray [shape=(n_tracks,), dtype=int64]

    Raises
    ------
    DataError
        No tracks, a track that is not 2-d with ``n_features`` columns, or a
        track of 0 beats (the message names the track's index).
    """
    if len(features) == 0:
        raise DataError(f"{name}: no tracks; a baseline needs at least one track in every split")
    lengths = np.empty(len(features), dtype=np.int64)
    for i, f in enumerate(features):  # a cheap shape check per track, no per-beat work
        shape = np.shape(f)
        if len(shape) != 2 or shape[1] != n_features:
            raise DataError(f"{name}: track {i} has shape {shape}; expected (n_beats, {n_features}) "
                            f"beat-aligned features (12 chroma + 12 timbre)")
        if shape[0] == 0:
            raise DataError(f"{name}: track {i} has 0 beats; a track needs at least one beat to be classified")
        lengths[i] = shape[0]
    return lengths


def window_counts(lengths: np.ndarray, *, window: int = 32, stride: int = 32) -> np.ndarray:
    """Windows of each track: ``1 + (max(n, window) - window) // stride``.

    Parameters
    ----------
    lengths : np.ndarray [shape=(n_tracks,)]
        Beats per track (each ``> 0``).
    window, stride : int

    Returns
    -------
    counts : np.ndarray [shape=(n_tracks,), dtype=int64]
        At least 1 for every track (short tracks are wrap-padded to one window).
    """
    _check_window(window, stride)
    padded = np.maximum(np.asarray(lengths, dtype=np.int64), window)
    return 1 + (padded - window) // stride


def _check_window(window: int, stride: int) -> None:
    if int(window) < 1:
        raise ParameterError(f"window={window}: must be >= 1 beat")
    if int(stride) < 1:
        raise ParameterError(f"stride={stride}: must be >= 1 beat")


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean and standard deviation, fit on training beats.

    Attributes
    ----------
    mean : np.ndarray [shape=(n_features,), dtype=float64]
    std : np.ndarray [shape=(n_features,), dtype=float64]
        A feature whose standard deviation is below ``min_std`` gets 1 (it is
        only centred).

    Examples
    --------
    >>> import numpy as np
    >>> s = Standardizer.fit([np.arange(48, dtype=np.float32).reshape(2, 24)])
    >>> s.transform(np.arange(24, 48, dtype=np.float32)[None])[0, :2].tolist()  # mean 12 + f, std 12
    [1.0, 1.0]
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: Sequence[np.ndarray], *, min_std: float = 1e-6,
            name: str = "train split") -> "Standardizer":
        """Mean and standard deviation of each feature over all beats of ``features``.

        Parameters
        ----------
        features : sequence of np.ndarray [shape=(n_beats, 24)]
            The *training* tracks; every beat counts once.
        min_std : float
            Standard deviations below this become 1.

        Raises
        ------
        DataError
            Bad tracks (see :func:`check_tracks`) or non-finite values.
        """
        n_features = np.shape(features[0])[1] if len(features) and np.ndim(features[0]) == 2 else N_FEATURES
        check_tracks(features, name=name, n_features=n_features)
        beats = np.concatenate(features, axis=0).astype(np.float64, copy=False)
        if not np.isfinite(beats).all():
            raise DataError(f"{name}: features contain NaN or infinite values")
        mean = beats.mean(axis=0)
        std = beats.std(axis=0)
        std = np.where(std < min_std, 1.0, std)
        return cls(mean, std)

    def transform(self, beats: np.ndarray) -> np.ndarray:
        """``(beats - mean) / std`` as float32, ``beats`` of shape ``(..., n_features)``."""
        beats = np.asarray(beats)
        if beats.shape[-1] != len(self.mean):
            raise DataError(f"features have {beats.shape[-1]} columns; the standardizer was fit on {len(self.mean)}")
        return ((beats - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """``{"mean": [...], "std": [...]}`` (JSON-serializable)."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Standardizer":
        """Rebuild from :meth:`to_dict` output."""
        mean, std = np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64)
        if mean.shape != std.shape or mean.ndim != 1 or not (std > 0).all():
            raise DataError(f"not a standardizer: mean {mean.shape}, std {std.shape} (std must be > 0)")
        return cls(mean, std)


@dataclass(frozen=True)
class WindowedTracks:
    """The windows of one split (see the module docstring).

    Attributes
    ----------
    beats : np.ndarray [shape=(n_rows, n_features), dtype=float32]
        All tracks concatenated (C-contiguous, standardized if asked), short
        tracks wrap-padded to ``window`` beats.
    offsets : np.ndarray [shape=(n_tracks + 1,), dtype=int64]
        Track ``i`` occupies rows ``offsets[i]:offsets[i + 1]`` of ``beats``.
    lengths : np.ndarray [shape=(n_tracks,), dtype=int64]
        The tracks' original numbers of beats (before padding).
    starts : np.ndarray [shape=(n_windows,), dtype=int64]
        Row of ``beats`` where each window begins.
    track : np.ndarray [shape=(n_windows,), dtype=int64]
        Track index of each window, non-decreasing.
    window, stride : int
    """

    beats: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    starts: np.ndarray
    track: np.ndarray
    window: int
    stride: int

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def n_tracks(self) -> int:
        return len(self.lengths)

    @property
    def n_features(self) -> int:
        return self.beats.shape[1]

    @property
    def n_inputs(self) -> int:
        """Values in a window, ``window * n_features`` (768 by default)."""
        return self.window * self.n_features

    @property
    def counts(self) -> np.ndarray:
        """Windows per track, shape ``(n_tracks,)``."""
        return np.bincount(self.track, minlength=self.n_tracks)

    def view(self) -> np.ndarray:
        """Read-only zero-copy view ``(n_rows - window + 1, window * n_features)``; row ``s`` is the window at beat row ``s``."""
        flat = self.beats.reshape(-1)
        return np.lib.stride_tricks.sliding_window_view(flat, self.n_inputs)[:: self.n_features]

    def windows(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """Copy of the windows ``index`` (all by default), shape ``(k, window * n_features)``."""
        starts = self.starts if index is None else self.starts[index]
        return self.view()[starts]

    def torch_view(self, device="cpu"):
        """The :meth:`view` as a torch tensor on ``device`` (``Tensor.unfold``; one copy of ``beats`` there).

        Gather windows with ``view.index_select(0, starts[idx])``: advanced
        indexing (``view[starts[idx]]``) first copies the whole overlapping
        view and is ~1000 times slower.

        Returns
        -------
        view : torch.Tensor [shape=(n_rows - window + 1, window * n_features)]
        starts : torch.Tensor [shape=(n_windows,), dtype=int64]
        """
        import torch

        flat = torch.from_numpy(self.beats).to(device).reshape(-1)
        view = flat.unfold(0, self.n_inputs, self.n_features)
        return view, torch.from_numpy(self.starts).to(device)


def make_windows(features: Sequence[np.ndarray], *, window: int = 32, stride: int = 32,
                 standardizer: Standardizer | None = None, name: str = "split") -> WindowedTracks:
    """Cut tracks into windows of ``window`` beats every ``stride`` beats.

    Parameters
    ----------
    features : sequence of np.ndarray [shape=(n_beats, 24)]
    window : int
        Beats per window (32 in the paper: 768 values).
    stride : int
        Beats between the starts of consecutive windows of a track (32: no overlap).
    standardizer : Standardizer or None
        Applied to every beat first (fit it on the training split).
    name : str
        Quoted in error messages.

    Returns
    -------
    WindowedTracks

    Raises
    ------
    ParameterError
        ``window`` or ``stride`` below 1.
    DataError
        No tracks, a track of the wrong width or of 0 beats, non-finite values.

    Examples
    --------
    >>> import numpy as np
    >>> w = make_windows([np.zeros((40, 24), np.float32)], window=32, stride=4)
    >>> w.starts.tolist()
    [0, 4, 8]
    """
    _check_window(window, stride)
    n_features = standardizer.mean.shape[0] if standardizer is not None else N_FEATURES
    lengths = check_tracks(features, name=name, n_features=n_features)
    beats = np.concatenate(features, axis=0)
    if not np.isfinite(beats).all():
        bad_row = int(np.flatnonzero(~np.isfinite(beats).all(axis=1))[0])
        bad = int(np.searchsorted(np.cumsum(lengths), bad_row, side="right"))
        raise DataError(f"{name}: track {bad} contains NaN or infinite feature values")
    beats = standardizer.transform(beats) if standardizer is not None else np.ascontiguousarray(beats, np.float32)
    n = len(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    if (lengths < window).any():  # wrap-pad short tracks: row r of track t reads beat (r mod n_t)
        padded = np.maximum(lengths, window)
        new_offsets = np.concatenate([[0], np.cumsum(padded)])
        t = np.repeat(np.arange(n), padded)
        pos = np.arange(new_offsets[-1]) - new_offsets[t]
        beats = beats[offsets[t] + pos % lengths[t]]
        offsets = new_offsets
    counts = window_counts(lengths, window=window, stride=stride)
    track = np.repeat(np.arange(n), counts)
    k = np.arange(len(track)) - np.repeat(np.cumsum(counts) - counts, counts)  # window number within its track
    starts = offsets[track] + k * stride
    return WindowedTracks(np.ascontiguousarray(beats), offsets.astype(np.int64), lengths, starts.astype(np.int64),
                          track.astype(np.int64), int(window), int(stride))


def pool_window_scores(scores: np.ndarray, track: np.ndarray, n_tracks: int, *, how: str = "mean") -> np.ndarray:
    """Combine per-window scores into per-track scores.

    Parameters
    ----------
    scores : np.ndarray [shape=(n_windows, n_classes)]
        Window posteriors (``how='mean'``) or log-posteriors (``how='sum'``).
    track : np.ndarray [shape=(n_windows,)]
        Track index of each window; every track ``0..n_tracks-1`` must have a window.
    n_tracks : int
    how : {'mean', 'sum'}

    Returns
    -------
    pooled : np.ndarray [shape=(n_tracks, n_classes)]

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[0.9, 0.1], [0.9, 0.1], [1e-4, 1 - 1e-4]])
    >>> pool_window_scores(p, np.zeros(3, int), 1).argmax(1).tolist()
    [0]
    >>> pool_window_scores(np.log(p), np.zeros(3, int), 1, how="sum").argmax(1).tolist()
    [1]
    """
    if how not in ("mean", "sum"):
        raise ParameterError(f"how={how!r}: must be 'mean' or 'sum'")
    scores = np.asarray(scores)
    track = np.asarray(track, dtype=np.int64)
    if scores.ndim != 2 or len(scores) != len(track):
        raise ParameterError(f"scores {scores.shape} must be (n_windows, n_classes) with n_windows = {len(track)}")
    counts = np.bincount(track, minlength=n_tracks)
    if len(counts) != n_tracks or (counts == 0).any():
        raise ParameterError(f"every one of the {n_tracks} tracks needs at least one window")
    if len(track) > 1 and (np.diff(track) < 0).any():
        out = np.zeros((n_tracks, scores.shape[1]), dtype=np.float64)
        np.add.at(out, track, scores)
    else:
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        out = np.add.reduceat(scores.astype(np.float64, copy=False), first, axis=0)
    return out / counts[:, None] if how == "mean" else out
