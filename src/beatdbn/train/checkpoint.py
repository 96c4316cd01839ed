"""Checkpoint files shared by the trainers: atomic writes, and loading that refuses other settings.

A checkpoint is a dict saved with ``torch.save`` holding ``"format"`` (a
string naming the trainer and version), ``"expect"`` (the settings and data
fingerprints it was made with) and whatever the trainer needs to resume. It
is read back with ``weights_only=True``: a checkpoint never runs code.
"""

from __future__ import annotations

from pathlib import Path

import torch

from beatdbn.exceptions import DataError

__all__ = ["load_checkpoint"]


def load_checkpoint(path: str | Path, *, fmt: str, expect: dict, what: str) -> dict | None:
    """The checkpoint at ``path`` (None when there is none), checked against ``fmt`` and ``expect``.

    Raises
    ------
    DataError
        Unreadable, not a ``what`` checkpoint of format ``fmt``, or made with
        another value of one of ``expect``'s keys (the message names it).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise DataError(f"{path}: unreadable checkpoint ({type(exc).__name__}); delete it to start afresh") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise DataError(f"{path}: not a beatdbn {what} checkpoint; delete it to start afresh")
    made = state.get("expect", {})
    for key, value in expect.items():
        if made.get(key) != value:
            raise DataError(f"{path}: made with another {key.replace('_', ' ')} ({made.get(key)!r}, now {value!r}); "
                            f"resume with the same settings, or use a new --out (or delete the checkpoint)")
    return state
