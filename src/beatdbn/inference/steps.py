"""Which beats (and seconds) each layer-4 step of a track covers.

Layer-4 step ``t`` reads beats ``[t * hop, t * hop + receptive_field)``
(``hop = pool_1 * pool_3 = 16`` beats, about 4 bars of 4/4; the receptive
field is 51 beats). A track shorter than the receptive field is padded to it
and has one step, covering all its beats. Ends are clipped to the track.
"""

from __future__ import annotations

import numpy as np

from beatdbn.models.layout import Layout

__all__ = ["step_beat_ranges", "step_times", "step_table", "BEATS_PER_BAR"]

#: Bars are drawn every 4 beats (the MSD's time signature is not read for this).
BEATS_PER_BAR = 4


def step_beat_ranges(n_beats: int, n_steps: int, config: Layout = Layout()) -> np.ndarray:
    """``(n_steps, 2)`` int array of ``[first beat, end beat)`` per step (vectorized)."""
    starts = np.arange(n_steps, dtype=np.int64) * config.hop
    ends = np.minimum(starts + config.receptive_field, n_beats)
    return np.stack([np.minimum(starts, max(n_beats - 1, 0)), ends], axis=1)


def step_times(beats: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """``(n_steps, 2)`` seconds ``[start, end]`` of each step from the beat times (end: the last beat's start)."""
    beats = np.asarray(beats, dtype=np.float64).ravel()
    if not len(beats) or not len(ranges):
        return np.zeros((len(ranges), 2))
    first = beats[np.clip(ranges[:, 0], 0, len(beats) - 1)]
    last = beats[np.clip(ranges[:, 1] - 1, 0, len(beats) - 1)]
    return np.stack([first, last], axis=1)


def step_table(config: Layout, n_beats: int, n_steps: int, beats: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(n_steps, 2)`` beats ``[first, end)`` and seconds ``[start, end]`` of each layer-4 step."""
    ranges = step_beat_ranges(n_beats, n_steps, config)
    return ranges, step_times(np.zeros(0) if beats is None else beats, ranges)
