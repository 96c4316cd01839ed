"""features.rhythm: librosa 0.11's onset, tempo and beat results without librosa, numba or scipy.stats.

Every comparison runs librosa itself (skipped where it is not installed) on the same input and asserts
the same frames exactly and the same floats bit for bit; the probes at exact ties check the arithmetic
that decides a peak or a trimmed beat. The signals are log-mel spectrograms as the audio front-end
computes them (float32, bands x frames, Fortran order) of seeded noise bursts, click tracks, synthesized
pieces, near-silence and very short clips.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import warnings

import numpy as np
import pytest

from beatdbn.exceptions import ParameterError
from beatdbn.features.filters import hann, mel_filters
from beatdbn.features.rhythm import (beat_track, global_tempo, onset_backtrack, onset_detect, onset_strength,
                                     peak_pick, tempogram)

SR, HOP = 22050, 512

librosa = pytest.importorskip("librosa")


def _log_mel(y: np.ndarray, *, sr: int = SR, hop: int = HOP, n_fft: int = 2048, n_mels: int = 128) -> np.ndarray:
    """The front-end's log-mel: centred frames, Hann, 128-band mel power, dB floored 80 dB below the top."""
    padded = np.pad(np.asarray(y, np.float32), n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    power = np.abs(np.fft.rfft(frames * hann(n_fft).astype(np.float32), axis=1)) ** 2
    mel = (power @ mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels).T).astype(np.float32)
    db = 10.0 * np.log10(np.maximum(mel, np.float32(1e-10)))
    return np.maximum(db, db.max() - np.float32(80.0)).T  # (n_mels, T), Fortran order as analyze_audio's


def _clicks(bpm: float, seconds: float, *, seed: int, jitter: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = 1e-3 * rng.standard_normal(int(seconds * SR))
    burst = np.hanning(64) * rng.standard_normal(64)
    t = 0.1
    while t < seconds - 0.01:
        i = int((t + jitter * rng.standard_normal()) * SR)
        if 0 <= i < len(y) - 64:
            y[i : i + 64] += burst
        t += 60.0 / bpm
    return y


def _noise_bursts(seconds: float, *, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    y = 0.01 * rng.standard_normal(n)
    for start in rng.integers(0, n - 4000, size=int(seconds * 3)):
        y[start : start + 4000] += rng.standard_normal(4000) * np.exp(-np.arange(4000) / 800) * rng.random()
    return y


_PIECES = {"piece0": (0, 1, 72), "piece1": (9, 0, 126), "piece2": (5, 1, 165)}  # tonic, mode, tempo
SIGNAL_NAMES = (["noise0", "noise1", "noise2"] + [f"clicks{bpm}" for bpm in (60, 93, 120, 151, 200)]
                + ["clicks_exact140", *_PIECES, "near_silence", "short_1s", "short_6frames", "one_frame",
                   "sine_steady"])


@functools.lru_cache(maxsize=None)
def _signal(name: str) -> np.ndarray:
    """The log-mel spectrogram of one named test signal (built once)."""
    from beatdbn.synth.audio_keys import render_piece

    if name.startswith("noise"):
        y = _noise_bursts(12.0, seed=int(name[5:]))
    elif name == "clicks_exact140":
        y = _clicks(140, 10.0, seed=1)
    elif name.startswith("clicks"):
        y = _clicks(int(name[6:]), 15.0, seed=int(name[6:]), jitter=0.004)
    elif name in _PIECES:
        tonic, mode, bpm = _PIECES[name]
        y = render_piece(tonic=tonic, mode=mode, seed=int(name[5:]), n_beats=12, tempo=bpm).audio
    elif name == "near_silence":
        y = 1e-7 * np.random.default_rng(7).standard_normal(5 * SR)
    elif name == "short_1s":
        y = _clicks(120, 1.0, seed=3)
    elif name == "short_6frames":
        y = _clicks(120, 0.12, seed=4)
    elif name == "one_frame":
        y = _clicks(120, 0.01, seed=5)[:200]
    else:  # a steady sine: no onset at all
        y = 0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * SR) / SR)
    return _log_mel(y)


def _librosa_tempo(onset_env: np.ndarray, *, chunk: int = 8192) -> float:
    """The front-end's chunked tempo through librosa (the reference for global_tempo)."""
    win = int(librosa.time_to_frames(8.0, sr=SR, hop_length=HOP))
    n = len(onset_env)
    padded = np.pad(onset_env, win // 2, mode="linear_ramp", end_values=[0, 0])
    total = np.zeros(win)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        total += librosa.feature.tempogram(onset_envelope=padded[s : e + win - 1], sr=SR, hop_length=HOP,
                                           win_length=win, center=False).sum(axis=1)
    return float(librosa.feature.tempo(tg=(total / max(n, 1))[:, None], sr=SR, hop_length=HOP, aggregate=None)[0])


# -- equality with librosa on signals ----------------------------------------------------------------

@pytest.mark.parametrize("name", SIGNAL_NAMES)
def test_onset_strength_and_onsets_equal_librosa(name):
    s_db = _signal(name)
    for aggregate in (np.mean, np.median):
        want = librosa.onset.onset_strength(S=s_db, sr=SR, hop_length=HOP, aggregate=aggregate)
        got = onset_strength(s_db, hop_length=HOP, aggregate=aggregate)
        assert got.dtype == want.dtype == np.float32 and got.shape == want.shape == (s_db.shape[1],)
        np.testing.assert_array_equal(got, want)
    env = onset_strength(s_db, hop_length=HOP)
    np.testing.assert_array_equal(onset_detect(env, sr=SR, hop_length=HOP),
                                  librosa.onset.onset_detect(onset_envelope=env, sr=SR, hop_length=HOP))
    got = onset_detect(env, sr=SR, hop_length=HOP, backtrack=True)
    try:
        want = librosa.onset.onset_detect(onset_envelope=env, sr=SR, hop_length=HOP, backtrack=True)
    except librosa.ParameterError:  # no peak to backtrack: librosa refuses, we answer "no onsets"
        assert len(got) == 0
    else:
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", SIGNAL_NAMES)
def test_tempo_and_beats_equal_librosa(name):
    env = onset_strength(_signal(name), hop_length=HOP, aggregate=np.median)
    if not env.any():  # the 1-frame clip and the steady sine: no onset energy, no beats
        want_bpm, want = librosa.beat.beat_track(onset_envelope=env, sr=SR, hop_length=HOP, bpm=120.0)
        got_bpm, got = beat_track(env, sr=SR, hop_length=HOP, bpm=120.0)
        assert got_bpm == want_bpm == 0.0 and len(got) == len(want) == 0
        return
    tempo = global_tempo(env, sr=SR, hop_length=HOP)
    assert tempo == _librosa_tempo(env)
    for bpm in (tempo, 61.0, 99.4, 143.55, 187.0, 300.0):
        want_bpm, want = librosa.beat.beat_track(onset_envelope=env, sr=SR, hop_length=HOP, bpm=bpm)
        got_bpm, got = beat_track(env, sr=SR, hop_length=HOP, bpm=bpm)
        assert got_bpm == want_bpm and got.dtype == np.int64
        np.testing.assert_array_equal(got, want, err_msg=f"{name} at {bpm} BPM")
    _, untrimmed = librosa.beat.beat_track(onset_envelope=env, sr=SR, hop_length=HOP, bpm=tempo, trim=False)
    np.testing.assert_array_equal(beat_track(env, sr=SR, hop_length=HOP, bpm=tempo, trim=False)[1], untrimmed)


def test_click_tracks_are_found_at_their_tempo():
    """Not only equal to librosa, also right: clicks at 120 BPM give ~120 BPM and beats 0.5 s apart."""
    env = onset_strength(_signal("clicks120"), hop_length=HOP, aggregate=np.median)
    tempo, beats = beat_track(env, sr=SR, hop_length=HOP, bpm=global_tempo(env, sr=SR, hop_length=HOP))
    assert tempo == pytest.approx(120, rel=0.03)
    assert np.median(np.diff(beats)) * HOP / SR == pytest.approx(0.5, abs=0.03)


def test_default_tempo_and_beats_equal_librosa_defaults():
    for name in ("clicks93", "piece1", "noise0"):
        env = onset_strength(_signal(name), hop_length=HOP, aggregate=np.median)
        assert global_tempo(env, sr=SR, hop_length=HOP, chunk=len(env)) == librosa.feature.tempo(
            onset_envelope=env, sr=SR, hop_length=HOP)[0]
        want_bpm, want = librosa.beat.beat_track(onset_envelope=env, sr=SR, hop_length=HOP)
        got_bpm, got = beat_track(env, sr=SR, hop_length=HOP)
        assert got_bpm == want_bpm[0]
        np.testing.assert_array_equal(got, want)


def test_small_tempogram_chunks_give_librosa_chunked_result():
    env = onset_strength(_signal("piece0"), hop_length=HOP, aggregate=np.median)
    for chunk in (1, 37, 200):
        assert global_tempo(env, sr=SR, hop_length=HOP, chunk=chunk) == _librosa_tempo(env, chunk=chunk)


@pytest.mark.parametrize("win_length,center", [(384, True), (344, False), (31, True)])
def test_tempogram_equals_librosa_bit_for_bit(win_length, center):
    env = onset_strength(_signal("noise1"), hop_length=HOP, aggregate=np.median)
    want = librosa.feature.tempogram(onset_envelope=env, sr=SR, hop_length=HOP, win_length=win_length,
                                     center=center)
    np.testing.assert_array_equal(tempogram(env, win_length=win_length, center=center), want)


def test_real_recording_equals_librosa():
    from conftest import SHARED_AUDIO, missing

    from beatdbn.features.audio_decode import decode_blocks

    path = SHARED_AUDIO / "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.ogg"
    if not path.exists():
        pytest.skip(missing(path))
    y = np.concatenate(list(decode_blocks(path, sr=SR, max_duration=40.0)))
    s_db = _log_mel(y)
    mean_env = onset_strength(s_db, hop_length=HOP)
    np.testing.assert_array_equal(mean_env, librosa.onset.onset_strength(S=s_db, sr=SR, hop_length=HOP))
    np.testing.assert_array_equal(onset_detect(mean_env, sr=SR, hop_length=HOP, backtrack=True),
                                  librosa.onset.onset_detect(onset_envelope=mean_env, sr=SR, hop_length=HOP,
                                                             backtrack=True))
    env = onset_strength(s_db, hop_length=HOP, aggregate=np.median)
    tempo = global_tempo(env, sr=SR, hop_length=HOP)
    assert tempo == _librosa_tempo(env)
    np.testing.assert_array_equal(beat_track(env, sr=SR, hop_length=HOP, bpm=tempo)[1],
                                  librosa.beat.beat_track(onset_envelope=env, sr=SR, hop_length=HOP, bpm=tempo)[1])


# -- the arithmetic at ties and in the beat tracker's stages --------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_peak_pick_decides_exact_ties_as_librosa(dtype):
    """Peaks set exactly at (and a few ulps around) mean + delta: the mean's rounding decides them."""
    rng = np.random.default_rng(3)
    kw = dict(pre_max=1, post_max=1, pre_avg=4, post_avg=5, delta=0.07, wait=1)
    for _ in range(60):
        x = (rng.random(30) * 0.2).astype(dtype)
        n = int(rng.integers(0, 30))
        lo, hi = max(0, n - 4), min(30, n + 5)
        v = dtype(0.5)
        for _ in range(40):  # fixed point of v = mean(window with x[n] = v) + delta
            x[n] = v
            v = dtype(np.float64(x[lo:hi].sum(dtype=np.float64)) / (hi - lo) + np.float32(0.07))
        for step in (-2, -1, 0, 1, 2):
            x[n] = v
            for _ in range(abs(step)):
                x[n] = np.nextafter(x[n], dtype(np.sign(step) * np.inf))
            np.testing.assert_array_equal(peak_pick(x, **kw), librosa.util.peak_pick(x, **kw))


def _trim_tie(rng, *, max_frames: int, iterations: int):
    """A random beat set whose first beat's local score is the trimming threshold it helps define."""
    from beatdbn.features.rhythm import _trim_threshold

    n = int(rng.integers(10, max_frames))
    score = rng.random(n) * 3
    m = int(rng.integers(1, min(n, 12)))  # fewer than 5 beats: numba convolves the other way round
    beats = np.zeros(n, bool)
    beats[0] = True
    beats[rng.choice(np.arange(1, n), m - 1, replace=False)] = True
    p = 1.0
    for _ in range(iterations):  # a contraction: its fixed point is the tie
        score[0] = p
        p = _trim_threshold(score[beats], n)
    return score, beats, p


def test_beat_trimming_decides_exact_ties_as_librosa():
    """A beat's local score set exactly at (and around) the trimming threshold: the threshold's rounding decides."""
    from beatdbn.features.rhythm import _trim_threshold

    trim_beats = getattr(librosa.beat, "__trim_beats")
    rng = np.random.default_rng(2)
    cases = [_trim_tie(rng, max_frames=120, iterations=60) for _ in range(150)]
    rng = np.random.default_rng(2)
    # the 53rd of these is a tie where librosa's root (a square root, as numba compiles `** 0.5`) and
    # libm's pow(x, 0.5) differ in the last bit
    cases += [[_trim_tie(rng, max_frames=200, iterations=100) for _ in range(53)][-1]]
    for score, beats, p in cases:
        for step in (-1, 0, 1):
            score[0] = p if step == 0 else np.nextafter(p, step * np.inf)
            kept = score[0] > _trim_threshold(score[beats], len(score))
            assert kept == bool(trim_beats(score, beats, True)[0])


@pytest.mark.parametrize("fpb", [1.0, 2.0, 3.0, 5.0, 8.0, 11.0, 22.0, 23.0, 43.0, 86.0])
def test_beat_tracker_stages_equal_librosa_bit_for_bit(fpb):
    from beatdbn.features.rhythm import _beat_local_score, _beat_track_dp

    local_score = getattr(librosa.beat, "__beat_local_score")
    track_dp = getattr(librosa.beat, "__beat_track_dp")
    normalize = getattr(librosa.beat, "__normalize_onsets")
    rng = np.random.default_rng(int(fpb))
    for n in (3, 40, 1500):
        env = normalize((np.abs(rng.standard_normal(n)) * (rng.random(n) < 0.3)).astype(np.float32))
        want = local_score(env, np.array([fpb]))
        got = _beat_local_score(env.astype(np.float64), fpb)
        np.testing.assert_array_equal(got, want)
        with np.errstate(divide="ignore"):  # librosa's log(0) at fpb = 1 (that candidate never wins)
            want_link, want_cum = track_dp(want, np.array([fpb]), 100.0)
        got_link, got_cum = _beat_track_dp(want, fpb, 100.0)
        np.testing.assert_array_equal(got_cum, want_cum)
        np.testing.assert_array_equal(got_link, want_link)


# -- edge cases ---------------------------------------------------------------------------------------

def test_all_zero_and_constant_envelopes():
    for env in (np.zeros(500, np.float32), np.full(500, 3.0, np.float32)):
        assert len(onset_detect(env, backtrack=True)) == 0
        assert len(librosa.onset.onset_detect(onset_envelope=env, backtrack=True)) == 0
    zero = np.zeros(500, np.float32)
    assert beat_track(zero, bpm=120.0)[0] == 0.0 and len(beat_track(zero, bpm=120.0)[1]) == 0
    assert len(beat_track(zero)[1]) == 0  # no tempo estimated for nothing
    flat = np.full((128, 300), -80.0, np.float32, order="F")  # a constant spectrogram: no flux at all
    for aggregate in (np.mean, np.median):
        np.testing.assert_array_equal(onset_strength(flat, aggregate=aggregate),
                                      librosa.onset.onset_strength(S=flat, aggregate=aggregate))
    assert not onset_strength(flat).any()


def test_non_finite_envelope_has_no_onsets_as_in_librosa():
    env = np.abs(np.random.default_rng(0).standard_normal(200)).astype(np.float32)
    env[50] = np.nan
    assert len(onset_detect(env)) == 0 == len(librosa.onset.onset_detect(onset_envelope=env))
    with pytest.raises(ParameterError, match="not finite"):
        beat_track(env, bpm=120.0)
    with pytest.raises(ParameterError, match="not finite"):
        global_tempo(env)


def test_no_peak_with_backtracking_gives_no_onsets_where_librosa_raises():
    ramp = np.linspace(0.0, 1.0, 300).astype(np.float32)  # rises too slowly for any frame to be a peak
    with pytest.raises(librosa.ParameterError):
        librosa.onset.onset_detect(onset_envelope=ramp, backtrack=True)
    assert len(onset_detect(ramp)) == 0 == len(librosa.onset.onset_detect(onset_envelope=ramp))
    assert onset_detect(ramp, backtrack=True).tolist() == []


def test_short_envelopes():
    for n in (1, 2, 3, 4, 9):
        env = np.random.default_rng(n).random(n).astype(np.float32)
        np.testing.assert_array_equal(onset_detect(env, backtrack=True),
                                      librosa.onset.onset_detect(onset_envelope=env, backtrack=True))
        assert global_tempo(env) == _librosa_tempo(env)
        if n >= 2:
            np.testing.assert_array_equal(beat_track(env, bpm=120.0)[1],
                                          librosa.beat.beat_track(onset_envelope=env, bpm=120.0)[1])
        else:  # librosa's last-beat search reads frame -2 (IndexError); we find no beat
            with pytest.raises(IndexError), np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # librosa's std of one frame
                librosa.beat.beat_track(onset_envelope=env, bpm=120.0)
            assert beat_track(env, bpm=120.0)[0] == 120.0 and len(beat_track(env, bpm=120.0)[1]) == 0
    assert len(onset_detect(np.zeros(0, np.float32))) == 0
    with pytest.raises(ValueError, match="empty axis"):
        _librosa_tempo(np.zeros(0, np.float32))
    with pytest.raises(ParameterError, match="empty"):
        global_tempo(np.zeros(0, np.float32))


def test_backtracking_with_separate_energy_and_examples():
    energy = np.array([3, 2, 1, 2, 5, 4, 2, 3, 6, 1.0])
    events = np.array([0, 4, 8, 9])
    np.testing.assert_array_equal(onset_backtrack(events, energy), librosa.onset.onset_backtrack(events, energy))
    env = np.abs(np.random.default_rng(1).standard_normal(400)).astype(np.float32)
    other = np.cumsum(env)[::-1].copy()
    np.testing.assert_array_equal(onset_detect(env, backtrack=True, energy=other),
                                  librosa.onset.onset_detect(onset_envelope=env, backtrack=True, energy=other))
    np.testing.assert_array_equal(onset_detect(env, normalize=False),
                                  librosa.onset.onset_detect(onset_envelope=env, normalize=False))


# -- failure paths ------------------------------------------------------------------------------------

def test_bad_arguments_raise_parameter_error():
    env = np.ones(100, np.float32)
    cases = [
        (lambda: onset_strength(np.ones((4, 10)), lag=0), "lag=0"),
        (lambda: onset_strength(np.ones((4, 10)), hop_length=-1), "hop_length=-1"),
        (lambda: peak_pick(env, pre_max=-1, post_max=1, pre_avg=1, post_avg=1, delta=0.1, wait=1), "pre_max=-1"),
        (lambda: peak_pick(env, pre_max=1, post_max=0, pre_avg=1, post_avg=1, delta=0.1, wait=1), "post_max=0"),
        (lambda: peak_pick(np.ones((2, 5)), pre_max=1, post_max=1, pre_avg=1, post_avg=1, delta=0, wait=0),
         r"shape \(2, 5\)"),
        (lambda: onset_backtrack(np.array([-1, 3]), env), "negative event"),
        (lambda: onset_detect(np.ones((2, 5))), "1-d"),
        (lambda: tempogram(env, win_length=0), "win_length=0"),
        (lambda: tempogram(env[:10], win_length=20, center=False), "shorter than win_length=20"),
        (lambda: global_tempo(env, start_bpm=0), "start_bpm=0"),
        (lambda: global_tempo(np.ones((2, 5))), "1-d"),
        (lambda: beat_track(env, bpm=-5.0), "bpm=-5.0"),
        (lambda: beat_track(env, bpm=120.0, tightness=0), "tightness=0"),
        (lambda: beat_track(env, bpm=1e5), "faster than two beats a frame"),
        (lambda: beat_track(np.ones((2, 5)), bpm=120.0), "1-d"),
    ]
    for call, message in cases:
        with pytest.raises(ParameterError, match=message):
            call()


# -- what importing costs -------------------------------------------------------------------------------

def test_importing_and_running_pulls_in_neither_librosa_nor_numba_nor_scipy_stats():
    code = ("import sys, numpy as np, beatdbn.features.rhythm as r\n"
            "S = np.random.default_rng(0).normal(size=(128, 700)).astype(np.float32)\n"
            "env = r.onset_strength(S, aggregate=np.median)\n"
            "r.onset_detect(r.onset_strength(S), backtrack=True)\n"
            "r.beat_track(env, bpm=r.global_tempo(env))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('librosa', 'numba', 'llvmlite')\n"
            "             or m.startswith('scipy.stats') or m.startswith('scipy.signal')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_padded_length_is_scipys_next_fast_len():
    import scipy.fft

    from beatdbn.features.rhythm import _next_fast_len

    assert [_next_fast_len(n) for n in range(1, 3000)] == [scipy.fft.next_fast_len(n, real=True)
                                                           for n in range(1, 3000)]
