"""The audio front-end's filter banks, window and DCT in NumPy alone: librosa's mel and chroma filters, scipy's Hann.

``librosa.filters`` imports ``scipy.signal`` (1-4 s in a fresh process on a 2-core machine), which a
one-song ``beatdbn predict`` cannot afford; these functions compute the same arrays from the same
formulas (tests compare them with librosa 0.11 and scipy element by element).

* :func:`mel_filters` -- ``librosa.filters.mel(sr=, n_fft=, n_mels=)`` (Slaney mel scale and area
  normalization, fmin 0, fmax sr/2);
* :func:`chroma_filters` -- ``librosa.filters.chroma(sr=, n_fft=, tuning=)`` (Ellis' Gaussian bumps,
  octave weighting centred on C5 with 2 octaves' width, L2-normalized columns, starting at C);
* :func:`hann` -- ``scipy.signal.get_window("hann", n, fftbins=True)`` (periodic);
* :func:`dct_basis` -- the first rows of the orthonormal DCT-II, so that ``x @ dct_basis(n, k).T`` is
  ``scipy.fft.dct(x, type=2, norm="ortho")[..., :k]`` (one matmul; a one-song ``predict`` then never
  imports ``scipy.fft``, 0.14-0.2 s in a fresh process).
"""

from __future__ import annotations

import numpy as np

from beatdbn.exceptions import ParameterError

__all__ = ["mel_filters", "chroma_filters", "hann", "dct_basis"]


def hann(n: int) -> np.ndarray:
    """Periodic Hann window of length ``n`` (float64), as ``scipy.signal.get_window("hann", n)``.

    Examples
    --------
    >>> hann(4).round(12).tolist()
    [0.0, 0.5, 1.0, 0.5]
    """
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def dct_basis(n: int, k: int | None = None) -> np.ndarray:
    """Rows 0..k-1 of the orthonormal DCT-II matrix of size ``n`` (float64, shape ``(k, n)``).

    ``D[j, i] = sqrt(2 / n) cos(pi j (2 i + 1) / (2 n))``, row 0 scaled by ``1 / sqrt(2)``: the matrix of
    ``scipy.fft.dct(type=2, norm="ortho")``, orthogonal, so ``D @ D.T`` is the identity.

    Examples
    --------
    >>> d = dct_basis(4)
    >>> bool(np.allclose(d @ d.T, np.eye(4))), d[0].round(3).tolist()
    (True, [0.5, 0.5, 0.5, 0.5])
    """
    k = n if k is None else k
    if not 0 < k <= n:
        raise ParameterError(f"dct_basis: k={k} must lie in 1..n={n}")
    j = np.arange(k)[:, None]
    basis = np.cos(np.pi * j * (2 * np.arange(n)[None, :] + 1) / (2 * n)) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    return basis


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    mels = f / f_sp
    log_part = min_log_hz / f_sp + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep
    return np.where(f >= min_log_hz, log_part, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters(*, sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Mel filter bank ``(n_mels, 1 + n_fft // 2)`` float32, as ``librosa.filters.mel(sr=sr, n_fft=n_fft,
    n_mels=n_mels)``.

    Examples
    --------
    >>> mel_filters(sr=22050, n_fft=2048, n_mels=40).shape
    (40, 1025)
    """
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def chroma_filters(*, sr: int, n_fft: int, tuning: float = 0.0, n_chroma: int = 12) -> np.ndarray:
    """Chroma filter bank ``(n_chroma, 1 + n_fft // 2)`` float32, as ``librosa.filters.chroma(sr=sr,
    n_fft=n_fft, tuning=tuning)``.

    Examples
    --------
    >>> chroma_filters(sr=22050, n_fft=4096).shape
    (12, 2049)
    """
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (tuning / n_chroma)
    frqbins = n_chroma * np.log2(frequencies / (a440 / 16))
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    d = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    d = np.remainder(d + half + 10 * n_chroma, n_chroma) - half
    wts = np.exp(-0.5 * (2 * d / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    length = np.sqrt(np.sum(np.abs(wts) ** 2, axis=0, keepdims=True))
    small = length < np.finfo(wts.dtype).tiny
    wts = wts / np.where(small, 1.0, length)
    wts *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - 5.0) / 2) ** 2)), (n_chroma, 1))
    wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)], dtype=np.float32)
