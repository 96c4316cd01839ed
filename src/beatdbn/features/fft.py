"""The front-end's real FFTs: scipy.fft's pocketfft, without the cost of importing ``scipy.fft``.

The spectra of :mod:`beatdbn.features.audio` and the tempogram of :mod:`beatdbn.features.rhythm` are the
values of ``scipy.fft.rfft`` / ``irfft``, bit for bit (the shipped models were trained on them). Those two
functions are thin Python wrappers around scipy's C++ extension ``scipy.fft._pocketfft.pypocketfft``, which
transforms many rows at once with SIMD. Importing ``scipy.fft`` itself costs 0.15-0.2 s in a fresh process
(``scipy._lib._array_api``, ``scipy.special``): 15 % of a one-song ``beatdbn predict --task key``.
NumPy's own pocketfft costs nothing to import but runs 3-5x slower on a block of frames (one row at a
time: 11-21 ms against 3.4-6.7 ms for 1024 frames of 2048-4096 samples), which bulk extraction would feel.

So this module loads the extension alone (1 ms) from scipy's installed package, registered under its own
name so that a later ``import scipy.fft`` shares it, and calls it as scipy.fft does (checked against
scipy 1.17's ``scipy/fft/_pocketfft/basic.py``). Where the extension is not where scipy keeps it, does not
load, or does not answer a known transform with those arguments (another scipy may change them), it falls
back to ``scipy.fft`` (the same values, the import cost paid once). Tests hold both paths equal to
``scipy.fft`` bit for bit.

* :func:`rfft` -- ``scipy.fft.rfft(x, n=n, axis=-1)`` for real ``x`` (float32 stays single precision);
* :func:`irfft` -- ``scipy.fft.irfft(x, n=n, axis=-1)``.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

import numpy as np

__all__ = ["rfft", "irfft"]

#: The extension's module name inside scipy.
EXTENSION = "scipy.fft._pocketfft.pypocketfft"


_LOADING = threading.Lock()


@functools.cache
def _pocketfft() -> ModuleType | None:
    """scipy's pocketfft extension module, loaded without its parent packages; None where it cannot be."""
    with _LOADING:  # functools.cache does not stop two threads' first calls from both loading it
        return sys.modules.get(EXTENSION) or _load_extension()


def _load_extension() -> ModuleType | None:
    try:
        scipy_spec = importlib.util.find_spec("scipy")  # a top-level spec: scipy itself is not imported
        if scipy_spec is None or not scipy_spec.submodule_search_locations:
            return None
        folder = Path(next(iter(scipy_spec.submodule_search_locations))) / "fft" / "_pocketfft"
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = folder / f"pypocketfft{suffix}"
            if path.is_file():
                loader = importlib.machinery.ExtensionFileLoader(EXTENSION, str(path))
                spec = importlib.util.spec_from_file_location(EXTENSION, path, loader=loader)
                module = importlib.util.module_from_spec(spec)
                loader.exec_module(module)
                return sys.modules.setdefault(EXTENSION, module) if _answers_as_scipy(module) else None
    except (ImportError, OSError):
        return None
    return None


def _answers_as_scipy(module: ModuleType) -> bool:
    """Whether ``r2c``/``c2r`` take the arguments scipy 1.17's wrappers pass and give a known transform."""
    try:
        spec = module.r2c(np.array([[1.0, 2.0, 3.0, 4.0]]), (1,), True, 0, None, 1)
        back = module.c2r(spec, (1,), 4, False, 2, None, 1)
    except Exception:  # another signature in another scipy: fall back to scipy.fft
        return False
    return bool(np.allclose(spec, [[10, -2 + 2j, -2]]) and np.allclose(back, [[1, 2, 3, 4]]))


def _padded(x: np.ndarray, n: int | None) -> np.ndarray:
    """``x`` cut or zero-padded to ``n`` samples along its last axis (scipy's ``_fix_shape_1d``)."""
    if n is None or n == x.shape[-1]:
        return x
    if n < 1:
        raise ValueError(f"invalid number of data points ({n}) specified")
    out = np.zeros((*x.shape[:-1], n), dtype=x.dtype)
    keep = min(n, x.shape[-1])
    out[..., :keep] = x[..., :keep]
    return out


def rfft(x: np.ndarray, n: int | None = None) -> np.ndarray:
    """``scipy.fft.rfft(x, n=n, axis=-1)`` of a real float32 or float64 array.

    Examples
    --------
    >>> rfft(np.array([1.0, 0.0, -1.0, 0.0])).round(12).tolist()
    [0j, (2+0j), 0j]
    """
    x = np.asarray(x)
    ext = _pocketfft()
    if ext is None or x.dtype not in (np.float32, np.float64):
        import scipy.fft

        return scipy.fft.rfft(x, n=n, axis=-1)
    x = _padded(np.require(x, requirements="A"), n)
    if x.shape[-1] < 1:
        raise ValueError(f"invalid number of data points ({x.shape[-1]}) specified")
    return ext.r2c(x, (x.ndim - 1,), True, 0, None, 1)  # forward, no scaling, one thread


def irfft(x: np.ndarray, n: int) -> np.ndarray:
    """``scipy.fft.irfft(x, n=n, axis=-1)``: the real signal of ``n`` samples whose rfft is ``x``.

    Examples
    --------
    >>> irfft(rfft(np.array([1.0, 2.0, 3.0, 4.0])), 4).round(12).tolist()
    [1.0, 2.0, 3.0, 4.0]
    """
    if n < 1:  # scipy.fft.irfft returns a column of zeros for n=0
        raise ValueError(f"invalid number of data points ({n}) specified")
    x = np.asarray(x)
    ext = _pocketfft()
    if ext is None or x.dtype not in (np.float32, np.float64, np.complex64, np.complex128):
        import scipy.fft

        return scipy.fft.irfft(x, n=n, axis=-1)
    if x.dtype.kind == "f":
        x = x + 0j  # scipy's c2r takes a complex array (as scipy.fft.irfft converts it)
    x = _padded(np.require(x, requirements="A"), n // 2 + 1)
    return ext.c2r(x, (x.ndim - 1,), n, False, 2, None, 1)  # backward, scaled by 1/n, one thread
