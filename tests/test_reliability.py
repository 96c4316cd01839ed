"""Issue 15: no bad value stored, no store corrupted by a second writer, one clear line for every failure.

One test (or a few) per numbered case of the issue; each failed on the code before the fix.
"""

import errno
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import beatdbn
from beatdbn.cli import app
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.store.extract import _clean_leftovers, extract
from beatdbn.store.lock import StoreLock
from beatdbn.store.reader import FeatureStore
from beatdbn.synth.corpus import make_track
from beatdbn.synth.msd_writer import write_track
from beatdbn.train.pretrain import read_exclusion

from conftest import RICK, missing

runner = CliRunner()
#: A full disk in one line: the store's own check, or the atomic-write layer's (utils.atomic.disk_full_error).
DISK_FULL = r"no space left on device while writing|could not be written, disk full"
SLOW_EXTRACT = os.path.join(os.path.dirname(__file__), "_slow_extract.py")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def write_tracks(folder, n, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        t = make_track(track_id=f"TRRELY{i:012d}", n_beats=30 + (i * 7) % 50, seed=i)
        write_track(folder / f"{t.track_id}.h5", t)


def one_line_error(result) -> str:
    """The CLI failed with exactly one ``error:`` line and no traceback."""
    out = result.output
    assert result.exit_code == 1, out
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, out
    return errors[0]


def _tmpfs(path: Path, size: str, ro: bool = False):
    """Mount a small tmpfs at ``path`` (root only); skip the test when that is impossible."""
    if not IS_ROOT or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


# -- 1. non-finite and huge values never reach the store ------------------------------------------------------------

@pytest.mark.parametrize("value", [1e308, 1e30, np.inf, np.nan])
def test_1_huge_or_non_finite_timbre_becomes_a_gap_never_stored(tmp_path, value):
    if not RICK.exists():
        pytest.skip(missing(RICK))
    src = tmp_path / "in" / "rick.h5"
    src.parent.mkdir()
    shutil.copy(RICK, src)
    with h5py.File(src, "r+") as h5:
        h5["analysis/segments_timbre"][5:50, 3] = value  # the repro: 18 inf values got stored
    report = extract([src.parent], tmp_path / "s", scheduler="sync")
    assert report.tracks_total == 1 and not report.skipped
    rec = next(iter(FeatureStore.open(tmp_path / "s")))
    assert np.isfinite(rec.features).all() and len(rec.features) == len(rec.beats) > 300
    assert np.abs(rec.features[:, 12:]).max() < 1e4


def test_1_track_with_mostly_insane_values_is_skipped_with_the_reason(tmp_path):
    write_tracks(tmp_path / "in", 2)
    bad = sorted((tmp_path / "in").glob("*.h5"))[0]
    with h5py.File(bad, "r+") as h5:
        h5["analysis/segments_timbre"][:, 0] = 1e30
    report = extract([tmp_path / "in"], tmp_path / "s", scheduler="sync")
    assert report.tracks_total == 1
    (skip,) = report.skipped
    assert skip["path"] == str(bad.resolve()) and "sanity range" in skip["reason"]


def test_1_a_shard_refuses_non_finite_features():
    from beatdbn.store.shard import ShardData

    data = ShardData(shard=0)
    feats = np.zeros((3, 24))
    feats[1, 20] = 1e308  # finite in float64, inf in float32
    with pytest.raises(DataError, match="non-finite"):
        data.add({"track_id": "T"}, feats, np.arange(3.0))
    assert not data.meta


def test_1_audio_front_end_values_out_of_range_become_gaps():
    from types import SimpleNamespace

    from beatdbn.features.beats import align_track

    n = 20
    timbre = np.random.default_rng(0).normal(0, 50, (n, 12))
    timbre[3, 5], timbre[7, 0] = 1e30, -np.inf
    track = SimpleNamespace(source="song.wav", track_id="AU0", segments_start=np.arange(n) * 0.25,
                            segments_pitches=np.full((n, 12), 0.5), segments_timbre=timbre,
                            beats_start=np.arange(0, 5, 0.5), duration=5.0, tempo=120.0)
    feats, beats = align_track(track)
    assert feats.shape == (10, 24) and np.isfinite(feats).all() and np.abs(feats).max() < 1e3


# -- 2. one writer at a time ----------------------------------------------------------------------------------------

def test_2_second_writer_stops_with_one_line_naming_the_holder(tmp_path):
    write_tracks(tmp_path / "in", 3)
    with StoreLock(tmp_path / "s"):
        r = runner.invoke(app, ["extract", str(tmp_path / "in"), "--out", str(tmp_path / "s"), "--scheduler", "sync"])
        line = one_line_error(r)
        assert f"pid {os.getpid()}" in line and "--wait" in line
    r = runner.invoke(app, ["extract", str(tmp_path / "in"), "--out", str(tmp_path / "s"), "--scheduler", "sync"])
    assert r.exit_code == 0, r.output


def test_2_wait_blocks_until_the_holder_is_done(tmp_path):
    import threading

    write_tracks(tmp_path / "in", 2)
    holder = StoreLock(tmp_path / "s").acquire()
    threading.Timer(0.5, holder.release).start()
    waited = []
    report = extract([tmp_path / "in"], tmp_path / "s", scheduler="sync", wait=True, on_wait=waited.append)
    assert waited == [os.getpid()] and report.tracks_total == 2


def test_2_the_lock_dies_with_its_process(tmp_path):
    write_tracks(tmp_path / "in", 2)
    code = ("import sys, time; from beatdbn.store.lock import StoreLock; "
            "l = StoreLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "s")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataError, match=f"pid {holder.pid}"):
            extract([tmp_path / "in"], tmp_path / "s", scheduler="sync")
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the OS drops the lock
        holder.wait()
    assert extract([tmp_path / "in"], tmp_path / "s", scheduler="sync").tracks_total == 2


def test_2_cleaning_never_touches_a_live_writers_temporary_file(tmp_path):
    shards = tmp_path / "s" / "shards"
    shards.mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = shards / f"shard-000007.h5.tmp-{live.pid}"
        mine.write_bytes(b"being written")
        dead = shards / "shard-000008.h5.tmp-999999999"
        dead.write_bytes(b"left by a killed run")
        assert _clean_leftovers(tmp_path / "s") == 1
        assert mine.exists() and not dead.exists()
    finally:
        live.kill()
        live.wait()


def _run_slow(src, out, *extra, hold=None):
    cmd = [sys.executable, SLOW_EXTRACT, str(src), str(out), *extra]
    env = dict(os.environ, **({"HOLD_AFTER_FIRST_SHARD": str(hold)} if hold else {}))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_2_two_extract_processes_on_one_store_no_duplicates_no_traceback(tmp_path):
    """The issue's repro: two extracts started a moment apart on one --out (library-level processes: the CLI's
    one line for the same error is tested in-process above)."""
    write_tracks(tmp_path / "in", 8)
    release = tmp_path / "release"
    first = _run_slow(tmp_path / "in", tmp_path / "s", hold=release)  # holds after its first shard
    deadline = time.time() + 60
    while not list((tmp_path / "s" / "shards").glob("*.parquet")) and time.time() < deadline:
        time.sleep(0.02)
    second = _run_slow(tmp_path / "in", tmp_path / "s")  # stops: the store is being written
    waiting = _run_slow(tmp_path / "in", tmp_path / "s", "--wait")  # waits, then finds everything done
    out2, err2 = second.communicate(timeout=60)
    release.touch()
    out1, err1 = first.communicate(timeout=60)
    out3, err3 = waiting.communicate(timeout=60)
    assert first.returncode == 0 and waiting.returncode == 0, err1 + err3
    assert second.returncode == 1 and f"(pid {first.pid})" in err2, err2
    assert "Traceback" not in err1 + err2 + err3
    assert "8 inputs already done" in out3, out3
    info = FeatureStore.open(tmp_path / "s").summary()
    assert info["tracks"] == 8 and info["repeated_track_ids"] == 0 and info["shards"] == 4


# -- 3. a full disk ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("precheck", [True, False], ids=["free-space-check", "disk-fills-while-writing"])
def test_3_full_disk_gives_one_line_and_a_consistent_store(tmp_path, monkeypatch, precheck):
    import beatdbn.store.shard as shard_module

    if not precheck:  # the write itself hits ENOSPC
        monkeypatch.setattr(shard_module, "_check_space", lambda *a: None)
    write_tracks(tmp_path / "in", 60)  # about 300 kB of shards
    disk = tmp_path / "disk"
    _tmpfs(disk, "1200k" if precheck else "160k")
    try:
        r = runner.invoke(app, ["extract", str(tmp_path / "in"), "--out", str(disk / "s"), "--scheduler", "sync",
                                "--shard-size", "4"])
        line = one_line_error(r)
        assert re.search(DISK_FULL, line), line
        store = FeatureStore.open(disk / "s")  # whole shards only, readable
        assert 0 < len(store) < 60
        assert all(np.isfinite(rec.features).all() for rec in store)
        r = runner.invoke(app, ["check", str(disk / "s")])
        assert r.exit_code == 0, r.output
        assert not list((disk / "s").rglob("*.tmp-*"))
    finally:
        _umount(disk)


def test_3_full_disk_on_a_dask_cluster_gives_one_line(tmp_path, capfd):
    """The local scheduler printed 169 lines of worker tracebacks; now one line, from the client."""
    write_tracks(tmp_path / "in", 40)
    disk = tmp_path / "disk"
    _tmpfs(disk, "1200k")
    try:
        r = runner.invoke(app, ["extract", str(tmp_path / "in"), "--out", str(disk / "s"), "--workers", "1",
                                "--shard-size", "4"])
        line = one_line_error(r)
        assert re.search(DISK_FULL, line), line
        _, err = capfd.readouterr()  # what the worker processes wrote
        assert "Traceback" not in err and "ERROR" not in err, err[-2000:]
        assert runner.invoke(app, ["check", str(disk / "s")]).exit_code == 0
    finally:
        _umount(disk)


def test_3_no_space_while_writing_the_index_is_one_line(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    write_tracks(tmp_path / "in", 2)

    write_table = pq.write_table

    def full(table, where, **k):  # only the index does not fit
        if "tracks.parquet" in str(where):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_table(table, where, **k)

    monkeypatch.setattr(pq, "write_table", full)
    with pytest.raises(DataError, match=r"(no space left on device while writing .*tracks.parquet|"
                                        r"tracks.parquet: could not be written, disk full)"):
        extract([tmp_path / "in"], tmp_path / "s", scheduler="sync")
    monkeypatch.undo()
    assert len(FeatureStore.open(tmp_path / "s")) == 2  # the shards were committed
    assert not list((tmp_path / "s").rglob("*.tmp-*"))


# -- 4. skipped inputs are retried when they change -----------------------------------------------------------------

def test_4_a_fixed_file_is_retried_and_no_longer_skipped(tmp_path):
    write_tracks(tmp_path / "in", 3)
    victim = sorted((tmp_path / "in").glob("*.h5"))[1]
    good = victim.read_bytes()
    victim.write_bytes(good[:2000])  # truncated
    first = extract([tmp_path / "in"], tmp_path / "s", scheduler="sync")
    assert first.tracks_total == 2 and len(first.skipped) == 1
    again = extract([tmp_path / "in"], tmp_path / "s", scheduler="sync")  # unchanged: not retried
    assert again.retried == 0 and again.already_done == 3 and again.tracks_total == 2
    victim.write_bytes(good)  # the user replaces it with the good file
    fixed = extract([tmp_path / "in"], tmp_path / "s", scheduler="sync")
    assert fixed.retried == 1 and fixed.tracks_added == 1 and fixed.tracks_total == 3
    store = FeatureStore.open(tmp_path / "s")
    assert store.skipped == [] and store.n_repeated == 0
    assert json.loads((tmp_path / "s" / "report.json").read_text())["skipped_all_runs"] == []


def test_4_a_permission_fix_is_retried(tmp_path):
    """chmod moves only the status-change time; the input is tried again (junk here, so skipped again)."""
    write_tracks(tmp_path / "in", 1)
    junk = tmp_path / "in" / "junk.h5"
    junk.write_bytes(b"unreadable")
    os.chmod(junk, 0o000)
    assert len(extract([tmp_path / "in"], tmp_path / "s", scheduler="sync").skipped) == 1
    assert extract([tmp_path / "in"], tmp_path / "s", scheduler="sync").retried == 0
    time.sleep(0.01)
    os.chmod(junk, 0o644)
    again = extract([tmp_path / "in"], tmp_path / "s", scheduler="sync")
    assert again.retried == 1 and len(FeatureStore.open(tmp_path / "s").skipped) == 1


def test_4_retry_skipped_retries_unchanged_inputs(tmp_path):
    write_tracks(tmp_path / "in", 2)
    (tmp_path / "in" / "junk.h5").write_bytes(b"not hdf5")
    extract([tmp_path / "in"], tmp_path / "s", scheduler="sync")
    r = runner.invoke(app, ["extract", str(tmp_path / "in"), "--out", str(tmp_path / "s"), "--scheduler", "sync",
                            "--retry-skipped"])
    assert r.exit_code == 0, r.output
    assert "tried 1 previously skipped inputs again" in r.output
    assert len(FeatureStore.open(tmp_path / "s").skipped) == 1  # still bad, listed once


# -- 5. damaged stores: one line, and a repair path -----------------------------------------------------------------

def test_5_garbage_index_is_rebuilt_not_a_traceback(tmp_path):
    write_tracks(tmp_path / "in", 4)
    extract([tmp_path / "in"], tmp_path / "s", scheduler="sync", shard_size=2)
    (tmp_path / "s" / "tracks.parquet").write_bytes(b"garbage" * 100)
    r = runner.invoke(app, ["info", str(tmp_path / "s"), "--json"])
    assert r.exit_code == 0 and "Traceback" not in r.output
    assert json.loads(r.output[r.output.index("{"):])["tracks"] == 4
    assert len(FeatureStore.open(tmp_path / "s")) == 4  # what tasks and pretrain open
    r = runner.invoke(app, ["check", str(tmp_path / "s")])
    assert r.exit_code == 1 and "tracks.parquet: unreadable" in r.output
    r = runner.invoke(app, ["check", str(tmp_path / "s"), "--repair"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["check", str(tmp_path / "s")])
    assert r.exit_code == 0 and "0 broken; index ok" in r.output
    r = runner.invoke(app, ["extract", str(tmp_path / "in"), "--out", str(tmp_path / "s"), "--scheduler", "sync"])
    assert r.exit_code == 0 and "4 inputs already done" in r.output


def _content(path):
    return {rec.track_id: (rec.features.tobytes(), rec.beats.tobytes()) for rec in FeatureStore.open(path)}


@pytest.mark.parametrize("damage", ["truncate_h5", "garbage_commit", "flip_byte"])
def test_5_damaged_shard_is_found_repaired_and_redone(tmp_path, damage):
    write_tracks(tmp_path / "in", 6)
    extract([tmp_path / "in"], tmp_path / "s", scheduler="sync", shard_size=2)
    h5 = tmp_path / "s" / "shards" / "shard-000001.h5"
    if damage == "truncate_h5":
        h5.write_bytes(h5.read_bytes()[:3000])
    elif damage == "garbage_commit":
        h5.with_suffix(".parquet").write_bytes(b"PAR1 garbage")
    else:
        data = bytearray(h5.read_bytes())
        data[len(data) // 2] ^= 0xFF
        h5.write_bytes(bytes(data))
    if damage == "truncate_h5":  # reading it: one line naming the shard and `beatdbn check`
        with pytest.raises(DataError, match=r"shard-000001.h5: damaged shard .*beatdbn check .* --repair"):
            list(FeatureStore.open(tmp_path / "s"))
    if damage == "garbage_commit":  # a rerun reads every commit file: one line naming it and `beatdbn check`
        with pytest.raises(DataError, match=r"shard-000001.parquet: damaged shard .*beatdbn check"):
            extract([tmp_path / "in"], tmp_path / "s", scheduler="sync", shard_size=2)
    r = runner.invoke(app, ["check", str(tmp_path / "s")])
    assert r.exit_code == 1 and "broken shard 1" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["check", str(tmp_path / "s"), "--repair"])
    assert r.exit_code == 0 and "moved to" in r.output, r.output
    assert (tmp_path / "s" / "damaged" / "shard-000001.h5").exists()
    again = extract([tmp_path / "in"], tmp_path / "s", scheduler="sync", shard_size=2)
    assert again.already_done == 4 and again.tracks_added == 2  # exactly the broken shard's inputs
    extract([tmp_path / "in"], tmp_path / "clean", scheduler="sync", shard_size=2)
    assert _content(tmp_path / "s") == _content(tmp_path / "clean")
    assert runner.invoke(app, ["check", str(tmp_path / "s")]).exit_code == 0


# -- 6. exclusion lists are checked against the store ---------------------------------------------------------------

def test_6_exclusion_list_of_another_store_stops(tmp_path):
    (tmp_path / "exclude.txt").write_text("TRA\nTRB\nTRC\n")
    assert read_exclusion(tmp_path) == {"TRA", "TRB", "TRC"}  # unchecked without the store's ids
    with pytest.raises(DataError, match="3 of 3 ids are not in the store"):
        read_exclusion(tmp_path, known_ids=["TRX", "TRY"])


def test_6_some_unknown_ids_and_junk_warn(tmp_path, caplog):
    path = tmp_path / "exclude.txt"
    path.write_text("# valid and test\nTRA\nTRB\nTRC\n\njunk line\n")
    with caplog.at_level(logging.WARNING):
        ids = read_exclusion(path, known_ids={"TRA", "TRB", "TRC", "TRD"})
    assert ids == {"TRA", "TRB", "TRC", "junk line"}
    assert "1 of 4 ids are not in the store" in caplog.text


def test_6_pretrain_cli_refuses_a_foreign_exclusion_list(tmp_path):
    write_tracks(tmp_path / "in", 2)
    extract([tmp_path / "in"], tmp_path / "s", scheduler="sync")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "exclude.txt").write_text("\n".join(f"TROTHER{i:011d}" for i in range(48)))
    r = runner.invoke(app, ["pretrain", str(tmp_path / "s"), "--out", str(tmp_path / "dbn"),
                            "--exclude", str(tmp_path / "tasks")])
    assert "48 of 48 ids are not in the store" in one_line_error(r)
    assert not (tmp_path / "dbn").exists()


# -- 7. one line instead of a traceback -----------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["cuda", "tpu", "cuda:7", ""])
def test_7_bad_device_is_one_line_and_leaves_no_out(tmp_path, device):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available() and device == "cuda":
        pytest.skip("this machine has CUDA")
    (tmp_path / "s").mkdir()
    r = runner.invoke(app, ["pretrain", str(tmp_path / "s"), "--out", str(tmp_path / "dbn"), "--device", device])
    assert "--device" in one_line_error(r)
    assert not (tmp_path / "dbn").exists()


def test_7_workers_and_scheduler_are_checked(tmp_path):
    write_tracks(tmp_path / "in", 1)  # one shard: the scheduler used to go unchecked
    for args, words in [(["--workers", "-1"], "--workers -1"), (["--workers", "0"], "--workers 0"),
                        (["--scheduler", "bogus"], "--scheduler 'bogus'"),
                        (["--shard-size", "0"], "--shard-size 0")]:
        r = runner.invoke(app, ["extract", str(tmp_path / "in"), "--out", str(tmp_path / "s"), *args])
        assert words in one_line_error(r)
    assert not (tmp_path / "s").exists()
    with pytest.raises(ParameterError, match="workers"):
        extract([tmp_path / "in"], tmp_path / "s", workers=-1)
    with pytest.raises(ParameterError, match="scheduler"):
        extract([tmp_path / "in"], tmp_path / "s", scheduler="bogus")


def test_7_out_that_cannot_be_written_is_one_line(tmp_path):
    write_tracks(tmp_path / "in", 1)
    (tmp_path / "afile").write_text("x")
    r = runner.invoke(app, ["extract", str(tmp_path / "in"), "--out", str(tmp_path / "afile" / "s")])
    assert "is a file, not a folder" in one_line_error(r)
    ro = tmp_path / "ro"
    _tmpfs(ro, "1m", ro=True)
    try:
        for cmd in (["extract", str(tmp_path / "in"), "--out", str(ro / "s"), "--scheduler", "sync"],
                    ["pretrain", str(tmp_path / "in"), "--out", str(ro / "dbn")],
                    ["synth", str(ro / "msd"), "--tracks", "2"]):
            r = runner.invoke(app, cmd)
            assert "cannot write in" in one_line_error(r), cmd
    finally:
        _umount(ro)


# -- 9. symlinks, the store inside the source folder, skip lines once -------------------------------------------------

def test_9_symlinked_sub_folders_are_followed_once_even_with_a_loop(tmp_path):
    write_tracks(tmp_path / "real" / "msd", 5)
    (tmp_path / "linkdir").mkdir()
    (tmp_path / "linkdir" / "msd").symlink_to(tmp_path / "real" / "msd", target_is_directory=True)
    (tmp_path / "real" / "msd" / "loop").symlink_to(tmp_path / "real", target_is_directory=True)
    r = runner.invoke(app, ["extract", str(tmp_path / "linkdir"), "--out", str(tmp_path / "s"),
                            "--scheduler", "sync"])
    assert r.exit_code == 0, r.output
    assert "followed symlinked folder" in r.output and "symlink loop" in r.output
    assert len(FeatureStore.open(tmp_path / "s")) == 5


def test_9_store_inside_the_source_folder_is_never_read_as_input(tmp_path):
    write_tracks(tmp_path / "in", 4)
    for _ in range(2):
        report = extract([tmp_path / "in"], tmp_path / "in" / "store", scheduler="sync", shard_size=2)
        assert report.inputs == 4 and not report.skipped
    assert len(FeatureStore.open(tmp_path / "in" / "store")) == 4
    assert any("inside the output store" in n for n in report.notes)


def test_9_each_skip_line_is_printed_once(tmp_path, caplog):
    write_tracks(tmp_path / "in", 1)
    (tmp_path / "in" / "broken.h5").write_bytes(b"not an h5 file")
    with caplog.at_level(logging.INFO):  # what `beatdbn` shows: its own lines and the log at WARNING
        r = runner.invoke(app, ["extract", str(tmp_path / "in"), "--out", str(tmp_path / "s"), "--scheduler", "sync"])
    assert r.exit_code == 0, r.output
    shown = r.output + "\n".join(rec.getMessage() for rec in caplog.records if rec.levelno >= logging.WARNING)
    assert shown.count("broken.h5") == 1, shown


def test_1_pretrain_names_the_track_that_holds_non_finite_values(tmp_path):
    """A store damaged after its commit: reading it stops with one line naming the shard and the repair (issue 24
    item 7: a damaged shard never reaches a model as non-finite features)."""
    write_tracks(tmp_path / "in", 4)
    extract([tmp_path / "in"], tmp_path / "s", scheduler="sync", shard_size=2)
    store = FeatureStore.open(tmp_path / "s")
    in_shard_1 = set(store.metadata.filter(store.metadata.column("shard").to_numpy() == 1).column("track_id").to_pylist())
    with h5py.File(tmp_path / "s" / "shards" / "shard-000001.h5", "r+") as h5:
        feats = h5["features"][()]
        feats[:, 14] = np.nan
        h5["features"][...] = feats
    r = runner.invoke(app, ["pretrain", str(tmp_path / "s"), "--out", str(tmp_path / "dbn"), "--no-plots"])
    line = one_line_error(r)
    assert "shard-000001.h5: damaged shard" in line and "--repair" in line, line
    assert in_shard_1
    assert runner.invoke(app, ["check", str(tmp_path / "s")]).exit_code == 1
