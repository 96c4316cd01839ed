"""Feature store and extraction: records, batches, bad inputs, resume, kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import beatdbn
from beatdbn.exceptions import DataError
from beatdbn.features.beats import align_track
from beatdbn.store.extract import extract
from beatdbn.synth.corpus import make_track
from beatdbn.synth.msd_writer import write_aggregate, write_track


SLOW_CLI = os.path.join(os.path.dirname(__file__), "_slow_cli.py")


def write_tracks(folder, n, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    tracks = [make_track(track_id=f"TRSTORE{i:011d}", n_beats=30 + (i * 7) % 50, seed=i) for i in range(start, start + n)]
    for t in tracks:
        write_track(folder / f"{t.track_id}.h5", t)
    return tracks


def test_extract_then_read_back(tmp_path):
    tracks = write_tracks(tmp_path / "in", 12)
    report = extract([tmp_path / "in"], tmp_path / "store", scheduler="sync", shard_size=5)
    assert (report.shards_written, report.tracks_added, report.tracks_total) == (3, 12, 12)
    store = beatdbn.FeatureStore.open(tmp_path / "store")
    assert len(store) == 12 and store.n_beats == sum(len(t.beats_start) for t in tracks)
    for t in tracks:
        rec = store[t.track_id]
        feats, beats = align_track(t)
        np.testing.assert_array_equal(rec.features, feats)  # stored as aligned, no normalization
        np.testing.assert_array_equal(rec.beats, beats)
        assert rec.features.dtype == np.float32 and rec.features.shape[1] == 24
        assert rec.meta["artist_name"] == t.artist_name and rec.meta["key"] == t.key
        assert rec.meta["mbtags"] == list(t.mbtags)
    batches = list(store.iter_batches(5))
    assert [len(b) for b in batches] == [5, 5, 2]
    assert sorted(r.track_id for b in batches for r in b) == sorted(t.track_id for t in tracks)
    some = [tracks[3].track_id, tracks[9].track_id]
    assert {r.track_id for b in store.iter_batches(4, track_ids=some) for r in b} == set(some)
    rest = [r.track_id for b in store.iter_batches(4, exclude=some, shuffle=True, seed=1) for r in b]
    assert len(rest) == 10 and not set(some) & set(rest)
    with pytest.raises(KeyError, match="TRNOPE"):
        store["TRNOPE"]


def test_read_tracks_do_not_keep_their_shard_in_memory(tmp_path):
    """Every way of reading a track gives arrays of its own: a caller keeping a few tracks of many shards (a
    task's split: 3,000 tracks over every shard of a 50,000-track store) holds those tracks, not the shards.
    With views, the 50,000-track dry run's one experiment peaked at 5.6 GB (three splits, each pinning all
    50 shards: three times the 1.9 GB store)."""
    from beatdbn.data.splits import load_split
    from beatdbn.tasks.selection import Task

    write_tracks(tmp_path / "in", 12)
    extract([tmp_path / "in"], tmp_path / "store", scheduler="sync", shard_size=5)
    store = beatdbn.FeatureStore.open(tmp_path / "store")
    ids = list(store.metadata.column("track_id").to_pylist())
    arrays = [store[ids[0]].features, store[ids[0]].beats]
    arrays += [a for b in store.iter_batches(4) for r in b for a in (r.features, r.beats)]
    arrays += store.read_features(store.select_rows(ids))
    split = load_split(store, Task("t", ["a", "b"], {"train": [(t, "ab"[i % 2]) for i, t in enumerate(ids)]}),
                       "train")
    arrays += split.features
    assert len(arrays) == 2 + 2 * 12 + 12 + 12
    assert all(a.base is None and a.flags.owndata for a in arrays)  # no view into a cached shard array


def test_aggregate_input_gives_many_tracks(tmp_path):
    tracks = [make_track(track_id=f"TRAGG{i:013d}", n_beats=40, seed=i) for i in range(3)]
    write_aggregate(tmp_path / "agg.h5", tracks)
    extract([tmp_path / "agg.h5"], tmp_path / "store", scheduler="sync")
    store = beatdbn.FeatureStore.open(tmp_path / "store")
    assert sorted(store.track_ids) == [t.track_id for t in tracks]
    assert [store[t.track_id].meta["source_index"] for t in tracks] == [0, 1, 2]


def test_bad_inputs_are_skipped_and_reported(tmp_path):
    write_tracks(tmp_path / "in", 3)
    (tmp_path / "in" / "corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(300))
    (tmp_path / "in" / "text.h5").write_text("hello")
    empty = tmp_path / "empty"
    empty.mkdir()
    report = extract([tmp_path / "in", empty], tmp_path / "store", scheduler="sync")
    assert report.tracks_total == 3
    reasons = {os.path.basename(s["path"]): s["reason"] for s in report.skipped}
    assert set(reasons) == {"corrupt.h5", "text.h5", "empty"}
    assert "HDF5" in reasons["text.h5"] and "no .h5" in reasons["empty"]
    on_disk = json.loads((tmp_path / "store" / "report.json").read_text())
    assert {os.path.basename(s["path"]) for s in on_disk["skipped_all_runs"]} == {"corrupt.h5", "text.h5"}
    assert len(beatdbn.FeatureStore.open(tmp_path / "store").skipped) == 2
    with pytest.raises(DataError, match="no input files"):
        extract([empty], tmp_path / "store2", scheduler="sync")


def test_rerun_skips_what_is_done_and_adds_new_files(tmp_path):
    write_tracks(tmp_path / "in", 6)
    extract([tmp_path / "in"], tmp_path / "store", scheduler="sync", shard_size=4)
    again = extract([tmp_path / "in"], tmp_path / "store", scheduler="sync", shard_size=4)
    assert (again.already_done, again.shards_written, again.tracks_total) == (6, 0, 6)
    write_tracks(tmp_path / "in", 2, start=100)
    more = extract([tmp_path / "in"], tmp_path / "store", scheduler="sync", shard_size=4)
    assert (more.already_done, more.tracks_added, more.tracks_total) == (6, 2, 8)


def test_dask_local_cluster_gives_the_same_store(tmp_path):
    write_tracks(tmp_path / "in", 8)
    extract([tmp_path / "in"], tmp_path / "a", scheduler="sync", shard_size=2)
    extract([tmp_path / "in"], tmp_path / "b", scheduler="local", workers=2, shard_size=2)
    a, b = beatdbn.FeatureStore.open(tmp_path / "a"), beatdbn.FeatureStore.open(tmp_path / "b")
    assert sorted(a.track_ids) == sorted(b.track_ids)
    for tid in a.track_ids:
        np.testing.assert_array_equal(a[tid].features, b[tid].features)


def test_existing_dask_scheduler_by_address(tmp_path):
    from dask.distributed import LocalCluster

    write_tracks(tmp_path / "in", 4)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        report = extract([tmp_path / "in"], tmp_path / "s", scheduler=cluster.scheduler_address, shard_size=1)
    assert report.tracks_total == 4 and report.shards_written == 4
    with pytest.raises(beatdbn.ParameterError, match="scheduler"):
        extract([tmp_path / "in"], tmp_path / "t", scheduler="bogus", shard_size=1)


def _store_content(path):
    store = beatdbn.FeatureStore.open(path)
    out = {}
    for rec in store:
        meta = {k: v for k, v in rec.meta.items() if k not in ("shard", "row")}
        out[rec.track_id] = (rec.features.tobytes(), rec.beats.tobytes(), json.dumps(meta, sort_keys=True))
    return out


def test_killed_run_resumes_to_the_same_store(tmp_path):
    write_tracks(tmp_path / "in", 24)
    cmd = [sys.executable, "-m", "beatdbn", "extract", str(tmp_path / "in"), "--out", str(tmp_path / "killed"),
           "--scheduler", "sync", "--shard-size", "1"]
    slow = [sys.executable, SLOW_CLI, "0.1", *cmd[3:]]  # each shard write slowed by 0.1 s (injected by the test)
    proc = subprocess.Popen(slow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = tmp_path / "killed" / "shards"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(shards.glob("*.parquet"))) < 4:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = len(list(shards.glob("*.parquet")))
    assert 4 <= committed < 24, "the run must be killed part-way"
    assert not (tmp_path / "killed" / "tracks.parquet").exists()
    partial = beatdbn.FeatureStore.open(tmp_path / "killed")  # whole shards only, readable
    assert len(partial) == committed
    (shards / ".shard-000099.h5.tmp-12345").write_bytes(b"half a shard")  # as if killed mid-write
    (shards / "shard-000098.h5").write_bytes(b"written, never committed")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    extract([tmp_path / "in"], tmp_path / "whole", scheduler="sync", shard_size=1)
    killed, whole = _store_content(tmp_path / "killed"), _store_content(tmp_path / "whole")
    assert killed == whole and len(whole) == 24
    assert not list(shards.glob(".*tmp*")) and not (shards / "shard-000098.h5").exists()  # leftovers cleaned


def test_store_without_representation_column_still_opens_and_extends(tmp_path):
    """A store written before the representation/genre columns: opens, reads them as null, takes new shards."""
    import pyarrow.parquet as pq

    from beatdbn.tasks.build import TaskConfig, build_tasks

    write_tracks(tmp_path / "in", 6)
    extract([tmp_path / "in"], tmp_path / "store", scheduler="sync", shard_size=3)
    for p in (tmp_path / "store" / "shards").glob("shard-*.parquet"):  # rewrite as the old schema
        table = pq.read_table(p)
        pq.write_table(table.drop_columns(["representation", "genre"]), p)
    (tmp_path / "store" / "tracks.parquet").unlink()
    old = beatdbn.FeatureStore.open(tmp_path / "store")
    assert len(old) == 6 and old.metadata.column("representation").null_count == 6
    _, _, stats = build_tasks(old.metadata, TaskConfig(artists=1, per_artist=1, per_key=1, tasks=("artist",)))
    assert stats["representations"] == {"echonest": 6}
    write_tracks(tmp_path / "in", 2, start=50)
    report = extract([tmp_path / "in"], tmp_path / "store", scheduler="sync", shard_size=3)
    assert report.tracks_total == 8
    reps = beatdbn.FeatureStore.open(tmp_path / "store").metadata.column("representation").to_pylist()
    assert reps.count("echonest") == 2 and reps.count(None) == 6


def test_msd_and_audio_inputs_in_one_store(tmp_path):
    import soundfile as sf

    tracks = write_tracks(tmp_path / "in", 2)
    t = np.arange(3 * 22050) / 22050
    y = 0.3 * np.sin(2 * np.pi * 330 * t) * (1 + (t % 0.5 < 0.05))
    sf.write(tmp_path / "in" / "tone.flac", y.astype(np.float32), 22050)
    with pytest.raises(DataError, match=r"mix MSD files \(2, .*audio files \(1, .*--allow-mixed"):
        extract([tmp_path / "in"], tmp_path / "store", scheduler="sync")  # issue 24 item 8: refused by default
    assert not (tmp_path / "store" / "shards").exists()
    extract([tmp_path / "in"], tmp_path / "store", scheduler="sync", allow_mixed=True)
    store = beatdbn.FeatureStore.open(tmp_path / "store")
    reps = dict(zip(store.metadata.column("source").to_pylist(), store.metadata.column("representation").to_pylist()))
    assert len(store) == 3 and sorted(reps.values()) == ["audio", "echonest", "echonest"]
    assert all(store[tr.track_id].meta["representation"] == "echonest" for tr in tracks)
