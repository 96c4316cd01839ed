"""Onsets, tempo and beats in NumPy alone: librosa 0.11's rhythm functions as the audio front-end calls them.

librosa's onset, tempo and beat functions run numba kernels (loading their cached machine code costs
1.5-3 s in a fresh process) and ``librosa.feature`` imports ``scipy.stats`` (1-2 s more), while the
analysis of a whole song takes a fraction of a second. A one-song ``beatdbn predict`` cannot afford
that, so these functions compute the same results from the same formulas, in the same floating-point
order where it decides a result (tests compare them with librosa 0.11.0 on noise, click tracks,
synthesized music and edge cases):

* :func:`onset_strength` -- ``librosa.onset.onset_strength(S=S, hop_length=...)`` (any ``aggregate``);
* :func:`onset_detect` -- ``librosa.onset.onset_detect(onset_envelope=..., backtrack=...)``, with
  :func:`peak_pick` (``librosa.util.peak_pick``) and :func:`onset_backtrack`
  (``librosa.onset.onset_backtrack``);
* :func:`tempogram` -- ``librosa.feature.tempogram(onset_envelope=..., win_length=..., center=...)``;
* :func:`global_tempo` -- the front-end's tempo: ``librosa.feature.tempo`` (log-normal prior at 120 BPM,
  at most 320 BPM) of the mean tempogram, the tempogram built in chunks;
* :func:`beat_track` -- ``librosa.beat.beat_track(onset_envelope=..., bpm=...)`` (frames).

Where librosa fails or its result is undefined, these return a defined result instead (each function's
Returns or Raises section says where). Only NumPy is imported: :func:`tempogram` runs librosa's
autocorrelation on scipy.fft's pocketfft through :mod:`beatdbn.features.fft`, without importing
``scipy.fft`` (0.15-0.2 s in a fresh process).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from beatdbn.exceptions import ParameterError
from beatdbn.features.fft import irfft, rfft

__all__ = ["onset_strength", "onset_detect", "peak_pick", "onset_backtrack", "tempogram", "global_tempo",
           "beat_track"]


# -- onsets ---------------------------------------------------------------------------------------------

def onset_strength(
    S: np.ndarray,
    *,
    hop_length: int = 512,
    n_fft: int = 2048,
    lag: int = 1,
    aggregate: Callable[..., np.ndarray] = np.mean,
) -> np.ndarray:
    """Spectral-flux onset strength of a log-power spectrogram.

    Equals ``librosa.onset.onset_strength(S=S, hop_length=hop_length, n_fft=n_fft, lag=lag,
    aggregate=aggregate)`` (``max_size=1``, ``center=True``, no detrending): the positive difference of
    each band from ``lag`` frames before, aggregated over bands, shifted right by
    ``lag + n_fft // (2 * hop_length)`` frames (zeros first) and cut to the input's length.

    Parameters
    ----------
    S : np.ndarray [shape=(n_bands, n_frames) or (n_frames,)]
        Log-power spectrogram (dB), e.g. a log-mel spectrogram. The result has its dtype.
    hop_length : int > 0
        Frame step in samples.
    n_fft : int > 0
        Window length the spectrogram was computed with (for the centring shift).
    lag : int > 0
        Frames between the compared spectra.
    aggregate : callable
        Combines bands: ``aggregate(x, axis=0)``, e.g. ``np.mean`` (librosa's default) or ``np.median``.

    Returns
    -------
    onset_envelope : np.ndarray [shape=(n_frames,)]

    Raises
    ------
    ParameterError
        ``lag`` or ``hop_length`` not a positive integer.

    Examples
    --------
    >>> import numpy as np
    >>> S = np.zeros((4, 8), np.float32); S[:, 4:] = 10.0      # every band rises by 10 dB at frame 4
    >>> onset_strength(S).tolist()                             # shown 2 frames late (the centring shift)
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 0.0]
    """
    for name, value in (("lag", lag), ("hop_length", hop_length), ("n_fft", n_fft)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ParameterError(f"onset_strength: {name}={value!r} must be a positive integer")
    S = np.atleast_2d(S)
    flux = np.maximum(0.0, S[..., lag:] - S[..., :-lag])
    env = np.empty(flux.shape[:-2] + (1,) + flux.shape[-1:], order="F" if np.isfortran(flux) else "C",
                   dtype=flux.dtype)  # librosa.util.sync's output array, cast to the input's dtype
    env[..., 0, :] = aggregate(flux, axis=-2)
    pad = [(0, 0)] * env.ndim
    pad[-1] = (int(lag + n_fft // (2 * hop_length)), 0)
    return np.pad(env, pad, mode="constant")[..., : S.shape[-1]][..., 0, :]


def peak_pick(x: np.ndarray, *, pre_max: int, post_max: int, pre_avg: int, post_avg: int, delta: float,
              wait: int) -> np.ndarray:
    """Greedy peak picking: frames ``n`` that are a local maximum and stand above the local mean.

    Equals ``librosa.util.peak_pick(x, pre_max=..., post_max=..., pre_avg=..., post_avg=..., delta=...,
    wait=...)`` (sparse): ``n`` is a peak when ``x[n] == max(x[n - pre_max : n + post_max])`` and
    ``x[n] >= mean(x[n - pre_avg : n + post_avg]) + delta`` (windows cut at the ends), scanning left to
    right and skipping ``wait`` frames after each peak. As librosa's numba kernel, the mean is summed
    sequentially in ``x``'s precision, divided in float64, rounded back to ``x``'s dtype, and ``delta``
    is a float32.

    Parameters
    ----------
    x : np.ndarray [shape=(n,), dtype=float32 or float64]
    pre_max, post_max, pre_avg, post_avg, wait : int
        Window extents in frames (rounded up, as librosa); ``post_max`` and ``post_avg`` at least 1.
    delta : float >= 0
        Margin above the local mean.

    Returns
    -------
    peaks : np.ndarray [shape=(n_peaks,), dtype=int64]
        Indices of the peaks, increasing.

    Raises
    ------
    ParameterError
        A negative window, ``post_max`` or ``post_avg`` below 1, a negative ``delta``, or ``x`` not 1-d.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([0, 1, 0, 0, 0, 0, 3, 0, 0, 2, 2, 0], np.float32)
    >>> peak_pick(x, pre_max=1, post_max=1, pre_avg=2, post_avg=3, delta=0.1, wait=1).tolist()
    [1, 6, 9]
    """
    if min(pre_max, pre_avg, wait) < 0 or post_max <= 0 or post_avg <= 0 or delta < 0:
        raise ParameterError(f"peak_pick: windows must be >= 0 (post_max, post_avg >= 1) and delta >= 0; got "
                             f"pre_max={pre_max}, post_max={post_max}, pre_avg={pre_avg}, post_avg={post_avg}, "
                             f"delta={delta}, wait={wait}")
    x = np.asarray(x)
    if x.ndim != 1:
        raise ParameterError(f"peak_pick: x must be 1-d, got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    pre_max, post_max, pre_avg, post_avg, wait = (int(math.ceil(v)) for v in (pre_max, post_max, pre_avg,
                                                                               post_avg, wait))
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # local maximum over x[n - pre_max : n + post_max]
    lo_pad = np.full(pre_max, -np.inf, x.dtype)
    hi_pad = np.full(post_max - 1, -np.inf, x.dtype)
    windows = np.lib.stride_tricks.sliding_window_view(np.concatenate([lo_pad, x, hi_pad]), pre_max + post_max)
    candidate = x == windows.max(axis=1)
    # local mean over x[n - pre_avg : n + post_avg]: a sequential sum (zeros outside add nothing)
    padded = np.concatenate([np.zeros(pre_avg, x.dtype), x, np.zeros(post_avg - 1, x.dtype)])
    total = np.zeros(n, x.dtype)
    for k in range(pre_avg + post_avg):
        total += padded[k : k + n]
    idx = np.arange(n)
    count = np.minimum(idx + post_avg, n) - np.maximum(idx - pre_avg, 0)
    mean = (total.astype(np.float64) / count).astype(x.dtype)
    candidate &= x >= mean + np.float32(delta)
    peaks = []
    next_free = 0
    for c in np.flatnonzero(candidate).tolist():
        if c >= next_free:
            peaks.append(c)
            next_free = c + wait + 1
    return np.asarray(peaks, dtype=np.int64)


def onset_backtrack(events: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Move each event back to the nearest preceding local minimum of ``energy``.

    Equals ``librosa.onset.onset_backtrack(events, energy)``: the minima are frames where ``energy``
    stops falling (``e[i] <= e[i-1]`` and ``e[i] < e[i+1]``), plus frame 0; each event goes to the last
    minimum at or before it.

    Parameters
    ----------
    events : np.ndarray [shape=(n_events,), dtype=int]
        Event frames (non-negative).
    energy : np.ndarray [shape=(n_frames,)]

    Returns
    -------
    backtracked : np.ndarray [shape=(n_events,), dtype=int64]
        Empty for no events (librosa raises a ParameterError there).

    Raises
    ------
    ParameterError
        A negative event frame.

    Examples
    --------
    >>> import numpy as np
    >>> energy = np.array([3, 2, 1, 2, 5, 4, 2, 3, 6, 1.0])
    >>> onset_backtrack(np.array([4, 8]), energy).tolist()
    [2, 6]
    """
    events = np.asarray(events)
    energy = np.asarray(energy)
    if np.any(events < 0):
        raise ParameterError(f"onset_backtrack: negative event frame in {events.tolist()}")
    minima = np.flatnonzero((energy[1:-1] <= energy[:-2]) & (energy[1:-1] < energy[2:]))
    minima = np.unique(np.concatenate([[0], 1 + minima])).astype(np.int64)
    if not len(events):
        return np.zeros(0, dtype=np.int64)
    return minima[np.searchsorted(minima, events, side="right") - 1]


def onset_detect(
    onset_envelope: np.ndarray,
    *,
    sr: float = 22050,
    hop_length: int = 512,
    backtrack: bool = False,
    energy: np.ndarray | None = None,
    normalize: bool = True,
) -> np.ndarray:
    """Onset frames picked from an onset strength envelope.

    Equals ``librosa.onset.onset_detect(onset_envelope=onset_envelope, sr=sr, hop_length=hop_length,
    backtrack=backtrack, energy=energy, normalize=normalize)`` (frames): the envelope scaled to [0, 1],
    then :func:`peak_pick` with librosa's tuned windows (local maximum over the previous 30 ms, above
    the mean of the surrounding 100 ms by 0.07, at least 30 ms apart). With ``backtrack`` and no
    ``energy``, each onset moves back to the preceding local minimum of the *scaled envelope* (what
    librosa does when given only an envelope).

    Parameters
    ----------
    onset_envelope : np.ndarray [shape=(n_frames,)]
        E.g. :func:`onset_strength`.
    sr : float > 0
        Sample rate (for the windows' lengths in frames).
    hop_length : int > 0
    backtrack : bool
        Move onsets back to the preceding energy minimum (:func:`onset_backtrack`).
    energy : np.ndarray [shape=(n_frames,)], optional
        The curve to backtrack on (default: the scaled envelope).
    normalize : bool
        Scale the envelope to [0, 1] first (librosa's default).

    Returns
    -------
    onsets : np.ndarray [shape=(n_onsets,), dtype=int64]
        Empty when the envelope is constant, empty or not finite. Also empty when no frame is a peak
        with ``backtrack=True``, where librosa raises a ParameterError.

    Raises
    ------
    ParameterError
        ``onset_envelope`` not 1-d.

    Examples
    --------
    >>> import numpy as np
    >>> env = np.zeros(100, np.float32); env[[20, 50, 51, 80]] = [1.0, 0.5, 0.9, 0.7]
    >>> onset_detect(env).tolist()                      # 51 comes 1 frame (< 30 ms) after the peak at 50
    [20, 50, 80]
    >>> onset_detect(env, backtrack=True).tolist()      # back to where the envelope last stopped falling
    [19, 49, 79]
    """
    env = np.asarray(onset_envelope)
    if env.ndim != 1:
        raise ParameterError(f"onset_detect: onset_envelope must be 1-d, got shape {env.shape}")
    if not np.issubdtype(env.dtype, np.floating):
        env = env.astype(np.float64)
    if not len(env):
        return np.zeros(0, dtype=np.int64)
    if normalize:
        env = env - np.min(env, keepdims=True, axis=-1)
        env /= np.max(env, keepdims=True, axis=-1) + np.finfo(env.dtype).tiny
    if not env.any() or not np.all(np.isfinite(env)):
        return np.zeros(0, dtype=np.int64)
    onsets = peak_pick(env, pre_max=0.03 * sr // hop_length, post_max=0.00 * sr // hop_length + 1,
                       pre_avg=0.10 * sr // hop_length, post_avg=0.10 * sr // hop_length + 1,
                       delta=0.07, wait=0.03 * sr // hop_length)
    if backtrack:
        onsets = onset_backtrack(onsets, env if energy is None else energy)
    return onsets


# -- tempo ----------------------------------------------------------------------------------------------

def _hann_periodic(n: int) -> np.ndarray:
    """``scipy.signal.get_window("hann", n, fftbins=True)``, by scipy's own formula (bit for bit)."""
    if n <= 1:
        return np.ones(n)
    fac = np.linspace(-np.pi, np.pi, n + 1, dtype=np.float64)
    w = np.zeros(n + 1, dtype=np.float64)
    for k, a in enumerate((0.5, 0.5)):
        w += np.float64(a) * np.cos(k * fac)
    return w[:-1]


def _next_fast_len(n: int) -> int:
    """The smallest 5-smooth number (2^a 3^b 5^c) >= ``n``: ``scipy.fft.next_fast_len(n, real=True)``."""
    m = max(int(n), 1)
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def tempogram(onset_envelope: np.ndarray, *, win_length: int = 384, center: bool = True) -> np.ndarray:
    """Local autocorrelation of an onset envelope: one normalized column per frame.

    Equals ``librosa.feature.tempogram(onset_envelope=onset_envelope, win_length=win_length,
    center=center)`` (Hann window, each column divided by its maximum magnitude): frame ``t``'s
    column is the autocorrelation, lags ``0 .. win_length - 1``, of the windowed envelope around ``t``
    (centred with linear ramps to zero at the ends when ``center``, else starting at ``t``).

    Parameters
    ----------
    onset_envelope : np.ndarray [shape=(n_frames,)]
    win_length : int > 0
        Autocorrelation window in frames (librosa's default 384; the tempo uses 8 s).
    center : bool

    Returns
    -------
    tempogram : np.ndarray [shape=(win_length, n_frames), or (win_length, n_frames - win_length + 1)
                without ``center``, dtype=float64]

    Raises
    ------
    ParameterError
        ``win_length`` below 1, an envelope shorter than the window (``center=False``), or values
        that are not finite.

    Examples
    --------
    >>> import numpy as np
    >>> env = np.zeros(400); env[::20] = 1.0          # a pulse every 20 frames
    >>> int(np.argmax(tempogram(env, win_length=64)[10:, 200])) + 10
    20
    """
    if win_length < 1:
        raise ParameterError(f"tempogram: win_length={win_length} must be a positive integer")
    env = np.asarray(onset_envelope)
    n = env.shape[-1]
    if center:
        env = np.pad(env, int(win_length // 2), mode="linear_ramp", end_values=[0, 0])
    if env.shape[-1] < win_length:
        raise ParameterError(f"tempogram: the onset envelope ({env.shape[-1]} frames) is shorter than "
                             f"win_length={win_length}; pass a longer envelope or use center=True")
    # frames as rows (n_frames, win_length): the FFTs run along contiguous memory, 1.8x faster than along
    # columns on a 3-minute song, and bit for bit the same values; returned in the (lags, frames) layout of
    # before, contiguous, so that sums over it (global_tempo) add in the same order too
    frames = np.lib.stride_tricks.sliding_window_view(env, win_length)
    if center:
        frames = frames[:n]
    y = frames * _hann_periodic(win_length)
    n_pad = _next_fast_len(2 * win_length - 1)
    spec = rfft(y, n=n_pad)
    power = spec.real**2 + spec.imag**2
    acf = irfft(power, n_pad)[:, :win_length]
    if not np.all(np.isfinite(acf)):
        raise ParameterError("tempogram: the onset envelope holds values that are not finite")
    length = np.max(np.abs(acf), axis=-1, keepdims=True)
    length[length < np.finfo(acf.dtype).tiny] = 1.0
    return np.ascontiguousarray((acf / length).T)


def _tempo_of_tempogram(tg: np.ndarray, *, sr: float, hop_length: int, start_bpm: float, std_bpm: float,
                        max_tempo: float | None) -> float:
    """``librosa.feature.tempo(tg=tg[:, None], aggregate=None)``: argmax of log1p(1e6 tg) + log-normal prior."""
    n_bins = len(tg)
    bpms = np.zeros(n_bins, dtype=np.float64)
    bpms[0] = np.inf
    bpms[1:] = 60.0 * sr / (hop_length * np.arange(1.0, n_bins))
    logprior = -0.5 * ((np.log2(bpms) - np.log2(start_bpm)) / std_bpm) ** 2
    if max_tempo is not None:
        logprior[: int(np.argmax(bpms < max_tempo))] = -np.inf
    return float(bpms[int(np.argmax(np.log1p(1e6 * tg) + logprior))])


def global_tempo(
    onset_envelope: np.ndarray,
    *,
    sr: float = 22050,
    hop_length: int = 512,
    chunk: int = 8192,
    start_bpm: float = 120.0,
    std_bpm: float = 1.0,
    max_tempo: float | None = 320.0,
    ac_size: float = 8.0,
) -> float:
    """Global tempo (BPM) of an onset envelope: librosa's estimate, its tempogram built in chunks.

    Equals the audio front-end's librosa-based ``_tempo`` (:mod:`beatdbn.features.audio`):
    ``librosa.feature.tempo(tg=mean_tg[:, None], sr=sr, hop_length=hop_length, aggregate=None)`` where ``mean_tg`` is the frame mean of
    ``librosa.feature.tempogram(onset_envelope=..., win_length=<ac_size in frames>)``, summed over chunks
    of ``chunk`` frames (memory O(chunk x win) instead of O(frames x win)). With ``chunk`` at least the
    envelope's length it is ``librosa.feature.tempo(onset_envelope=..., sr=sr, hop_length=hop_length)``
    bit for bit (other chunks change the mean's rounding only). The estimate is the tempogram bin
    maximizing ``log1p(1e6 * mean_tg)`` plus a log-normal prior centred on ``start_bpm`` (``std_bpm``
    octaves), bins above ``max_tempo`` excluded.

    Parameters
    ----------
    onset_envelope : np.ndarray [shape=(n_frames,)]
    sr : float > 0
    hop_length : int > 0
    chunk : int > 0
        Frames per tempogram chunk.
    start_bpm : float > 0
    std_bpm : float > 0
    max_tempo : float or None
    ac_size : float > 0
        Autocorrelation window in seconds.

    Returns
    -------
    tempo : float
        BPM, one of ``60 * sr / (hop_length * lag)``.

    Raises
    ------
    ParameterError
        A non-positive ``start_bpm``, ``std_bpm``, ``chunk`` or ``ac_size``, an envelope that is not
        1-d, empty (librosa's padding raises a ValueError there) or not finite.

    Examples
    --------
    >>> import numpy as np
    >>> env = np.zeros(2000, np.float32); env[::22] = 1.0     # a pulse every 22 frames at 22050/512 fps
    >>> round(global_tempo(env), 1)
    117.5
    """
    if start_bpm <= 0 or std_bpm <= 0 or chunk < 1 or ac_size <= 0:
        raise ParameterError(f"global_tempo: start_bpm={start_bpm}, std_bpm={std_bpm}, chunk={chunk} and "
                             f"ac_size={ac_size} must be positive")
    env = np.asarray(onset_envelope)
    if env.ndim != 1:
        raise ParameterError(f"global_tempo: onset_envelope must be 1-d, got shape {env.shape}")
    if not len(env):
        raise ParameterError("global_tempo: the onset envelope is empty; there is no tempo to estimate")
    win = int(np.floor(int(np.asanyarray(ac_size) * sr) // hop_length))  # librosa.time_to_frames(ac_size)
    n = len(env)
    padded = np.pad(env, win // 2, mode="linear_ramp", end_values=[0, 0])
    total = np.zeros(win)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        total += tempogram(padded[s : e + win - 1], win_length=win, center=False).sum(axis=1)
    return _tempo_of_tempogram(total / max(n, 1), sr=sr, hop_length=hop_length, start_bpm=start_bpm,
                               std_bpm=std_bpm, max_tempo=max_tempo)


# -- beats ----------------------------------------------------------------------------------------------

def _beat_local_score(env: np.ndarray, frames_per_beat: float) -> np.ndarray:
    """librosa's ``__beat_local_score``: the envelope convolved with a Gaussian of ~1/32 beat.

    Sums in librosa's order (kernel index ascending), with its exclusion of frame 0 of the envelope;
    the Gaussian uses the C library's ``exp`` as numba does.
    """
    fpb = frames_per_beat
    t = np.arange(-fpb, fpb + 1) * 32.0 / fpb
    window = [math.exp(v) for v in (-0.5 * t**2).tolist()]
    n, k_len = len(env), len(window)
    half = k_len // 2
    score = np.zeros(n)
    for k, w in enumerate(window):
        shift = half - k  # score[i] += w * env[i + shift] for 1 <= i + shift <= n - 1
        lo, hi = max(0, 1 - shift), min(n, n - shift)
        if lo < hi:
            score[lo:hi] += w * env[lo + shift : hi + shift]
    return score


def _beat_track_dp(score: np.ndarray, frames_per_beat: float, tightness: float) -> tuple[np.ndarray, np.ndarray]:
    """librosa's ``__beat_track_dp``: the best cumulative score of a beat at each frame, and its predecessor.

    Frame ``i``'s predecessor is searched ``round(fpb / 2) .. 2 fpb`` frames back, penalized by
    ``tightness * log(d / fpb)**2``; ties go to the nearest. Frames ``round(fpb / 2)`` apart depend on
    none of each other, so each block of that many frames is one vectorized step.
    """
    n = len(score)
    d_lo, d_hi = max(1, int(np.round(frames_per_beat / 2))), int(2 * frames_per_beat)  # d = 0 never wins
    tight = float(np.float32(tightness))  # librosa's kernel takes a float32
    log_fpb = math.log(frames_per_beat)
    # penalty by candidate position in the window cum[i - d_hi : i - d_lo + 1] (d descending), libm's log
    penalty = np.array([tight * ((math.log(d) - log_fpb) * (math.log(d) - log_fpb))
                        for d in range(d_hi, d_lo - 1, -1)])
    width = len(penalty)
    cum_padded = np.full(d_hi + n, -np.inf)  # frames before 0 have no score
    cum = cum_padded[d_hi:]
    backlink = np.full(n, -1, dtype=np.int32)
    windows = np.lib.stride_tricks.sliding_window_view(cum_padded, width)  # windows[i] = cum[i-d_hi : i-d_lo+1]
    for s in range(0, n, d_lo):
        e = min(n, s + d_lo)
        cand = windows[s:e] - penalty
        j = width - 1 - np.argmax(cand[:, ::-1], axis=1)  # the last maximum: the nearest predecessor
        best = cand[np.arange(e - s), j]
        found = best > -np.inf
        cum[s:e] = np.where(found, score[s:e] + best, score[s:e])
        backlink[s:e] = np.where(found, np.arange(s, e) - d_hi + j, -1)
    first = int(np.argmax(score >= 0.01 * score.max()))  # no beat before the first real onset
    backlink[:first] = -1
    return backlink, cum


def _last_beat(cum: np.ndarray) -> int:
    """librosa's ``__last_beat``: the last local maximum of ``cum`` reaching half their median."""
    n = len(cum)
    peak = np.zeros(n, dtype=bool)  # librosa.util.localmax (frame 0 never counts)
    peak[1:-1] = (cum[1:-1] > cum[:-2]) & (cum[1:-1] >= cum[2:])
    peak[-1] = cum[-1] > cum[-2]
    values = np.sort(cum[peak])
    if not len(values):
        return n - 1
    half, odd = divmod(len(values), 2)
    median = values[half] if odd else (values[half - 1] + values[half]) / 2.0  # np.ma.median's arithmetic
    above = np.flatnonzero(peak & (cum >= 0.5 * median))
    return int(above[-1]) if len(above) else n - 1


def _trim_threshold(beat_scores: np.ndarray, n_frames: int) -> float:
    """librosa's trimming threshold: half the RMS of the beats' scores smoothed by ``hanning(5)``.

    ``np.convolve`` as numba computes it (a dot product over increasing positions of the longer
    input), kept ``[2 : n_frames + 2]``; the mean summed sequentially.
    """
    s = beat_scores
    m = len(s)
    padded = np.concatenate([np.zeros(3), s, np.zeros(3)])
    prev, cur, nxt = 0.5 * padded[:m + 4], padded[1 : m + 5], 0.5 * padded[2 : m + 6]  # s[j-3], s[j-2], s[j-1]
    smooth = (prev + cur) + nxt if m >= 5 else (nxt + cur) + prev
    smooth = smooth[2 : n_frames + 2]
    mean_sq = float(np.add.accumulate(smooth * smooth)[-1]) / len(smooth)
    return 0.5 * math.sqrt(mean_sq)  # numba compiles librosa's `** 0.5` to a square root


def beat_track(
    onset_envelope: np.ndarray,
    *,
    sr: float = 22050,
    hop_length: int = 512,
    bpm: float | None = None,
    tightness: float = 100.0,
    trim: bool = True,
) -> tuple[float, np.ndarray]:
    """Beat frames by dynamic programming over an onset envelope (Ellis 2007).

    Equals ``librosa.beat.beat_track(onset_envelope=onset_envelope, sr=sr, hop_length=hop_length,
    bpm=bpm, tightness=tightness, trim=trim)`` (frames): the envelope divided by its standard
    deviation and smoothed by a Gaussian of 1/32 beat gives each frame a local score; a beat at frame
    ``i`` follows the best earlier beat ``d`` frames back (``fpb/2 <= d <= 2 fpb``, ``fpb`` the beat
    period in frames at ``bpm``), penalized by ``tightness * log(d / fpb)**2``; the path is read back
    from the last strong local maximum of the cumulative score, and leading and trailing beats whose
    local score is at most half the RMS of the beats' smoothed scores are dropped (with ``trim``;
    else those at or below 0).

    Parameters
    ----------
    onset_envelope : np.ndarray [shape=(n_frames,)]
        E.g. :func:`onset_strength` with ``aggregate=np.median``.
    sr : float > 0
    hop_length : int > 0
    bpm : float > 0, optional
        The tempo to track; default :func:`global_tempo` of the envelope in one chunk (librosa's
        default estimate exactly).
    tightness : float > 0
        How strictly beats keep the tempo.
    trim : bool
        Drop weak leading and trailing beats.

    Returns
    -------
    tempo : float
        ``bpm`` (or the estimate); 0.0 for an all-zero envelope. librosa returns an array when it
        estimates the tempo.
    beats : np.ndarray [shape=(n_beats,), dtype=int64]
        Beat frames, increasing; empty for an all-zero envelope or one shorter than 2 frames (librosa
        raises an IndexError there).

    Raises
    ------
    ParameterError
        A non-positive ``bpm`` or ``tightness``, a tempo so fast that a beat rounds to 0 frames, or
        an envelope that is not 1-d or not finite.

    Examples
    --------
    >>> import numpy as np
    >>> env = np.zeros(430, np.float32); env[10::22] = 1.0     # a click every 22 frames (117.5 BPM)
    >>> tempo, beats = beat_track(env, bpm=117.45)
    >>> beats[:4].tolist(), np.diff(beats).tolist() == [22] * (len(beats) - 1)
    ([10, 32, 54, 76], True)
    """
    env = np.asarray(onset_envelope)
    if env.ndim != 1:
        raise ParameterError(f"beat_track: onset_envelope must be 1-d, got shape {env.shape}")
    if not env.any():
        return 0.0, np.zeros(0, dtype=np.int64)
    if not np.all(np.isfinite(env)):
        raise ParameterError("beat_track: the onset envelope holds values that are not finite")
    if bpm is None:
        bpm = global_tempo(env, sr=sr, hop_length=hop_length, chunk=max(len(env), 1))
    if not bpm > 0 or not tightness > 0:
        raise ParameterError(f"beat_track: bpm={bpm} and tightness={tightness} must be strictly positive")
    frames_per_beat = float(np.round(float(sr) / hop_length * 60.0 / np.float64(bpm)))
    if frames_per_beat < 1:
        raise ParameterError(f"beat_track: bpm={bpm} is faster than two beats a frame at sr={sr}, "
                             f"hop_length={hop_length}; pass a slower tempo")
    if len(env) < 2:
        return float(bpm), np.zeros(0, dtype=np.int64)
    normed = env / (env.std(ddof=1, axis=-1, keepdims=True) + np.finfo(env.dtype if np.issubdtype(
        env.dtype, np.floating) else np.float32).tiny)
    score = _beat_local_score(normed.astype(np.float64), frames_per_beat)
    backlink, cum = _beat_track_dp(score, frames_per_beat, tightness)
    beats = np.zeros(len(env), dtype=bool)
    n = _last_beat(cum)
    while n >= 0:
        beats[n] = True
        n = int(backlink[n])
    threshold = _trim_threshold(score[beats], len(score)) if trim else 0.0
    strong = np.flatnonzero(score > threshold)
    if len(strong):
        beats[: strong[0]] = False
        beats[strong[-1] + 1 :] = False
    else:
        beats[:] = False
    return float(bpm), np.flatnonzero(beats).astype(np.int64)
