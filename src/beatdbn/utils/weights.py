"""Reading ``.pt`` files: tensors only (``weights_only=True``), and one line of our own when that fails.

torch's refusal of a pickled object advises re-running ``torch.load`` with
``weights_only=False``, which would run the file's code. :func:`load_weights`
never passes torch's text on: its :class:`~beatdbn.exceptions.DataError` says
what the file is, why it is refused and what to do instead.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from beatdbn.exceptions import DataError

__all__ = ["load_weights"]


def load_weights(path: str | Path, *, map_location: Any = "cpu", what: str = "beatdbn weights file",
                 fix: str = "write it again with beatdbn") -> Any:
    """``torch.load(path, weights_only=True)``; any failure is one :class:`DataError` line.

    Raises
    ------
    DataError
        ``path`` is missing, unreadable, not a torch file, or holds Python objects other than tensors
        (refused, never unpickled); the message names ``path``, ``what`` it should be and the ``fix``.
    """
    import torch  # heavy: only readers of .pt files pay for it

    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; {fix}") from None
    except Exception as exc:  # noqa: BLE001 - torch's own text may advise weights_only=False: never shown
        if isinstance(exc, pickle.UnpicklingError) and "unsupported global" in str(exc).lower():
            why = "it holds Python objects besides tensors, which beatdbn never loads (they could run code)"
        else:
            why = f"not a torch file, or damaged ({type(exc).__name__})"
    raise DataError(f"{path}: not a readable {what}: {why}; {fix}")
