"""features.fft: scipy.fft's rfft/irfft bit for bit, without importing scipy.fft; the fallback gives the same."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.fft

import beatdbn.features.fft as fft


@pytest.fixture(params=["extension", "fallback"])
def path(request, monkeypatch):
    """Both ways to the FFT: scipy's extension loaded alone, or scipy.fft itself."""
    if request.param == "fallback":
        monkeypatch.setattr(fft, "_pocketfft", lambda: None)
    else:
        assert fft._pocketfft() is not None, "scipy's pocketfft extension did not load: the fast path is gone"
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,n", [((7, 2048), None), ((3, 4096), None), ((5, 384), 768), ((2, 9), 5), ((11,), None)])
def test_rfft_and_irfft_are_scipys_bit_for_bit(path, dtype, shape, n):
    x = np.random.default_rng(shape[-1]).normal(size=shape).astype(dtype)
    got = fft.rfft(x, n=n)
    want = scipy.fft.rfft(x, n=n, axis=-1)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    m = n or shape[-1]
    power = got.real**2 + got.imag**2
    for spectrum in (got, power):  # complex, and real (as the tempogram's autocorrelation gives it)
        np.testing.assert_array_equal(fft.irfft(spectrum, m), scipy.fft.irfft(spectrum, n=m, axis=-1))


def test_a_strided_view_of_frames_is_transformed_as_a_copy_would_be(path):
    signal = np.random.default_rng(0).normal(size=20000).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(signal, 2048)[::512]
    np.testing.assert_array_equal(fft.rfft(frames), scipy.fft.rfft(np.ascontiguousarray(frames), axis=-1))


def test_bad_lengths_are_refused(path):
    with pytest.raises(ValueError, match="data points"):
        fft.rfft(np.zeros((2, 0)))
    with pytest.raises(ValueError, match="data points"):
        fft.irfft(np.zeros((2, 3), complex), 0)


def test_the_fast_path_imports_no_scipy_fft_and_scipy_fft_shares_the_extension():
    code = ("import sys, numpy as np; from beatdbn.features.fft import rfft, EXTENSION; "
            "y = rfft(np.arange(8.0)); loaded = sorted(m for m in sys.modules if m.startswith('scipy')); "
            "import scipy.fft; from scipy.fft._pocketfft import basic; "
            "print(loaded == [EXTENSION], basic.pfft is sys.modules[EXTENSION], "
            "bool((scipy.fft.rfft(np.arange(8.0)) == y).all()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True", "True"], done.stdout


def test_an_extension_that_answers_otherwise_is_not_used():
    class Renamed:  # a scipy whose extension takes other arguments
        def r2c(self, *args):
            raise TypeError("r2c() takes 3 arguments")

    class Wrong:  # or computes something else
        def r2c(self, x, *args):
            return np.zeros((1, 3), complex)

        def c2r(self, x, *args):
            return np.zeros((1, 4))

    assert not fft._answers_as_scipy(Renamed()) and not fft._answers_as_scipy(Wrong())
    assert fft._answers_as_scipy(fft._pocketfft())
