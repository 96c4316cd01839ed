"""Tasks: selection rules, balance, disjoint seeded splits, duplicates, exclusion list."""

import numpy as np
import pyarrow as pa
import pytest

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.store.shard import METADATA_SCHEMA
from beatdbn.tasks.build import SPLITS, TaskConfig, TaskScaleError, build_tasks, load_task, write_tasks
from beatdbn.tasks.duplicates import duplicates_to_drop, read_duplicates
from beatdbn.tasks.labels import GENRES, KEY_NAMES, genre_from_mbtags, read_tagtraum


def corpus(n=1200, n_artists=30, seed=0):
    """A metadata table: artists with uneven track counts, genre tags, keys with confidences."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_artists + 1) ** 0.5
    artist = rng.choice(n_artists, size=n, p=weights / weights.sum())
    rows = []
    for i in range(n):
        a = int(artist[i])
        rows.append({
            "track_id": f"TR{i:016d}", "song_id": f"SO{i:016d}", "artist_id": f"AR{a:016d}",
            "artist_name": f"Artist {a}", "title": f"t{i}", "duration": 200.0, "tempo": 120.0,
            "time_signature": 4, "key": int(rng.integers(12)), "key_confidence": float(rng.random()),
            "mode": 1, "mode_confidence": 0.5, "year": 2000,
            "mbtags": ["uk", GENRES[a % 20], GENRES[(a + 1) % 20]], "mbtags_count": [9, 5, 5 if a == 3 else 2],
            "n_beats": 400, "source": "x", "source_index": 0, "shard": 0, "row": i,
        })
    return pa.Table.from_pylist(rows, schema=METADATA_SCHEMA)


def test_genre_rule_highest_count_and_ties_are_ambiguous():
    assert genre_from_mbtags(["uk", "Hip-Hop", "rap"], [10, 4, 3]) == "hip hop"
    assert genre_from_mbtags(["rock", "pop"], [2, 2]) is None
    assert genre_from_mbtags(["uk", "british"], [3, 1]) is None
    assert genre_from_mbtags(["rock", "ROCK", "pop"], [1, 3, 2]) == "rock"


def test_tasks_are_balanced_disjoint_and_stable():
    table = corpus()
    config = TaskConfig(artists=5, per_artist=20, per_genre=10, per_key=30, seed=7)
    tasks, errors, stats = build_tasks(table, config)
    assert not errors, errors
    assert set(tasks) == {"artist", "genre", "key"}
    for task in tasks.values():
        ids = [set(task.track_ids(s)) for s in SPLITS]
        assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
        per_class = {}
        for split in SPLITS:
            for _, label in task.splits[split]:
                per_class.setdefault(label, {s: 0 for s in SPLITS})[split] += 1
        assert len({tuple(c.values()) for c in per_class.values()}) == 1  # every class split alike
    c = tasks["artist"].counts()
    assert (c["train"], c["valid"], c["test"]) == (80, 10, 10)
    assert tasks["key"].classes == list(KEY_NAMES) and tasks["key"].counts()["train"] == 12 * 24
    again, _, _ = build_tasks(table, config)
    assert again["genre"].splits == tasks["genre"].splits
    other, _, _ = build_tasks(table, TaskConfig(artists=5, per_artist=20, per_genre=10, per_key=30, seed=8))
    assert other["genre"].splits != tasks["genre"].splits


def test_artist_task_takes_the_artists_with_most_tracks():
    table = corpus()
    counts = {}
    for a in table.column("artist_name").to_pylist():
        counts[a] = counts.get(a, 0) + 1
    top = sorted(counts, key=lambda a: (-counts[a], a))[:5]
    tasks, _, _ = build_tasks(table, TaskConfig(artists=5, per_artist=20, tasks=("artist",)))
    assert sorted(tasks["artist"].classes) == sorted(top)


def test_key_task_takes_highest_confidence():
    table = corpus()
    tasks, _, _ = build_tasks(table, TaskConfig(per_key=10, tasks=("key",)))
    chosen = {t for s in SPLITS for t in tasks["key"].track_ids(s)}
    conf = dict(zip(table.column("track_id").to_pylist(), table.column("key_confidence").to_pylist()))
    keys = dict(zip(table.column("track_id").to_pylist(), table.column("key").to_pylist()))
    for k in range(12):
        of_key = sorted((t for t in conf if keys[t] == k), key=lambda t: -conf[t])
        assert set(of_key[:10]) <= chosen and not (set(of_key[10:]) & chosen)


def test_too_small_corpus_says_what_it_supports():
    tasks, errors, _ = build_tasks(corpus(n=300), TaskConfig())
    assert set(errors) == {"artist", "genre", "key"} and not tasks
    assert "supports --artists 30 --per-artist" in errors["artist"]
    assert "--per-key" in errors["key"] and "--per-genre" in errors["genre"]


def test_ambiguous_genres_are_left_out():
    tasks, _, stats = build_tasks(corpus(), TaskConfig(per_genre=5, tasks=("genre",)))
    assert stats["genre"]["ambiguous"] > 0  # artist 3 ties two genres
    table = corpus()
    artist3 = {t for t, a in zip(table.column("track_id").to_pylist(), table.column("artist_id").to_pylist())
               if a == f"AR{3:016d}"}
    assert artist3
    assert not artist3 & {t for s in SPLITS for t in tasks["genre"].track_ids(s)}


def test_duplicates_are_dropped_before_selection(tmp_path):
    dup = tmp_path / "msd_duplicates.txt"
    dup.write_text("# header\n%1 song a\nTR0000000000000000\nTR0000000000000001\nTR0000000000000002\n"
                   "%2 song b\nTRNOTINCORPUS00000\nTR0000000000000005\n")
    groups = read_duplicates(dup)
    assert groups == [["TR0000000000000000", "TR0000000000000001", "TR0000000000000002"],
                      ["TRNOTINCORPUS00000", "TR0000000000000005"]]
    table = corpus()
    drop = duplicates_to_drop(groups, table.column("track_id").to_pylist())
    assert drop == {"TR0000000000000001", "TR0000000000000002"}
    tasks, _, stats = build_tasks(table, TaskConfig(per_key=40, tasks=("key",)), drop=drop)
    assert stats["dropped_duplicates"] == 2
    assert not drop & {t for s in SPLITS for t in tasks["key"].track_ids(s)}
    bad = tmp_path / "bad.txt"
    bad.write_text("TR0000000000000000\n")
    with pytest.raises(DataError, match="group"):
        read_duplicates(bad)


def test_tagtraum_labels(tmp_path):
    cls = tmp_path / "genres.cls"
    lines = [f"TR{i:016d}\t{['Rock', 'Jazz', 'Rap'][i % 3]}" + ("\tVocal" if i % 5 == 0 else "") for i in range(0, 1200, 2)]
    cls.write_text("\n".join(lines) + "\n")
    labels = read_tagtraum(cls)
    assert labels["TR0000000000000000"] == "Rock"
    tasks, errors, stats = build_tasks(corpus(), TaskConfig(per_genre=50, tasks=("genre",)), genre_labels=labels)
    assert not errors and tasks["genre"].classes == ["Jazz", "Rap", "Rock"]
    assert stats["genre"]["source"] == "tagtraum"
    (tmp_path / "bad.cls").write_text("not a label line\n")
    with pytest.raises(DataError, match="track_id<TAB>genre"):
        read_tagtraum(tmp_path / "bad.cls")


def test_real_tagtraum_sample_parses(shared_msd):
    labels = read_tagtraum(shared_msd / "additional" / "msd_tagtraum_cd1.cls")
    assert len(labels) > 100_000 and labels["TRAAAAW128F429D538"] == "Rap"


def test_write_and_load_with_exclusion_list(tmp_path):
    config = TaskConfig(artists=5, per_artist=20, per_genre=10, per_key=30)
    tasks, errors, stats = build_tasks(corpus(), config, drop={"TR0000000000000001"})
    summary = write_tasks(tmp_path, tasks, config=config, errors=errors, stats=stats, dropped={"TR0000000000000001"})
    excluded = set((tmp_path / "exclude.txt").read_text().split())
    held_out = {t for task in tasks.values() for s in ("valid", "test") for t in task.track_ids(s)}
    assert excluded == held_out | {"TR0000000000000001"}
    assert summary["excluded_from_pretraining"] == len(excluded)
    loaded = load_task(tmp_path, "artist")
    assert loaded.splits == tasks["artist"].splits and loaded.classes == tasks["artist"].classes
    np.testing.assert_array_equal(loaded.labels("test"), tasks["artist"].labels("test"))
    (tmp_path / "artist" / "valid.tsv").unlink()
    with pytest.raises(DataError, match="valid split"):
        load_task(tmp_path, "artist")
    with pytest.raises(DataError, match="no such task"):
        load_task(tmp_path, "mood")


def test_config_is_checked():
    with pytest.raises(ParameterError, match="per_key"):
        TaskConfig(per_key=0)
    with pytest.raises(ParameterError, match="unknown task"):
        TaskConfig(tasks=("mood",))


def _audio_corpus(n_per_key=5, with_genre=True):
    """Audio-like metadata: no key confidence (NaN), genre labels, some tracks without artist."""
    rows = []
    for k in range(12):
        for j in range(n_per_key):
            i = k * n_per_key + j
            rows.append({
                "track_id": f"AU{i:016X}", "artist_id": f"AR{i % 4}" if i % 5 else None,
                "artist_name": f"A{i % 4}" if i % 5 else "", "title": f"t{i}", "key": k,
                "key_confidence": float("nan"), "mode": -1, "mbtags": [], "mbtags_count": [],
                "n_beats": 50, "source": f"/m/{i}.mp3", "source_index": 0, "shard": 0, "row": i,
                "representation": "audio", "genre": ("Baroque", "Drum & Bass", "folk")[i % 3] if with_genre else None,
            })
    return pa.Table.from_pylist(rows, schema=METADATA_SCHEMA)


def test_audio_labels_give_genre_key_and_artist_tasks():
    table = _audio_corpus()
    config = TaskConfig(artists=4, per_artist=9, per_genre=15, per_key=4, seed=1)
    tasks, errors, stats = build_tasks(table, config)
    assert not errors, errors
    assert stats["genre"]["source"] == "labels" and stats["representations"] == {"audio": 60}
    assert tasks["genre"].classes == ["Baroque", "Drum & Bass", "folk"]  # labels used as given
    meta = {r["track_id"]: r for r in table.to_pylist()}
    for split in SPLITS:
        assert all(meta[t]["genre"] == g for t, g in tasks["genre"].splits[split])
        assert all(KEY_NAMES[meta[t]["key"]] == k for t, k in tasks["key"].splits[split])
        assert all(meta[t]["artist_id"] for t in tasks["artist"].track_ids(split))  # no artist: not in the task
    key_ids = {t for s in SPLITS for t in tasks["key"].track_ids(s)}
    assert len(key_ids) == 48  # 4 of each key's 5, drawn (NaN confidence: seeded random order)
    other, _, _ = build_tasks(table, TaskConfig(artists=4, per_artist=9, per_genre=15, per_key=4, seed=2))
    assert {t for s in SPLITS for t in other["key"].track_ids(s)} != key_ids
    again, _, _ = build_tasks(table, config)
    assert again["key"].splits == tasks["key"].splits


def test_key_task_prefers_tracks_with_a_confidence():
    table = _audio_corpus(n_per_key=3, with_genre=False)
    conf = [0.9 if i % 3 == 2 else float("nan") for i in range(36)]
    table = table.set_column(table.schema.get_field_index("key_confidence"), "key_confidence", pa.array(conf))
    tasks, errors, _ = build_tasks(table, TaskConfig(per_key=1, tasks=("key",)))
    assert not errors and all(int(t[2:], 16) % 3 == 2 for s in SPLITS for t in tasks["key"].track_ids(s))


def test_metadata_without_new_columns_builds():
    table = corpus(300).drop_columns(["representation", "genre"])
    tasks, errors, stats = build_tasks(table, TaskConfig(artists=3, per_artist=10, per_genre=3, per_key=5))
    assert set(tasks) == {"artist", "genre", "key"} and stats["genre"]["source"] == "musicbrainz"
