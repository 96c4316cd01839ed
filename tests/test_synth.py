"""Tests of beatdbn.synth: the MSD writer and the synthetic demo corpus."""

from __future__ import annotations

import dataclasses
import filecmp
import os
import re
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from beatdbn.exceptions import ParameterError
from beatdbn.features.msd import Track, iter_tracks, read_track
from beatdbn.synth import GENRES, generate_corpus, iter_corpus, make_track, write_aggregate, write_track

from conftest import RICK as REAL_TRACK, missing  # the real MSD file (BEATDBN_SHARED_DATA)

ARRAY_NAMES = ("segments_start", "segments_pitches", "segments_timbre", "segments_loudness_max", "beats_start")


def assert_same_track(a: Track, b: Track) -> None:
    """Every field equal (arrays exactly), except where the track was read from."""
    for f in dataclasses.fields(Track):
        if f.name == "source":
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.shape == y.shape, f.name
            assert np.array_equal(x, y), f.name
        else:
            assert x == y, (f.name, x, y)


def genre_label(track: Track) -> str | None:
    """The paper's rule: the genre tag with the strictly highest count, else None."""
    counts = {t: c for t, c in zip(track.mbtags, track.mbtags_count) if t in GENRES}
    if not counts:
        return None
    top = max(counts.values())
    best = [t for t, c in counts.items() if c == top]
    return best[0] if len(best) == 1 else None


def beat_of_segment(track: Track) -> np.ndarray:
    """Index of the beat each segment starts in (-1 before the first beat)."""
    return np.searchsorted(track.beats_start, track.segments_start, side="right") - 1


@pytest.fixture(scope="module")
def corpus300() -> list[Track]:
    return list(iter_corpus(300, seed=7, n_artists=60))


# --------------------------------------------------------------------------- writer


def test_write_track_round_trip_exact(tmp_path):
    track = make_track(n_beats=120, seed=3, title="Ünïcødé – 音楽 track", artist_name="Synthétique")
    path = write_track(tmp_path / "sub" / "TRSYNTH0000000001.h5", track)
    assert path == tmp_path / "sub" / "TRSYNTH0000000001.h5"
    back = read_track(path)
    assert_same_track(track, back)
    assert back.title == "Ünïcødé – 音楽 track"
    assert back.source == str(path)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_write_track_derives_bars_tatums_sections(tmp_path):
    track = make_track(n_beats=100, seed=1, time_signature=4)
    path = write_track(tmp_path / "t.h5", track)
    with h5py.File(path, "r") as h5:
        bars = h5["analysis/bars_start"][()]
        tatums = h5["analysis/tatums_start"][()]
        sections = h5["analysis/sections_start"][()]
        row = h5["analysis/songs"][0]
        assert len(h5["analysis/segments_confidence"]) == len(track.segments_start)
        assert len(h5["analysis/beats_confidence"]) == 100
        assert h5["metadata/artist_terms"].shape == (len(track.mbtags),)
    np.testing.assert_array_equal(bars, track.beats_start[::4])
    assert len(tatums) == 199 and np.all(np.diff(tatums) > 0)
    np.testing.assert_array_equal(tatums[::2], track.beats_start)
    assert sections[0] == 0.0 and 1 <= len(sections) <= 3
    assert len(row["audio_md5"]) == 32 and row["danceability"] == 0.0
    assert all(row[f] == 0 for f in row.dtype.names if f.startswith("idx_"))


def test_write_track_extra_fields(tmp_path):
    track = make_track(n_beats=40, seed=2)
    path = write_track(
        tmp_path / "t.h5",
        track,
        danceability=0.7,
        release="Sïngle",
        similar_artists=["ARAAAAA11111111111", "ARBBBBB22222222222"],
        bars_start=[1.0, 2.0],
        bars_confidence=[0.5, 0.25],
    )
    with h5py.File(path, "r") as h5:
        assert h5["analysis/songs"][0]["danceability"] == 0.7
        assert h5["metadata/songs"][0]["release"].decode("utf-8") == "Sïngle"
        assert list(h5["metadata/similar_artists"][()]) == [b"ARAAAAA11111111111", b"ARBBBBB22222222222"]
        np.testing.assert_array_equal(h5["analysis/bars_confidence"][()], [0.5, 0.25])
    assert_same_track(track, read_track(path))


@pytest.mark.parametrize(
    "extra",
    [{"no_such_field": 1}, {"tempo": 100.0}, {"beats_start": [1.0]}, {"artist_mbtags": ["x"]},
     {"idx_bars_start": 3}, {"bars_start": [1.0, 2.0]}],  # last: bars_confidence length differs
)  # fmt: skip
def test_write_track_rejects_bad_extra(tmp_path, extra):
    with pytest.raises(ParameterError):
        write_track(tmp_path / "t.h5", make_track(n_beats=40), **extra)
    assert not list(tmp_path.iterdir())


def test_write_track_rejects_bad_tracks(tmp_path):
    good = make_track(n_beats=40)
    with pytest.raises(ParameterError, match="at most 1024"):
        write_track(tmp_path / "t.h5", dataclasses.replace(good, title="x" * 1025))
    with pytest.raises(ParameterError, match="shape"):
        write_track(tmp_path / "t.h5", dataclasses.replace(good, segments_pitches=good.segments_pitches[:, :6]))
    with pytest.raises(ParameterError, match="equal lengths"):
        write_track(tmp_path / "t.h5", dataclasses.replace(good, segments_timbre=good.segments_timbre[:-1]))
    with pytest.raises(ParameterError):
        write_track(tmp_path / "t.h5", "not a track")
    with pytest.raises(ParameterError, match="directory"):
        write_track(tmp_path, good)


def test_write_track_replaces_atomically(tmp_path):
    path = tmp_path / "t.h5"
    first, second = make_track(n_beats=40, seed=1), make_track(n_beats=50, seed=2)
    write_track(path, first)
    with pytest.raises(ParameterError):  # a failed write leaves the old file whole
        write_track(path, dataclasses.replace(second, title="x" * 2000))
    assert_same_track(first, read_track(path))
    write_track(path, second)
    assert_same_track(second, read_track(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.h5"]


def test_no_beat_track_round_trip(tmp_path):
    track = make_track(n_beats=0, seed=4)
    assert track.beats_start.shape == (0,) and len(track.segments_start) > 0
    empty = make_track(seed=5, beats_start=np.array([]))
    for t in (track, empty):
        path = write_track(tmp_path / f"{t.duration}.h5", t)
        assert_same_track(t, read_track(path))
        with h5py.File(path, "r") as h5:
            assert h5["analysis/bars_start"].shape == (0,)


def test_write_aggregate_round_trip_and_idx(tmp_path):
    tracks = [
        make_track(track_id="TRAAAAA00000000001", n_beats=60, seed=1),
        make_track(track_id="TRAAAAA00000000002", n_beats=0, seed=2, mbtags=(), mbtags_count=()),
        make_track(track_id="TRAAAAA00000000003", n_beats=90, seed=3, title="日本語"),
    ]
    path = write_aggregate(tmp_path / "agg.h5", tracks, extras=[{}, {"danceability": 0.5}, {}])
    back = list(iter_tracks(path))
    assert len(back) == 3
    for a, b in zip(tracks, back):
        assert_same_track(a, b)
    with h5py.File(path, "r") as h5:
        ana, mb = h5["analysis/songs"][()], h5["musicbrainz/songs"][()]
        seg = np.cumsum([0] + [len(t.segments_start) for t in tracks])[:-1]
        beats = np.cumsum([0] + [len(t.beats_start) for t in tracks])[:-1]
        tags = np.cumsum([0] + [len(t.mbtags) for t in tracks])[:-1]
        np.testing.assert_array_equal(ana["idx_segments_pitches"], seg)
        np.testing.assert_array_equal(ana["idx_beats_start"], beats)
        np.testing.assert_array_equal(mb["idx_artist_mbtags"], tags)
        assert ana["danceability"][1] == 0.5
        assert h5["analysis/segments_timbre"].shape == (sum(len(t.segments_start) for t in tracks), 12)
    with pytest.raises(ParameterError):
        write_aggregate(tmp_path / "x.h5", [])
    with pytest.raises(ParameterError):
        write_aggregate(tmp_path / "x.h5", tracks, extras=[{}])


@pytest.mark.skipif(not REAL_TRACK.exists(), reason=missing(REAL_TRACK))
def test_writer_layout_matches_real_msd_file(tmp_path):
    mine = write_track(tmp_path / "t.h5", make_track(n_beats=80))

    def layout(path):
        out = {}
        with h5py.File(path, "r") as h5:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    fields = [(n, obj.dtype[n].str) for n in obj.dtype.names] if obj.dtype.names else obj.dtype.str
                    out[name] = (fields, obj.maxshape, obj.chunks, obj.compression, obj.compression_opts,
                                 obj.shuffle, sorted(obj.attrs))  # fmt: skip
                else:
                    out[name] = ("group", sorted(obj.attrs))
            h5.visititems(visit)
            out["/"] = sorted(h5.attrs)
        return out

    real, ours = layout(REAL_TRACK), layout(mine)
    assert set(real) == set(ours)
    for name in real:
        assert real[name] == ours[name], name
    for table in ("metadata/songs", "analysis/songs", "musicbrainz/songs"):
        assert [n for n, _ in ours[table][0]] == [n for n, _ in real[table][0]]
    # the real file reads back through the same reader, as ours does
    assert read_track(REAL_TRACK).segments_pitches.shape == (935, 12)


# --------------------------------------------------------------------------- corpus


def test_generate_corpus_files_and_metadata(tmp_path):
    done = []
    paths = generate_corpus(tmp_path / "msd", 12, seed=1, n_artists=3, progress=done.append)
    assert done == list(range(1, 13))
    assert len(paths) == len(set(paths)) == 12
    tracks = [read_track(p) for p in paths]
    for i, (p, t) in enumerate(zip(paths, tracks)):
        assert re.fullmatch(r"TR[A-Z]{5}[0-9A-F]{11}", t.track_id)
        assert re.fullmatch(r"SO[A-Z]{5}[0-9A-F]{11}", t.song_id)
        assert re.fullmatch(r"AR[A-Z]{5}[0-9A-F]{11}", t.artist_id)
        assert p.relative_to(tmp_path / "msd").parts == (*t.track_id[2:5], f"{t.track_id}.h5")
        assert t.title == f"synthetic track {i + 1}"
        assert re.fullmatch(r"Synthetic Artist [123]", t.artist_name)
        assert 1960 <= t.year <= 2010 and t.duration > t.beats_start[-1]
    assert len({t.artist_id for t in tracks}) == 3
    assert_same_track(tracks[0], next(iter_corpus(12, seed=1, n_artists=3)))
    with h5py.File(paths[0], "r") as h5:
        assert len(h5["metadata/similar_artists"]) <= 10


def test_corpus_is_deterministic(tmp_path):
    a = list(iter_corpus(8, seed=3))
    b = list(iter_corpus(8, seed=3))
    c = list(iter_corpus(8, seed=4))
    for x, y in zip(a, b):
        assert_same_track(x, y)
    assert not np.array_equal(a[0].segments_timbre, c[0].segments_timbre)
    first = generate_corpus(tmp_path / "a", 30, seed=3)
    done = []
    second = generate_corpus(tmp_path / "b", 30, seed=3, n_jobs=2, progress=done.append)  # worker processes
    assert done == [25, 30]
    assert [p.relative_to(tmp_path / "a") for p in first] == [p.relative_to(tmp_path / "b") for p in second]
    assert all(filecmp.cmp(x, y, shallow=False) for x, y in zip(first, second))  # byte-identical files


def test_corpus_arrays_are_msd_like(corpus300):
    n_beats, n_segs = [], []
    for t in corpus300:
        p = t.segments_pitches
        assert p.shape == (len(t.segments_start), 12) == t.segments_timbre.shape
        assert p.min() >= 0.0 and p.max() <= 1.0
        np.testing.assert_array_equal(p.max(axis=1), 1.0)
        assert t.segments_start[0] == 0.0 and np.all(np.diff(t.segments_start) > 0)
        assert 0.0 < t.beats_start[0] < 1.5 and np.all(np.diff(t.beats_start) > 0)
        assert t.segments_start[-1] < t.duration
        assert 70.0 <= t.tempo <= 180.0
        assert np.allclose(np.median(np.diff(t.beats_start)), 60.0 / t.tempo, rtol=0.02)
        assert 200 <= len(t.beats_start) <= 600
        assert 1.9 < len(t.segments_start) / len(t.beats_start) < 3.1
        assert 20.0 < t.segments_timbre[:, 0].mean() < 55.0
        assert np.all(t.segments_loudness_max <= 0.0) and np.all(t.segments_loudness_max >= -60.0)
        assert t.time_signature in (3, 4) and 0 <= t.key <= 11 and t.mode in (0, 1)
        assert 0.0 < t.key_confidence < 1.0
        n_beats.append(len(t.beats_start))
        n_segs.append(len(t.segments_start))
    assert 330 < np.mean(n_beats) < 470 and 750 < np.mean(n_segs) < 1100
    assert Counter(t.time_signature for t in corpus300)[4] > 0.6 * len(corpus300)
    assert len({t.key for t in corpus300}) == 12
    spread = np.std([t.segments_timbre[:, 1:].mean(axis=0) for t in corpus300], axis=0)
    assert np.all(spread > 3.0) and np.all(spread < 80.0)  # centred-ish on 0, real-file magnitudes


def test_corpus_genre_tags(corpus300):
    by_artist = {t.artist_id: t for t in corpus300}
    assert len(by_artist) == 60
    labels = {a: genre_label(t) for a, t in by_artist.items()}
    kinds = Counter("none" if not any(g in GENRES for g in t.mbtags) else
                    "tie" if labels[a] is None else "clear" for a, t in by_artist.items())  # fmt: skip
    assert kinds["tie"] >= 1 and kinds["none"] >= 1 and kinds["clear"] >= 50
    assert len({lab for lab in labels.values() if lab}) >= 18
    assert any(g not in GENRES for t in by_artist.values() for g in t.mbtags)  # non-genre tags too
    for t in by_artist.values():
        assert len(t.mbtags) == len(t.mbtags_count) and all(c >= 1 for c in t.mbtags_count)
    counts = sorted(Counter(t.artist_id for t in corpus300).values(), reverse=True)
    assert counts[0] >= 3 * counts[-1]  # Zipf-like: a few prolific artists
    default = Counter(t.artist_id for t in iter_corpus(100, seed=0))
    assert len(default) == 4  # n_tracks // 25


def _split(n, rng, frac=2 / 3):
    idx = rng.permutation(n)
    return idx[: int(n * frac)], idx[int(n * frac):]


def _fit_score(x_train, y_train, x_test, y_test) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(model.fit(x_train, y_train).score(x_test, y_test))


def test_key_and_genre_are_learnable(corpus300):
    rng = np.random.default_rng(0)
    chroma = np.array([t.segments_pitches.mean(axis=0) for t in corpus300])
    timbre = np.array([np.concatenate([t.segments_timbre.mean(0), t.segments_timbre.std(0)]) for t in corpus300])
    keys = np.array([t.key for t in corpus300])
    train, test = _split(len(corpus300), rng)
    key_acc = _fit_score(chroma[train], keys[train], chroma[test], keys[test])
    assert key_acc > 0.5, key_acc  # chance 1/12
    conf = np.array([t.key_confidence for t in corpus300])
    assert np.corrcoef(conf, [p.max() - np.median(p) for p in chroma])[0, 1] > 0.3  # clearer when confident
    # genre, on artists never seen in training
    labels = np.array([genre_label(t) for t in corpus300], dtype=object)
    artists = np.array([t.artist_id for t in corpus300])
    names = np.unique(artists)
    held = set(rng.permutation(names)[: len(names) // 3])
    ok = labels != None  # noqa: E711 (object array)
    tr = ok & ~np.isin(artists, list(held))
    te = ok & np.isin(artists, list(held))
    genre_acc = _fit_score(timbre[tr], labels[tr], timbre[te], labels[te])
    assert genre_acc > 0.15, genre_acc  # chance ~1/20


def test_artist_is_learnable(corpus300):
    rng = np.random.default_rng(1)
    artists = np.array([t.artist_id for t in corpus300])
    top = [a for a, _ in Counter(artists).most_common(10)]
    sel = np.flatnonzero(np.isin(artists, top))
    train, test = (sel[i] for i in _split(len(sel), rng))
    x = np.array([np.concatenate([t.segments_timbre.mean(0), t.segments_timbre.std(0)]) for t in corpus300])
    assert _fit_score(x[train], artists[train], x[test], artists[test]) > 0.3  # chance 1/10


def test_bar_and_phrase_structure(corpus300):
    rng = np.random.default_rng(2)
    # bar scale: the timbre accent pattern over the 4 beats of a bar tells genres apart
    rows, labels, lag_gain = [], [], []
    for t in corpus300:
        beat = beat_of_segment(t)
        inside = beat >= 0
        timbre, beat = t.segments_timbre[inside], beat[inside]
        if t.time_signature == 4 and genre_label(t):
            pos = beat % 4
            pattern = np.array([timbre[pos == p, :4].mean(axis=0) for p in range(4)])
            rows.append((pattern - pattern.mean(axis=0)).ravel())
            labels.append(genre_label(t))
        # phrase scale: bar chroma repeats after 8 bars more than after 1 bar
        bar = beat // t.time_signature
        n_bars = bar.max() + 1
        sums = np.zeros((n_bars, 12))
        np.add.at(sums, bar, t.segments_pitches[inside])
        bars = sums / np.maximum(np.bincount(bar, minlength=n_bars), 1)[:, None]
        bars = bars - bars.mean(axis=1, keepdims=True)

        def corr(lag):
            a, b = bars[:-lag], bars[lag:]
            return np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12))

        lag_gain.append(corr(8) - corr(1))
    rows, labels = np.array(rows), np.array(labels)
    train, test = _split(len(rows), rng)
    assert _fit_score(rows[train], labels[train], rows[test], labels[test]) > 0.15  # chance ~1/20
    assert np.mean(lag_gain) > 0.1 and np.mean(np.array(lag_gain) > 0) > 0.8


# --------------------------------------------------------------------------- helpers and errors


def test_make_track_overrides_and_steering():
    t = make_track(n_beats=200, seed=9, key=7, mode=1, key_confidence=0.95, tempo=100.0, time_signature=3)
    assert (t.key, t.mode, t.tempo, t.time_signature) == (7, 1, 100.0, 3)
    assert int(np.argmax(t.segments_pitches.mean(axis=0))) == 7  # tonic of G major leads the chroma
    assert np.allclose(np.median(np.diff(t.beats_start)), 0.6, rtol=0.02)
    t2 = make_track(track_id="TRXYZAB00000000001", n_beats=50, genre="jazz", year=1999, beats_start=np.array([]))
    assert t2.track_id == "TRXYZAB00000000001" and t2.year == 1999 and t2.beats_start.size == 0
    assert "jazz" in t2.mbtags
    assert_same_track(make_track(seed=11, n_beats=30), make_track(seed=11, n_beats=30))


@pytest.mark.parametrize(
    "call",
    [
        lambda d: generate_corpus(d, 0),
        lambda d: generate_corpus(d, 5, n_artists=0),
        lambda d: generate_corpus(d, 5, n_artists=6),
        lambda d: generate_corpus(d, 5, seed=-1),
        lambda d: generate_corpus(d, 2.5),
        lambda d: generate_corpus(d, 5, progress=3),
        lambda d: generate_corpus(d, 5, n_jobs=0),
        lambda d: list(iter_corpus(-3)),
        lambda d: make_track(n_beats=-1),
        lambda d: make_track(genre="polka"),
        lambda d: make_track(not_a_field=1),
        lambda d: make_track(tempo=0.0),
    ],
)
def test_parameter_errors(tmp_path, call):
    with pytest.raises(ParameterError):
        call(tmp_path)


def test_generate_corpus_into_a_file_fails(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ParameterError, match="is a file"):
        generate_corpus(f, 2)
    assert os.path.isfile(f)


def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_render_missing_keeps_order_and_counts_what_was_on_disk(workers, tmp_path):
    from beatdbn.synth.resumable import render_missing, write_labels

    seen = []
    out = render_missing(_square, [3, 1, 2], total=5, workers=workers, chunksize=1, progress=seen.append)
    assert out == [9, 1, 4] and seen == [2, 3, 4, 5]  # two were already on disk
    assert render_missing(_square, [], total=2, progress=seen.append) == [] and seen[-1] == 2
    path = write_labels(tmp_path / "labels.csv", ["path", "key"], [["a.flac", "C major"], ["b,c.flac", "A minor"]])
    assert path.read_text(encoding="utf-8").splitlines() == ["path,key", "a.flac,C major", '"b,c.flac",A minor']
