"""The key model's training audio: General MIDI renders (beatdbn.synth.gm) and clips without a key
(beatdbn.synth.no_key). Rendering needs Debian's fluidsynth, a soundfont and espeak-ng (`make test`
installs them); those tests skip without them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from beatdbn.exceptions import ParameterError
from beatdbn.synth.audio_keys import piece_key, piece_score
from beatdbn.synth.gm import available_soundfonts, check_soundfont, render_midi, score_to_midi
from beatdbn.synth.no_key import KINDS, render_clip, write_no_key_corpus

mido = pytest.importorskip("mido")
FONTS = available_soundfonts()
needs_fluidsynth = pytest.mark.skipif(not (shutil.which("fluidsynth") and FONTS),
                                      reason="fluidsynth or a Debian GM soundfont is not installed")


def test_score_to_midi_keeps_every_note_and_draws_programs(tmp_path):
    parts, info = piece_score(3, seed=7)
    path = score_to_midi(parts, info, tmp_path / "p.mid", seed=1)
    mid = mido.MidiFile(str(path))
    ons = [m for t in mid.tracks for m in t if m.type == "note_on" and m.velocity > 0 and m.channel != 9]
    assert len(ons) == sum(len(n) for n in parts.values())
    pcs = np.bincount([m.note % 12 for m in ons], minlength=12)
    tonic, mode = piece_key(3, 7)
    scale = (tonic + np.array([0, 2, 4, 5, 7, 9, 11] if mode == 1 else [0, 2, 3, 5, 7, 8, 10, 11])) % 12
    assert pcs[scale].sum() > 0.8 * pcs.sum()  # the notes are the key's
    assert any(m.type == "program_change" for t in mid.tracks for m in t)
    tempo = next(m.tempo for m in mid.tracks[0] if m.type == "set_tempo")
    assert mido.tempo2bpm(tempo) == pytest.approx(info["tempo"], rel=1e-3)


def test_the_fluidr3_soundfont_is_refused(tmp_path):
    fake = tmp_path / "FluidR3_GM.sf2"
    fake.write_bytes(b"RIFF")
    with pytest.raises(ParameterError, match="reserved for evaluation"):
        check_soundfont(fake)
    link = tmp_path / "default.sf2"
    link.symlink_to(fake)
    with pytest.raises(ParameterError, match="reserved"):
        check_soundfont(link)  # through a link too (Debian's default-GM.sf2 alternative)
    with pytest.raises(ParameterError, match="no such soundfont"):
        check_soundfont(tmp_path / "missing.sf2")


@needs_fluidsynth
def test_a_gm_render_sounds_in_its_key(tmp_path):
    import librosa

    parts, info = piece_score(0, seed=11)
    y = render_midi(score_to_midi(parts, info, tmp_path / "p.mid", seed=0), FONTS[0], sr=22050)
    assert y.dtype == np.float32 and len(y) > 22050 * 5 and np.abs(y).max() > 0.01
    chroma = librosa.feature.chroma_stft(y=y, sr=22050).sum(axis=1)
    tonic, mode = piece_key(0, 11)
    third = (tonic + (4 if mode == 1 else 3)) % 12
    top = set(np.argsort(-chroma)[:4].tolist())
    assert tonic in top or third in top or (tonic + 7) % 12 in top


@pytest.mark.parametrize("kind", ["noise", "tone", "silence"])
def test_clips_without_a_key_without_external_tools(kind):
    y = render_clip(kind, seed=[0, 1], seconds=3.0)
    assert y.dtype == np.float32 and len(y) == 3 * 22050 and np.isfinite(y).all()
    peak = np.abs(y).max()
    assert (peak < 10 ** (-50 / 20)) if kind == "silence" else (0.2 < peak <= 1.0)
    if kind == "tone":  # one pitch class carries the energy
        import librosa

        chroma = librosa.feature.chroma_stft(y=y, sr=22050).sum(axis=1)
        assert chroma.max() > 0.3 * chroma.sum()
    with pytest.raises(ParameterError):
        render_clip("jazz")


@needs_fluidsynth
@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng is not installed")
def test_no_key_corpus_cycles_through_every_kind(tmp_path):
    labels = write_no_key_corpus(tmp_path, clips=len(KINDS), seed=3, workers=1, soundfonts=FONTS, seconds=4.0)
    rows = labels.read_text().splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == list(KINDS)
    import soundfile as sf

    for r in rows:
        info = sf.info(str(tmp_path / r.split(",")[0]))
        assert info.duration == pytest.approx(4.0, abs=1.0)  # speech ends at a sentence
