"""Beat alignment: Echo Nest segments to one 24-d vector per beat.

Each beat ``j`` spans ``[b_j, b_{j+1})``; each segment ``i`` spans
``[s_i, s_{i+1})`` (the last one runs to the track's end). A beat's vector is
the **overlap-weighted mean** of the segment vectors covering its span::

    x_j = sum_i overlap(i, j) * f_i / sum_i overlap(i, j)

Computed without any loop over beats or segments: the overlap matrix
``W[j, i] = |beat j ∩ segment i|`` is banded (beat ``j`` meets the segments
from the one containing its start to the last one starting before its end),
so its nonzeros come from two ``searchsorted`` calls, it is built directly in
CSR form, and every beat's weighted sum is one sparse product ``W @ F``. The
cost is O((segments + beats) x dims).

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
* **Sanity range** (:func:`align_track`): a segment whose chroma leaves
  ``[-CHROMA_LIMIT, CHROMA_LIMIT]`` or whose timbre leaves
  ``[-TIMBRE_LIMIT, TIMBRE_LIMIT]`` is treated as non-finite (a gap): the Echo
  Nest's timbre stays within about ±500 (319 real MSD files: -446 .. 471) and
  the audio front-end's MFCCs within about ±1000, so 1e4 leaves room and
  still catches values like 1e30 or 1e308 (which would overflow to inf in
  float32). Times (beats, segments) beyond ``TIME_LIMIT`` seconds are dropped
  like non-finite ones, and a duration beyond it is ignored. A track whose
  segments are more than ``MAX_BAD_FRACTION`` unusable raises
  :class:`~beatdbn.exceptions.DataError` (the input is skipped with that
  reason). The result is always finite.
* **Cost bound**: a track with more than :data:`MAX_BEATS` beats or
  :data:`MAX_SEGMENTS` segments, or whose fallback grid would have more than
  ``MAX_BEATS`` beats, raises :class:`~beatdbn.exceptions.DataError` before
  anything of that size is built (the MSD reader checks the same limits on
  the file's shapes, before reading the arrays).

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

__all__ = ["align", "beat_grid", "align_track", "FALLBACK_PERIOD", "CHROMA_LIMIT", "TIMBRE_LIMIT", "TIME_LIMIT",
           "MAX_BAD_FRACTION", "MAX_BEATS", "MAX_SEGMENTS"]

#: Beat period (seconds) of the fallback grid when the tempo is unusable.
FALLBACK_PERIOD = 0.5
#: Largest believable |chroma| of a segment (the MSD's lie in [0, 1]).
CHROMA_LIMIT = 10.0
#: Largest believable |timbre| of a segment (Echo Nest: about ±500; audio MFCCs: about ±1000).
TIMBRE_LIMIT = 1e4
#: Largest believable time (seconds) of a beat, a segment or a track's end: one day.
TIME_LIMIT = 86400.0
#: Fastest tempo (BPM) a fallback grid takes from a file; beyond it the grid is every 0.5 s.
MAX_TEMPO = 1000.0
#: More unusable segments than this fraction make a track unreadable (skipped with the reason).
MAX_BAD_FRACTION = 0.5
#: Most beats one track may have: two hours at 320 BPM (librosa's fastest tempo), 38,400, with room.
#: The MSD's longest tracks (about 50 minutes) stay far below; the audio front-end analyses 2 h at most.
MAX_BEATS = 40_000
#: Most segments one track may have: two hours at 27 a second, the most the audio front-end cuts
#: (an onset every other 23 ms frame plus a beat at 320 BPM); the MSD averages about 4 a second.
MAX_SEGMENTS = 200_000


def beat_grid(*, start: float, end: float, tempo: float | None, max_beats: int = MAX_BEATS) -> np.ndarray:
    """Beat times for a track without beats: a regular grid at ``tempo``.

    Parameters
    ----------
    start, end : float
        First grid point and the end of the track (seconds).
    tempo : float or None
        Beats per minute; missing, non-positive, non-finite or above ``MAX_TEMPO`` gives a 0.5 s grid.
    max_beats : int
        Most beats the grid may have (:data:`MAX_BEATS`).

    Returns
    -------
    np.ndarray [shape=(n,)]
        At least one beat (``start``), even for an empty span.

    Raises
    ------
    DataError
        The grid would have more than ``max_beats`` beats (checked before it is built).
    """
    period = 60.0 / tempo if tempo is not None and np.isfinite(tempo) and 0 < tempo <= MAX_TEMPO else FALLBACK_PERIOD
    if not np.isfinite(period):  # a denormal tempo (5e-324 BPM) gives an infinite period
        period = FALLBACK_PERIOD
    if not np.isfinite(start):
        start = 0.0
    if not np.isfinite(end) or end <= start:
        return np.array([start])
    span = (end - start) / period - 1e-9
    if span > max_beats:  # checked before the grid exists
        raise DataError(f"a beat grid from {start:g} s to {end:g} s every {period:g} s would have {span:,.0f} beats; "
                        f"beatdbn reads at most {max_beats:,} (MAX_BEATS) per track")
    n = max(1, int(np.ceil(span)))
    return start + period * np.arange(n)


def _median_step(times: np.ndarray, default: float) -> float:
    """Median of the positive steps between sorted times (``default`` if none)."""
    if len(times) < 2:
        return default
    steps = np.diff(times)
    steps = steps[steps > 0]
    if not len(steps):
        return default
    k = len(steps) // 2
    part = np.partition(steps, [k - 1, k] if len(steps) % 2 == 0 else [k])
    return float(part[k] if len(steps) % 2 else 0.5 * (part[k - 1] + part[k]))


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
    finite = np.isfinite(beats)
    if not finite.all():
        beats = beats[finite]
    if len(beats) > 1 and (np.diff(beats) < 0).any():
        beats = np.sort(beats)
    if len(beats) == 0:
        raise ParameterError("no finite beat times; build a grid with beat_grid() for tracks without beats")

    keep = np.isfinite(seg_t)
    if not keep.all():
        seg_t, feats = seg_t[keep], feats[keep]
    if len(seg_t) > 1 and (np.diff(seg_t) < 0).any():
        order = np.argsort(seg_t, kind="stable")
        seg_t, feats = seg_t[order], feats[order]
    usable = np.isfinite(feats.sum(axis=1))  # NaN/inf anywhere in a row makes the sum non-finite
    all_usable = bool(usable.all())
    if not all_usable and not usable.any():
        raise DataError("no usable segment (none, or all with non-finite features)")
    vals = feats if all_usable else np.where(usable[:, None], feats, 0.0)
    dur = float(duration) if duration is not None and np.isfinite(duration) else -np.inf

    # Segment spans [seg_t[i], seg_end[i]) and beat spans [beats[j], beat_end[j]).
    seg_end = np.empty_like(seg_t)
    seg_end[:-1] = seg_t[1:]
    seg_end[-1] = dur if dur > seg_t[-1] else seg_t[-1] + _median_step(seg_t, FALLBACK_PERIOD)
    beat_end = np.empty_like(beats)
    beat_end[:-1] = beats[1:]
    last_end = beats[-1] + _median_step(beats, FALLBACK_PERIOD)
    beat_end[-1] = min(last_end, dur) if dur > beats[-1] else last_end

    # The overlap matrix W[j, i] = |beat j  ∩  segment i| is banded: beat j meets
    # segments first[j] .. last[j]. Its non-zeros row by row, then W @ vals as one bincount over
    # (beat, dimension) bins: scipy.sparse's CSR product bit for bit (the same order of sums), at 2x its
    # time on 400 beats but without its import (0.15-0.2 s of a one-song predict).
    n_beats = len(beats)
    first = np.clip(np.searchsorted(seg_t, beats, side="right") - 1, 0, None)
    last = np.searchsorted(seg_t, beat_end, side="left") - 1
    counts = np.clip(last - first + 1, 0, None)
    indptr = np.zeros(n_beats + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    rows = np.repeat(np.arange(n_beats), counts)
    cols = first[rows] + np.arange(indptr[-1]) - indptr[rows]
    overlap = np.minimum(beat_end[rows], seg_end[cols]) - np.maximum(beats[rows], seg_t[cols])
    np.clip(overlap, 0.0, None, out=overlap)
    if not all_usable:
        overlap *= usable[cols]
    covered = np.bincount(rows, weights=overlap, minlength=n_beats)
    d = vals.shape[1]
    weighted = np.asarray(vals, dtype=np.float64).take(cols, axis=0)
    weighted *= overlap[:, None]
    bins = (rows[:, None] * d + np.arange(d)).ravel()
    sums = np.bincount(bins, weights=weighted.ravel(), minlength=n_beats * d).reshape(n_beats, d)
    ok = covered > 1e-9 * np.maximum(1.0, np.abs(beat_end))
    out = np.empty((n_beats, vals.shape[1]))
    out[ok] = sums[ok] / covered[ok, None]

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
    name = track.source or track.track_id
    n_seg, n_beats = np.size(track.segments_start), np.size(track.beats_start)
    if n_seg > MAX_SEGMENTS or n_beats > MAX_BEATS:
        raise DataError(f"{name}: {n_beats:,} beats and {n_seg:,} segments; beatdbn reads at most "
                        f"{MAX_BEATS:,} beats (MAX_BEATS) and {MAX_SEGMENTS:,} segments (MAX_SEGMENTS) per track")
    seg_t = np.asarray(track.segments_start, dtype=np.float64).ravel()
    beats = np.asarray(track.beats_start, dtype=np.float64).ravel()
    beats = np.sort(beats[np.abs(beats) <= TIME_LIMIT])  # drops NaN and inf too
    if len(seg_t) == 0:
        raise DataError(f"{name}: no segments to align")
    pitches = np.asarray(track.segments_pitches, dtype=np.float64)
    timbre = np.asarray(track.segments_timbre, dtype=np.float64)
    if pitches.ndim != 2 or timbre.ndim != 2 or len(pitches) != len(seg_t) or len(timbre) != len(seg_t):
        raise DataError(f"{name}: segment arrays disagree in shape (starts {seg_t.shape}, chroma {pitches.shape}, "
                        f"timbre {timbre.shape})")
    with np.errstate(invalid="ignore"):
        bad_time = ~(np.abs(seg_t) <= TIME_LIMIT)
        bad = (bad_time | ~(np.abs(pitches) <= CHROMA_LIMIT).all(axis=1)
               | ~(np.abs(timbre) <= TIMBRE_LIMIT).all(axis=1))  # NaN fails every comparison
    n_bad = int(bad.sum())
    if n_bad > MAX_BAD_FRACTION * len(seg_t):
        raise DataError(f"{name}: {n_bad} of {len(seg_t)} segments have non-finite or out-of-range values "
                        f"(sanity range |chroma| <= {CHROMA_LIMIT:g}, |timbre| <= {TIMBRE_LIMIT:g}, "
                        f"|time| <= {TIME_LIMIT:g} s)")
    seg = np.concatenate([pitches, timbre], axis=1)
    if n_bad:
        seg_t = np.where(bad_time, np.nan, seg_t)
        seg[bad] = np.nan  # a gap: the segment adds no weight
    duration = float(track.duration) if np.isfinite(track.duration) and abs(track.duration) <= TIME_LIMIT else None
    if len(beats) == 0:
        finite = seg_t[np.isfinite(seg_t)]
        start = float(finite.min()) if len(finite) else 0.0
        end = duration if duration is not None else (float(finite.max()) if len(finite) else start)
        try:
            beats = beat_grid(start=start, end=end, tempo=track.tempo)
        except DataError as exc:
            raise DataError(f"{name}: no beats, and {exc}") from None
    try:
        feats = align(seg_t, seg, beats, duration=duration)
    except DataError as exc:
        raise DataError(f"{name}: {exc}") from None
    if not np.isfinite(feats).all():  # cannot happen within the sanity range; never store it if it does
        raise DataError(f"{name}: alignment gave non-finite values")
    np.clip(feats[:, :12], 0.0, 1.0, out=feats[:, :12])
    return feats, beats


def _align_loop(segments_start, segment_features, beats_start, *, duration=None) -> np.ndarray:
    """Reference implementation: a plain Python loop over beats.

    The straightforward way to write :func:`align` (same spans, same edge
    rules), kept to check the vectorized version and as the benchmark's
    baseline. Finite, sorted inputs only.
    """
    seg_t = np.asarray(segments_start, dtype=np.float64)
    feats = np.asarray(segment_features, dtype=np.float64)
    beats = np.sort(np.asarray(beats_start, dtype=np.float64))
    usable = np.isfinite(feats).all(axis=1)
    dur = duration if duration is not None else -np.inf
    seg_end = np.append(seg_t[1:], dur if dur > seg_t[-1] else seg_t[-1] + _median_step(seg_t, FALLBACK_PERIOD))
    last_end = beats[-1] + _median_step(beats, FALLBACK_PERIOD)
    beat_end = np.append(beats[1:], min(last_end, dur) if dur > beats[-1] else last_end)
    out = np.zeros((len(beats), feats.shape[1]))
    vals = np.where(usable[:, None], feats, 0.0)
    for j in range(len(beats)):  # one beat at a time, NumPy over the segments
        lo, hi = beats[j], beat_end[j]
        overlap = np.clip(np.minimum(hi, seg_end) - np.maximum(lo, seg_t), 0.0, None) * usable
        total = overlap.sum()
        if total > 1e-9 * max(1.0, abs(hi)):
            out[j] = overlap @ vals / total
        else:
            gaps = np.maximum(0.0, np.maximum(seg_t - max(hi, lo), lo - seg_end))
            out[j] = feats[int(np.argmin(np.where(usable, gaps, np.inf)))]
    return out.astype(np.float32)
