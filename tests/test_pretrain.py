"""Streaming greedy pretraining: exclusion, short tracks, exact resume, the linear probe, the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.models.dbn import ConvDBN, DBNConfig
from beatdbn.store.extract import extract
from beatdbn.store.reader import FeatureStore
from beatdbn.synth.corpus import make_track
from beatdbn.synth.msd_writer import write_track
from beatdbn.data.splits import padded_batch
from beatdbn.train.pretrain import (CHECKPOINT, PretrainConfig, STATS_COLUMNS, batch_plan, iter_stats, pretrain,
                                    read_exclusion)

SMALL = DBNConfig(n_maps_1a=8, n_maps_1b=8, n_maps_3=6)


def _weights(out) -> dict[str, torch.Tensor]:
    return torch.load(out / "model.pt", weights_only=True)


def test_batch_plan_covers_every_track_once_in_similar_length_batches():
    rng = np.random.default_rng(0)
    shards = np.repeat(np.arange(5), 40)
    lengths = rng.integers(10, 900, len(shards))
    plan = batch_plan(shards, lengths, 8, np.random.default_rng(1))
    flat = np.concatenate(plan)
    assert sorted(flat.tolist()) == list(range(len(shards)))
    for b in plan:
        assert len(set(shards[b])) == 1  # one shard at a time: streaming
        assert len(b) <= 8
    # sorted by length inside a shard: padding far below a random batching's
    waste = sum(lengths[b].max() * len(b) - lengths[b].sum() for b in plan)
    rand = np.random.default_rng(2).permutation(len(shards))
    waste_random = sum(lengths[b].max() * len(b) - lengths[b].sum() for b in np.array_split(rand, len(plan)))
    assert waste < 0.3 * waste_random
    # deterministic in the seed, different across seeds
    again = batch_plan(shards, lengths, 8, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(plan, again))
    other = batch_plan(shards, lengths, 8, np.random.default_rng(3))
    assert not all(np.array_equal(a, b) for a, b in zip(plan, other))


def test_pretrain_excludes_held_out_tracks_and_writes_statistics(demo_corpus, tmp_path):
    excluded = read_exclusion(demo_corpus["tasks"])
    fs = FeatureStore.open(demo_corpus["store"])
    out = tmp_path / "dbn"
    summary = pretrain(fs, out, exclude=excluded, config=PretrainConfig(batch_size=64), dbn_config=SMALL)
    kept = [t for t in fs.track_ids if t not in excluded]
    assert summary["complete"] and summary["n_tracks"] == len(kept) < len(fs)
    assert summary["n_beats"] == int(sum(len(r.features) for b in fs.iter_batches(512, track_ids=kept) for r in b))
    rows = list(iter_stats(out))
    with (out / "pretrain.csv").open() as f:
        assert tuple(next(csv.reader(f))) == STATS_COLUMNS
    for stage in ("1a", "1b", "3"):
        mine = [r for r in rows if r["stage"] == stage]
        assert mine and mine[-1]["tracks"] == len(kept)  # every kept track seen once by every layer
        assert all(np.isfinite(r["reconstruction_error"]) for r in mine)
    dbn = ConvDBN.load(out)
    assert dbn.config == SMALL
    assert int(dbn.layer1a.n_updates) == int(dbn.layer3.n_updates) == len([r for r in rows if r["stage"] == "1a"])
    assert not (out / CHECKPOINT).exists()
    # a finished folder is not retrained; other settings are refused
    again = pretrain(fs, out, exclude=excluded, config=PretrainConfig(batch_size=64), dbn_config=SMALL)
    assert again == json.loads((out / "pretrain.json").read_text())
    with pytest.raises(DataError, match="other settings"):
        pretrain(fs, out, exclude=None, config=PretrainConfig(batch_size=64), dbn_config=SMALL)


def test_short_tracks_are_not_dropped(tmp_path):
    for i, n in enumerate((3, 7, 30, 60, 200)):
        write_track(tmp_path / "msd" / f"TRSHORT{i:011d}.h5", make_track(track_id=f"TRSHORT{i:011d}", n_beats=n, seed=i))
    extract([tmp_path / "msd"], tmp_path / "store", scheduler="sync")
    summary = pretrain(tmp_path / "store", tmp_path / "dbn", config=PretrainConfig(batch_size=2), dbn_config=SMALL)
    assert summary["n_tracks"] == 5
    rows = list(iter_stats(tmp_path / "dbn"))
    assert max(r["tracks"] for r in rows if r["stage"] == "1a") == 5
    assert max(r["tracks"] for r in rows if r["stage"] == "3") == 5
    for p in ConvDBN.load(tmp_path / "dbn").parameters():
        assert torch.isfinite(p).all()


def test_small_corpus_gets_more_passes_to_reach_min_beats(tmp_path):
    for i, n in enumerate((60, 200, 140)):
        write_track(tmp_path / "msd" / f"TRPASS{i:012d}.h5", make_track(track_id=f"TRPASS{i:012d}", n_beats=n, seed=i))
    extract([tmp_path / "msd"], tmp_path / "store", scheduler="sync")
    config = PretrainConfig(batch_size=1, min_beats=1000)  # 400 beats: 3 passes reach 1,000
    assert config.passes_for(400) == 3 and config.passes_for(10**6) == 1 and PretrainConfig().passes_for(10) == 1
    summary = pretrain(tmp_path / "store", tmp_path / "dbn", config=config, dbn_config=SMALL)
    assert summary["passes"] == 3 and summary["n_beats"] == 400
    rows = list(iter_stats(tmp_path / "dbn"))
    assert sorted({r["pass"] for r in rows if r["stage"] == "1a"}) == [0, 1, 2]
    assert int(ConvDBN.load(tmp_path / "dbn").layer1a.n_updates) == 9  # 3 tracks x 3 passes
    with pytest.raises(ParameterError, match="min_beats"):
        PretrainConfig(min_beats=-1)


class Killed(Exception):
    """Raised from the progress callback: the run stops as a kill would (since its last checkpoint)."""


def kill_after(n_batches: int):
    """A progress callback that kills the run at its ``n_batches``-th batch (before that batch's checkpoint)."""
    seen = []

    def progress(info: dict) -> None:
        seen.append(info)
        if len(seen) == n_batches:
            raise Killed

    return progress


def test_killed_run_resumes_to_the_same_weights(demo_corpus, tmp_path):
    excluded = read_exclusion(demo_corpus["tasks"])
    config = PretrainConfig(batch_size=32, checkpoint_every=3, seed=7)
    whole = tmp_path / "whole"
    pretrain(demo_corpus["store"], whole, exclude=excluded, config=config, dbn_config=SMALL)
    cut = tmp_path / "cut"
    n_batches = len(list(iter_stats(whole))) // 3  # one row per stage and batch; 1a+1b then 3
    # killed twice: mid-way through layer 1 between checkpoints, then inside layer 3
    with pytest.raises(Killed):
        pretrain(demo_corpus["store"], cut, exclude=excluded, config=config, dbn_config=SMALL, progress=kill_after(5))
    assert (cut / CHECKPOINT).exists() and not (cut / "model.pt").exists()
    with pytest.raises(Killed):
        pretrain(demo_corpus["store"], cut, exclude=excluded, config=config, dbn_config=SMALL,
                 progress=kill_after(n_batches))
    assert (cut / CHECKPOINT).exists()
    done = pretrain(demo_corpus["store"], cut, exclude=excluded, config=config, dbn_config=SMALL)
    assert done["complete"]
    a, b = _weights(whole), _weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(iter_stats(whole)) == strip(iter_stats(cut))
    # another seed gives other weights: the comparison above can fail
    other = tmp_path / "other"
    pretrain(demo_corpus["store"], other, exclude=excluded, config=PretrainConfig(batch_size=32, seed=8),
             dbn_config=SMALL)
    assert not torch.equal(_weights(other)["layer1a.weight"], a["layer1a.weight"])


def test_checkpoint_from_other_settings_is_refused(demo_corpus, tmp_path):
    out = tmp_path / "dbn"
    with pytest.raises(Killed):
        pretrain(demo_corpus["store"], out, config=PretrainConfig(batch_size=64, checkpoint_every=1), dbn_config=SMALL,
                 progress=kill_after(3))
    with pytest.raises(DataError, match="another pretrain config"):
        pretrain(demo_corpus["store"], out, config=PretrainConfig(batch_size=32), dbn_config=SMALL)
    with pytest.raises(DataError, match="another tracks"):
        pretrain(demo_corpus["store"], out, exclude=read_exclusion(demo_corpus["tasks"]),
                 config=PretrainConfig(batch_size=64), dbn_config=SMALL)
    # the checkpoint interval may change on resume
    assert pretrain(demo_corpus["store"], out, config=PretrainConfig(batch_size=64, checkpoint_every=5),
                    dbn_config=SMALL)["complete"]


def _step_features(dbn: ConvDBN, features: list, labels: np.ndarray, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled layer-1 probabilities, one 2*maps vector per pooled step (about a bar) and its track's label."""
    x, lengths = padded_batch(features)
    v, vl = dbn.layer_input("3", x, lengths=lengths)
    valid = torch.arange(v.shape[2])[None, :] < vl[:, None]
    keep = valid & (torch.arange(v.shape[2]) % every == 0)[None, :]
    return v.transpose(1, 2)[keep].numpy(), np.repeat(labels, keep.sum(1).numpy())


@pytest.mark.slow
def test_pretrained_layer1_separates_genres_better_than_random_weights(demo_corpus, tmp_path):
    """Linear probe on held-out tracks: each bar's pooled layer-1 probabilities -> the track's genre.

    The corpus's tracks with a genre are split in half at random; pretraining
    never sees the probe's test half. The control has weights drawn from a
    Gaussian with each layer's pretrained weight mean and standard deviation
    (biases kept), as the paper's random-init control.

    The corpus is ~300 pretraining tracks, some 10^3 times fewer CD-1 updates
    than the paper's pretraining set, so the Gaussian layer's learning rate is
    raised from 1e-4 to 1e-3 (at 1e-4 its weights barely leave their
    initialization in two passes; 3e-3 diverges). Measured here: 0.113 vs
    0.077 per-bar accuracy (chance 0.05); the margin asked, 0.02, is about one
    standard error at ~300 held-out tracks, and the run is seeded.
    """
    from sklearn.linear_model import LogisticRegression

    from beatdbn.labels import GENRES, genre_from_mbtags

    fs = FeatureStore.open(demo_corpus["store"])
    meta = fs.metadata.select(["track_id", "mbtags", "mbtags_count"]).to_pylist()
    genre = {m["track_id"]: genre_from_mbtags(m["mbtags"], m["mbtags_count"]) for m in meta}
    ids = sorted(t for t, g in genre.items() if g is not None)
    test_ids = set(np.random.default_rng(0).choice(ids, len(ids) // 2, replace=False).tolist())
    config = DBNConfig(n_maps_1a=32, n_maps_1b=32, n_maps_3=4, learning_rate_1b=1e-3)
    out = tmp_path / "dbn"
    pretrain(fs, out, exclude=test_ids, config=PretrainConfig(batch_size=16, passes=2), dbn_config=config)
    dbn = ConvDBN.load(out)
    control = ConvDBN.load(out)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for stage in ("1a", "1b"):
            w = dbn.layer(stage).weight
            control.layer(stage).weight.copy_(torch.randn(w.shape, generator=g) * w.std() + w.mean())
    split = {name: [t for t in ids if (t in test_ids) == (name == "test")] for name in ("train", "test")}
    data = {name: ([fs[t].features for t in split[name]], np.array([GENRES.index(genre[t]) for t in split[name]]))
            for name in split}
    scores = {}
    for name, model in (("pretrained", dbn), ("random", control)):
        xtr, ytr = _step_features(model, *data["train"], every=4)
        xte, yte = _step_features(model, *data["test"], every=4)
        mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
        clf = LogisticRegression(max_iter=200).fit((xtr - mu) / sd, ytr)
        scores[name] = clf.score((xte - mu) / sd, yte)
    print(scores)
    assert scores["pretrained"] > scores["random"] + 0.02, scores
    assert scores["pretrained"] > 2 / len(GENRES)  # twice chance


def test_cli_pretrain(demo_corpus, tmp_path):
    out = tmp_path / "dbn"
    result = CliRunner().invoke(app, ["pretrain", str(demo_corpus["store"]), "--out", str(out), "--exclude",
                                      str(demo_corpus["tasks"]), "--batch-size", "64", "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "pretrained DBN on" in result.output and (out / "model.pt").exists()
    n_kept = len(FeatureStore.open(demo_corpus["store"])) - len(read_exclusion(demo_corpus["tasks"]))
    assert json.loads((out / "pretrain.json").read_text())["n_tracks"] == n_kept
    bad = CliRunner().invoke(app, ["pretrain", str(demo_corpus["store"]), "--out", str(out), "--exclude",
                                   str(tmp_path / "nowhere")])
    assert bad.exit_code == 1 and "exclude.txt" in bad.output
