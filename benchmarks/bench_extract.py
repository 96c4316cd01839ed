"""Extraction end to end (read + align + write shards) against reading the same fields with plain h5py."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import h5py

from beatdbn.store.extract import extract
from beatdbn.synth.corpus import generate_corpus

FIELDS = ("analysis/segments_start", "analysis/segments_pitches", "analysis/segments_timbre",
          "analysis/segments_loudness_max", "analysis/beats_start", "musicbrainz/artist_mbtags",
          "musicbrainz/artist_mbtags_count", "metadata/songs", "analysis/songs", "musicbrainz/songs")


def _read_floor(paths) -> None:
    """The floor: open every file and read the fields beatdbn uses, nothing else."""
    for p in paths:
        with h5py.File(p, "r") as h5:
            for name in FIELDS:
                h5[name][()]


def run(results, quick: bool = False) -> None:
    n = 120 if quick else 600
    tmp = Path(tempfile.mkdtemp(prefix="beatdbn-bench-"))
    try:
        paths = generate_corpus(tmp / "msd", n, seed=1)
        _read_floor(paths)  # warm the page cache for every contender
        t0 = time.perf_counter()
        _read_floor(paths)
        t_floor = time.perf_counter() - t0
        timings = {}
        for name, kw in [("sync", dict(scheduler="sync")), ("local-1", dict(scheduler="local", workers=1)),
                         ("local-2", dict(scheduler="local", workers=2))]:
            out = tmp / f"store-{name}"
            t0 = time.perf_counter()
            report = extract([tmp / "msd"], out, shard_size=max(8, n // 16), **kw)
            timings[name] = time.perf_counter() - t0
            assert report.tracks_total == n
        beats = report.beats_total
        results.add("extract: tracks/s, 1 process (read+align+write)", n / timings["sync"], "tracks/s",
                    baseline="plain h5py read of the same fields (floor)", baseline_value=n / t_floor,
                    note=f"{beats / n:.0f} beats a track; ratio 1.0 = at the floor")
        results.add("extract: tracks/s, Dask local cluster, 2 workers", n / timings["local-2"], "tracks/s",
                    baseline="Dask local cluster, 1 worker", baseline_value=n / timings["local-1"],
                    note="includes cluster start-up")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
