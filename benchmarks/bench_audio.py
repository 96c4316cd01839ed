"""Audio front-end: seconds of audio per wall second on one core, against librosa's defaults.

Ours: :func:`beatdbn.features.audio.audio_features` (streamed decode + soxr,
two STFTs a frame feeding mel, chroma, onsets, tempo, beats, segment means,
beat alignment). Baseline, the same stages written the straightforward way
with librosa's defaults: ``librosa.load(sr=22050)`` (soxr_hq),
``onset_detect(backtrack=True)``, ``chroma_cqt``, ``mfcc(n_mfcc=12)``,
``beat_track`` (each computing its own spectrogram), then the same segment
means and :func:`~beatdbn.features.beats.align`. Both run on the same files
in one run, BLAS limited to one thread, after a warm-up that pays numba's
compilation. Each comparison is given twice: by wall time (the suite's
usual measure) and by the process's CPU time, which on a shared machine
(other jobs on the same cores) is the steadier measure of work per core. Inputs: the six clips in ../shared/data/audio when present
(mono 22050 Hz Ogg Vorbis), plus a generated 60 s 44.1 kHz stereo MP3 (the
usual user file, which needs resampling). The full run adds a 30-minute
44.1 kHz stereo FLAC through our front-end in a subprocess (time and peak
memory).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks._common import best_of

ROOT = Path(__file__).resolve().parent.parent
SHARED_AUDIO = ROOT.parent / "shared" / "data" / "audio"


def _music(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """Chords with partials over a click track (stereo), a stand-in for music."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    bar = int(2.0 * sr)
    for b0 in range(0, n, bar):
        root = rng.integers(12)
        for interval in (0, 4, 7):
            f0 = 220.0 * 2 ** ((root + interval) / 12)
            for k in range(1, 6):
                y[b0 : b0 + bar] += np.sin(2 * np.pi * f0 * k * t[b0 : b0 + bar]) / k
    y *= 0.2 / np.abs(y).max()
    for start in np.arange(0.0, seconds, 0.5):
        i = int(start * sr)
        m = min(n - i, int(0.01 * sr))
        y[i : i + m] += rng.normal(0, 0.3, m)
    return np.stack([y, 0.8 * y], axis=1).astype(np.float32)


def _librosa_defaults(path) -> np.ndarray:
    """The same stages with librosa's straightforward defaults."""
    import librosa

    from beatdbn.features.audio import segment_features  # noqa: F401  (same segment rule below)
    from beatdbn.features.beats import align

    y, sr = librosa.load(path, sr=22050)
    onsets = librosa.onset.onset_detect(y=y, sr=sr, backtrack=True)
    chroma = librosa.feature.chroma_cqt(y=y, sr=sr)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=12)
    _, beats = librosa.beat.beat_track(y=y, sr=sr)
    n = min(chroma.shape[1], mfcc.shape[1])
    bounds = np.unique(np.concatenate([[0], onsets, beats]))
    bounds = bounds[bounds < n]
    counts = np.diff(np.append(bounds, n))[:, None]
    seg_chroma = np.add.reduceat(chroma[:, :n].T, bounds, axis=0)
    seg_chroma /= np.maximum(seg_chroma.max(axis=1, keepdims=True), 1e-12)
    seg_mfcc = np.add.reduceat(mfcc[:, :n].T, bounds, axis=0) / counts
    times = librosa.frames_to_time(bounds, sr=sr)
    beat_times = librosa.frames_to_time(beats, sr=sr) if len(beats) else np.array([0.0])
    return align(times, np.concatenate([seg_chroma, seg_mfcc], axis=1), beat_times, duration=len(y) / sr)


def _cpu_best(fn, *, repeat: int) -> float:
    """Least process CPU time (all threads) of ``fn`` over ``repeat`` tries."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def _ours(path) -> np.ndarray:
    from beatdbn.features.audio import audio_features

    return audio_features(path)[0]


_LONG = """
import json, resource, sys, time
from beatdbn.features.audio import audio_features
audio_features(sys.argv[2])  # warm-up: numba
t, c = time.perf_counter(), time.process_time()
feats, beats, a = audio_features(sys.argv[1])
dt, dc = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"seconds": dt, "cpu": dc, "duration": a.duration,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(results, quick: bool = False) -> None:
    from threadpoolctl import threadpool_limits

    tmp = Path(tempfile.mkdtemp(prefix="beatdbn-bench-audio-"))
    try:
        files = sorted(SHARED_AUDIO.glob("*.ogg")) if SHARED_AUDIO.is_dir() else []
        if quick:
            files = [f for f in files if "Vibe_Ace" in f.name or "trumpet" in f.name]
        mp3 = tmp / "user_44k_stereo.mp3"
        sf.write(mp3, _music(20.0 if quick else 60.0, 44100), 44100, format="MP3", subtype="MPEG_LAYER_III")
        files.append(mp3)
        warm = tmp / "warm.wav"
        sf.write(warm, _music(3.0, 22050)[:, 0], 22050)
        total = sum(sf.info(f).duration for f in files)
        with threadpool_limits(1):
            _ours(warm), _librosa_defaults(warm)
            t_ours = best_of(lambda: [_ours(f) for f in files], repeat=2 if quick else 3)
            t_base = best_of(lambda: [_librosa_defaults(f) for f in files], repeat=1 if quick else 2)
            c_ours = _cpu_best(lambda: [_ours(f) for f in files], repeat=2 if quick else 3)
            c_base = _cpu_best(lambda: [_librosa_defaults(f) for f in files], repeat=1 if quick else 2)
        base = "librosa defaults (load, chroma_cqt, mfcc, onsets, beats)"
        results.add(f"audio front-end: x real time per core, wall ({total:.0f} s of audio, {len(files)} files)",
                    total / t_ours, "x real time", baseline=base, baseline_value=total / t_base)
        results.add(f"audio front-end: x real time per core, CPU time ({total:.0f} s of audio, {len(files)} files)",
                    total / c_ours, "x real time", baseline=base, baseline_value=total / c_base)
        if quick:
            return
        long = tmp / "long_30min_44k_stereo.flac"
        chunk = _music(60.0, 44100, seed=1)
        with sf.SoundFile(long, "w", 44100, 2, format="FLAC", subtype="PCM_16") as fh:
            for _ in range(30):
                fh.write(chunk)
        env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-c", _LONG, str(long), str(warm)], capture_output=True, text=True,
                             env={**os.environ, **env}, check=True)
        info = json.loads(out.stdout.strip().splitlines()[-1])
        results.add("audio front-end: 30-minute 44.1 kHz stereo FLAC, x real time (one core, wall)",
                    info["duration"] / info["seconds"], "x real time",
                    note=f"{info['seconds']:.1f} s wall, {info['cpu']:.1f} s CPU, "
                         f"peak RSS {info['maxrss_mb']:.0f} MB (whole process)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
