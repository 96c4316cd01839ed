"""beatdbn embed: layer-4 features per step and pooled per track, streamed to Parquet or NPZ."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.inference import embed
from beatdbn.inference.embed import iter_tracks
from beatdbn.models.convmlp import ConvMLP, MLPConfig
from beatdbn.models.dbn import ConvDBN, DBNConfig, output_length
from beatdbn.tasks.build import load_task

runner = CliRunner()


@pytest.fixture(scope="module")
def dbn_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("dbn") / "dbn"
    ConvDBN(DBNConfig(n_maps_1a=16, n_maps_1b=16, n_maps_3=16, seed=0)).save(path)
    return path


def test_pooled_embeddings_beat_chance_with_logistic_regression(dbn_dir, demo_corpus, tmp_path):
    summary = embed(dbn_dir, [demo_corpus["store"]], tmp_path / "e.npz", batch_size=32)
    d = np.load(tmp_path / "e.npz", allow_pickle=False)
    n = len(d["track_id"])
    assert summary["tracks"] == n == 600 and summary["failed"] == 0 and summary["n_features"] == 16
    assert d["mean"].shape == d["max"].shape == (n, 16) and d["steps"].shape == (summary["steps"], 16)
    assert d["step_track"].shape == (summary["steps"],) and d["step_beats"].shape == (summary["steps"], 2)
    # pooling is over each track's own steps
    first = d["steps"][d["step_track"] == 0]
    assert d["mean"][0] == pytest.approx(first.mean(axis=0), abs=1e-6) and (d["max"][0] == first.max(axis=0)).all()
    assert len(first) == max(output_length(int(d["n_beats"][0])), 1)
    row = {t: i for i, t in enumerate(d["track_id"])}
    task = load_task(demo_corpus["tasks"], "key")
    X = np.hstack([d["mean"], d["max"]])

    def split(name):
        return X[[row[t] for t in task.track_ids(name)]], task.labels(name)

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(*split("train"))
    acc = clf.score(*split("test"))
    assert acc >= 3 / len(task.classes), acc  # chance is 1/12; measured 0.83 on this corpus


def test_parquet_from_files_matches_npz_and_skips_bad_files(dbn_dir, demo_corpus, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    files = sorted(demo_corpus["msd"].rglob("*.h5"))[:5]
    for f in files:
        shutil.copy(f, folder / f.name)
    (folder / "bad.h5").write_bytes(b"junk")
    s1 = embed(dbn_dir, [folder], tmp_path / "e.parquet", batch_size=2)
    s2 = embed(dbn_dir, [folder], tmp_path / "e.npz", batch_size=3)
    assert s1["tracks"] == s2["tracks"] == 5 and s1["failed"] == 1 and "bad.h5" in s1["errors"][0]
    t = pq.read_table(tmp_path / "e.parquet").to_pylist()
    d = np.load(tmp_path / "e.npz")
    assert [r["track_id"] for r in t] == list(d["track_id"])
    for i, r in enumerate(t):
        steps = np.array(r["steps"], dtype=np.float32)
        assert steps.shape == (r["n_steps"], 16) and len(r["step_beats"]) == r["n_steps"]
        assert r["step_beats"][0][0] == 0 and r["step_beats"][-1][1] <= r["n_beats"]
        assert np.array(r["mean"]) == pytest.approx(d["mean"][i], abs=1e-6)
        assert np.array(r["max"]) == pytest.approx(steps.max(axis=0), abs=1e-6)


def test_a_conv_mlp_run_embeds_its_hidden_layer(demo_corpus, tmp_path):
    model = ConvMLP(MLPConfig(n_classes=3, n_maps_1a=4, n_maps_1b=4, n_maps_3=5))
    model.save(tmp_path / "run" / "model")
    f = sorted(demo_corpus["msd"].rglob("*.h5"))[0]
    s = embed(tmp_path / "run", [f], tmp_path / "e.npz")
    assert s["n_features"] == 5 and s["tracks"] == 1
    with pytest.raises(DataError, match="no track could be embedded"):
        embed(tmp_path / "run", [tmp_path / "absent.h5"], tmp_path / "e2.npz")
    assert not (tmp_path / "e2.npz").exists()
    with pytest.raises(ParameterError, match=".parquet or .npz"):
        embed(tmp_path / "run", [f], tmp_path / "e.csv")
    with pytest.raises(DataError):
        embed(tmp_path, [f], tmp_path / "e3.npz")


def test_track_iteration_streams(demo_corpus):
    errors: list[str] = []
    it = iter_tracks([demo_corpus["store"]], errors)
    first = next(it)  # a generator: nothing is read ahead of what is asked
    assert first[2].shape[1] == 24 and not errors


def test_cli_embed(dbn_dir, demo_corpus, tmp_path):
    out = tmp_path / "x.parquet"
    folder = tmp_path / "in" / "sub"
    folder.mkdir(parents=True)
    for f in sorted(demo_corpus["msd"].rglob("*.h5"))[:20]:
        shutil.copy(f, folder / f.name)
    res = runner.invoke(app, ["embed", str(dbn_dir), str(tmp_path / "in"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "20 tracks" in res.output and pq.read_metadata(out).num_rows == 20
    assert "done embed: 20/20" in res.output  # off a terminal: one line when the stage finishes
    res = runner.invoke(app, ["embed", str(dbn_dir), str(demo_corpus["store"]), "--out", str(tmp_path / "s.npz")])
    assert res.exit_code == 0 and "600 tracks" in res.output
    res = runner.invoke(app, ["embed", str(tmp_path), str(folder), "--out", str(out)])
    assert res.exit_code == 1 and "Traceback" not in res.output
