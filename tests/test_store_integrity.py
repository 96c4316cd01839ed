"""Issue 24, items 2 and 4: a shard carries its store's id and checksum; `check --repair` never destroys the index.

Every broken store is built here: shards copied in from another store, renamed, replaced after the index was
written, duplicate track ids, a store written before ids, a `shards/` symlink loop, self-linked shard files and a
garbage `store.json`.
"""

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.exceptions import DataError
from beatdbn.store.check import check_store
from beatdbn.store.extract import extract
from beatdbn.store.reader import FeatureStore, write_index
from beatdbn.store.shard import H5_STORE_ATTR, ShardData, read_shard_table, write_shard
from beatdbn.synth.corpus import make_track
from beatdbn.synth.msd_writer import write_track

runner = CliRunner()


def write_tracks(folder: Path, n: int, start: int = 0, prefix: str = "TRINTG") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        t = make_track(track_id=f"{prefix}{i:012d}", n_beats=20 + (i * 7) % 30, seed=i)
        write_track(folder / f"{t.track_id}.h5", t)


def make_store(tmp_path: Path, name: str, n: int = 6, start: int = 0) -> Path:
    write_tracks(tmp_path / f"in-{name}", n, start)
    extract([tmp_path / f"in-{name}"], tmp_path / name, scheduler="sync", shard_size=2)
    return tmp_path / name


def content(path) -> dict:
    return {rec.track_id: rec.features.tobytes() for rec in FeatureStore.open(path)}


def check(store, *args):
    r = runner.invoke(app, ["check", str(store), *args])
    assert "Traceback" not in r.output, r.output
    return r


def store_id(store: Path) -> str:
    return json.loads((store / "store.json").read_text())["store_id"]


def test_a_new_store_and_each_shard_carry_its_id_and_checksum(tmp_path):
    store = make_store(tmp_path, "a")
    sid = store_id(store)
    assert len(sid) == 32
    for pq in sorted((store / "shards").glob("*.parquet")):
        _, info = read_shard_table(pq)
        with h5py.File(pq.with_suffix(".h5"), "r") as h5:
            assert h5.attrs[H5_STORE_ATTR] == sid
        assert info["store_id"] == sid and len(info["h5_blake2b"]) == 32
    assert make_store(tmp_path, "b") and store_id(tmp_path / "b") != sid  # another store, another id
    assert check(store).exit_code == 0


def _copy_shard(src: Path, dst: Path, number_src: int, number_dst: int) -> None:
    for suffix in (".h5", ".parquet"):
        shutil.copyfile(src / "shards" / f"shard-{number_src:06d}{suffix}", dst / "shards" / f"shard-{number_dst:06d}{suffix}")


def test_a_shard_copied_in_from_another_store_is_an_error_and_repaired(tmp_path):
    a = make_store(tmp_path, "a")
    b = make_store(tmp_path, "b", start=100)
    clean = content(a)
    _copy_shard(b, a, 1, 1)  # same number, another store: its own commit and checksum agree
    r = check(a)
    assert r.exit_code == 1 and "broken shard 1" in r.output and "belongs to another store" in r.output, r.output
    with pytest.raises(DataError, match=r"shard-000001.h5: damaged shard \(.*check .* --repair"):
        content(a)  # never another track's features under this store's track ids
    r = check(a, "--repair")
    assert r.exit_code == 0 and "moved to" in r.output, r.output
    again = extract([tmp_path / "in-a"], a, scheduler="sync", shard_size=2)
    assert again.tracks_added == 2 and content(a) == clean
    assert check(a).exit_code == 0


def test_a_shard_copied_in_under_a_new_number_is_an_error(tmp_path):
    a = make_store(tmp_path, "a")
    b = make_store(tmp_path, "b", start=100)
    _copy_shard(b, a, 0, 7)
    r = check(a)
    assert r.exit_code == 1 and "broken shard 7" in r.output and "written as shard 0" in r.output, r.output
    os.remove(a / "shards" / "shard-000007.h5")
    os.remove(a / "shards" / "shard-000007.parquet")
    _copy_shard(a, a, 0, 5)  # its own shard under another number: also its track ids twice
    r = check(a)
    assert r.exit_code == 1 and "broken shard 5" in r.output and "written as shard 0" in r.output, r.output


def test_a_shard_replaced_after_the_index_was_written_is_seen(tmp_path):
    a = make_store(tmp_path, "a")
    twin = tmp_path / "twin"
    shutil.copytree(a, twin)  # a copy keeps the id: only the checksum the index recorded tells them apart
    write_tracks(tmp_path / "in-twin", 2, start=200)
    for p in (twin / "shards").glob("shard-00000[12].*"):
        p.unlink()
    extract([tmp_path / "in-twin"], twin, scheduler="sync", shard_size=2)
    _copy_shard(twin, a, 1, 1)
    r = check(a)
    assert r.exit_code == 1 and "shard 1 differs from the one the index recorded" in r.output, r.output
    with pytest.raises(DataError, match="shard-000001.h5: damaged shard"):
        content(a)
    assert check(a, "--repair").exit_code == 0
    assert check(a).exit_code == 0 and "TRINTG000000000200" in content(a)  # the index now describes the shard


def test_duplicate_track_ids_with_other_features_are_an_error(tmp_path):
    for k, folder in enumerate(("one", "two")):
        t = make_track(track_id="TRDUPLICATE0000001", n_beats=30, seed=k)
        (tmp_path / folder).mkdir()
        write_track(tmp_path / folder / f"{t.track_id}.h5", t)
    store = tmp_path / "s"
    extract([tmp_path / "one", tmp_path / "two"], store, scheduler="sync", shard_size=1)
    r = check(store)
    assert r.exit_code == 1 and "TRDUPLICATE0000001" in r.output and "duplicate track id" in r.output, r.output
    assert check(store, "--repair").exit_code == 0 and check(store).exit_code == 0
    assert len(FeatureStore.open(store)) == 1


def test_the_same_track_from_two_inputs_is_a_note_not_an_error(tmp_path):
    write_tracks(tmp_path / "one", 2)
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    store = tmp_path / "s"
    extract([tmp_path / "one", tmp_path / "two"], store, scheduler="sync", shard_size=1)
    r = check(store)
    assert r.exit_code == 0 and "2 tracks are held twice with identical features" in r.output, r.output


def _old_store(tmp_path: Path) -> Path:
    """A store as beatdbn wrote it before ids: no store_id in store.json, the shards or the index."""
    store = tmp_path / "old"
    for shard in range(2):
        data = ShardData(shard=shard)
        for i in range(2):
            t = make_track(track_id=f"TROLDSTORE{shard:04d}{i:04d}", n_beats=25, seed=10 * shard + i)
            meta = dict(t.metadata(), source=f"/x/{t.track_id}.h5", source_index=0, representation="echonest")
            from beatdbn.features.beats import align_track

            feats, beats = align_track(t)
            data.add(meta, feats, beats)
            data.sources.append(meta["source"])
        write_shard(store, data)
    (store / "store.json").write_text(json.dumps({"format": "beatdbn-feature-store", "version": 1}))
    write_index(store)
    return store


def test_a_store_without_id_is_readable_noted_and_stamped_by_repair(tmp_path):
    store = _old_store(tmp_path)
    before = content(store)
    assert len(before) == 4
    r = check(store)
    assert r.exit_code == 0 and "has no store id" in r.output and "--repair` to stamp one" in r.output, r.output
    r = check(store, "--repair")
    assert r.exit_code == 0 and "stamped store id" in r.output, r.output
    sid = store_id(store)
    assert all(read_shard_table(p)[1]["store_id"] == sid for p in (store / "shards").glob("*.parquet"))
    r = check(store)
    assert r.exit_code == 0 and "no store id" not in r.output and content(store) == before
    b = make_store(tmp_path, "b", start=100)
    _copy_shard(b, store, 0, 5)  # now a foreign shard is seen
    assert check(store).exit_code == 1


def test_extract_into_a_store_without_id_says_so(tmp_path):
    store = _old_store(tmp_path)
    write_tracks(tmp_path / "more", 2, start=50)
    report = extract([tmp_path / "more"], store, scheduler="sync")
    assert any("has no store id" in n for n in report.notes)
    assert len(FeatureStore.open(store)) == 6 and check(store).exit_code == 0


@pytest.mark.parametrize("loop", ["self", "pair"])
def test_a_shards_symlink_loop_is_one_line_and_the_index_is_kept(tmp_path, loop):
    store = make_store(tmp_path, "a")
    index = (store / "tracks.parquet").read_bytes()
    real = tmp_path / "real-shards"
    os.replace(store / "shards", real)
    if loop == "self":
        os.symlink("shards", store / "shards")
    else:
        os.symlink(tmp_path / "other", store / "shards")
        os.symlink(store / "shards", tmp_path / "other")
    for args in ([], ["--repair"]):
        r = check(store, *args)
        assert r.exit_code == 1, r.output
        assert "shards is a symlink loop" in r.output and "the index is kept" in r.output, r.output
        assert (store / "tracks.parquet").read_bytes() == index  # never rewritten as empty
    with pytest.raises(DataError, match="symlink loop"):
        FeatureStore.open(store)
    with pytest.raises(DataError, match="symlink loop"):
        extract([tmp_path / "in-a"], store, scheduler="sync")
    os.remove(store / "shards")
    os.symlink(real, store / "shards")  # the repair path the message gives
    assert check(store).exit_code == 0 and len(content(store)) == 6


def test_a_shards_link_to_nothing_is_one_line(tmp_path):
    store = make_store(tmp_path, "a")
    shutil.rmtree(store / "shards")
    os.symlink(tmp_path / "gone", store / "shards")
    r = check(store, "--repair")
    assert r.exit_code == 1 and "which does not exist" in r.output and (store / "tracks.parquet").exists()


@pytest.mark.parametrize("which", [(".h5",), (".h5", ".parquet")])
def test_self_linked_shard_files_are_found_and_repaired(tmp_path, which):
    store = make_store(tmp_path, "a")
    clean = content(store)
    for suffix in which:
        f = store / "shards" / f"shard-000001{suffix}"
        f.unlink()
        os.symlink(f.name, f)
    with pytest.raises(DataError, match=r"shard-000001.*damaged shard .*check .* --repair"):
        content(store)
    r = check(store)
    assert r.exit_code == 1 and "broken shard 1" in r.output, r.output
    if which == (".h5",):
        assert "symlink loop" in r.output
    r = check(store, "--repair")
    assert r.exit_code == 0 and "moved to" in r.output, r.output
    assert os.path.islink(store / "damaged" / "shard-000001.h5")
    assert len(content(store)) == 4  # every command works again
    extract([tmp_path / "in-a"], store, scheduler="sync", shard_size=2)
    assert content(store) == clean and check(store).exit_code == 0


@pytest.mark.parametrize("garbage", [b"\x00\xffgarbage", b"[1, 2, 3]", b'{"format": "beatdbn-feature-store", "store_id": 7}'])
def test_a_garbage_store_json_has_a_repair_path(tmp_path, garbage):
    store = make_store(tmp_path, "a")
    sid = store_id(store)
    clean = content(store)
    (store / "store.json").write_bytes(garbage)
    with pytest.raises(DataError, match=r"store.json: .*check .* --repair. to rewrite store.json"):
        FeatureStore.open(store)
    r = check(store)
    assert r.exit_code == 1 and "--repair` to rewrite store.json" in r.output, r.output
    assert len([ln for ln in r.output.splitlines() if ln.startswith("error:")]) == 1
    r = check(store, "--repair")
    assert r.exit_code == 0 and "rewrote store.json" in r.output, r.output
    assert store_id(store) == sid and (store / "damaged" / "store.json").read_bytes() == garbage
    assert content(store) == clean and check(store).exit_code == 0


def test_a_garbage_store_json_in_a_folder_that_is_no_store_is_not_repaired(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "store.json").write_text("garbage")
    with pytest.raises(DataError, match="not a beatdbn feature store manifest"):
        check_store(tmp_path / "x", repair=True)
    assert not (tmp_path / "x" / "store.json.tmp").exists() and (tmp_path / "x" / "store.json").read_text() == "garbage"


def test_a_damaged_shard_never_reads_as_non_finite_features(tmp_path):
    store = make_store(tmp_path, "a")
    h5 = store / "shards" / "shard-000000.h5"
    with h5py.File(h5, "r+") as f:  # valid HDF5, NaN inside: the checksum no longer matches
        f["features"][0, 0] = np.nan
    with pytest.raises(DataError, match="shard-000000.h5: damaged shard"):
        content(store)
    r = check(store)
    assert r.exit_code == 1 and "broken shard 0" in r.output


def test_a_lost_store_json_is_repaired_with_the_shards_id_not_replaced_by_extract(tmp_path):
    store = make_store(tmp_path, "a")
    sid = store_id(store)
    (store / "store.json").unlink()
    with pytest.raises(DataError, match=r"store.json: missing, but .* --repair. to rewrite store.json"):
        extract([tmp_path / "in-a"], store, scheduler="sync")  # never a new id that makes its shards foreign
    assert not (store / "store.json").exists()
    r = check(store, "--repair")
    assert r.exit_code == 0 and store_id(store) == sid and check(store).exit_code == 0, r.output
