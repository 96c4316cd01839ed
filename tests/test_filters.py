"""features.filters: librosa's mel and chroma filter banks and scipy's Hann window, without importing them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from beatdbn.exceptions import ParameterError
from beatdbn.features.filters import chroma_filters, dct_basis, hann, mel_filters


@pytest.mark.parametrize("sr,n_fft,n_mels", [(22050, 2048, 128), (22050, 2048, 40), (44100, 1024, 64),
                                             (16000, 512, 32)])
def test_mel_filters_equal_librosa(sr, n_fft, n_mels):
    librosa = pytest.importorskip("librosa")
    want = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    got = mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)  # float32 rounding of the same formula


@pytest.mark.parametrize("sr,n_fft,tuning", [(22050, 4096, 0.0), (22050, 8192, 0.3), (44100, 2048, -0.2)])
def test_chroma_filters_equal_librosa(sr, n_fft, tuning):
    librosa = pytest.importorskip("librosa")
    want = librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning)
    np.testing.assert_array_equal(chroma_filters(sr=sr, n_fft=n_fft, tuning=tuning), want)


def test_hann_equals_scipy():
    import scipy.signal

    for n in (2048, 4096, 1001):
        np.testing.assert_allclose(hann(n), scipy.signal.get_window("hann", n, fftbins=True), atol=1e-12)


@pytest.mark.parametrize("n,k", [(128, 12), (40, 40), (7, 3), (1, 1)])
def test_dct_basis_is_scipys_orthonormal_dct2(n, k):
    import scipy.fft

    x = np.random.default_rng(n).normal(0, 30, (9, n))
    np.testing.assert_allclose(x @ dct_basis(n, k).T, scipy.fft.dct(x, type=2, norm="ortho", axis=1)[:, :k],
                               rtol=1e-12, atol=1e-9)
    with pytest.raises(ParameterError, match="k=0"):
        dct_basis(n, 0)
    with pytest.raises(ParameterError, match=f"k={n + 1}"):
        dct_basis(n, n + 1)


def test_importing_the_filters_pulls_in_neither_librosa_nor_scipy_signal():
    code = ("import sys, beatdbn.features.filters as f; f.mel_filters(sr=22050, n_fft=2048, n_mels=128); "
            "print(sorted(m for m in ('librosa', 'scipy.signal', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
