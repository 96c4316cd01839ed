"""Clips that have no key, for teaching a key model to say so: speech, noise, drums, lone tones, atonal notes.

Each clip is drawn from ``numpy.random.default_rng([seed, index])``; the kind of clip ``i`` cycles
through :data:`KINDS` so every block of ``len(KINDS)`` clips holds one of each.

* ``speech`` -- random sentences of several languages, voices, speeds and pitches spoken by Debian's
  ``espeak-ng``, sometimes over a noise floor or a room;
* ``noise`` -- white, pink, brown, blue or violet noise, steady or with a slow swell or gating;
* ``drums`` -- a drum kit alone (General MIDI channel 10 through FluidSynth, random patterns and tempi);
* ``tone`` -- one pitch held or repeated: a sine or a harmonic tone, with or without vibrato;
* ``atonal`` -- notes whose pitch classes are drawn uniformly (tone rows, random clusters), played by
  a General MIDI instrument;
* ``silence`` -- near-silence: a noise floor 55-80 dB below full scale, with the odd click.

:func:`write_no_key_corpus` writes them with ``labels.csv`` (``path``, ``kind``). Soundfonts as in
:mod:`beatdbn.synth.gm` (never FluidR3).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.synth.audio_keys import FORMATS
from beatdbn.synth.gm import SOUNDFONTS, check_soundfont, render_midi
from beatdbn.synth.resumable import render_missing, write_labels
from beatdbn.utils.atomic import atomic_path
from beatdbn.utils.audio_io import write_audio

__all__ = ["KINDS", "render_clip", "write_no_key_corpus"]

#: The kinds of clip without a key, in the order clips cycle through them.
KINDS = ("speech", "noise", "drums", "tone", "atonal", "silence")

_VOICES = ("en", "en-us", "en-gb-scotland", "de", "fr", "es", "it", "nl", "pt", "pl", "sv", "fi", "cs", "tr", "id")
_VARIANTS = ("", "+m1", "+m3", "+m5", "+f1", "+f2", "+f4", "+croak", "+whisper")
_SYLLABLES = ("ka", "lo", "mi", "tan", "ver", "sul", "de", "ro", "bi", "nek", "sa", "tor", "pe", "lin", "gu", "fa",
              "ho", "mar", "ze", "ti", "ban", "dro", "kel", "us", "ne", "pra", "li", "mon", "es", "ter")


def _speech(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """Sentences of made-up words spoken by espeak-ng, joined with pauses up to ``seconds``."""
    import soundfile as sf
    from scipy.signal import resample_poly

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DataError("espeak-ng is not installed: apt-get install espeak-ng (make model installs it)")
    pieces, total = [], 0.0
    with tempfile.TemporaryDirectory(prefix="beatdbn-speech-") as tmp:
        while total < seconds:
            words = [("".join(rng.choice(_SYLLABLES, size=int(rng.integers(1, 4))))) for _ in range(rng.integers(4, 14))]
            text = " ".join(words).capitalize() + str(rng.choice([".", "?", "!", ","]))
            voice = str(rng.choice(_VOICES)) + str(rng.choice(_VARIANTS))
            out = Path(tmp) / "s.wav"
            cmd = [exe, "-v", voice, "-s", str(int(rng.integers(110, 230))), "-p", str(int(rng.integers(15, 90))),
                   "-w", str(out), text]
            res = subprocess.run(cmd, capture_output=True, timeout=60)
            if res.returncode != 0 or not out.is_file():
                raise DataError(f"espeak-ng failed ({res.returncode}): {res.stderr.decode(errors='replace')[:200]}")
            y, got = sf.read(out, dtype="float32", always_2d=True)
            y = y.mean(axis=1)
            if got != sr:
                y = resample_poly(y, sr, got).astype(np.float32)
            pieces += [y, np.zeros(int(rng.uniform(0.1, 0.8) * sr), dtype=np.float32)]
            total += (len(y) + len(pieces[-1])) / sr
    return np.concatenate(pieces)


def _coloured_noise(rng: np.random.Generator, n: int, colour: str) -> np.ndarray:
    """Noise with power spectrum ``f**alpha`` (white 0, pink -1, brown -2, blue 1, violet 2), unit peak."""
    alpha = {"white": 0, "pink": -1, "brown": -2, "blue": 1, "violet": 2}[colour]
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec * f ** (alpha / 2), n)
    return y / (np.max(np.abs(y)) + 1e-12)


def _noise(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    n = int(seconds * sr)
    y = _coloured_noise(rng, n, str(rng.choice(["white", "pink", "brown", "blue", "violet"])))
    t = np.arange(n) / sr
    shape = rng.choice(["steady", "swell", "gated"])
    if shape == "swell":
        y *= 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t + rng.uniform(0, 6.3))
    elif shape == "gated":
        y *= (np.sin(2 * np.pi * rng.uniform(0.5, 4) * t) > rng.uniform(-0.5, 0.5)).astype(float)
    return y


def _tone(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """One pitch, held or repeated: a sine, or a harmonic tone, with or without vibrato."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0 = 440.0 * 2 ** ((rng.uniform(36, 88) - 69) / 12)
    theta = 2 * np.pi * f0 * t
    if rng.random() < 0.4:
        rate = rng.uniform(4, 7)
        theta += f0 * rng.uniform(0.003, 0.015) / rate * np.sin(2 * np.pi * rate * t)
    n_h = 1 if rng.random() < 0.5 else int(rng.integers(2, 12))
    k = np.arange(1, n_h + 1)
    amps = k ** -rng.uniform(0.8, 2.0)
    y = sum(a * np.sin(h * theta) for a, h in zip(amps, k) if h * f0 < 0.45 * sr)
    if rng.random() < 0.4:  # repeated notes of the one pitch
        period = rng.uniform(0.2, 1.5)
        phase = (t % period) / period
        y = y * np.exp(-phase * rng.uniform(2, 8))
    return np.asarray(y, dtype=np.float64)


def _midi_clip(rng: np.random.Generator, sr: int, seconds: float, soundfonts: Sequence[str], drums: bool
               ) -> np.ndarray:
    """Drums alone, or atonal notes on one General MIDI instrument, through FluidSynth."""
    import mido

    tempo = float(rng.uniform(60, 180))
    beats = max(int(seconds * tempo / 60), 4)
    tpb = 480
    mid = mido.MidiFile(ticks_per_beat=tpb)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0))
    events = []
    if drums:
        channel = 9
        kit = rng.choice([35, 36, 38, 40, 42, 44, 46, 49, 51, 37, 39, 41, 45, 48, 54, 56, 69, 70, 75, 76],
                         size=int(rng.integers(3, 8)), replace=False)
        steps = int(rng.choice([2, 4]))
        pattern = rng.random((len(kit), steps * int(rng.choice([2, 4])))) < rng.uniform(0.15, 0.5)
        for b in range(beats):
            for j, note in enumerate(kit):
                for s in range(steps):
                    if pattern[j, (b * steps + s) % pattern.shape[1]] or (rng.random() < 0.03):
                        on = int((b + s / steps) * tpb)
                        events += [(on, 1, int(note), int(rng.integers(50, 120))), (on + tpb // 8, 0, int(note), 0)]
    else:
        channel = 0
        track.append(mido.Message("program_change", channel=0, program=int(rng.integers(0, 80)), time=0))
        on = 0.0
        row = list(rng.permutation(12))
        while on < beats:
            if rng.random() < 0.25:  # a random cluster
                pcs = rng.choice(12, size=int(rng.integers(3, 7)), replace=False)
            else:
                if not row:
                    row = list(rng.permutation(12))
                pcs = [row.pop()]
            dur = float(rng.choice([0.25, 0.5, 0.75, 1, 1.5, 2]))
            for pc in pcs:
                p = int(pc + 12 * rng.integers(3, 7))
                events += [(int(on * tpb), 1, p, int(rng.integers(50, 110))), (int((on + dur) * tpb), 0, p, 0)]
            on += dur * float(rng.choice([1.0, 0.5, 1.0, 1.5]))
    now = 0
    for tick, is_on, note, vel in sorted(events):
        track.append(mido.Message("note_on" if is_on else "note_off", channel=channel, note=note, velocity=vel,
                                  time=tick - now))
        now = tick
    mid.tracks.append(track)
    with tempfile.TemporaryDirectory(prefix="beatdbn-mid-") as tmp:
        path = Path(tmp) / "clip.mid"
        mid.save(str(path))
        return render_midi(path, soundfonts[int(rng.integers(len(soundfonts)))], sr=sr).astype(np.float64)


def render_clip(kind: str, *, seed: int | Sequence[int] = 0, sr: int = 22050, seconds: float | None = None,
                soundfonts: Sequence[str | Path] = SOUNDFONTS) -> np.ndarray:
    """One clip without a key, mono float32 at ``sr`` (peak at -1 to -12 dBFS; near-silence far below).

    Raises
    ------
    ParameterError
        Unknown ``kind``.
    DataError
        ``espeak-ng`` or ``fluidsynth`` missing (speech, drums, atonal).

    Examples
    --------
    >>> y = render_clip("noise", seed=1, seconds=2.0)
    >>> y.dtype, len(y)
    (dtype('float32'), 44100)
    """
    if kind not in KINDS:
        raise ParameterError(f"kind={kind!r}: must be one of {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    seconds = float(np.exp(rng.uniform(np.log(8), np.log(90)))) if seconds is None else float(seconds)
    fonts = [str(check_soundfont(f)) for f in soundfonts] if kind in ("drums", "atonal") else []
    if kind == "speech":
        y = _speech(rng, sr, seconds)
    elif kind == "noise":
        y = _noise(rng, sr, seconds)
    elif kind == "tone":
        y = _tone(rng, sr, seconds)
    elif kind in ("drums", "atonal"):
        y = _midi_clip(rng, sr, seconds, fonts, drums=kind == "drums")
    else:  # silence
        n = int(seconds * sr)
        y = _coloured_noise(rng, n, str(rng.choice(["white", "pink", "brown"])))
        clicks = rng.integers(0, n, size=int(rng.integers(0, 6)))
        y[clicks] += rng.uniform(-20, 20, size=len(clicks))
        return (y / (np.max(np.abs(y)) + 1e-12) * 10 ** (rng.uniform(-80, -55) / 20)).astype(np.float32)
    y = np.asarray(y, dtype=np.float64)[: int(seconds * sr)]  # a last sentence or a release tail cut off
    if kind == "speech" and rng.random() < 0.4:
        y = y + 10 ** (rng.uniform(-50, -25) / 20) * _coloured_noise(rng, len(y), "pink")
    return (y / (np.max(np.abs(y)) + 1e-12) * 10 ** (rng.uniform(-12, -1) / 20)).astype(np.float32)


def _write_one(args) -> tuple[str, str]:
    out, index, seed, fmt, sr, fonts, seconds = args
    kind = KINDS[index % len(KINDS)]
    y = render_clip(kind, seed=[int(seed), int(index)], sr=sr, soundfonts=fonts, seconds=seconds)
    rel = f"audio/{index // 1000:03d}/nokey-{seed}-{index:05d}-{kind}.{fmt}"
    path = Path(out) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        write_audio(tmp, y, sr, format=FORMATS[fmt])
    return rel, kind


def write_no_key_corpus(out: str | Path, *, clips: int, seed: int = 0, fmt: str = "flac", sr: int = 22050,
                        workers: int = 1, soundfonts: Sequence[str | Path] = SOUNDFONTS,
                        seconds: float | None = None, progress: Callable[[int], None] | None = None) -> Path:
    """Write ``clips`` clips without a key into ``out/audio/`` and ``out/labels.csv`` (``path``, ``kind``).

    Each clip lasts ``seconds`` (None: drawn log-uniformly from 8-90 s).

    Clips already on disk are kept (a rerun resumes).
    """
    if not (isinstance(clips, int) and clips >= 1):
        raise ParameterError(f"clips={clips!r}: must be an int >= 1")
    if fmt not in FORMATS:
        raise ParameterError(f"format {fmt!r}: must be one of {', '.join(FORMATS)}")
    fonts = tuple(str(check_soundfont(f)) for f in soundfonts)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rel = [f"audio/{i // 1000:03d}/nokey-{seed}-{i:05d}-{KINDS[i % len(KINDS)]}.{fmt}" for i in range(clips)]
    todo = [(str(out), i, seed, fmt, sr, fonts, seconds) for i in range(clips) if not (out / rel[i]).exists()]
    render_missing(_write_one, todo, total=clips, workers=max(1, workers), chunksize=2, progress=progress)
    return write_labels(out / "labels.csv", ["path", "kind"], ([r, KINDS[i % len(KINDS)]] for i, r in enumerate(rel)))
