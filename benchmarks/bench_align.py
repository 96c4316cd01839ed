"""Beat alignment: the vectorized align() against a per-beat Python loop, same inputs."""

from __future__ import annotations

import numpy as np

from benchmarks._common import best_of
from beatdbn.features.beats import _align_loop, align


def _track(rng, n_seg=900, n_beats=400, seconds=210.0):
    seg_t = np.sort(rng.uniform(0, seconds, n_seg))
    seg_t[0] = 0.0
    feats = rng.normal(size=(n_seg, 24))
    beats = np.linspace(0.4, seconds - 0.5, n_beats) + rng.normal(0, 0.01, n_beats)
    return seg_t, feats, np.sort(beats), seconds


def run(results, quick: bool = False) -> None:
    rng = np.random.default_rng(0)
    tracks = [_track(rng) for _ in range(8 if quick else 32)]
    n_beats = sum(len(t[2]) for t in tracks)

    def fast():
        for seg_t, feats, beats, dur in tracks:
            align(seg_t, feats, beats, duration=dur)

    def loop():
        for seg_t, feats, beats, dur in tracks[:4]:
            _align_loop(seg_t, feats, beats, duration=dur)

    t_fast = best_of(fast, repeat=5)
    t_loop = best_of(loop, repeat=2) * len(tracks) / 4
    results.add("align: beats/s (900 segments, 400 beats a track)", n_beats / t_fast, "beats/s",
                baseline="per-beat Python loop", baseline_value=n_beats / t_loop)
