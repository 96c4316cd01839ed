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
    # each step's time in seconds: the start of its first and last beat, never backwards
    secs = d["step_seconds"]
    assert secs.shape == (summary["steps"], 2) and (secs[:, 1] >= secs[:, 0]).all() and (secs >= 0).all()
    from beatdbn.store.reader import FeatureStore

    rec = FeatureStore.open(demo_corpus["store"])[str(d["track_id"][0])]
    b = d["step_beats"][d["step_track"] == 0]
    assert secs[d["step_track"] == 0][0, 0] == pytest.approx(rec.beats[b[0, 0]])
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
        assert np.array(r["step_seconds"]) == pytest.approx(d["step_seconds"][d["step_track"] == i], abs=1e-4)
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


# -- issue 24: items 7, 8 and 13 ------------------------------------------------------------------------------------

def _small_store(tmp_path, n=6):
    from beatdbn.store.extract import extract
    from beatdbn.synth.corpus import make_track
    from beatdbn.synth.msd_writer import write_track

    (tmp_path / "msd").mkdir()
    for i in range(n):
        t = make_track(track_id=f"TREMBED{i:011d}", n_beats=30 + i, seed=i)
        write_track(tmp_path / "msd" / f"{t.track_id}.h5", t)
    extract([tmp_path / "msd"], tmp_path / "store", scheduler="sync", shard_size=3)
    return tmp_path / "store"


def _mark_audio(store, track_ids):
    """Make ``track_ids`` audio tracks in their commit files (a store that mixes representations)."""
    import pyarrow as pa

    from beatdbn.store.reader import write_index
    from beatdbn.store.shard import read_shard_table, write_commit

    for p in sorted((store / "shards").glob("*.parquet")):
        table, info = read_shard_table(p)
        rows = table.to_pylist()
        for r in rows:
            if r["track_id"] in track_ids:
                r["representation"] = "audio"
        write_commit(p, pa.Table.from_pylist(rows, schema=table.schema), info)
    write_index(store, from_shards=True)


def test_a_damaged_shard_stops_embed_with_one_line_and_no_nan_file(dbn_dir, tmp_path):
    import h5py

    store = _small_store(tmp_path)
    with h5py.File(store / "shards" / "shard-000001.h5", "r+") as h5:
        h5["features"][0, :] = np.nan
    with pytest.raises(DataError, match=r"shard-000001.h5: damaged shard .*check .* --repair"):
        embed(dbn_dir, [store], tmp_path / "e.npz")
    res = runner.invoke(app, ["embed", str(dbn_dir), str(store), "--out", str(tmp_path / "e.parquet")])
    assert res.exit_code == 1 and "damaged shard" in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "e.npz").exists() and not (tmp_path / "e.parquet").exists()


def test_a_non_finite_embedding_is_refused_not_written(tmp_path, demo_corpus):
    import torch

    from beatdbn.inference.encoders import load_encoder

    path = tmp_path / "dbn"
    ConvDBN(DBNConfig(n_maps_1a=8, n_maps_1b=8, n_maps_3=8, seed=0)).save(path)
    encoder = load_encoder(path)
    with torch.no_grad():
        next(encoder.model.parameters()).fill_(float("nan"))  # a broken model
    files = sorted(demo_corpus["msd"].rglob("*.h5"))[:3]
    with pytest.raises(DataError, match="no track could be embedded: .*non-finite layer-4 features"):
        embed(encoder, files, tmp_path / "e.npz")
    assert not (tmp_path / "e.npz").exists()


def test_a_store_given_with_files_is_an_error_not_dropped(dbn_dir, demo_corpus, tmp_path):
    files = sorted(demo_corpus["msd"].rglob("*.h5"))[:2]
    with pytest.raises(ParameterError, match=r"is a feature store: embed it alone"):
        embed(dbn_dir, [demo_corpus["store"], *files], tmp_path / "e.npz")
    res = runner.invoke(app, ["embed", str(dbn_dir), str(demo_corpus["store"]), str(files[0]),
                              "--out", str(tmp_path / "e.npz")])
    assert res.exit_code == 1 and "embed it alone" in res.output and "Traceback" not in res.output
    parent = tmp_path / "parent"
    parent.mkdir()
    shutil.copytree(demo_corpus["store"], parent / "store")
    with pytest.raises(ParameterError, match=r"parent/store is a feature store"):
        embed(dbn_dir, [parent], tmp_path / "e.npz")


def test_a_store_mixing_representations_is_refused(dbn_dir, tmp_path):
    store = _small_store(tmp_path)
    _mark_audio(store, {"TREMBED00000000001"})
    with pytest.raises(DataError, match=r"mix feature representations \(1 audio .*, 5 Echo Nest"):
        embed(dbn_dir, [store], tmp_path / "e.npz")
    assert not (tmp_path / "e.npz").exists()


def test_a_store_of_another_representation_than_the_model_is_refused(tmp_path):
    import json

    from beatdbn.store.reader import FeatureStore, check_representations

    store = _small_store(tmp_path)
    fs = FeatureStore.open(store)
    assert fs.representations() == {"echonest": 6} and check_representations(fs.representations()) == "echonest"
    run = tmp_path / "run"
    ConvMLP(MLPConfig(n_classes=2, classes=("a", "b"), task="key", seed=0, n_maps_1a=8, n_maps_1b=8,
                      n_maps_3=8)).save(run / "model")
    (run / "config.json").write_text(json.dumps({"task": "key", "model": "convmlp_random", "representation": "audio"}))
    with pytest.raises(DataError, match=r"hold 6 Echo Nest features .* the model was trained on audio"):
        embed(run, [store], tmp_path / "e.npz")


def test_files_of_two_representations_in_one_run_are_refused(dbn_dir, demo_corpus, tmp_path):
    import soundfile as sf

    folder = tmp_path / "in"
    folder.mkdir()
    for f in sorted(demo_corpus["msd"].rglob("*.h5"))[:2]:
        shutil.copy(f, folder / f.name)
    t = np.arange(2 * 22050) / 22050
    sf.write(folder / "zz_tone.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 22050)
    summary = embed(dbn_dir, [folder], tmp_path / "e.npz")
    assert summary["tracks"] == 2 and summary["refused"] == 1
    assert "zz_tone.wav: audio features, but earlier inputs of this run are echonest" in summary["errors"][0]
    res = runner.invoke(app, ["embed", str(dbn_dir), str(folder), "--out", str(tmp_path / "c.npz")])
    assert res.exit_code == 1 and "1 tracks refused" in res.output, res.output


def test_evaluate_refuses_a_split_that_mixes_representations(demo_corpus, tmp_path):
    import json

    from beatdbn.evaluate.split import evaluate_split

    store = tmp_path / "store"
    shutil.copytree(demo_corpus["store"], store)
    task = load_task(demo_corpus["tasks"], "key")
    _mark_audio(store, {task.track_ids("test")[0]})
    run = tmp_path / "run"
    ConvMLP(MLPConfig(n_classes=len(task.classes), classes=tuple(task.classes), task="key", seed=0, n_maps_1a=8,
                      n_maps_1b=8, n_maps_3=8)).save(run / "model")
    (run / "config.json").write_text(json.dumps({"task": "key", "model": "convmlp_random",
                                                 "representation": "echonest"}))
    with pytest.raises(DataError, match=r"test tracks of task key .* mix feature representations \(1 audio"):
        evaluate_split(run, store, demo_corpus["tasks"], "test")
    assert evaluate_split(run, store, demo_corpus["tasks"], "valid")["n_tracks"] > 0  # one kind: evaluated


def test_cli_embed_with_the_shipped_key_model_by_name(dbn_dir, tmp_path):
    """`beatdbn embed --task key FILES` embeds with the shipped key model, with each step's time in seconds."""
    import soundfile as sf

    from beatdbn.synth.audio_keys import render_piece

    p = render_piece(tonic=2, mode=1, seed=31, n_beats=64, tempo=120)
    sf.write(tmp_path / "song.wav", p.audio, p.sr)
    out = tmp_path / "k.parquet"
    res = runner.invoke(app, ["embed", "--task", "key", str(tmp_path / "song.wav"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    (row,) = pq.read_table(out).to_pylist()
    assert row["n_steps"] >= 1 and len(row["steps"][0]) == 100
    secs = np.array(row["step_seconds"])
    assert secs.shape == (row["n_steps"], 2) and secs[0, 0] < 1.0 < secs[-1, 1] <= p.info["duration"]
    res = runner.invoke(app, ["embed", str(dbn_dir), "--out", str(tmp_path / "x.npz")])
    assert res.exit_code == 1 and "no inputs after" in res.output
