"""Synthesize a redistributable audio key corpus: short tonal pieces with a known key.

Every piece is composed and rendered here, from a seed, so the corpus is ours
to ship and rebuild (no recording, score or sample library is involved). A
piece has a tonic and a mode, and everything in it follows from them:

* **harmony** -- phrases of 2-4 bars built by a functional Markov chain
  (tonic -> predominant -> dominant -> tonic) over the chords of the key: in
  major I ii iii IV V vi vii°, in minor i ii° III iv V VI VII vii°7 (harmonic
  minor dominants), sevenths, secondary dominants (V/V, V/vi, V/ii, V/IV,
  vii°7/V, V/iv, V/III), the cadential 6/4, and first inversions. Phrases end
  in half, deceptive or plagal cadences; the last one in an authentic cadence
  (most pieces; some stop mid-phrase, as excerpts do). Some longer pieces
  tonicize the dominant (major) or the relative major (minor) in a middle
  phrase; the label stays the home key. About 30 % of the non-chorale pieces
  use a loop of popular music instead (12-bar blues on dominant sevenths,
  I-bVII-IV-I, I-V-vi-IV, i-VII-VI-VII, i-iv-v-i, ...), where the tonic chord
  may itself be a dominant seventh and V need not precede it.
* **texture** -- one of: a four-voice chorale (a chord a beat, voice-led,
  passing tones in the soprano, a held final chord); melody over an
  accompaniment (block chords, Alberti bass, arpeggios, waltz or broken
  chords) and a bass line (roots, inversions, root-fifth, walking); a
  sustained pad with melody and bass; plucked arpeggios; or a solo melody.
  Melodies move mostly by step among chord and scale tones, with passing,
  neighbour and chromatic notes (raised 6th and 7th in minor), and cadence on
  the tonic.
* **sound** -- additive instruments with randomized spectra and envelopes
  (piano-like, upper partials decaying faster; organ drawbars; bowed
  strings with vibrato and a slow attack; plucked strings; reed with odd
  harmonics; flute; brass that brightens with level), optional light
  percussion, random register and voicing, a tuning deviation of up to
  ±30 cents, humanized timing, a room (exponential-noise reverb), a random
  spectral tilt and a noise floor.

Lengths run from 20 to 200 beats, log-uniformly (median ~63 beats), tempi
60-170 BPM, metres 4, 3 and 2. Keys are balanced: piece ``i`` of a corpus has
tonic ``i % 12`` and mode ``(i // 12) % 2`` before a seeded shuffle, so any
12·k pieces hold k of each tonic. Piece ``i`` of seed ``s`` is drawn from
``numpy.random.default_rng([s, i])``: one piece can be rebuilt alone, and two
seeds give disjoint corpora.

Public API: :func:`render_piece` (one piece in memory), :func:`write_corpus`
(files + ``labels.csv``), :func:`key_name`, :data:`INSTRUMENTS`, :data:`TEXTURES`.

Examples
--------
>>> from beatdbn.synth.audio_keys import render_piece
>>> piece = render_piece(tonic=6, mode=0, seed=3, n_beats=24)
>>> piece.key, piece.sr, piece.audio.dtype
('F# minor', 22050, dtype('float32'))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from beatdbn.exceptions import ParameterError
from beatdbn.labels import KEY_NAMES
from beatdbn.synth.resumable import render_missing, write_labels
from beatdbn.utils.atomic import atomic_path
from beatdbn.utils.audio_io import write_audio

__all__ = ["Piece", "render_piece", "piece_score", "write_corpus", "key_name", "piece_key", "INSTRUMENTS", "TEXTURES", "FORMATS"]

log = logging.getLogger(__name__)

#: Additive instrument archetypes (each piece perturbs their parameters).
INSTRUMENTS = ("piano", "organ", "strings", "pluck", "reed", "flute", "brass", "epiano")
#: Textures a piece is written in.
TEXTURES = ("chorale", "accompanied", "pad", "arpeggio", "solo")
#: Audio formats :func:`write_corpus` writes (soundfile formats).
FORMATS = {"flac": "FLAC", "ogg": "OGG", "wav": "WAV"}

_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])  # natural minor; dominants use the raised 7th
_QUALITY = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "dom7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10), "hdim7": (0, 3, 6, 10), "dim7": (0, 3, 6, 9),
}  # fmt: skip

# Chord vocabulary: name -> (root in semitones above the tonic, quality, function).
# Functions: T tonic, P predominant, D dominant, S secondary dominant (resolves to `_TARGET`).
_CHORDS = {
    1: {  # major
        "I": (0, "maj", "T"), "vi": (9, "min", "T"), "iii": (4, "min", "T"), "IV": (5, "maj", "P"),
        "ii": (2, "min", "P"), "ii7": (2, "min7", "P"), "IVM7": (5, "maj7", "P"), "V": (7, "maj", "D"),
        "V7": (7, "dom7", "D"), "vii": (11, "dim", "D"), "V/V": (2, "dom7", "S"), "V/vi": (4, "dom7", "S"),
        "V/ii": (9, "dom7", "S"), "V/IV": (0, "dom7", "S"), "vii7/V": (6, "dim7", "S"), "I64": (0, "maj", "C"),
        "I7": (0, "dom7", "X"), "IV7": (5, "dom7", "X"), "bVII": (10, "maj", "X"), "bVI": (8, "maj", "X"),
    },
    0: {  # minor
        "i": (0, "min", "T"), "VI": (8, "maj", "T"), "III": (3, "maj", "T"), "iv": (5, "min", "P"),
        "ii": (2, "dim", "P"), "ii7": (2, "hdim7", "P"), "N6": (1, "maj", "P"), "V": (7, "maj", "D"),
        "V7": (7, "dom7", "D"), "vii7": (11, "dim7", "D"), "VII": (10, "maj", "S"), "V/iv": (0, "dom7", "S"),
        "V/V": (2, "dom7", "S"), "i64": (0, "min", "C"), "v": (7, "min", "X"), "i7": (0, "min7", "X"),
    },
}  # fmt: skip
# Loops of popular music (blues, mixolydian and aeolian rock, pop), one chord a bar, used by ~30 % of the
# non-chorale pieces instead of the functional chain: there the tonic is often a dominant-seventh chord or
# never preceded by V, and the model must not read "a major-minor seventh chord" as "the dominant".
_LOOPS = {
    1: [["I7", "I7", "I7", "I7", "IV7", "IV7", "I7", "I7", "V7", "IV7", "I7", "V7"],  # 12-bar blues
        ["I", "bVII", "IV", "I"], ["I", "V", "vi", "IV"], ["I", "IV", "I", "V"], ["I", "vi", "IV", "V"],
        ["I7", "IV7"], ["I", "bVI", "bVII", "I"]],
    0: [["i", "VII", "VI", "VII"], ["i", "iv", "v", "i"], ["i", "VI", "III", "VII"], ["i7", "iv", "i7", "v"],
        ["i", "i", "iv", "V"], ["i", "VI", "iv", "V"]],
}
_TARGET = {"V/V": "V", "V/vi": "vi", "V/ii": "ii", "V/IV": "IV", "vii7/V": "V", "VII": "III", "V/iv": "iv"}
# How common each chord is within its function (default 1): plain triads and V7 dominate, as in the repertoire.
_WEIGHT = {"I": 3, "i": 3, "V": 3, "V7": 2.5, "IV": 2.5, "iv": 2.5, "ii": 1.5, "vi": 1.5, "VI": 1.5, "ii7": 1,
           "iii": 0.5, "III": 1, "vii": 0.4, "vii7": 0.6, "IVM7": 0.4, "N6": 0.3}
_TONIC = {1: "I", 0: "i"}
_CAD64 = {1: "I64", 0: "i64"}


def key_name(tonic: int, mode: int) -> str:
    """The label of a key as :func:`beatdbn.labels.parse_key` reads it: ``key_name(6, 0) == 'F# minor'``."""
    return f"{KEY_NAMES[int(tonic) % 12]} {'major' if mode == 1 else 'minor'}"


def piece_key(index: int, seed: int) -> tuple[int, int]:
    """``(tonic, mode)`` of piece ``index`` of the corpus of ``seed`` (balanced in blocks of 24 pieces)."""
    block, pos = divmod(int(index), 24)
    perm = np.random.default_rng([int(seed), block, 7919]).permutation(24)
    j = int(perm[pos])
    return j % 12, 1 - (j // 12)


@dataclass
class Piece:
    """One rendered piece.

    Attributes
    ----------
    audio : np.ndarray [shape=(n_samples,)], float32
        Mono signal, peak below 1.
    sr : int
    tonic : int
        Pitch class 0-11 (C = 0).
    mode : int
        1 major, 0 minor.
    key : str
        ``key_name(tonic, mode)``.
    info : dict
        What was drawn: tempo, metre, beats, texture, instruments, tuning, ...
    """

    audio: np.ndarray
    sr: int
    tonic: int
    mode: int
    key: str
    info: dict = field(default_factory=dict)


# -- composition ------------------------------------------------------------------------------------------------


def _progression(rng: np.random.Generator, mode: int, n_chords: int, cadence: str, start_tonic: bool) -> list[str]:
    """Chord names of one phrase of ``n_chords`` chords ending in ``cadence`` (functional Markov chain)."""
    chords = _CHORDS[mode]
    tonic = _TONIC[mode]
    by_fn = {fn: [n for n, c in chords.items() if c[2] == fn] for fn in "TPDS"}
    ending = {
        "authentic": [rng.choice(["P", "C"], p=[0.6, 0.4]), "D", tonic],
        "half": ["P", "D"], "plagal": [("iv" if mode == 0 else "IV"), tonic],
        "deceptive": ["D", ("VI" if mode == 0 else "vi")], "none": [],
    }[cadence]
    if len(ending) > n_chords - 1:  # a short phrase keeps the end of its cadence
        ending = ending[len(ending) - (n_chords - 1):] if n_chords > 1 else []
    seq: list[str] = []
    prev = tonic if start_tonic else str(rng.choice(by_fn["T"] + by_fn["P"]))
    seq.append(prev)
    while len(seq) < n_chords - len(ending):
        fn = chords[prev][2]
        if prev in _TARGET:
            nxt = _TARGET[prev] if _TARGET[prev] in chords else tonic
        else:
            if fn == "T":
                nxt_fn = rng.choice(["T", "P", "D", "S"], p=[0.22, 0.48, 0.23, 0.07])
            elif fn == "P":
                nxt_fn = rng.choice(["P", "D", "S", "C"], p=[0.2, 0.6, 0.05, 0.15])
            elif fn == "C":
                nxt_fn = "D"
            else:  # D
                nxt_fn = rng.choice(["T", "D"], p=[0.85, 0.15])
            pool = [n for n in by_fn.get(nxt_fn, []) if n != prev] if nxt_fn != "C" else [_CAD64[mode]]
            if nxt_fn == "T" and fn == "D":
                pool = [tonic] * 4 + pool
            nxt = _pick(rng, pool) if pool else tonic
        seq.append(nxt)
        prev = nxt
    for e in ending:
        if e in ("P", "D", "T", "S"):
            pool = by_fn[e]
            if e == "D" and seq and seq[-1] in (_CAD64[mode],):
                pool = ["V", "V7"]
            seq.append(_pick(rng, pool))
        elif e == "C":
            seq.append(_CAD64[mode])
        else:
            seq.append(e)
    return seq[:n_chords]


def _pick(rng: np.random.Generator, names: list[str]) -> str:
    """One chord name, drawn by :data:`_WEIGHT`."""
    w = np.array([_WEIGHT.get(n, 1.0) for n in names])
    return str(names[rng.choice(len(names), p=w / w.sum())])


def _chord_pcs(name: str, mode: int, tonic: int) -> tuple[np.ndarray, int]:
    """Pitch classes of a chord (root first) and its root's pitch class."""
    root, quality, _ = _CHORDS[mode][name]
    pcs = (np.array(_QUALITY[quality]) + root + tonic) % 12
    return pcs, int((root + tonic) % 12)


def _nearest(pc: int, target: float) -> int:
    """The MIDI note of pitch class ``pc`` closest to ``target``."""
    base = int(round(target))
    return base + int(((pc - base + 6) % 12) - 6)


def _voice(pcs: np.ndarray, bass_pc: int, prev: np.ndarray | None, lo: int, hi: int, n: int,
           rng: np.random.Generator) -> np.ndarray:
    """``n`` upper voices (MIDI) from the chord's pitch classes, close to ``prev`` (voice leading)."""
    cands = np.array([m for m in range(lo, hi + 1) if m % 12 in pcs])
    if prev is None:
        centre = rng.uniform(lo + 4, hi - 4)
        prev = np.sort(centre + rng.normal(0, 3, n)) if n > 1 else np.array([centre])
    best, best_cost = None, np.inf
    for _ in range(24):  # random search over voicings: all chord tones covered, little motion
        pick = np.sort(rng.choice(cands, size=min(n, len(cands)), replace=False))
        have = set(int(p) % 12 for p in pick)
        need = set(int(p) for p in pcs[: min(3, n)])  # root, third, fifth at least
        cost = np.abs(pick[:, None] - prev[None, :]).min(axis=1).sum() + 6 * len(need - have)
        cost += 3 * np.sum(np.diff(pick) == 0) + (2 * np.sum(np.diff(pick) > 12) if n > 1 else 0)
        if cost < best_cost:
            best, best_cost = pick, cost
    return best


@dataclass
class _Note:
    onset: np.ndarray
    dur: np.ndarray
    pitch: np.ndarray
    vel: np.ndarray


class _Score:
    """Note events per part: lists of (onset beats, duration beats, MIDI, velocity)."""

    def __init__(self):
        self.parts: dict[str, list[tuple[float, float, float, float]]] = {}

    def add(self, part: str, onset: float, dur: float, pitch: float, vel: float) -> None:
        self.parts.setdefault(part, []).append((onset, dur, pitch, vel))

    def notes(self, part: str) -> _Note:
        a = np.array(self.parts.get(part, []), dtype=np.float64).reshape(-1, 4)
        return _Note(a[:, 0], a[:, 1], a[:, 2], a[:, 3])


def _scale_pcs(tonic: int, mode: int) -> np.ndarray:
    return (tonic + (_MAJOR if mode == 1 else _MINOR)) % 12


def _melody(rng, score: _Score, chords: list[tuple[float, float, np.ndarray, str]], tonic: int, mode: int,
            lo: int, hi: int, meter: int, phrase_ends: set[int], final: bool, part: str = "melody") -> None:
    """A melody over ``chords`` (onset, length, pitch classes, name): chord tones on beats, steps between."""
    scale = set(int(p) for p in _scale_pcs(tonic, mode))
    pitch = _nearest(tonic, rng.uniform(lo + 5, hi - 5))
    rhythms = [[1.0], [0.5, 0.5], [0.75, 0.25], [0.5, 0.25, 0.25], [1 / 3] * 3, [2.0], [1.5, 0.5], [0.25] * 4]
    rweights = np.array([0.3, 0.25, 0.07, 0.06, 0.04, 0.12, 0.1, 0.06])
    rweights = rweights * np.exp(rng.normal(0, 0.5, len(rweights)))
    rweights /= rweights.sum()
    for ci, (on, length, pcs, name) in enumerate(chords):
        local = set(scale) | set(int(p) for p in pcs)  # chord tones are always in the local scale
        if mode == 0 and name in ("V", "V7", "vii7", "V/iv"):
            local = (local - {(tonic + 10) % 12}) | {(tonic + 11) % 12}
        t, end = on, on + length
        last_chord = final and ci == len(chords) - 1
        while t < end - 1e-6:
            if last_chord or (ci in phrase_ends and t >= end - 1 - 1e-6):
                target_pc = tonic if (last_chord or name in (_TONIC[mode],)) else int(rng.choice(pcs))
                pitch = _nearest(target_pc, pitch)
                pitch = min(max(pitch, lo), hi)
                score.add(part, t, end - t, pitch, rng.uniform(0.6, 0.8))
                break
            r = rhythms[rng.choice(len(rhythms), p=rweights)]
            for k, d in enumerate(r):
                if t >= end - 1e-6:
                    break
                d = min(d, end - t)
                if k == 0:  # on the beat: a chord tone near the last note (mostly)
                    options = [_nearest(int(p), pitch) for p in pcs] + [_nearest(int(p), pitch + 12 * s)
                                                                        for p in pcs for s in (-1, 1)]
                    options = np.array([o for o in options if lo <= o <= hi] or [pitch])
                    w = np.exp(-np.abs(options - pitch) / 3.0)
                    pitch = int(rng.choice(options, p=w / w.sum()))
                else:  # between beats: a step (passing / neighbour), sometimes chromatic
                    step = int(rng.choice([-2, -1, 1, 2]))
                    cand = pitch + step
                    if cand % 12 not in local and rng.random() > 0.15:
                        cand = pitch + (step // abs(step)) * (3 - abs(step))
                    if cand % 12 not in local and rng.random() > 0.3:
                        cand = pitch + (step // abs(step)) * 2 if (pitch + 2 * (step // abs(step))) % 12 in local \
                            else pitch + (step // abs(step))
                    pitch = int(min(max(cand, lo), hi))
                if rng.random() > 0.04:  # a few rests
                    score.add(part, t, d * rng.uniform(0.75, 1.0), pitch, rng.uniform(0.5, 0.9))
                t += d


def _compose(rng: np.random.Generator, tonic: int, mode: int, n_beats: int, meter: int, texture: str) -> tuple[
        _Score, dict]:
    """Phrases, chords, voicing and parts of one piece; returns the score (in beats) and what was drawn."""
    n_bars = max(int(np.ceil(n_beats / meter)), 2)
    # harmonic rhythm: chords per bar
    if texture == "chorale":
        per_bar = meter if meter <= 4 else meter // 2
    else:
        per_bar = int(rng.choice([1, 2, meter] if meter >= 2 else [1], p=[0.45, 0.4, 0.15]))
        per_bar = min(per_bar, meter)
    # phrases of 2-4 bars
    phrases: list[int] = []
    left = n_bars
    while left > 0:
        size = int(min(left, rng.choice([2, 3, 4, 4, 4])))
        if 0 < left - size < 2:
            size = left
        phrases.append(size)
        left -= size
    cadenced_end = rng.random() < 0.85
    loop = _LOOPS[mode][rng.integers(len(_LOOPS[mode]))] if texture != "chorale" and rng.random() < 0.3 else None
    if loop is not None:
        per_bar = 1 if rng.random() < 0.8 else min(2, meter)
    modulate = loop is None and len(phrases) >= 3 and rng.random() < 0.25
    mod_phrase = int(rng.integers(1, len(phrases) - 1)) if modulate else -1
    chords: list[tuple[float, float, np.ndarray, str, int]] = []  # onset, length, pcs, name, bass pc
    phrase_ends: set[int] = set()
    beat = 0.0
    for pi, bars in enumerate(phrases):
        last = pi == len(phrases) - 1
        if last:
            cadence = "authentic" if cadenced_end else "none"
            if cadenced_end and rng.random() < 0.12:
                cadence = "plagal"
        else:
            cadence = str(rng.choice(["half", "authentic", "deceptive", "plagal"], p=[0.4, 0.35, 0.15, 0.1]))
        n_ch = bars * per_bar
        k_tonic, k_mode = tonic, mode
        if pi == mod_phrase:  # tonicize V (major) or III (minor) for this phrase
            k_tonic, k_mode = ((tonic + 7) % 12, 1) if mode == 1 else ((tonic + 3) % 12, 1)
            cadence = "authentic"
        if loop is not None:  # the loop runs on through the phrases
            start = sum(phrases[:pi]) * per_bar
            names = [loop[(start + j) % len(loop)] for j in range(n_ch)]
        else:
            names = _progression(rng, k_mode, n_ch, cadence, start_tonic=(pi == 0 and rng.random() < 0.85) or pi > 0)
        if last and cadenced_end and n_ch >= 2:
            # the final tonic takes the last bar: merge trailing chords into a held final chord
            names[-1] = _TONIC[mode] if loop is None or loop[0] not in ("I7", "i7") else loop[0]
        length = meter / per_bar
        for j, name in enumerate(names):
            pcs, root = _chord_pcs(name, k_mode, k_tonic)
            bass = root
            q = _CHORDS[k_mode][name]
            if name in ("I64", "i64"):
                bass = int(pcs[2])
            elif name in ("vii", "ii") and q[1] == "dim" or name == "N6":
                bass = int(pcs[1])  # diminished triads and the Neapolitan stand in first inversion
            elif len(pcs) >= 3 and j not in (0, len(names) - 1) and rng.random() < 0.22:
                bass = int(pcs[1])  # first inversion
            elif q[1] in ("dom7", "maj7", "min7", "hdim7") and rng.random() < 0.1:
                bass = int(pcs[3])  # third inversion of a seventh
            if name == "N6":
                bass = int(pcs[1])
            chords.append((beat, length, pcs, name, bass))
            beat += length
        phrase_ends.add(len(chords) - 1)
    total = beat
    # random cut (an excerpt) or a held final chord
    score = _Score()
    lo_bass = int(rng.integers(31, 41))
    lo_mid = int(rng.integers(48, 57))
    mel_lo = int(rng.integers(60, 70))
    mel_hi = mel_lo + int(rng.integers(12, 20))
    info = {"phrases": phrases, "per_bar": per_bar, "modulates": bool(modulate), "loop": loop,
            "cadenced_end": bool(cadenced_end), "chords": [c[3] for c in chords]}
    simple = [(c[0], c[1], c[2], c[3]) for c in chords]
    final_hold = 1.0 + float(rng.choice([0, 1, 2]))
    if texture == "chorale":
        prev = None
        for ci, (on, length, pcs, name, bass) in enumerate(chords):
            dur = length + (final_hold if ci == len(chords) - 1 else 0)
            upper = _voice(pcs, bass, prev, lo_mid, mel_hi, 3, rng)
            prev = upper
            b = _nearest(bass, lo_bass + 8)
            vel = rng.uniform(0.55, 0.75)
            score.add("bass", on, dur * 0.97, b, vel)
            for v, p in enumerate(upper):
                score.add("chord", on, dur * 0.97, int(p), vel * (1.1 if v == len(upper) - 1 else 1))
            if ci in phrase_ends and ci < len(chords) - 1 and rng.random() < 0.5:
                pass
        # passing tones in the soprano: split a beat when the next soprano note is a third away
        parts = score.parts["chord"]
        sop = [max((x for x in parts if abs(x[0] - c[0]) < 1e-9), key=lambda x: x[2]) for c in chords]
        for a, b in zip(sop[:-1], sop[1:]):
            if abs(b[2] - a[2]) in (3, 4) and rng.random() < 0.5:
                mid = (a[2] + b[2]) / 2
                scale = _scale_pcs(tonic, mode)
                mid = int(np.floor(mid)) if int(np.floor(mid)) % 12 in scale else int(np.ceil(mid))
                parts.remove(a)
                parts.append((a[0], a[1] / 2 * 0.97, a[2], a[3]))
                parts.append((a[0] + a[1] / 2, a[1] / 2 * 0.97, mid, a[3] * 0.9))
        info["final_beats"] = total + final_hold
        return score, info
    # bass line
    bass_style = str(rng.choice(["held", "beats", "root5", "walking", "octaves"]))
    for ci, (on, length, pcs, name, bass) in enumerate(chords):
        b = _nearest(bass, lo_bass + 6)
        last = ci == len(chords) - 1
        if bass_style == "held" or last or length < 1:
            score.add("bass", on, length * 0.95 + (final_hold if last else 0), b, rng.uniform(0.6, 0.8))
            continue
        n = int(length)
        for k in range(n):
            if bass_style == "beats":
                p = b
            elif bass_style == "octaves":
                p = b + (12 if k % 2 else 0)
            elif bass_style == "root5":
                p = b if k % 2 == 0 else _nearest(int(pcs[2 if len(pcs) > 2 else 0]), b + 5)
            else:  # walking: chord tones, a step into the next chord's bass
                if k == 0:
                    p = b
                elif k == n - 1 and ci + 1 < len(chords):
                    nb = _nearest(chords[ci + 1][4], b)
                    p = nb + int(rng.choice([-1, 1, -2, 2]))
                else:
                    p = _nearest(int(rng.choice(pcs)), b + rng.integers(-5, 8))
            score.add("bass", on + k, 0.9, p, rng.uniform(0.55, 0.8) * (1.15 if k == 0 else 1))
    # accompaniment
    if texture in ("accompanied", "pad", "arpeggio"):
        style = {"pad": "held", "arpeggio": str(rng.choice(["arp_up", "arp_updown", "broken"]))}.get(
            texture, str(rng.choice(["block", "alberti", "arp_up", "waltz" if meter == 3 else "block", "broken"])))
        sub = float(rng.choice([0.5, 0.25, 1 / 3])) if style.startswith("arp") or style in ("alberti",
                                                                                           "broken") else 1.0
        prev = None
        for ci, (on, length, pcs, name, bass) in enumerate(chords):
            last = ci == len(chords) - 1
            voicing = _voice(pcs, bass, prev, lo_mid, lo_mid + 19, int(rng.choice([3, 3, 4])), rng)
            prev = voicing
            if style == "held" or last:
                for p in voicing:
                    score.add("chord", on, length * 0.98 + (final_hold if last else 0), int(p), rng.uniform(.4, .6))
            elif style == "block":
                for k in range(max(int(length), 1)):
                    for p in voicing:
                        score.add("chord", on + k, 0.8, int(p), rng.uniform(0.35, 0.55) * (1.2 if k == 0 else 1))
            elif style == "waltz":
                for k in range(1, max(int(length), 1)):
                    for p in voicing:
                        score.add("chord", on + k, 0.6, int(p), rng.uniform(0.35, 0.5))
            else:
                v = list(voicing)
                order = {"arp_up": v, "arp_updown": v + v[-2:0:-1], "alberti": [v[0], v[-1], v[1], v[-1]],
                         "broken": [v[0], v[2 % len(v)], v[1], v[2 % len(v)]]}[style]
                n = int(round(length / sub))
                for k in range(n):
                    score.add("chord", on + k * sub, sub * rng.uniform(1.0, 2.5), int(order[k % len(order)]),
                              rng.uniform(0.35, 0.55))
    if texture != "arpeggio" or rng.random() < 0.5:
        _melody(rng, score, simple, tonic, mode, mel_lo, mel_hi, meter, phrase_ends, final=cadenced_end)
    if texture == "solo":
        score.parts.pop("bass", None)
    info["bass_style"] = bass_style
    info["final_beats"] = total + final_hold
    return score, info


# -- sound ------------------------------------------------------------------------------------------------------


def _instrument(rng: np.random.Generator, kind: str) -> dict:
    """Random parameters of one additive instrument of archetype ``kind``."""
    j = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    if kind == "piano":
        return dict(tilt=j(1.2, 2.0), odd=1.0, decay=j(0.6, 1.6), hdecay=j(0.15, 0.5), attack=0.004, release=0.08,
                    sustain=0.0, vib=0.0, n_harm=14, bright_vel=0.5, noise=j(0, 0.02))
    if kind == "epiano":
        return dict(tilt=j(2.0, 3.0), odd=1.0, decay=j(0.8, 1.8), hdecay=j(0.5, 1.2), attack=0.003, release=0.1,
                    sustain=0.0, vib=0.0, n_harm=6, bright_vel=0.3, noise=0.0)
    if kind == "organ":
        return dict(tilt=j(0.5, 1.5), odd=1.0, decay=0.0, hdecay=0.0, attack=j(0.01, 0.04), release=j(0.03, 0.1),
                    sustain=1.0, vib=0.0, n_harm=int(rng.integers(6, 12)), bright_vel=0.0,
                    drawbar=rng.uniform(0.1, 1.0, 12), noise=0.0)
    if kind == "strings":
        return dict(tilt=j(0.9, 1.4), odd=1.0, decay=0.0, hdecay=0.0, attack=j(0.06, 0.2), release=j(0.1, 0.3),
                    sustain=1.0, vib=j(0.002, 0.006), vib_rate=j(4.5, 6.5), n_harm=16,
                    bright_vel=0.3, noise=j(0.0, 0.03))
    if kind == "pluck":
        return dict(tilt=j(0.8, 1.4), odd=1.0, decay=j(1.5, 4.0), hdecay=j(0.8, 2.0), attack=0.002, release=0.05,
                    sustain=0.0, vib=0.0, n_harm=14, bright_vel=0.4, noise=j(0, 0.03))
    if kind == "reed":
        return dict(tilt=j(0.8, 1.3), odd=j(0.05, 0.3), decay=0.0, hdecay=0.0, attack=j(0.02, 0.06),
                    release=0.06, sustain=1.0, vib=j(0.0, 0.004), vib_rate=j(4.5, 6), n_harm=12,
                    bright_vel=0.4, noise=j(0, 0.02))
    if kind == "flute":
        return dict(tilt=j(2.5, 4.0), odd=1.0, decay=0.0, hdecay=0.0, attack=j(0.03, 0.08), release=0.08,
                    sustain=1.0, vib=j(0.002, 0.005), vib_rate=j(4.5, 5.5), n_harm=5,
                    bright_vel=0.2, noise=j(0.02, 0.06))
    if kind == "brass":
        return dict(tilt=j(0.6, 1.1), odd=1.0, decay=0.0, hdecay=0.0, attack=j(0.03, 0.07), release=0.08,
                    sustain=1.0, vib=j(0.0, 0.003), vib_rate=j(4.5, 6), n_harm=14, bright_vel=1.2,
                    noise=j(0, 0.02))
    raise ParameterError(f"instrument {kind!r}: must be one of {INSTRUMENTS}")


def _render_part(rng, notes: _Note, inst: dict, *, sec_per_beat: float, sr: int, a4: float, n_samples: int,
                 jitter: float) -> np.ndarray:
    """Additive synthesis of one part's notes into a buffer of ``n_samples``."""
    out = np.zeros(n_samples, dtype=np.float64)
    if len(notes.onset) == 0:
        return out
    f0 = a4 * 2.0 ** ((notes.pitch - 69) / 12)
    starts = notes.onset * sec_per_beat + rng.normal(0, jitter, len(f0)).clip(-2 * jitter, 2 * jitter)
    starts = np.maximum(starts, 0)
    durs = notes.dur * sec_per_beat
    n_h_max = inst["n_harm"]  # partials above min(0.45 sr, 9 kHz) are left out (no aliasing)
    k = np.arange(1, n_h_max + 1, dtype=np.float64)
    base_amp = k ** -inst["tilt"] * np.where(k % 2 == 0, inst["odd"], 1.0)
    if "drawbar" in inst:
        base_amp = base_amp * inst["drawbar"][: n_h_max]
    tail = inst["release"] if inst["sustain"] else min(3.0, 4.0 / max(inst["decay"], 0.3))
    for i in range(len(f0)):
        dur = durs[i] if inst["sustain"] else max(durs[i], 0.05)
        length = int((dur + (inst["release"] if inst["sustain"] else 0) if inst["sustain"] else
                      min(dur + inst["release"], tail)) * sr)
        s0 = int(starts[i] * sr)
        length = min(length, n_samples - s0)
        if length <= 8:
            continue
        t64 = np.arange(length) / sr
        t = t64.astype(np.float32)
        f = f0[i]
        n_k = int(np.sum(k * f < min(0.45 * sr, 9000.0)))
        if n_k == 0:
            continue
        vel = notes.vel[i]
        amp = base_amp[:n_k] * (k[:n_k] ** (-(1 - vel) * inst["bright_vel"]))
        # phase of the fundamental (with vibrato); partial k is sin(k * theta), built by the
        # Chebyshev recurrence sin(k x) = 2 cos(x) sin((k-1) x) - sin((k-2) x)
        theta = (2 * np.pi * f) * t64 + rng.uniform(0, 2 * np.pi)
        if inst["vib"]:
            rate = inst["vib_rate"]
            onset_ramp = np.minimum(t64 / 0.3, 1.0)
            theta += (f * inst["vib"] / rate * onset_ramp * np.sin(2 * np.pi * rate * t64 + rng.uniform(0, 6.28)))
        theta = np.mod(theta, 2 * np.pi).astype(np.float32)  # float32 keeps its precision in [0, 2 pi)
        s_prev, s_cur = np.zeros_like(theta), np.sin(theta)
        two_c = 2 * np.cos(theta)
        sig = np.float32(amp[0]) * s_cur
        if inst["hdecay"]:
            d_step = np.exp(-t * np.float32(inst["hdecay"]))
            d_k = np.ones_like(t)
        for h in range(1, n_k):
            s_prev, s_cur = s_cur, two_c * s_cur - s_prev
            if inst["hdecay"]:
                d_k *= d_step
                sig += np.float32(amp[h]) * d_k * s_cur
            else:
                sig += np.float32(amp[h]) * s_cur
        env_t = 1.0 if inst["sustain"] else np.exp(-t * np.float32(inst["decay"] * (f / 261.6) ** 0.3))
        sig *= env_t
        # attack and release (a note stops at its end: the release ramps after dur)
        att = np.minimum(t / np.float32(inst["attack"]), 1.0)
        rel = np.clip(1 - (t - np.float32(dur)) / np.float32(inst["release"]), 0, 1)
        sig *= att * rel * np.float32(vel)
        if inst["noise"]:
            sig += np.float32(inst["noise"] * vel) * rng.standard_normal(length, dtype=np.float32) * att * rel * env_t
        out[s0:s0 + length] += sig
    return out


def _percussion(rng, beats: int, meter: int, sec_per_beat: float, sr: int, n_samples: int) -> np.ndarray:
    """Light kick / snare / hi-hat on the beat grid."""
    out = np.zeros(n_samples)
    t = np.arange(int(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t * 30)) / 30)) * np.exp(-t * 18)
    noise = rng.standard_normal(len(t))
    snare = (noise * np.exp(-t * 25) + 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 30)) * 0.5
    hat = np.diff(noise, prepend=0) * np.exp(-t * 80) * 0.25
    for b in range(beats):
        for sound, when, level in ((kick, b if b % meter in (0, 2 if meter == 4 else 0) else None, 0.8),
                                   (snare, b if meter >= 2 and b % meter in (1, 3) else None, 0.5),
                                   (hat, b, 0.4), (hat, b + 0.5, 0.3)):
            if when is None:
                continue
            s0 = int(when * sec_per_beat * sr)
            n = min(len(sound), n_samples - s0)
            if n > 0:
                out[s0:s0 + n] += level * sound[:n] * rng.uniform(0.8, 1.1)
    return out


def _room(rng, y: np.ndarray, sr: int) -> np.ndarray:
    """Exponential-noise reverb (RT60 0.2-1.6 s), a spectral tilt and a noise floor."""
    from scipy.signal import fftconvolve, lfilter

    rt60 = rng.uniform(0.2, 1.6)
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir = lfilter([0.3], [1, -0.7], ir)  # darker tail
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-12
    wet = rng.uniform(0.0, 0.45)
    y = (1 - wet) * y + wet * fftconvolve(y, ir)[: len(y)] * 0.5
    a = rng.uniform(-0.6, 0.6)  # tilt: a one-pole low- or high-shelf-ish filter
    y = lfilter([1 - abs(a)], [1, -abs(a)], y) if a > 0 else y - abs(a) * 0.5 * lfilter([1 - 0.9], [1, -0.9], y)
    peak = np.max(np.abs(y)) + 1e-12
    y = y / peak * 10 ** (rng.uniform(-8, -1) / 20)
    if rng.random() < 0.5:
        y = y + 10 ** (rng.uniform(-75, -45) / 20) * rng.standard_normal(len(y))
    return y


def _draw_score(rng: np.random.Generator, tonic: int, mode: int, n_beats: int | None, tempo: float | None,
                texture: str | None, beat_range: tuple[int, int]) -> tuple[_Score, dict]:
    """Length, tempo, texture, metre and the composed score of one piece (the draws before any sound)."""
    if n_beats is None:
        lo, hi = beat_range
        if not (4 <= lo <= hi <= 2000):
            raise ParameterError(f"beat_range={beat_range!r}: must be (lo, hi) with 4 <= lo <= hi <= 2000")
        n_beats = int(round(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
    if tempo is None:
        tempo = float(rng.uniform(60, 170))
    if texture is None:
        texture = str(rng.choice(TEXTURES, p=[0.25, 0.33, 0.17, 0.15, 0.10]))
    meter = int(rng.choice([4, 3, 2], p=[0.6, 0.3, 0.1]))
    score, info = _compose(rng, tonic, mode, n_beats, meter, texture)
    info.update(tempo=tempo, meter=meter, n_beats=n_beats, texture=texture)
    return score, info


def piece_score(index: int, seed: int, *, beat_range: tuple[int, int] = (20, 200)) -> tuple[dict, dict]:
    """The notes of piece ``index`` of the corpus of ``seed`` (the piece :func:`write_corpus` renders).

    Returns
    -------
    parts : dict
        Part name (``"melody"``, ``"chord"``, ``"bass"``) -> ``(n_notes, 4)`` float array of onset
        (beats), duration (beats), MIDI pitch, velocity (0-1).
    info : dict
        ``tonic``, ``mode``, ``key``, ``tempo``, ``meter``, ``n_beats``, ``texture``, ``final_beats``, ...

    Examples
    --------
    >>> parts, info = piece_score(0, seed=5)
    >>> set(parts) <= {"bass", "chord", "melody"}, info["key"] == key_name(*piece_key(0, 5))
    (True, True)
    """
    tonic, mode = piece_key(index, seed)
    rng = np.random.default_rng([int(seed), int(index)])
    score, info = _draw_score(rng, tonic, mode, None, None, None, beat_range)
    parts = {p: np.array(n, dtype=np.float64).reshape(-1, 4) for p, n in score.parts.items()}
    return parts, {**info, "tonic": tonic, "mode": mode, "key": key_name(tonic, mode)}


def render_piece(*, tonic: int, mode: int, seed: int | np.random.Generator | list = 0, n_beats: int | None = None,
                 tempo: float | None = None, texture: str | None = None, sr: int = 22050,
                 percussion: bool | None = None, beat_range: tuple[int, int] = (20, 200)) -> Piece:
    """Compose and render one piece in a given key.

    Parameters
    ----------
    tonic : int
        Pitch class 0-11 (C = 0).
    mode : {1, 0}
        1 major, 0 minor.
    seed : int, sequence of int or np.random.Generator
        Everything not given is drawn from it.
    n_beats : int or None
        Length in beats (drawn log-uniformly from ``beat_range`` when None); a
        piece may run a few beats longer (the bar is completed and the final
        chord held).
    tempo : float or None
        Beats per minute (60-170 uniform when None).
    texture : str or None
        One of :data:`TEXTURES` (drawn when None).
    sr : int
        Sample rate of the output.
    percussion : bool or None
        Light drums (drawn, 25 % of pieces, when None; never in chorales).
    beat_range : (int, int)
        Shortest and longest length drawn when ``n_beats`` is None.

    Returns
    -------
    Piece

    Raises
    ------
    ParameterError
        A tonic, mode, length, tempo or texture out of range.

    Examples
    --------
    >>> p = render_piece(tonic=0, mode=1, seed=0, n_beats=20, tempo=120)
    >>> p.key, round(len(p.audio) / p.sr) >= 10
    ('C major', True)
    """
    if not (isinstance(tonic, (int, np.integer)) and 0 <= tonic < 12):
        raise ParameterError(f"tonic={tonic!r}: must be a pitch class 0-11 (C=0)")
    if mode not in (0, 1):
        raise ParameterError(f"mode={mode!r}: must be 1 (major) or 0 (minor)")
    if n_beats is not None and not (4 <= n_beats <= 2000):
        raise ParameterError(f"n_beats={n_beats!r}: must be 4-2000")
    if tempo is not None and not (20 <= tempo <= 300):
        raise ParameterError(f"tempo={tempo!r}: must be 20-300 BPM")
    if texture is not None and texture not in TEXTURES:
        raise ParameterError(f"texture={texture!r}: must be one of {TEXTURES}")
    if sr < 8000:
        raise ParameterError(f"sr={sr!r}: must be at least 8000 Hz")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    tonic, mode = int(tonic), int(mode)
    score, info = _draw_score(rng, tonic, mode, n_beats, tempo, texture, beat_range)
    tempo, meter, texture = info["tempo"], info["meter"], info["texture"]
    sec_per_beat = 60.0 / tempo
    cents = float(rng.uniform(-30, 30))
    a4 = 440.0 * 2 ** (cents / 1200)
    n_samples = int((info["final_beats"] * sec_per_beat + 1.2) * sr)
    # instruments per part
    if texture == "chorale":
        kinds = {"chord": str(rng.choice(["organ", "strings", "piano", "reed", "brass", "epiano"]))}
        kinds["bass"] = kinds["chord"] if rng.random() < 0.7 else str(rng.choice(["organ", "strings", "piano"]))
    else:
        kinds = {"melody": str(rng.choice(INSTRUMENTS)),
                 "chord": str(rng.choice(["piano", "pluck", "epiano"] if texture in ("accompanied", "arpeggio")
                                         else ["organ", "strings", "reed"]) if texture != "arpeggio"
                              else rng.choice(["pluck", "piano", "epiano"])),
                 "bass": str(rng.choice(["piano", "pluck", "strings", "organ", "epiano"]))}
    gains = {"melody": rng.uniform(0.8, 1.3), "chord": rng.uniform(0.35, 0.8), "bass": rng.uniform(0.5, 1.0)}
    y = np.zeros(n_samples)
    jitter = rng.uniform(0.0, 0.015)
    for part in ("chord", "bass", "melody"):
        if part not in score.parts:
            continue
        inst = _instrument(rng, kinds[part])
        y += gains[part] * _render_part(rng, score.notes(part), inst, sec_per_beat=sec_per_beat, sr=sr, a4=a4,
                                        n_samples=n_samples, jitter=jitter)
    if percussion is None:
        percussion = texture != "chorale" and rng.random() < 0.25
    if percussion:
        y += rng.uniform(0.1, 0.35) * np.max(np.abs(y)) * _percussion(
            rng, int(info["final_beats"]) - 1, meter, sec_per_beat, sr, n_samples)
    y = _room(rng, y, sr)
    info.update(tuning_cents=cents,
                instruments={p: kinds[p] for p in score.parts if p in kinds}, percussion=bool(percussion),
                duration=n_samples / sr)
    return Piece(y.astype(np.float32), sr, tonic, mode, key_name(tonic, mode), info)


# -- corpus -----------------------------------------------------------------------------------------------------


def _write_one(args) -> tuple[str, str, dict]:
    out, index, seed, fmt, sr, beat_range = args
    tonic, mode = piece_key(index, seed)
    piece = render_piece(tonic=tonic, mode=mode, seed=[int(seed), int(index)], sr=sr, beat_range=beat_range)
    rel = f"audio/{index // 1000:03d}/piece-{seed}-{index:05d}.{fmt}"
    path = Path(out) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        write_audio(tmp, piece.audio, sr, format=FORMATS[fmt])  # in blocks: one big OGG write segfaults
    info = {k: piece.info[k] for k in ("tempo", "meter", "n_beats", "texture", "duration")}
    return rel, piece.key, info


def write_corpus(out: str | Path, *, pieces: int, seed: int = 0, fmt: str = "flac", sr: int = 22050,
                 workers: int = 1, beat_range: tuple[int, int] = (20, 200),
                 progress: Callable[[int], None] | None = None) -> Path:
    """Render ``pieces`` pieces into ``out/audio/`` and write ``out/labels.csv`` (``path``, ``key``).

    Pieces already on disk are kept (a rerun resumes). The key of piece ``i``
    is :func:`piece_key` ``(i, seed)``: balanced over the 12 tonics and both
    modes in every block of 24.

    Parameters
    ----------
    out : path
        Corpus folder (created).
    pieces : int
        Number of pieces (>= 1).
    seed : int
        Corpus seed; different seeds give disjoint corpora.
    fmt : {'flac', 'ogg', 'wav'}
    sr : int
    workers : int
        Processes rendering in parallel.
    beat_range : (int, int)
        Piece lengths in beats, drawn log-uniformly (see :func:`render_piece`).
    progress : callable or None
        Called with the number of pieces finished.

    Returns
    -------
    Path
        ``out/labels.csv``.

    Raises
    ------
    ParameterError
        Bad ``pieces``, ``fmt`` or ``workers``.

    Examples
    --------
    >>> write_corpus("keys", pieces=24, seed=1)   # doctest: +SKIP
    PosixPath('keys/labels.csv')
    """
    if not (isinstance(pieces, int) and pieces >= 1):
        raise ParameterError(f"pieces={pieces!r}: must be an int >= 1")
    if fmt not in FORMATS:
        raise ParameterError(f"format {fmt!r}: must be one of {', '.join(FORMATS)}")
    if not (isinstance(workers, int) and workers >= 1):
        raise ParameterError(f"workers={workers!r}: must be an int >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, dict]] = [None] * pieces  # type: ignore[list-item]
    todo = []
    for i in range(pieces):
        rel = f"audio/{i // 1000:03d}/piece-{seed}-{i:05d}.{fmt}"
        if (out / rel).exists():
            tonic, mode = piece_key(i, seed)
            rows[i] = (rel, key_name(tonic, mode), {})
        else:
            todo.append((str(out), i, seed, fmt, sr, tuple(beat_range)))
    for args, res in zip(todo, render_missing(_write_one, todo, total=pieces, workers=workers, chunksize=4,
                                              progress=progress)):
        rows[args[1]] = res
    return write_labels(out / "labels.csv", ["path", "key"], ([rel, key] for rel, key, _ in rows))
