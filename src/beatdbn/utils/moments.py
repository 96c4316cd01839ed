"""Mean and standard deviation that do not depend on the thread count or the summation order.

A threaded reduction (``torch.Tensor.mean``/``std`` over a large tensor)
splits its sum among the threads, so 1 and 2 threads can round differently
in the last bits; a statistic that sets a model's starting weights then makes
the start depend on the process that computed it. :func:`exact_moments`
sums with :func:`math.fsum` (exactly rounded: the same values give the same
bits in any order, on any number of threads).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["exact_moments"]


def exact_moments(values) -> tuple[float, float]:
    """Population mean and standard deviation of ``values``, each sum exactly rounded (:func:`math.fsum`).

    Parameters
    ----------
    values : array-like
        Any shape (flattened; converted to float64). A torch tensor is read on the CPU.

    Returns
    -------
    mean, std : float
        ``std`` is ``sqrt(fsum((x - mean)**2) / n)`` (the population value, ``unbiased=False``).

    Raises
    ------
    ValueError
        ``values`` is empty.

    Examples
    --------
    >>> exact_moments([1.0, 2.0, 3.0, 4.0])
    (2.5, 1.118033988749895)
    """
    if hasattr(values, "detach"):  # a torch tensor, possibly on a GPU
        values = values.detach().cpu().double().numpy()
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("exact_moments of no values")
    mean = math.fsum(x.tolist()) / x.size
    centred = x - mean
    return mean, math.sqrt(math.fsum((centred * centred).tolist()) / x.size)
