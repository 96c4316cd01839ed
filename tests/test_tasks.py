"""Tasks: selection rules, balance, disjoint seeded splits, duplicates, exclusion list."""

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.store.shard import METADATA_SCHEMA
from beatdbn.tasks.build import (SPLITS, TaskConfig, TaskScaleError, build_tasks, check_tasks_in_store, load_task,
                                 write_tasks)
from beatdbn.tasks.duplicates import duplicates_to_drop, read_duplicates
from beatdbn.labels import GENRES, KEY_NAMES, KEY_NAMES_24, genre_from_mbtags, read_tagtraum

#: The paper's three tasks (the registry also holds decade, tested in tests/test_decade.py).
PAPER = ("artist", "genre", "key")


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
    config = TaskConfig(artists=5, per_artist=20, per_genre=10, per_key=30, seed=7, tasks=PAPER)
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
    other, _, _ = build_tasks(table, TaskConfig(artists=5, per_artist=20, per_genre=10, per_key=30, seed=8, tasks=PAPER))
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
    tasks, errors, _ = build_tasks(corpus(n=300), TaskConfig(tasks=PAPER))
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
    config = TaskConfig(artists=5, per_artist=20, per_genre=10, per_key=30, tasks=PAPER)
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
    config = TaskConfig(artists=4, per_artist=9, per_genre=15, per_key=4, seed=1, tasks=PAPER)
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
    other, _, _ = build_tasks(table, TaskConfig(artists=4, per_artist=9, per_genre=15, per_key=4, seed=2, tasks=PAPER))
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
    tasks, errors, stats = build_tasks(table, TaskConfig(artists=3, per_artist=10, per_genre=3, per_key=5, tasks=PAPER))
    assert set(tasks) == {"artist", "genre", "key"} and stats["genre"]["source"] == "musicbrainz"


# -- scale that fits the corpus, genre choice, 24 keys, artist filter, pooled classes, bad input ------------


def _tagtraum(tmp_path, table, genres=("Rock", "Jazz", "Rap", "Folk"), sizes=(40, 12, 7, 2)):
    """A tagtraum file labelling the first tracks of the table: sizes[i] tracks of genres[i]."""
    ids = table.column("track_id").to_pylist()
    lines, i = [], 0
    for g, n in zip(genres, sizes):
        for _ in range(n):
            lines.append(f"{ids[i]}\t{g}")
            i += 1
    path = tmp_path / "labels.cls"
    path.write_text("\n".join(lines) + "\n")
    return read_tagtraum(path)


def test_auto_all_classes_the_earlier_rule_takes_every_class_above_the_floor_capped_at_the_papers(tmp_path):
    table = corpus(n=300, n_artists=30)
    labels = _tagtraum(tmp_path, table)
    tasks, errors, _ = build_tasks(table, TaskConfig(scale="auto-all-classes", tasks=PAPER), genre_labels=labels)
    assert not errors, errors
    # genre: the classes with >= 3 tracks (Folk has 2), as many tracks each as the smallest of them (Rap: 7)
    assert tasks["genre"].classes == ["Jazz", "Rap", "Rock"] and tasks["genre"].per_class == 7
    # key: all 12 keys, as many each as the rarest key has
    keys = Counter(table.column("key").to_pylist())
    assert tasks["key"].classes == list(KEY_NAMES) and tasks["key"].per_class == min(keys.values())
    # artist: k artists x p tracks (p = the k-th largest artist's count) with the most tracks in all
    counts = sorted(Counter(table.column("artist_id").to_pylist()).values(), reverse=True)
    best = max(((k, counts[k - 1]) for k in range(2, len(counts) + 1)), key=lambda kp: (kp[0] * kp[1], kp[1]))
    assert (len(tasks["artist"].classes), tasks["artist"].per_class) == best
    # the paper's per-class counts (and any caps given) are caps
    capped, _, _ = build_tasks(table, TaskConfig(scale="auto-all-classes", per_genre=5, artists=3, per_artist=4, tasks=PAPER),
                               genre_labels=labels)
    assert capped["genre"].per_class == 5 and (len(capped["artist"].classes), capped["artist"].per_class) == (3, 4)
    # min_per_class raises the floor: only Rock (40) and Jazz (12) have 10
    floor, _, _ = build_tasks(table, TaskConfig(scale="auto-all-classes", min_per_class=10, tasks=("genre",)),
                              genre_labels=labels)
    assert floor["genre"].classes == ["Jazz", "Rock"] and floor["genre"].per_class == 12
    summary = write_tasks(tmp_path / "t", tasks, config=TaskConfig(scale="auto-all-classes"), errors={}, stats={}, dropped=set())
    assert summary["tasks"]["genre"]["scale"] == "3\u00d77" and summary["tasks"]["genre"]["scale_rule"] == "auto-all-classes"
    assert summary["tasks"]["artist"]["paper_scale"] == "50\u00d7100" and summary["config"]["scale"] == "auto-all-classes"


def test_auto_scale_uses_the_most_tracks_and_a_rare_class_no_longer_shrinks_every_class(tmp_path):
    """One rare class made the earlier rule take every class at its size; 'auto' takes the k largest classes
    with the most tracks in all (k x the k-th largest), each with 2+ test tracks, and says what it rejected."""
    from collections import Counter as Count

    from beatdbn.cli.tasks import auto_scale_lines
    from beatdbn.tasks.selection import auto_balanced

    counts = Count({"rock": 300, "pop": 200, "jazz": 180, "folk": 150, "blues": 110, "latin": 16, "rap": 9})
    classes = sorted(counts)
    config = TaskConfig(scale="auto", tasks=("genre",))
    assert config.auto_floor("genre") == 20  # 2 test tracks at 10 %
    assert TaskConfig(scale="auto", min_test_per_class=3).auto_floor("genre") == 30
    assert TaskConfig(scale="auto", min_per_class=5).auto_floor("genre") == 5  # an explicit floor wins
    report: dict = {}
    chosen, per = auto_balanced("genre", counts, classes, config, False, report=report)
    # 2x200=400, 3x180=540, 4x150=600, 5x110=550; latin (16) and rap (9) are below the floor
    assert (sorted(chosen), per) == (["folk", "jazz", "pop", "rock"], 150)
    assert report["tracks"] == 600 and report["floor"] == 20 and report["below_floor"] == {"latin": 16, "rap": 9}
    assert [(a["classes"], a["tracks"]) for a in report["rejected"]] == [(5, 550), (3, 540), (2, 400), (6, 96), (7, 63)]
    assert report["rejected"][3]["reason"] == "below the floor: latin has 16 < 20 tracks"
    # ties go to more classes; the per-class cap counts
    capped = TaskConfig(scale="auto", per_genre=100, tasks=("genre",))
    chosen, per = auto_balanced("genre", counts, classes, capped, False)
    assert (len(chosen), per) == (5, 100)  # 2..5 x 100: 5 x 100 = 500
    tied = Count({"a": 60, "b": 45, "c": 30})  # 2 x 45 = 3 x 30 = 90
    tie_report: dict = {}
    assert auto_balanced("genre", tied, sorted(tied), config, False, report=tie_report) == (["a", "b", "c"], 30)
    assert tie_report["rejected"][0]["reason"] == "as many tracks, fewer classes"
    # the earlier rule, under its name: every class above its floor (3) at the smallest one's size: rap
    # (9 tracks) shrank every class to 9, 63 tracks where 600 were there
    old = TaskConfig(scale="auto-all-classes", tasks=("genre",))
    old_report: dict = {}
    chosen, per = auto_balanced("genre", counts, classes, old, False, report=old_report)
    assert (len(chosen), per) == (7, 9) and old_report["rule"] == "auto-all-classes" and old_report["floor"] == 3
    lines = auto_scale_lines({"genre": {"auto": report}, "tracks": 10})
    assert lines == ["genre: --scale auto chose 4 x 150 = 600 tracks (a class needs 20+ tracks); rejected: "
                     "5 x 110 = 550 (fewer tracks than 600); 3 x 180 = 540 (fewer tracks than 600); "
                     "2 x 200 = 400 (fewer tracks than 600); 6 x 16 = 96 (below the floor: latin has 16 < 20 tracks); "
                     "1 more in tasks.json"]
    # no class reaches the floor: the error names both options
    with pytest.raises(TaskScaleError, match=r"at least 20 tracks each \(--min-per-class, --min-test-per-class\)"):
        auto_balanced("genre", Count({"a": 19, "b": 19}), ["a", "b"], config, False)
    with pytest.raises(ParameterError, match="min_test_per_class"):
        TaskConfig(min_test_per_class=0)
    # paper scale records nothing
    paper: dict = {}
    auto_balanced("genre", counts, classes, TaskConfig(tasks=("genre",)), False, report=paper)
    assert paper == {}


def test_paper_scale_failure_names_scale_auto_and_its_choice(tmp_path):
    table = corpus(n=300)
    labels = _tagtraum(tmp_path, table)
    _, errors, _ = build_tasks(table, TaskConfig(tasks=PAPER, min_per_class=3), genre_labels=labels)
    assert set(errors) == {"artist", "genre", "key"}
    assert "--scale auto (it would choose 2\u00d712: Jazz, Rock)" in errors["genre"]  # 24 tracks beat 3 x 7
    assert "--scale auto (it would choose 12\u00d7" in errors["key"]
    assert "--scale auto (it would choose" in errors["artist"]
    assert all("\n" not in e for e in errors.values())  # one line each


def test_genres_top_n_named_and_unknown(tmp_path):
    table = corpus(n=300)
    labels = _tagtraum(tmp_path, table)
    top, _, _ = build_tasks(table, TaskConfig(scale="auto", genres="top:2", min_per_class=3, tasks=("genre",)),
                            genre_labels=labels)
    assert top["genre"].classes == ["Jazz", "Rock"] and top["genre"].per_class == 12
    named, _, _ = build_tasks(table, TaskConfig(scale="auto", genres="rock, RAP", min_per_class=3, tasks=("genre",)),
                              genre_labels=labels)
    assert named["genre"].classes == ["Rap", "Rock"] and named["genre"].per_class == 7
    _, errors, _ = build_tasks(table, TaskConfig(scale="auto", genres="rock,folk", tasks=("genre",)),
                               genre_labels=labels)
    assert "Folk: 2" in errors["genre"]  # a named class below the floor is not dropped silently
    with pytest.raises(ParameterError, match=r"'metal' not among the tagtraum genre classes; available .*Rock \(40\)"):
        build_tasks(table, TaskConfig(genres="rock,metal", tasks=("genre",)), genre_labels=labels)
    with pytest.raises(ParameterError, match="Hip Hop|hip hop"):
        build_tasks(table, TaskConfig(genres="rock,grunge", tasks=("genre",)))  # MusicBrainz: lists the 20
    with pytest.raises(ParameterError, match="top:N"):
        TaskConfig(genres="top:x")
    with pytest.raises(ParameterError, match="scale"):
        TaskConfig(scale="huge")
    with pytest.raises(ParameterError, match="24"):
        TaskConfig(key_classes=7)


def test_24_key_classes_use_the_mode():
    table = corpus(n=600)
    modes = [i % 3 % 2 if i % 7 else -1 for i in range(600)]  # 0, 1 and some unknown (-1)
    table = table.set_column(table.schema.get_field_index("mode"), "mode", pa.array(modes, pa.int32()))
    tasks, errors, _ = build_tasks(table, TaskConfig(scale="auto", key_classes=24, min_per_class=3, tasks=("key",)))
    assert not errors, errors
    task = tasks["key"]
    assert task.classes == list(KEY_NAMES_24) and len(task.classes) == 24
    meta = {r["track_id"]: r for r in table.to_pylist()}
    for split in SPLITS:
        for tid, label in task.splits[split]:
            tonic, mode = label.split()
            assert KEY_NAMES[meta[tid]["key"]] == tonic and meta[tid]["mode"] == (1 if mode == "major" else 0)
    twelve, _, _ = build_tasks(table, TaskConfig(scale="auto", tasks=("key",)))
    assert twelve["key"].classes == list(KEY_NAMES)


def test_artist_filter_keeps_each_artist_in_one_split(tmp_path):
    table = corpus(n=1200, n_artists=60)
    ids = table.column("track_id").to_pylist()
    artist = dict(zip(ids, table.column("artist_id").to_pylist()))
    # tagtraum labels are per track: an artist's tracks may fall in two genres, and must still stay together
    rng = np.random.default_rng(1)
    path = tmp_path / "g.cls"
    path.write_text("".join(f"{t}\t{['Rock', 'Jazz', 'Rap', 'Folk'][rng.integers(4)]}\n" for t in ids))
    labels = read_tagtraum(path)
    config = TaskConfig(per_genre=60, tasks=("genre",), artist_filter=True, seed=3)
    tasks, errors, _ = build_tasks(table, config, genre_labels=labels)
    assert not errors, errors
    task = tasks["genre"]
    assert task.protocol == "artist-filtered"
    side = {}
    for split in SPLITS:
        for t in task.track_ids(split):
            assert side.setdefault(artist[t], split) == split, f"artist {artist[t]} in two splits"
    per_class = Counter(label for s in ("valid", "test") for _, label in task.splits[s])
    assert all(n >= 1 for n in per_class.values()) and set(per_class) == set(task.classes)
    assert all(sum(1 for _, lab in task.splits[s] if lab == c) <= 6 for s in ("valid", "test") for c in task.classes)
    assert sum(task.counts().values()) == 4 * 60
    # the random protocol (the paper's) does split artists across train and test on the same data
    plain, _, _ = build_tasks(table, TaskConfig(per_genre=60, tasks=("genre",), seed=3), genre_labels=labels)
    assert plain["genre"].protocol == "random"
    sides = {}
    for split in SPLITS:
        for t in plain["genre"].track_ids(split):
            sides.setdefault(artist[t], set()).add(split)
    assert any(len(s) > 1 for s in sides.values())
    summary = write_tasks(tmp_path / "t", tasks, config=config, errors={}, stats={}, dropped=set())
    assert summary["tasks"]["genre"]["protocol"] == "artist-filtered" and summary["config"]["artist_filter"]


def test_two_track_classes_pool_their_held_out_tracks():
    rows = [{"track_id": f"TR{i:016d}", "artist_id": f"AR{i // 2:04d}", "artist_name": f"A{i // 2}", "key": i % 12,
             "key_confidence": 0.5, "mode": 1, "mbtags": [], "mbtags_count": [], "n_beats": 100,
             "source": "x", "source_index": 0, "shard": 0, "row": i} for i in range(20)]
    table = pa.Table.from_pylist(rows, schema=METADATA_SCHEMA)
    # the earlier rule (a floor of 2 per artist); 'auto' needs 20 tracks per artist
    tasks, errors, _ = build_tasks(table, TaskConfig(scale="auto-all-classes", tasks=("artist",)))
    assert not errors, errors
    task = tasks["artist"]
    assert (len(task.classes), task.per_class) == (10, 2)
    assert task.counts() == {"train": 10, "valid": 5, "test": 5}
    for c in task.classes:  # every class: one training track and one held out
        assert sum(1 for _, lab in task.splits["train"] if lab == c) == 1
    _, errors, _ = build_tasks(table, TaskConfig(scale="auto", min_per_class=3, tasks=("artist",)))
    assert "two artists with at least 3 tracks" in errors["artist"]


def test_tagtraum_bad_lines_name_the_file_and_line(tmp_path):
    f = tmp_path / "t.cls"
    f.write_text("# tagtraum\nTRAAAAW128F429D538\tRap\n\nTRAAABD128F429CF47\tPop_Rock\tRnB\n\n")
    notes = []
    assert read_tagtraum(f, notes=notes) == {"TRAAAAW128F429D538": "Rap", "TRAAABD128F429CF47": "Pop_Rock"}
    assert notes == [f"{f}: 2 blank line(s) skipped (line 3, 5)"]
    f.write_text("TRAAAAW128F429D538\tRap\nTRAAABD128F429CF47\tPop_Rock\tRnB\textra\n")
    with pytest.raises(DataError, match=rf"{f.name}:2: 4 tab-separated columns, expected 2 or 3"):
        read_tagtraum(f)
    f.write_text("TRAAAAW128F429D538\tRap\nXX12\tRock\n")
    with pytest.raises(DataError, match=rf"{f.name}:2: .*MSD track id"):
        read_tagtraum(f)
    table = corpus(n=60)
    labels = {"TR0000000000000001": "Rock", "TRNOTINTHECORPUS01": "Jazz", "TRNOTINTHECORPUS02": "Jazz"}
    _, _, stats = build_tasks(table, TaskConfig(tasks=("genre",)), genre_labels=labels)
    assert stats["genre"]["label_ids_not_in_corpus"] == 2 and stats["genre"]["labelled"] == 1


def test_tasks_from_another_store_are_refused(tmp_path):
    config = TaskConfig(artists=5, per_artist=20, per_genre=10, per_key=30, tasks=PAPER)
    tasks, errors, stats = build_tasks(corpus(), config)
    write_tasks(tmp_path, tasks, config=config, errors=errors, stats=stats, dropped=set())
    every = corpus().column("track_id").to_pylist()
    check_tasks_in_store(tmp_path, every)  # the same store: fine
    in_tasks = {t for task in tasks.values() for s in SPLITS for t in task.track_ids(s)}
    gone = sorted(in_tasks)[:7]
    with pytest.raises(DataError, match=rf"7 of the tasks' {len(in_tasks):,} track ids are not in the store"):
        check_tasks_in_store(tmp_path, set(every) - set(gone))


def test_scale_errors_suggest_only_settings_that_split():
    """On a corpus whose artists have one or two tracks, no suggestion of `--per-artist 1` (issue 25 item 6)."""
    import pyarrow as pa

    from beatdbn.tasks.build import build_tasks
    from beatdbn.tasks.registry import TaskConfig

    n = 60
    ids = [f"TR{i:016d}" for i in range(n)]
    artists = [f"AR{i // 2 if i < 20 else i:05d}" for i in range(n)]  # 10 artists with 2 tracks, 40 with 1
    table = pa.table({"track_id": ids, "artist_id": artists, "artist_name": artists})
    _, errors, _ = build_tasks(table, TaskConfig(tasks=("artist",), artists=50, per_artist=20, seed=0))
    assert "artist" in errors
    assert "--per-artist 1" not in errors["artist"] and "--per-artist 2" not in errors["artist"], errors["artist"]
