"""Beat alignment: Echo Nest segments to one 24-d vector per beat.

Each beat ``j`` spans ``[b_j, b_{j+1})``; each segment ``i`` spans
``[s_i, s_{i+1})`` (the last one runs to the track's end). A beat's vector is
the **overlap-weighted mean** of the segment vectors covering its span::

    x_j = sum_i overlap(i, j) * f_i / sum_i overlap(i, j)

Computed without any loop over beats or segments: the segment vectors form a
piecewise-constant function of time ``f(t)``; its running integral ``F(t)`` is
piecewise linear and known exactly at every segment boundary (a cumulative
sum), so ``F`` at every beat boundary is one ``searchsorted`` and one
multiply-add, and each beat is ``(F(b_{j+1}) - F(b_j)) / covered time``.
The cost is O((segments + beats) x dims).

Edge rules (each tested in ``tests/test_beats.py``):

* **Span of the last beat**: it ends one median beat period after it starts,
  or at the track's duration if that comes sooner.
* **Span of the last segment**: to the track's duration if that is later than
  its start, else one median segment length.
* **Beats not covered by any segment** (before the first segment, after the
  last one, or inside a gap left by a dropped segment): the vector of the
  nearest usable segment (by time distance to the beat's span).
* **Zero-length beats** (repeated beat times): the value of the segment at
  that instant (the nearest one, by the rule above); the beat is kept, so the
  output always has one row per finite input beat.
* **No beats**: a grid from the first segment to the end of the track at the
  file's tempo (60 / tempo seconds), or every 0.5 s when the tempo is missing,
  zero, or not finite. :func:`beat_grid` builds it.
* **NaN or inf**: non-finite beat times are dropped; a segment with a
  non-finite start is dropped; a segment with any non-finite feature value is
  treated as missing (its span becomes a gap that adds no weight). A track
  with no usable segment at all raises :class:`~beatdbn.exceptions.DataError`.
* Unsorted beat or segment times are sorted first.

Examples
--------
>>> import numpy as np
>>> from beatdbn.features.beats import align
>>> seg_start = np.array([0.0, 1.0, 2.0])
>>> seg_vals = np.array([[0.0], [1.0], [2.0]])
>>> align(seg_start, seg_vals, np.array([0.5, 1.5]), duration=3.0).ravel().tolist()
[0.5, 1.5]
"""

from __future__ import annotations

import numpy as np

from beatdbn.exceptions import DataError, ParameterError

__all__ = ["align", "beat_grid", "align_track", "FALLBACK_PERIOD"]

#: Beat period (seconds) of the fallback grid when the tempo is unusable.
FALLBACK_PERIOD = 0.5


def beat_grid(*, start: float, end: float, tempo: float | None) -> np.ndarray:
    """Beat times for a track without beats: a regular grid at ``tempo``.

    Parameters
    ----------
    start, end : float
        First grid point and the end of the track (seconds).
    tempo : float or None
        Beats per minute; missing, non-positive or non-finite gives a 0.5 s grid.

    Returns
    -------
    np.ndarray [shape=(n,)]
        At least one beat (``start``), even for an empty span.
    """
    period = 60.0 / tempo if tempo is not None and np.isfinite(tempo) and tempo > 0 else FALLBACK_PERIOD
    if not np.isfinite(start):
        start = 0.0
    if not np.isfinite(end) or end <= start:
        return np.array([start])
    n = max(1, int(np.ceil((end - start) / period - 1e-9)))
    return start + period * np.arange(n)


def _median_step(times: np.ndarray, default: float) -> float:
    if len(times) < 2:
        return default
    steps = np.diff(times)
    steps = steps[steps > 0]
    return float(np.median(steps)) if len(steps) else default


def align(
    segments_start: np.ndarray,
    segment_features: np.ndarray,
    beats_start: np.ndarray,
    *,
    duration: float | None = None,
) -> np.ndarray:
    """Average segment features over each beat, weighted by overlap.

    Parameters
    ----------
    segments_start : np.ndarray [shape=(n_segments,)]
        Segment onsets in seconds.
    segment_features : np.ndarray [shape=(n_segments, d)]
        One vector per segment (chroma and timbre side by side: d = 24).
    beats_start : np.ndarray [shape=(n_beats,)]
        Beat onsets in seconds; must hold at least one finite time (use
        :func:`beat_grid` for a track without beats).
    duration : float, optional
        The track's length in seconds; ends the last segment and beat.

    Returns
    -------
    np.ndarray [shape=(n_finite_beats, d), dtype=float32]

    Raises
    ------
    DataError
        No usable segment (none, or every one non-finite).
    ParameterError
        Shapes disagree, or no finite beat time.
    """
    seg_t = np.asarray(segments_start, dtype=np.float64).ravel()
    feats = np.asarray(segment_features, dtype=np.float64)
    if feats.ndim == 1:
        feats = feats[:, None]
    if feats.ndim != 2 or len(feats) != len(seg_t):
        raise ParameterError(
            f"segment_features has shape {feats.shape}; expected ({len(seg_t)}, d) to match segments_start"
        )
    beats = np.asarray(beats_start, dtype=np.float64).ravel()
    beats = np.sort(beats[np.isfinite(beats)])
    if len(beats) == 0:
        raise ParameterError("no finite beat times; build a grid with beat_grid() for tracks without beats")

    keep = np.isfinite(seg_t)
    seg_t, feats = seg_t[keep], feats[keep]
    order = np.argsort(seg_t, kind="stable")
    seg_t, feats = seg_t[order], feats[order]
    usable = np.isfinite(feats).all(axis=1)
    if not usable.any():
        raise DataError("no usable segment (none, or all with non-finite features)")
    dur = float(duration) if duration is not None and np.isfinite(duration) else -np.inf

    # Segment spans [seg_t[i], seg_end[i]).
    seg_end = np.empty_like(seg_t)
    seg_end[:-1] = seg_t[1:]
    seg_end[-1] = dur if dur > seg_t[-1] else seg_t[-1] + _median_step(seg_t, FALLBACK_PERIOD)
    seg_len = seg_end - seg_t

    # Beat spans [beats[j], beat_end[j]).
    beat_end = np.empty_like(beats)
    beat_end[:-1] = beats[1:]
    last_end = beats[-1] + _median_step(beats, FALLBACK_PERIOD)
    beat_end[-1] = min(last_end, dur) if dur > beats[-1] else last_end

    # Running integrals of f(t) * usable and of usable (covered time) at segment starts.
    vals = np.where(usable[:, None], feats, 0.0)
    w = usable.astype(np.float64)
    cum_f = np.zeros((len(seg_t) + 1, vals.shape[1]))
    np.cumsum(seg_len[:, None] * vals, axis=0, out=cum_f[1:])
    cum_w = np.concatenate([[0.0], np.cumsum(seg_len * w)])

    def integrals(t: np.ndarray):
        i = np.searchsorted(seg_t, t, side="right") - 1  # segment containing t (-1: before all)
        ic = np.clip(i, 0, None)
        inside = np.clip(t - seg_t[ic], 0.0, seg_len[ic]) * (i >= 0)
        return cum_f[ic] + inside[:, None] * vals[ic], cum_w[ic] + inside * w[ic]

    f_hi, w_hi = integrals(beat_end)
    f_lo, w_lo = integrals(beats)
    covered = w_hi - w_lo
    out = np.empty((len(beats), vals.shape[1]))
    ok = covered > 1e-9 * np.maximum(1.0, np.abs(beat_end))
    out[ok] = (f_hi[ok] - f_lo[ok]) / covered[ok, None]

    if not ok.all():  # uncovered or zero-length beats: the nearest usable segment
        u_start, u_end, u_vals = seg_t[usable], seg_end[usable], vals[usable]
        lo, hi = beats[~ok], np.maximum(beat_end[~ok], beats[~ok])
        k = np.clip(np.searchsorted(u_start, lo, side="right") - 1, 0, len(u_start) - 1)
        k2 = np.clip(k + 1, 0, len(u_start) - 1)

        def gap(kk):  # time between the beat span and usable segment kk (0 if they touch)
            return np.maximum(0.0, np.maximum(u_start[kk] - hi, lo - u_end[kk]))

        nearest = np.where(gap(k2) < gap(k), k2, k)
        out[~ok] = u_vals[nearest]
    return out.astype(np.float32)


def align_track(track) -> tuple[np.ndarray, np.ndarray]:
    """Beat-aligned ``[12 chroma | 12 timbre]`` features of one MSD track.

    Parameters
    ----------
    track : beatdbn.features.msd.Track
        ``segments_loudness_max`` is not used: the paper drops it, as
        timbre[0] is already loudness-like.

    Returns
    -------
    features : np.ndarray [shape=(n_beats, 24), dtype=float32]
        Chroma clipped to [0, 1], then timbre.
    beats : np.ndarray [shape=(n_beats,), dtype=float64]
        The beat times used (the file's, or the fallback grid).

    Raises
    ------
    DataError
        The track has no usable segment; the message names the file.
    """
    seg_t = np.asarray(track.segments_start, dtype=np.float64)
    beats = np.asarray(track.beats_start, dtype=np.float64)
    beats = np.sort(beats[np.isfinite(beats)])
    if len(seg_t) == 0:
        raise DataError(f"{track.source or track.track_id}: no segments to align")
    if len(beats) == 0:
        finite = seg_t[np.isfinite(seg_t)]
        start = float(finite.min()) if len(finite) else 0.0
        beats = beat_grid(start=start, end=track.duration, tempo=track.tempo)
    seg = np.concatenate([track.segments_pitches, track.segments_timbre], axis=1)
    try:
        feats = align(seg_t, seg, beats, duration=track.duration)
    except DataError as exc:
        raise DataError(f"{track.source or track.track_id}: {exc}") from None
    np.clip(feats[:, :12], 0.0, 1.0, out=feats[:, :12])
    return feats, beats
