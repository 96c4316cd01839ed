"""The answer of a key model as a musician reads it: a spelled key, its mode and Camelot code, or "no key".

:func:`key_answer` turns a key model's class names and one track posterior
into the fields that ``beatdbn predict --task key``, ``--json``, ``--out`` and
the ``serve`` page show::

    {"key": "B♭ major", "key_ascii": "Bb major", "tonic": "B♭", "mode": "major", "camelot": "6B",
     "confidence": 0.91, "tonal": True, "reason": None, "no_key_probability": 0.01,
     "alternatives": [{"key": "B♭ major", "key_ascii": "Bb major", "camelot": "6B", "probability": 0.91}, ...]}

Three kinds of key model are read (:func:`key_classes`):

* **12 tonics** (classes ``C`` ... ``B``, the paper's task): ``key`` is the
  tonic alone (``"B♭"``), ``mode`` and ``camelot`` are None;
* **24 keys** (``"C major"`` ... ``"B minor"``, :data:`~beatdbn.labels.KEY_NAMES_24`);
* **24 keys + "no key"** (:data:`~beatdbn.labels.NO_KEY`): when
  ``P(no key)`` reaches the run's ``tonal_threshold`` (without a threshold:
  when "no key" is the most probable class) the answer is ``key: None,
  tonal: False`` with the reason, never a key.

**Spelling** (:func:`spell_key`). Major keys: C, D♭, D, E♭, E, F, F♯, G, A♭,
A, B♭, B; minor keys: C, C♯, D, D♯, E, F, F♯, G, G♯, A, B♭, B. Flats for
F, B♭, E♭, A♭, D♭ major and their relative minors (D, G, C, F, B♭ minor),
sharps or naturals otherwise. The key with six accidentals either way is
spelled with sharps: **F♯ major** (not G♭) and its relative **D♯ minor** (not
E♭), as most key charts and DJ software do. A 12-tonic model's tonic is
spelled as the major key on it (D♭, E♭, F♯, A♭, B♭). ``key_ascii`` writes
♭ as ``b`` and ♯ as ``#``.

**Camelot** (:func:`camelot_code`): the wheel's number (1-12: a step is a
fifth) and ``B`` for major, ``A`` for minor; C major is 8B, A minor 8A.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from beatdbn.exceptions import ParameterError
from beatdbn.labels import KEY_NAMES, NO_KEY

__all__ = ["key_answer", "task_key_answer", "key_classes", "spell_key", "camelot_code", "ascii_key", "MAJOR_SPELLING",
           "MINOR_SPELLING", "KEY_FIELDS"]

#: Tonic names of the 12 major keys by pitch class (C = 0).
MAJOR_SPELLING = ("C", "D♭", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B")
#: Tonic names of the 12 minor keys by pitch class (C = 0).
MINOR_SPELLING = ("C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "B♭", "B")
#: The fields of a key answer, in the order files and pages show them.
KEY_FIELDS = ("key", "key_ascii", "tonic", "mode", "camelot", "confidence", "tonal", "reason", "no_key_probability",
              "alternatives")

_MODES = ("major", "minor")


def _parse_class(name: str) -> tuple[int, str | None] | None:
    """``(pitch class, mode or None)`` of an internal key class name ("A#", "A# minor"), or None."""
    tonic, _, mode = str(name).partition(" ")
    if tonic not in KEY_NAMES or (mode and mode not in _MODES):
        return None
    return KEY_NAMES.index(tonic), (mode or None)


def key_classes(classes: Sequence[str]) -> list[tuple[int, str | None] | None] | None:
    """Each class as ``(pitch class, mode)`` (``mode`` None for a 12-tonic model; None for :data:`NO_KEY`),
    or None when ``classes`` are not the classes of a key model.

    A key model's classes are all tonics (``C``, ``C#``, ... ``B``) or all keys with a mode (``C major``,
    ``A# minor``), optionally with ``"no key"``; a subset (a task where some keys have no track) is fine.

    Examples
    --------
    >>> key_classes(["C", "G"])
    [(0, None), (7, None)]
    >>> key_classes(["A minor", "no key"])
    [(9, 'minor'), None]
    >>> key_classes(["rock", "jazz"]) is None
    True
    """
    parsed = [None if c == NO_KEY else _parse_class(c) for c in classes]
    keys = [p for c, p in zip(classes, parsed) if c != NO_KEY]
    if not keys or any(p is None for p in keys):
        return None
    if len({p[1] is None for p in keys}) != 1:  # tonics mixed with keys: not one of our models
        return None
    return parsed


def spell_key(tonic: int, mode: str | None = None) -> str:
    """The key as musicians write it: ``spell_key(10, "major") == "B♭ major"``; ``spell_key(6) == "F♯"``.

    Raises
    ------
    ParameterError
        ``tonic`` not in 0-11 or ``mode`` not "major", "minor" or None.
    """
    if not 0 <= int(tonic) < 12 or mode not in (*_MODES, None):
        raise ParameterError(f"key ({tonic!r}, {mode!r}): expected a pitch class 0-11 and 'major', 'minor' or None")
    if mode is None:
        return MAJOR_SPELLING[int(tonic)]
    return f"{(MAJOR_SPELLING if mode == 'major' else MINOR_SPELLING)[int(tonic)]} {mode}"


def ascii_key(text: str | None) -> str | None:
    """``"B♭ major" -> "Bb major"``, ``"F♯ minor" -> "F# minor"`` (None stays None)."""
    return None if text is None else text.replace("♭", "b").replace("♯", "#")


def camelot_code(tonic: int, mode: str) -> str:
    """The Camelot wheel code of a key: ``camelot_code(0, "major") == "8B"``, ``camelot_code(9, "minor") == "8A"``.

    Neighbours on the wheel are a fifth apart; a minor key shares the number of its relative major.

    Raises
    ------
    ParameterError
        ``mode`` is not "major" or "minor".
    """
    if mode not in _MODES:
        raise ParameterError(f"Camelot code of mode {mode!r}: only 'major' and 'minor' keys have one")
    major = int(tonic) % 12 if mode == "major" else (int(tonic) + 3) % 12  # the relative major's tonic
    return f"{(7 * major + 7) % 12 + 1}{'B' if mode == 'major' else 'A'}"


def _entry(pc: int, mode: str | None, p: float) -> dict[str, Any]:
    key = spell_key(pc, mode)
    return {"key": key, "key_ascii": ascii_key(key), "camelot": camelot_code(pc, mode) if mode else None,
            "probability": float(p)}


def key_answer(classes: Sequence[str], posterior, *, tonal_threshold: float | None = None,
               top_k: int = 3) -> dict[str, Any]:
    """The key answer of one track posterior over a key model's ``classes`` (see the module docstring).

    Parameters
    ----------
    classes : sequence of str
        The model's class names (:attr:`Run.labels`): tonics ``C`` ... ``B``, or ``"C major"`` ...
        ``"B minor"`` with or without ``"no key"``.
    posterior : np.ndarray [shape=(n_classes,)]
        The track posterior (already calibrated), in the order of ``classes``.
    tonal_threshold : float or None
        ``P(no key)`` at or above which the answer is "no key" (:attr:`Run.tonal_threshold`); None: "no key"
        when it is the most probable class. Ignored by a model without the "no key" class.
    top_k : int
        Keys listed in ``alternatives``, most probable first (0: every key).

    Returns
    -------
    dict
        ``key`` (None for "no key"), ``key_ascii``, ``tonic``, ``mode`` (None for a 12-tonic model),
        ``camelot`` (None without a mode), ``label`` (the model's class of the answer, as in its
        ``probabilities``: the key's internal name, or "no key"), ``confidence`` (the probability of the
        answer: of the key, or of "no key"), ``tonal``, ``reason`` (why not tonal, else None),
        ``no_key_probability`` (None without the class) and ``alternatives``
        (``[{"key", "key_ascii", "camelot", "probability"}]``, keys only).

    Raises
    ------
    ParameterError
        ``classes`` are not a key model's, the posterior's length differs, or ``top_k`` < 0.

    Examples
    --------
    >>> a = key_answer(["A# major", "G minor", "no key"], [0.7, 0.2, 0.1], tonal_threshold=0.5, top_k=2)
    >>> a["key"], a["camelot"], a["confidence"], [x["key_ascii"] for x in a["alternatives"]]
    ('B♭ major', '6B', 0.7, ['Bb major', 'G minor'])
    >>> b = key_answer(["C major", "no key"], [0.07, 0.93], tonal_threshold=0.5)
    >>> b["key"], b["tonal"], b["reason"]
    (None, False, 'no tonal centre: P(no key) 0.93 ≥ threshold 0.50')
    """
    parsed = key_classes(classes)
    if parsed is None:
        raise ParameterError(f"classes {list(classes)[:4]}...: not a key model's (tonics C..B, or 'C major'.."
                             f"'B minor' with or without {NO_KEY!r})")
    p = np.asarray(posterior, dtype=np.float64).reshape(-1)
    if len(p) != len(parsed):
        raise ParameterError(f"a posterior of {len(p)} values for {len(parsed)} classes")
    if not isinstance(top_k, (int, np.integer)) or top_k < 0:
        raise ParameterError(f"top_k={top_k!r}: must be an int >= 0 (0 lists every key)")
    keys = [i for i, c in enumerate(parsed) if c is not None]
    order = sorted(keys, key=lambda i: -p[i])  # stable: ties keep the class order
    alternatives = [_entry(*parsed[i], p[i]) for i in (order if top_k == 0 else order[:top_k])]
    no_key = next((i for i, c in enumerate(parsed) if c is None), None)
    p_none = None if no_key is None else float(p[no_key])
    answer: dict[str, Any] = {"no_key_probability": p_none, "alternatives": alternatives}
    if p_none is not None:
        if tonal_threshold is not None and p_none >= tonal_threshold:
            reason = f"no tonal centre: P(no key) {p_none:.2f} ≥ threshold {tonal_threshold:.2f}"
        elif tonal_threshold is None and p_none >= p[order[0]]:
            reason = f"no tonal centre: P(no key) {p_none:.2f} is the most probable answer"
        else:
            reason = None
        if reason is not None:
            return {"label": NO_KEY, "key": None, "key_ascii": None, "tonic": None, "mode": None, "camelot": None,
                    "confidence": p_none, "tonal": False, "reason": reason, **answer}
    pc, mode = parsed[order[0]]
    key = spell_key(pc, mode)
    tonic = key.split(" ")[0]
    return {"label": str(classes[order[0]]), "key": key, "key_ascii": ascii_key(key), "tonic": tonic, "mode": mode,
            "camelot": camelot_code(pc, mode) if mode else None, "confidence": float(p[order[0]]), "tonal": True,
            "reason": None, **answer}


def task_key_answer(task: str | None, classes: Sequence[str], posterior, *, tonal_threshold: float | None = None,
                    top_k: int = 3) -> dict[str, Any] | None:
    """:func:`key_answer` for a model of task ``"key"`` whose classes are keys; None for any other model."""
    if task != "key" or key_classes(classes) is None:
        return None
    return key_answer(classes, posterior, tonal_threshold=tonal_threshold, top_k=top_k)
