"""The synthesized audio key corpus: right keys, balanced labels, files that the extractor reads."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from beatdbn.exceptions import ParameterError
from beatdbn.synth.audio_keys import key_name, piece_key, render_piece, write_corpus
from beatdbn.labels import parse_key, read_label_csv

# Krumhansl-Kessler probe-tone profiles (C major, C minor)
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _chroma(y: np.ndarray, sr: int) -> np.ndarray:
    """Mean constant-Q chroma (C..B) of a signal (librosa), the usual input of a Krumhansl key finder."""
    import librosa

    return librosa.feature.chroma_cqt(y=y, sr=sr).mean(axis=1)


def _ranked_keys(chroma: np.ndarray) -> list[tuple[int, int]]:
    scores = [(np.corrcoef(chroma, np.roll(prof, t))[0, 1], t, m)
              for m, prof in ((1, KK_MAJOR), (0, KK_MINOR)) for t in range(12)]
    return [(t, m) for _, t, m in sorted(scores, reverse=True)]


KEYS = [(0, 1), (6, 0), (9, 0), (3, 1), (10, 1), (4, 0)]


@pytest.fixture(scope="module")
def pieces():
    return [render_piece(tonic=t, mode=m, seed=i, n_beats=40, tempo=160) for i, (t, m) in enumerate(KEYS)]


def test_rendered_chroma_matches_the_labelled_key(pieces):
    hits = 0
    profile = {0: np.zeros(12), 1: np.zeros(12)}
    for p in pieces:
        assert p.key == key_name(p.tonic, p.mode) and parse_key(p.key) == (p.tonic, p.mode)
        assert p.audio.dtype == np.float32 and np.all(np.isfinite(p.audio)) and 0 < np.abs(p.audio).max() < 1
        c = _chroma(p.audio, p.sr)
        ranked = _ranked_keys(c)
        hits += ranked[0][0] == p.tonic
        assert (p.tonic, p.mode) in ranked[:3], (p.key, p.info["texture"], ranked[:3])
        profile[p.mode] += np.roll(c / c.sum(), -p.tonic)  # transposed to C
    assert hits >= 5, f"Krumhansl tonic right on {hits} of {len(pieces)} pieces"
    # averaged over pieces, the chroma transposed to C is the key profile of its mode
    assert np.corrcoef(profile[1], KK_MAJOR)[0, 1] > 0.75
    assert np.corrcoef(profile[0], KK_MINOR)[0, 1] > 0.75


def test_render_is_seeded_and_varies():
    a = render_piece(tonic=2, mode=1, seed=5, n_beats=20, tempo=160)
    b = render_piece(tonic=2, mode=1, seed=5, n_beats=20, tempo=160)
    c = render_piece(tonic=2, mode=1, seed=6, n_beats=20, tempo=160)
    assert np.array_equal(a.audio, b.audio) and a.info == b.info
    assert len(c.audio) != len(a.audio) or not np.allclose(c.audio, a.audio)
    assert abs(a.info["tuning_cents"]) <= 30 and a.info["texture"] in ("chorale", "accompanied", "pad",
                                                                      "arpeggio", "solo")


def test_keys_are_balanced_and_seeds_differ():
    keys = [piece_key(i, 3) for i in range(48)]
    tonics = np.bincount([t for t, _ in keys], minlength=12)
    assert tonics.tolist() == [4] * 12 and sum(m for _, m in keys) == 24
    assert keys != [piece_key(i, 4) for i in range(48)]


def test_write_corpus_labels_parse(tmp_path):
    labels = write_corpus(tmp_path, pieces=3, seed=11, beat_range=(20, 24), fmt="flac")
    rows = list(csv.DictReader(open(labels)))
    assert [r["key"] for r in rows] == [key_name(*piece_key(i, 11)) for i in range(3)]
    parsed = read_label_csv(labels)
    for i, row in enumerate(rows):
        tonic, mode = piece_key(i, 11)
        assert parsed[str((tmp_path / row["path"]).resolve())] == {"key": tonic, "mode": mode}
    import soundfile as sf

    info = sf.info(tmp_path / rows[0]["path"])
    assert info.samplerate == 22050 and info.channels == 1 and info.duration > 5
    # a rerun keeps the files and rewrites the same labels
    mtime = (tmp_path / rows[0]["path"]).stat().st_mtime_ns
    assert write_corpus(tmp_path, pieces=3, seed=11, beat_range=(20, 24)) == labels
    assert (tmp_path / rows[0]["path"]).stat().st_mtime_ns == mtime


@pytest.mark.parametrize("kw", [dict(tonic=12, mode=1), dict(tonic=0, mode=2), dict(tonic=0, mode=1, tempo=5),
                                dict(tonic=0, mode=1, texture="polka"), dict(tonic=0, mode=1, n_beats=2)])
def test_render_rejects_bad_arguments(kw):
    with pytest.raises(ParameterError):
        render_piece(**kw)


def test_write_corpus_rejects_bad_arguments(tmp_path):
    with pytest.raises(ParameterError, match="format"):
        write_corpus(tmp_path, pieces=1, fmt="mp4")
    with pytest.raises(ParameterError, match="pieces"):
        write_corpus(tmp_path, pieces=0)
