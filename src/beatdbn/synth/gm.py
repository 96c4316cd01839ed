"""The key corpus's pieces played by sampled instruments: General MIDI through FluidSynth and a soundfont.

:func:`score_to_midi` writes the notes of one piece (:func:`beatdbn.synth.audio_keys.piece_score`) as a
Standard MIDI File (mido) with General MIDI programs drawn for its texture, a tuning deviation as a
pitch bend and, in some pieces, a drum kit on channel 10. :func:`render_midi` plays a MIDI file through
Debian's ``fluidsynth`` with a soundfont; :func:`write_gm_corpus` renders a whole corpus (same piece
indices and keys as :func:`~beatdbn.synth.audio_keys.write_corpus`, each piece through one of the
soundfonts given) and writes ``labels.csv``.

The FluidR3 soundfont (Debian's ``fluid-soundfont-gm``) is reserved for evaluation: it is refused here,
so nothing beatdbn trains on is ever rendered with it. The soundfonts used by ``make model`` are Debian's
``timgm6mb-soundfont``, ``musescore-general-soundfont-small`` and ``csound-soundfont`` (:data:`SOUNDFONTS`).

Public API: :func:`score_to_midi`, :func:`render_midi`, :func:`write_gm_corpus`, :func:`available_soundfonts`,
:data:`SOUNDFONTS`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.synth.audio_keys import FORMATS, key_name, piece_key, piece_score
from beatdbn.synth.resumable import render_missing, write_labels
from beatdbn.utils.atomic import atomic_path
from beatdbn.utils.audio_io import write_audio

__all__ = ["SOUNDFONTS", "available_soundfonts", "score_to_midi", "render_midi", "write_gm_corpus",
           "check_soundfont"]

#: Soundfonts of Debian's packages that training may use (FluidR3 is for evaluation only).
SOUNDFONTS = ("/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
              "/usr/share/sounds/sf2/sf_GMbank.sf2")
_RESERVED = ("fluidr3", "fluid-soundfont", "fluid_r3")
_TICKS = 480  # per beat

# General MIDI programs (0-based) per part, by texture.
_MELODY = [0, 4, 6, 11, 13, 19, 22, 24, 25, 26, 40, 41, 42, 56, 57, 60, 64, 65, 66, 68, 69, 71, 73, 74, 75, 79, 80,
           81]
_CHORD = {"chorale": [19, 20, 48, 49, 52, 16, 61, 0], "pad": [48, 49, 50, 88, 89, 91, 16, 18, 52],
          "accompanied": [0, 1, 2, 4, 5, 24, 25, 46, 27], "arpeggio": [0, 1, 24, 25, 46, 8, 10, 11, 4],
          "solo": [0]}
_BASS = [32, 33, 34, 35, 42, 43, 0, 58, 70]


def check_soundfont(path: str | Path) -> Path:
    """The soundfont's path; raises ParameterError for a missing file or the reserved FluidR3 soundfont."""
    p = Path(path)
    real = p.resolve().name.lower() if p.exists() else p.name.lower()
    if any(r in real or r in p.name.lower() for r in _RESERVED):
        raise ParameterError(f"{p}: the FluidR3 soundfont is reserved for evaluation; train with another one "
                             f"(e.g. {SOUNDFONTS[0]})")
    if not p.is_file():
        raise ParameterError(f"{p}: no such soundfont; install Debian's timgm6mb-soundfont, "
                             f"musescore-general-soundfont-small or csound-soundfont (make model does)")
    return p


def available_soundfonts(candidates: Sequence[str | Path] = SOUNDFONTS) -> list[Path]:
    """Those of ``candidates`` that exist (reserved ones left out)."""
    out = []
    for c in candidates:
        try:
            out.append(check_soundfont(c))
        except ParameterError:
            continue
    return out


def score_to_midi(parts: dict, info: dict, path: str | Path, *, seed: int | Sequence[int] = 0) -> Path:
    """Write one piece's notes as a Standard MIDI File with drawn General MIDI programs.

    Parameters
    ----------
    parts : dict
        Part -> ``(n_notes, 4)`` array of onset (beats), duration (beats), MIDI pitch, velocity 0-1
        (:func:`~beatdbn.synth.audio_keys.piece_score`).
    info : dict
        ``tempo`` (BPM), ``meter``, ``texture``, ``final_beats``.
    path : path
    seed : int or sequence of int
        Programs, tuning, drums.

    Returns
    -------
    Path
    """
    import mido

    rng = np.random.default_rng(seed)
    mid = mido.MidiFile(ticks_per_beat=_TICKS)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(float(info["tempo"])), time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=int(info.get("meter", 4)), denominator=4, time=0))
    mid.tracks.append(meta)
    texture = str(info.get("texture", "accompanied"))
    cents = float(rng.uniform(-30, 30))
    bend = int(round(cents / 200 * 8191))  # the default pitch-bend range is +-2 semitones
    programs = {"melody": int(rng.choice(_MELODY)), "chord": int(rng.choice(_CHORD.get(texture, _CHORD["pad"]))),
                "bass": int(rng.choice(_BASS))}
    if texture == "chorale" and rng.random() < 0.7:
        programs["bass"] = programs["chord"]
    for channel, part in enumerate(("chord", "bass", "melody")):
        notes = parts.get(part)
        if notes is None or not len(notes):
            continue
        events = []
        for onset, dur, pitch, vel in notes:
            p = int(round(pitch))
            if not 0 <= p < 128:
                continue
            v = int(np.clip(round(vel * 110 * rng.uniform(0.9, 1.1)), 1, 127))
            on = int(round(max(onset, 0) * _TICKS + rng.normal(0, 6)))
            events.append((max(on, 0), 1, p, v))
            events.append((max(on, 0) + max(int(round(dur * _TICKS)), 10), 0, p, 0))
        _append_track(mid, channel, programs[part], bend, events)
    if texture != "chorale" and rng.random() < 0.3:
        _append_track(mid, 9, None, 0, _drum_events(rng, int(info.get("final_beats", 16)), int(info.get("meter", 4))))
    path = Path(path)
    with atomic_path(path) as tmp:
        mid.save(str(tmp))
    return path


def _append_track(mid, channel: int, program: int | None, bend: int, events: list) -> None:
    """One track of note events ``(tick, on?, pitch, velocity)`` (offs before ons at one tick)."""
    import mido

    track = mido.MidiTrack()
    if program is not None:
        track.append(mido.Message("program_change", channel=channel, program=program, time=0))
        track.append(mido.Message("pitchwheel", channel=channel, pitch=bend, time=0))
    now = 0
    for tick, on, pitch, vel in sorted(events):
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, channel=channel, note=pitch, velocity=vel, time=tick - now))
        now = tick
    mid.tracks.append(track)


def _drum_events(rng: np.random.Generator, beats: int, meter: int) -> list:
    """A drum-kit pattern on the beat grid: kick, snare, closed hi-hat (GM notes 36, 38, 42)."""
    events = []
    for b in range(max(beats - 1, 0)):
        hits = [(42, 0.0, 60), (42, 0.5, 45)]
        if b % meter == 0 or (meter == 4 and b % meter == 2):
            hits.append((36, 0.0, 90))
        if b % meter in (1, 3):
            hits.append((38, 0.0, 80))
        for note, off, vel in hits:
            t = int(round((b + off) * _TICKS))
            events.append((t, 1, note, int(vel * rng.uniform(0.8, 1.1))))
            events.append((t + _TICKS // 8, 0, note, 0))
    return events


def render_midi(midi: str | Path, soundfont: str | Path, *, sr: int = 22050, gain: float = 0.4,
                reverb: bool = True) -> np.ndarray:
    """Play a MIDI file through ``fluidsynth`` with ``soundfont``; mono float32 audio at ``sr``.

    Raises
    ------
    ParameterError
        A reserved or missing soundfont.
    DataError
        ``fluidsynth`` is missing or fails.
    """
    import soundfile as sf

    sf_path = check_soundfont(soundfont)
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise DataError("fluidsynth is not installed: apt-get install fluidsynth (make model installs it)")
    with tempfile.TemporaryDirectory(prefix="beatdbn-gm-") as tmp:
        out = Path(tmp) / "out.wav"
        cmd = [exe, "-ni", "-q", "-g", str(gain), "-r", str(sr), "-R", "1" if reverb else "0", "-C", "0",
               "-F", str(out), "-T", "wav", str(sf_path), str(midi)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if res.returncode != 0 or not out.is_file():
            raise DataError(f"fluidsynth failed on {midi} ({res.returncode}): {res.stderr.strip()[:200]}")
        y, got_sr = sf.read(out, dtype="float32", always_2d=True)
    if got_sr != sr:
        raise DataError(f"fluidsynth wrote {got_sr} Hz, asked for {sr}")
    return y.mean(axis=1)


def _write_one(args) -> tuple[str, str]:
    out, index, seed, fmt, sr, soundfonts, beat_range = args
    parts, info = piece_score(index, seed, beat_range=beat_range)
    rng = np.random.default_rng([int(seed), int(index), 1])
    font = soundfonts[int(rng.integers(len(soundfonts)))]
    rel = f"audio/{index // 1000:03d}/gm-{seed}-{index:05d}.{fmt}"
    path = Path(out) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="beatdbn-mid-") as tmp:
        midi = score_to_midi(parts, info, Path(tmp) / "piece.mid", seed=[int(seed), int(index), 2])
        y = render_midi(midi, font, sr=sr, reverb=bool(rng.random() < 0.7))
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0:
        y = y / peak * 10 ** (rng.uniform(-8, -1) / 20)
    with atomic_path(path) as tmp_path:
        write_audio(tmp_path, y.astype(np.float32), sr, format=FORMATS[fmt])
    return rel, info["key"]


def write_gm_corpus(out: str | Path, *, pieces: int, seed: int = 0, soundfonts: Sequence[str | Path] = SOUNDFONTS,
                    fmt: str = "flac", sr: int = 22050, workers: int = 1, beat_range: tuple[int, int] = (20, 200),
                    progress: Callable[[int], None] | None = None) -> Path:
    """Render pieces ``0 .. pieces-1`` of the corpus of ``seed`` through the soundfonts; ``out/labels.csv``.

    Pieces already on disk are kept (a rerun resumes); each piece uses one soundfont drawn from its seed.

    Raises
    ------
    ParameterError
        No usable soundfont (missing, or only the reserved FluidR3), bad ``pieces`` or ``fmt``.
    """
    if not (isinstance(pieces, int) and pieces >= 1):
        raise ParameterError(f"pieces={pieces!r}: must be an int >= 1")
    if fmt not in FORMATS:
        raise ParameterError(f"format {fmt!r}: must be one of {', '.join(FORMATS)}")
    fonts = tuple(str(check_soundfont(f)) for f in soundfonts)
    if not fonts:
        raise ParameterError("no soundfont given")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(str(out), i, seed, fmt, sr, fonts, tuple(beat_range)) for i in range(pieces)
            if not (out / f"audio/{i // 1000:03d}/gm-{seed}-{i:05d}.{fmt}").exists()]
    render_missing(_write_one, todo, total=pieces, workers=max(1, workers), chunksize=4, progress=progress)
    return write_labels(out / "labels.csv", ["path", "key"],
                        ([f"audio/{i // 1000:03d}/gm-{seed}-{i:05d}.{fmt}", key_name(*piece_key(i, seed))]
                         for i in range(pieces)))
