"""Untrusted input files (issue 24): HDF5 that reaches outside itself, oversized tracks, too-short audio.

Every attack file is built here, from a valid synthetic MSD track file. Each
test first shows the attack is real (plain ``h5py`` reads the planted secret
through it), then that beatdbn's readers refuse it with one ``DataError``
line and that the secret appears in no output: not in the message, not in a
``predict`` answer, not in an ``extract`` store.
"""

from __future__ import annotations

import json
import os
import re
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from beatdbn.exceptions import DataError
from beatdbn.features.beats import MAX_BEATS, MAX_SEGMENTS, align_track, beat_grid
from beatdbn.features.h5safe import open_untrusted
from beatdbn.features.msd import iter_tracks, read_track
from beatdbn.features.sources import read_features
from beatdbn.synth.corpus import make_track
from beatdbn.synth.msd_writer import write_track

SECRET = b"TOPSECRET-root:x:0:0:root:/root:/bin/bash"
SECRET_VALUE = 4242.125  # a planted number, for attacks on float arrays


def _secret_file(folder: Path) -> Path:
    path = folder / "passwd"
    if not path.exists():
        path.write_bytes(SECRET * 4000)  # 164 kB: more than any dataset below needs
    return path


def _secret_msd(folder: Path) -> Path:
    """A valid MSD track file in another place, whose title and timbre are the secret."""
    path = folder / "elsewhere.h5"
    if not path.exists():
        write_track(path, make_track(track_id="TRSECRET00000000", n_beats=8, seed=5))
        with h5py.File(path, "r+") as h5:
            songs = h5["metadata/songs"][()]
            songs["title"] = SECRET
            h5["metadata/songs"][...] = songs
            h5["analysis/segments_timbre"][...] = SECRET_VALUE
    return path


def _good(folder: Path, name: str = "upload.h5") -> Path:
    return write_track(folder / name, make_track(track_id="TRHONEST00000001", n_beats=8, seed=1))


def _replace(h5: h5py.File, name: str, **kwargs) -> None:
    """Re-create dataset ``name`` with the same type and shape and the given creation options (no data)."""
    old = h5[name]
    dtype, shape = old.dtype, old.shape
    del h5[name]
    h5.create_dataset(name, shape=shape, dtype=dtype, **kwargs)


# -- the attacks ------------------------------------------------------------------------------------------

def attack_external_storage(folder: Path, name: str = "metadata/songs") -> Path:
    """``name``'s bytes read from the secret file (H5Pset_external), the /etc/passwd trick of issue 24."""
    path, secret = _good(folder), _secret_file(folder)
    with h5py.File(path, "r+") as h5:
        nbytes = h5[name].dtype.itemsize * int(np.prod(h5[name].shape))
        _replace(h5, name, external=[(str(secret), 0, nbytes)])
    return path


def attack_external_link(folder: Path, name: str = "metadata") -> Path:
    """Group (or dataset) ``name`` is an external link into another file."""
    path, other = _good(folder), _secret_msd(folder)
    with h5py.File(path, "r+") as h5:
        del h5[name]
        h5[name] = h5py.ExternalLink(str(other), "/" + name)
    return path


def attack_virtual_dataset(folder: Path, name: str = "analysis/segments_timbre") -> Path:
    """``name`` is a virtual dataset mapped from the other file's dataset."""
    path, other = _good(folder), _secret_msd(folder)
    with h5py.File(other, "r") as src:
        shape, dtype = src[name].shape, src[name].dtype
    with h5py.File(path, "r+") as h5:
        del h5[name]
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[...] = h5py.VirtualSource(str(other), name, shape=shape)
        h5.create_virtual_dataset(name, layout)
    return path


def attack_soft_link_through_external(folder: Path) -> Path:
    """A soft link whose target path crosses an external link."""
    path, other = _good(folder), _secret_msd(folder)
    with h5py.File(path, "r+") as h5:
        h5["outside"] = h5py.ExternalLink(str(other), "/")
        del h5["metadata/songs"]
        h5["metadata/songs"] = h5py.SoftLink("/outside/metadata/songs")
    return path


def attack_plugin_filter(folder: Path) -> Path:
    """A dataset compressed with filter 32004 (LZ4), which HDF5 would look for as a plugin."""
    path = _good(folder)
    with h5py.File(path, "r+") as h5:
        data = h5["analysis/beats_start"][()]
        del h5["analysis/beats_start"]
        h5.create_dataset("analysis/beats_start", data=data, chunks=True, compression=32004,
                          allow_unknown_filter=True)
    return path


def _with_user_block(src: Path, dst: Path, head: bytes) -> Path:
    """A copy of ``src`` behind a 512-byte user block starting with ``head``."""
    with h5py.File(src, "r") as a, h5py.File(dst, "w", userblock_size=512) as b:
        for name in a:
            a.copy(a[name], b, name=name)
    with open(dst, "r+b") as fh:
        fh.write(head[:512])
    return dst


def attack_user_block(folder: Path) -> Path:
    """A file that is a WAV header and an MSD file at once (the HDF5 data behind a 512-byte user block)."""
    return _with_user_block(_good(folder, "plain.h5"), folder / "upload.h5", b"RIFF\x24\x00\x00\x00WAVEfmt " + SECRET)


ATTACKS = {
    "external storage": (attack_external_storage, "external storage"),
    "external link": (attack_external_link, "external link"),
    "virtual dataset": (attack_virtual_dataset, "virtual dataset"),
    "soft link through an external link": (attack_soft_link_through_external, "external link"),
    "plugin filter": (attack_plugin_filter, "filter 32004"),
    "user block": (attack_user_block, "user block of 512 bytes"),
}


def _leaks_through_plain_h5py(path: Path) -> bool:
    """Whether plain h5py (what beatdbn used before) reads the planted secret through the file."""
    with h5py.File(path, "r") as h5:
        title = h5["metadata/songs"][()]["title"][0]
        timbre = h5["analysis/segments_timbre"][()]
    return SECRET in title or bool((timbre == SECRET_VALUE).any())


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_attack_is_refused_in_one_line_and_leaks_nothing(tmp_path, attack):
    build, reason = ATTACKS[attack]
    path = build(tmp_path)
    if attack not in ("plugin filter", "user block"):  # the attack is real: h5py alone reads the secret
        assert _leaks_through_plain_h5py(path), attack
    for read in (lambda: list(read_features(path)), lambda: read_track(path), lambda: open_untrusted(path)):
        with pytest.raises(DataError) as info:
            read()
        message = str(info.value)
        assert message.startswith(f"{path}: refused: ") and reason in message and "\n" not in message
        assert SECRET.decode() not in message and "TOPSECRET" not in message


@pytest.mark.parametrize("name", ["analysis/beats_start", "analysis/segments_timbre", "musicbrainz/artist_mbtags"])
def test_external_storage_is_refused_on_any_dataset_before_data_is_read(tmp_path, name):
    path = attack_external_storage(tmp_path, name)
    with pytest.raises(DataError, match=f"/{name} uses external storage"):
        read_track(path)


def test_external_links_to_a_dataset_and_to_a_missing_file_are_refused(tmp_path):
    path = attack_external_link(tmp_path, "analysis/beats_start")
    with pytest.raises(DataError, match="/analysis/beats_start is an external link"):
        read_track(path)
    with h5py.File(path, "r+") as h5:  # dangling: the file it names does not exist
        del h5["analysis/beats_start"]
        h5["analysis/beats_start"] = h5py.ExternalLink(str(tmp_path / "absent.h5"), "/x")
    with pytest.raises(DataError, match="external link"):
        read_track(path)


def test_honest_structures_still_read(tmp_path):
    """Soft links inside the file, compact and chunked-compressed layouts, extra groups: all read as before."""
    path = _good(tmp_path)
    before = read_track(path)
    with h5py.File(path, "r+") as h5:
        h5.move("analysis/beats_start", "stash/beats")
        h5["analysis/beats_start"] = h5py.SoftLink("/stash/beats")
        data = h5["analysis/segments_timbre"][()]
        del h5["analysis/segments_timbre"]
        h5.create_dataset("analysis/segments_timbre", data=data, chunks=True, compression="gzip", shuffle=True,
                          fletcher32=True)
        h5.create_group("extra/deeper").create_dataset("note", data=np.arange(3))
    after = read_track(path)
    assert (after.title, after.track_id) == (before.title, before.track_id)
    np.testing.assert_array_equal(after.beats_start, before.beats_start)
    np.testing.assert_array_equal(after.segments_timbre, before.segments_timbre)


def test_too_many_links_is_refused(tmp_path):
    path = _good(tmp_path)
    with open_untrusted(path) as h5:  # 27 links: fine by default
        assert "analysis/songs" in h5
    with pytest.raises(DataError, match="more than 10 links"):
        open_untrusted(path, max_links=10)


def test_attacks_reach_no_predict_answer_and_no_store(tmp_path):
    from beatdbn.cli import app
    from beatdbn.store.extract import extract

    folder = tmp_path / "in"
    folder.mkdir()
    files = []
    for i, attack in enumerate(sorted(ATTACKS)):
        sub = tmp_path / f"a{i}"
        sub.mkdir()
        files.append(folder / f"attack{i}.h5")
        files[-1].write_bytes(ATTACKS[attack][0](sub).read_bytes())
    res = CliRunner().invoke(app, ["predict", "--task", "key", *map(str, files), "--json"])
    assert "TOPSECRET" not in res.output and str(SECRET_VALUE) not in res.output
    answers = json.loads(res.stdout)
    assert len(answers) == len(files) and all("refused" in a["error"] for a in answers), answers
    report = extract([folder], tmp_path / "store", scheduler="sync")
    assert report.tracks_total == 0 and len(report.skipped) == len(files)
    assert all("refused" in s["reason"] for s in report.skipped), report.skipped
    for f in (tmp_path / "store").rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_bytes(), f


# -- the cost of one track (item 9) ---------------------------------------------------------------------

def _huge_beats_file(folder: Path, n_beats: int) -> Path:
    """A small file whose /analysis/beats_start has ``n_beats`` entries (chunked, compressed, mostly fill)."""
    path = _good(folder, "huge.h5")
    with h5py.File(path, "r+") as h5:
        del h5["analysis/beats_start"]
        ds = h5.create_dataset("analysis/beats_start", shape=(n_beats,), dtype="f8", chunks=(1 << 16,),
                               compression="gzip", fillvalue=0.0)
        ds[:4] = [0.5, 1.0, 1.5, 2.0]
    return path


def test_two_million_beats_are_refused_fast_without_a_big_allocation(tmp_path):
    path = _huge_beats_file(tmp_path, 2_000_000)
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(DataError) as info:
        list(read_features(path))
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    message = str(info.value)
    assert "2,000,000 rows for one song" in message and f"at most {MAX_BEATS:,}" in message and "\n" not in message
    assert elapsed < 2.0 and peak < 5_000_000, (elapsed, peak)  # 2,000,000 float64 would be 16 MB


def test_limits_hold_for_aggregate_slices_and_for_segments(tmp_path):
    from beatdbn.synth.msd_writer import write_aggregate

    tracks = [make_track(track_id=f"TRAGG{i:013d}", n_beats=20, seed=i) for i in range(3)]
    path = write_aggregate(tmp_path / "agg.h5", tracks)
    with h5py.File(path, "r+") as h5:  # song 1 claims rows far past the array
        songs = h5["analysis/songs"][()]
        songs["idx_beats_start"][2] = 10**9
        h5["analysis/songs"][...] = songs
    with pytest.raises(DataError, match=r"song 1 of /analysis/songs says its /analysis/beats_start rows"):
        list(iter_tracks(path))
    track = make_track(n_beats=8, seed=1)
    big = track.__class__(**{**{k: getattr(track, k) for k in track.__dataclass_fields__},
                             "segments_start": np.zeros(MAX_SEGMENTS + 1)})
    with pytest.raises(DataError, match="MAX_SEGMENTS"):
        align_track(big)


def test_a_beat_grid_past_max_beats_is_refused_before_it_is_built():
    assert len(beat_grid(start=0.0, end=7200.0, tempo=320.0)) == 38_400  # 2 h at librosa's fastest tempo
    with pytest.raises(DataError, match="MAX_BEATS"):
        beat_grid(start=0.0, end=86_400.0, tempo=1000.0)  # a day at 1000 BPM: 1.44 million beats


def test_a_track_without_beats_and_a_day_long_duration_is_refused(tmp_path):
    path = _good(tmp_path)
    with h5py.File(path, "r+") as h5:
        del h5["analysis/beats_start"]
        h5.create_dataset("analysis/beats_start", data=np.zeros(0))
        songs = h5["analysis/songs"][()]
        songs["duration"], songs["tempo"] = 86_000.0, 900.0
        h5["analysis/songs"][...] = songs
    with pytest.raises(DataError, match=r"upload\.h5: no beats, and a beat grid .* \(MAX_BEATS\)"):
        list(read_features(path))


# -- property: honest and hostile structures mixed ----------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

DATASETS = ["metadata/songs", "analysis/songs", "musicbrainz/songs", "analysis/beats_start",
            "analysis/segments_start", "analysis/segments_timbre", "analysis/segments_pitches",
            "musicbrainz/artist_mbtags", "analysis/bars_start", "metadata/similar_artists"]
GROUPS = ["metadata", "analysis", "musicbrainz"]
HOSTILE = {"external storage", "external link", "virtual dataset", "soft link through an external link",
           "plugin filter", "user block", "unused external link"}


def _hard_dataset(h5: h5py.File, name: str) -> bool:
    """``name`` is a dataset reached through hard links only (so changing it cannot touch another file)."""
    parts = name.split("/")
    for i in range(1, len(parts) + 1):
        if not isinstance(h5.get("/".join(parts[:i]), getlink=True), h5py.HardLink):
            return False
    return isinstance(h5[name], h5py.Dataset)


def _mutate(h5: h5py.File, kind: str, name: str, folder: Path, step: int) -> bool:
    """Apply change number ``step`` to an open file; False when it does not apply to ``name``."""
    if kind == "unused external link":
        h5[f"extra{step}/{name.replace('/', '_')}"] = h5py.ExternalLink(str(_secret_msd(folder)), "/" + name)
        return True
    if kind == "extra group":
        h5.require_group(f"extra{step}/{name.replace('/', '_')}").create_dataset("x", data=np.arange(4))
        return True
    if kind == "external link":
        target = name.split("/")[0] if len(name) % 2 else name  # a group or a dataset, as the name's length says
        if not isinstance(h5.get(target, getlink=True), h5py.HardLink):
            return False
        del h5[target]
        h5[target] = h5py.ExternalLink(str(_secret_msd(folder)), "/" + target)
        return True
    if not _hard_dataset(h5, name):
        return False
    if kind == "external storage":
        nbytes = h5[name].dtype.itemsize * int(np.prod(h5[name].shape))
        _replace(h5, name, external=[(str(_secret_file(folder)), 0, nbytes)])
    elif kind == "virtual dataset":
        old = h5[name]
        layout = h5py.VirtualLayout(shape=old.shape, dtype=old.dtype)
        layout[...] = h5py.VirtualSource(str(_secret_msd(folder)), name, shape=old.shape)
        del h5[name]
        h5.create_virtual_dataset(name, layout)
    elif kind == "soft link through an external link":
        h5.require_group("outside_parent")
        if "outside_parent/outside" not in h5:
            h5["outside_parent/outside"] = h5py.ExternalLink(str(_secret_msd(folder)), "/")
        del h5[name]
        h5[name] = h5py.SoftLink(f"/outside_parent/outside/{name}")
    elif kind in ("plugin filter", "rechunk"):
        data = h5[name][()]
        if not data.size:
            return False
        del h5[name]
        options = dict(compression=32004, allow_unknown_filter=True) if kind == "plugin filter" else \
            dict(compression="gzip", shuffle=True, fletcher32=True)
        h5.create_dataset(name, data=data, chunks=True, **options)
    elif kind == "soft alias":
        stash = f"stash{step}/{name.replace('/', '_')}"
        h5.move(name, stash)
        h5[name] = h5py.SoftLink("/" + stash)
    return True


@st.composite
def structures(draw):
    kinds = sorted(HOSTILE - {"user block"}) + 3 * ["extra group", "rechunk", "soft alias"]  # about half honest
    changes = draw(st.lists(st.tuples(st.sampled_from(kinds), st.sampled_from(DATASETS)), max_size=3))
    return changes, draw(st.integers(0, 4)) == 0


@settings(max_examples=40, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(structures())
def test_mixed_structures_give_the_honest_track_or_a_refusal_and_never_the_secret(structure):
    import tempfile

    changes, user_block = structure
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = _good(folder)
        honest = read_track(path)
        applied, hostile_names = set(), set()
        with h5py.File(path, "r+") as h5:
            for step, (kind, name) in enumerate(changes):
                if name in hostile_names:  # rechunking it would copy the secret in: no longer an attack
                    continue
                if _mutate(h5, kind, name, folder, step):
                    applied.add(kind)
                    if kind in HOSTILE:
                        hostile_names.add(name)
        if user_block:
            path = _with_user_block(path, folder / "blocked.h5", b"#!/bin/sh\n" + SECRET)
            applied.add("user block")
        event("hostile" if applied & HOSTILE else "honest")
        try:
            out = list(read_features(path))
        except DataError as exc:
            message = str(exc)
            assert "TOPSECRET" not in message and "\n" not in message
            assert applied & HOSTILE and message.startswith(f"{path}: refused: "), (applied, message)
            return
        assert not applied & HOSTILE, applied
        [(meta, feats, beats)] = out
        assert "TOPSECRET" not in repr(meta) and not (feats == SECRET_VALUE).any()
        assert meta["title"] == honest.title and len(beats) == len(feats) >= 1


# -- not a file at all ----------------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
@pytest.mark.parametrize("name", ["pipe.h5", "pipe.wav"])
def test_a_named_pipe_or_device_is_refused_not_waited_on(tmp_path, name):
    """A FIFO (or /dev/zero) given as an input would block (or never end) the reader: refused at once."""
    from beatdbn.inference.inputs import iter_inputs

    fifo = tmp_path / name
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=rf"{re.escape(name)}: not a regular file"):
        list(read_features(fifo))
    assert list(iter_inputs([tmp_path])) == []  # a folder search skips it
    if Path("/dev/zero").exists():
        with pytest.raises(DataError, match="/dev/zero: not a regular file"):
            list(read_features("/dev/zero"))


def test_a_float_type_with_exponent_bias_0_is_a_data_error(tmp_path):
    """Found by scripts/fuzz_readers.py: h5py raised RuntimeError ("Unspecified error in H5Tget_ebias")."""
    path = _good(tmp_path)
    data = bytearray(path.read_bytes())
    f64 = b"\x00\x00\x40\x00\x34\x0b\x00\x34\xff\x03\x00\x00"  # IEEE f64 properties: ..., exponent bias 1023
    at = data.find(f64)
    assert at > 0
    data[at + 8 : at + 12] = bytes(4)  # exponent bias 0
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"upload\.h5: damaged MSD file \(RuntimeError: .*H5Tget_ebias"):
        list(read_features(path))


# -- a short fuzz (scripts/fuzz_readers.py is the long one) --------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_seeds(tmp_path_factory) -> dict:
    import soundfile as sf

    folder = tmp_path_factory.mktemp("seeds")
    msd = write_track(folder / "seed.h5", make_track(track_id="TRFUZZ0000000001", n_beats=16, seed=2)).read_bytes()
    t = np.arange(int(1.5 * 22050)) / 22050
    sf.write(folder / "seed.wav", (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + (t % 0.5 < 0.05))).astype(np.float32),
             22050)
    return {".h5": msd, ".wav": (folder / "seed.wav").read_bytes()}


@settings(max_examples=30, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(suffix=st.sampled_from([".h5", ".h5", ".wav"]), where=st.lists(st.floats(0, 1), min_size=1, max_size=6),
       patch=st.lists(st.binary(min_size=1, max_size=8), min_size=6, max_size=6), cut=st.floats(0.05, 1.0))
def test_mutated_files_give_a_track_or_one_data_error_line(tmp_path, fuzz_seeds, suffix, where, patch, cut):
    data = bytearray(fuzz_seeds[suffix])
    for pos, bytes_ in zip(where, patch):
        at = int(pos * (len(data) - 1))
        data[at : at + len(bytes_)] = bytes_
    path = tmp_path / f"fuzzed{suffix}"
    path.write_bytes(bytes(data[: max(1, int(cut * len(data)))]) if cut < 0.9 else bytes(data))
    try:
        for meta, feats, beats in read_features(path):
            assert feats.shape[1] == 24 and len(feats) == len(beats) and np.isfinite(feats).all()
    except DataError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))


@pytest.mark.parametrize("driver", ["family", "split"])
def test_files_spread_over_several_by_their_driver_do_not_open(tmp_path, driver):
    """Opened with sec2 named explicitly: a family member or the metadata half of a split file is refused."""
    if driver == "family":
        with h5py.File(tmp_path / "fam%d.h5", "w", driver="family", memb_size=1 << 16) as h5:
            h5["x"] = np.arange(20_000)
        path = tmp_path / "fam0.h5"
    else:
        with h5py.File(tmp_path / "split.h5", "w", driver="split") as h5:
            h5["x"] = np.arange(10)
        path = tmp_path / "split.h5-m.h5"
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        open_untrusted(path)
