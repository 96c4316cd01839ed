"""beatdbn embed --out-dir: one file per input, named after it (as openl3 does); clashes refused in one line."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.exceptions import ParameterError
from beatdbn.inference.embed import embed, embed_each, output_names
from beatdbn.models.dbn import ConvDBN, DBNConfig

runner = CliRunner()


@pytest.fixture(scope="module")
def dbn_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("dbn") / "dbn"
    ConvDBN(DBNConfig(n_maps_1a=8, n_maps_1b=8, n_maps_3=8, seed=0)).save(path)
    return path


@pytest.fixture
def songs(demo_corpus, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    files = sorted(demo_corpus["msd"].rglob("*.h5"))[:3]
    shutil.copy(files[0], folder / "a.h5")
    shutil.copy(files[1], folder / "sub" / "b.h5")
    shutil.copy(files[2], folder / "c.h5")
    (folder / "bad.h5").write_bytes(b"junk")
    return folder


def test_one_file_per_input_holds_what_the_single_file_holds_for_it(dbn_dir, songs, tmp_path):
    whole = embed(dbn_dir, [songs], tmp_path / "all.npz", batch_size=2)
    s = embed_each(dbn_dir, [songs], tmp_path / "out", fmt="npz", batch_size=2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.npz", "b.npz", "c.npz"]  # bad.h5: no file
    assert s["tracks"] == whole["tracks"] == 3 and s["failed"] == 1 and len(s["files"]) == 3
    d = np.load(tmp_path / "all.npz")
    for i, name in enumerate(["a", "c", "b"]):  # input order of the walk: a.h5, c.h5, then sub/b.h5
        row = dict(np.load(tmp_path / "out" / f"{name}.npz"))
        assert list(row["track_id"]) == [d["track_id"][i]] and row["source"][0].endswith(f"{name}.h5")
        assert row["steps"] == pytest.approx(d["steps"][d["step_track"] == i], abs=1e-6)
        assert row["step_seconds"] == pytest.approx(d["step_seconds"][d["step_track"] == i])
    s = embed_each(dbn_dir, [songs / "a.h5"], tmp_path / "pq", fmt="parquet")
    assert pq.read_table(tmp_path / "pq" / "a.parquet").num_rows == 1 and s["files"][0].endswith("a.parquet")


def test_clashing_names_and_a_store_are_refused_before_any_work(dbn_dir, songs, demo_corpus, tmp_path):
    shutil.copy(songs / "a.h5", songs / "sub" / "a.h5")
    with pytest.raises(ParameterError, match=r"a\.h5 and .*sub/a\.h5 would both write a\.npz"):
        output_names([songs], tmp_path / "out", "npz")
    with pytest.raises(ParameterError, match="--format 'csv'"):
        output_names([songs / "c.h5"], tmp_path / "out", "csv")
    with pytest.raises(ParameterError, match="feature store"):
        output_names([demo_corpus["store"]], tmp_path / "out", "npz")
    res = runner.invoke(app, ["embed", str(dbn_dir), str(songs), "--out-dir", str(tmp_path / "out")])
    assert res.exit_code == 1 and "would both write a.npz" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_cli_embed_out_dir_and_its_option_errors(dbn_dir, songs, tmp_path):
    res = runner.invoke(app, ["embed", str(dbn_dir), str(songs), "--out-dir", str(tmp_path / "o"), "--format",
                              "parquet"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.parquet", "b.parquet", "c.parquet"]
    assert "(3 files)" in res.output and "1 inputs skipped" in res.output
    for args, says in (([], "one of the two"),
                       (["--out", str(tmp_path / "x.npz"), "--out-dir", str(tmp_path / "o")], "one of the two"),
                       (["--out", str(tmp_path / "x.npz"), "--format", "parquet"], "goes with --out-dir")):
        res = runner.invoke(app, ["embed", str(dbn_dir), str(songs), *args])
        assert res.exit_code == 1 and says in res.output and "Traceback" not in res.output
