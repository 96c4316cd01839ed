"""Pretraining on several processes (train/ranks, train/launch, `pretrain --workers N`, torchrun --distributed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
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
from beatdbn.train.launch import run_local
from beatdbn.train.pretrain import CHECKPOINT, PretrainConfig, iter_stats, pretrain
from beatdbn.train.ranks import Ranks

SMALL = DBNConfig(n_maps_1a=8, n_maps_1b=8, n_maps_3=6)
runner = CliRunner()


@pytest.fixture(scope="module")
def store(ranks_store) -> Path:
    """24 short tracks of varied lengths in 3 shards (conftest's ranks_store)."""
    return ranks_store


def _weights(out) -> dict[str, torch.Tensor]:
    return torch.load(Path(out) / "model.pt", weights_only=True)


def _same(a, b) -> bool:
    a, b = _weights(a), _weights(b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _run(store, out, workers, *, seed=0, sync_every=2, progress=None, checkpoint_every=2000):
    config = PretrainConfig(seed=seed, checkpoint_every=checkpoint_every)
    return run_local(pretrain, dict(store=str(store), out=str(out), config=config, dbn_config=SMALL),
                     lead_kwargs={"progress": progress}, workers=workers, sync_every=sync_every)


def test_the_deal_gives_every_batch_of_a_round_to_one_rank_longest_first():
    costs = [5.0, 50.0, 7.0, 40.0, 9.0, 1.0]
    shares = [Ranks(r, 2, sync_every=3).mine(10, costs) for r in range(2)]
    assert sorted(shares[0] + shares[1]) == list(range(10, 16))
    assert not set(shares[0]) & set(shares[1])
    assert shares == [[10, 11, 15], [12, 13, 14]]  # 50 -> 0, 40 -> 1, 9 -> 1, 7 -> 1, 5 -> 0, 1 -> 0
    work = [sum(costs[b - 10] for b in s) for s in shares]
    assert max(work) - min(work) <= max(costs)  # longest first keeps the ranks within one batch of each other
    assert Ranks.solo().mine(3, [1.0, 2.0]) == [3, 4] and Ranks.solo().round_size == 1
    with pytest.raises(ParameterError):
        Ranks(2, 2)


@pytest.fixture(scope="module")
def two(store, tmp_path_factory) -> Path:
    """One uninterrupted run of 2 workers (checkpoints every 4 batches), shared by the tests below."""
    out = tmp_path_factory.mktemp("two") / "dbn"
    _run(store, out, 2, checkpoint_every=4)
    return out


def test_capped_sum_is_the_sum_for_two_ranks_and_at_most_twice_the_mean_beyond():
    assert [Ranks(0, w).gain for w in (1, 2, 4, 16)] == [1.0, 2.0, 2.0, 2.0]  # the default rule
    assert Ranks(0, 4, combine="sum").gain == 4.0 and Ranks(0, 4, combine="mean").gain == 1.0
    with pytest.raises(ParameterError, match="combine"):
        Ranks(0, 2, combine="median")


def test_two_workers_train_every_track_once_per_pass(store, two, tmp_path):
    one = _run(store, tmp_path / "one", 1)
    assert not _same(tmp_path / "one", two)
    two_dir, two = two, json.loads((two / "pretrain.json").read_text())
    assert two["pretrain_config"]["workers"] == 2 and "workers" not in one["pretrain_config"]
    dbn = ConvDBN.load(two_dir)
    # every track makes one CD-1 update (counted on every rank's copy): as many as the serial run
    assert int(dbn.layer1a.n_updates) == int(ConvDBN.load(tmp_path / "one").layer1a.n_updates) == 24
    assert int(dbn.layer3.n_updates) == 24
    rows = list(iter_stats(two_dir))
    assert [r["batch"] for r in rows if r["stage"] == "1a"] == list(range(24))  # rank 0 writes all, in plan order
    assert rows[-1]["tracks"] == 24 and all(np.isfinite(r["reconstruction_error"]) for r in rows)
    # the ranks' rounds learn: the binary layers reconstruct better at the end of the pass than at its
    # start (the Gaussian layer 1b, at the paper's rate 1e-4, barely moves in 24 tracks, in one process too)
    errors = lambda rows, s: [r["reconstruction_error"] for r in rows if r["stage"] == s]  # noqa: E731
    for s in ("1a", "3"):
        assert np.mean(errors(rows, s)[-6:]) < 0.9 * np.mean(errors(rows, s)[:6]), s


def test_the_exchange_sums_every_ranks_change_and_ranks_that_disagree_stop(store, tmp_path):
    """Two ranks of gloo on localhost (one pair of processes for both checks):

    * after a round, parameters = start + the sum of both ranks' changes (``combine='sum'``) or their mean
      (``'mean'``), momentum = the mean, update counts the sum, and each batch's statistics reach every rank;
    * ranks whose settings differ (here: the seed) stop, naming the difference, before writing anything.
    """
    from torch import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    port = _port()
    procs = [ctx.Process(target=_rank_checks, args=(r, port, str(store), str(tmp_path / "dbn"), q)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    got = [q.get() for _ in range(2)]
    assert all(p.exitcode == 0 for p in procs), got
    for rank, (weight, velocity, updates, stats, msg, averaged) in got:
        assert torch.allclose(torch.tensor(averaged), torch.full((2, 3), 1.3 + 0.15))  # + mean(0.1, 0.2)
        assert torch.allclose(torch.tensor(weight), torch.full((2, 3), 1.0 + 0.1 + 0.2))
        assert torch.allclose(torch.tensor(velocity), torch.full((2, 3), 1.5))
        assert updates == 3  # 1 + 2 updates
        assert stats == {0: 0.25, 1: 0.5}
        assert "the ranks disagree: rank 1 has pretrain config" in msg and "'seed': 1" in msg, msg
    assert not (tmp_path / "dbn" / "model.pt").exists()


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_checks(rank: int, port: int, store: str, out: str, q) -> None:
    import torch.distributed as dist
    from torch import nn

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    layer = nn.Module()
    layer.weight = nn.Parameter(torch.ones(2, 3), requires_grad=False)
    layer.register_buffer("weight_velocity", torch.zeros(2, 3))
    layer.register_buffer("n_updates", torch.zeros((), dtype=torch.int64))
    ranks = Ranks(rank, 2, sync_every=1, combine="sum")
    start = ranks.begin([layer])
    layer.weight.add_(0.1 * (rank + 1))  # rank 0 moves 0.1, rank 1 moves 0.2
    layer.weight_velocity.fill_(1.0 + rank)  # mean: 1.5
    layer.n_updates += rank + 1
    stat = {"reconstruction_error": 0.25 * (rank + 1), "mean_hidden": 0.0, "free_energy_data": 0.0,
            "free_energy_recon": 0.0, "n_positions": 7}
    out_stats = ranks.exchange([layer], start, {rank: {"1a": stat}}, ("1a",), 0, 2)
    mean = Ranks(rank, 2, sync_every=1, combine="mean")  # parameter averaging
    start = mean.begin([layer])
    layer.weight.add_(0.1 * (rank + 1))
    mean.exchange([layer], start, {rank: {"1a": stat}}, ("1a",), 0, 2)
    averaged = layer.weight.tolist()
    layer.weight.sub_(0.15)  # back to the summed value for the checks below
    try:
        pretrain(store, out, config=PretrainConfig(seed=rank), dbn_config=SMALL, ranks=Ranks(rank, 2, sync_every=2))
        msg = "no error"
    except DataError as exc:
        msg = str(exc)
    # plain values: the queue would pass tensors as file descriptors of this process, which ends now
    q.put((rank, (layer.weight.tolist(), layer.weight_velocity.tolist(), int(layer.n_updates),
                  {b: out_stats[b]["1a"]["reconstruction_error"] for b in out_stats}, msg, averaged)))
    dist.destroy_process_group()


class Killed(Exception):
    pass


def test_two_workers_resume_after_a_kill_to_the_same_weights(store, two, tmp_path):
    """Also the determinism check: new processes, killed and resumed, end with the same weights."""
    seen = []

    def kill(info):
        seen.append(info)
        if len(seen) == 30:  # inside layer 3, between checkpoints
            raise Killed

    with pytest.raises(Killed):
        _run(store, tmp_path / "cut", 2, checkpoint_every=4, progress=kill)
    assert (tmp_path / "cut" / CHECKPOINT).exists() and not (tmp_path / "cut" / "model.pt").exists()
    with pytest.raises(DataError, match="another pretrain config"):  # the workers are part of the settings
        _run(store, tmp_path / "cut", 1, checkpoint_every=4)
    _run(store, tmp_path / "cut", 2, checkpoint_every=4)
    assert _same(two, tmp_path / "cut")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(iter_stats(two)) == strip(iter_stats(tmp_path / "cut"))


def test_a_worker_that_fails_stops_the_run_with_its_message(tmp_path):
    for i in range(8):
        tid = f"TRFAIL{i:012d}"
        write_track(tmp_path / "msd" / f"{tid}.h5", make_track(track_id=tid, n_beats=80 + i, seed=i))
    extract([tmp_path / "msd"], tmp_path / "s", scheduler="sync", shard_size=8)
    with h5py.File(tmp_path / "s" / "shards" / "shard-000000.h5", "r+") as h5:
        feats = h5["features"][()]
        feats[:, 14] = np.nan  # every track is damaged: whichever rank trains first names its track
        h5["features"][...] = feats
    with pytest.raises(DataError, match="damaged shard"):  # a NaN in a shard: the rank reading it fails
        _run(tmp_path / "s", tmp_path / "dbn", 2)


@pytest.fixture(scope="module")
def cli_two(store, tmp_path_factory) -> Path:
    """`beatdbn pretrain --workers 2 --sync-every 2` (the paper's layer sizes)."""
    out = tmp_path_factory.mktemp("cli") / "dbn"
    before = torch.get_num_threads()  # rank 0 (this process) takes its share of the CPUs
    try:
        r = runner.invoke(app, ["pretrain", str(store), "--out", str(out), "--workers", "2", "--sync-every", "2",
                                "--no-plots"])
    finally:
        torch.set_num_threads(before)
    assert r.exit_code == 0, r.output
    return out


def test_cli_workers_and_bad_values(store, cli_two, tmp_path):
    assert ConvDBN.load(cli_two).layer1a.n_updates == 24
    for args, text in ((["--workers", "0"], "--workers 0"), (["--workers", "-1"], "--workers -1"),
                       (["--sync-every", "0"], "--sync-every 0"), (["--distributed"], "RANK and WORLD_SIZE"),
                       (["--distributed", "--workers", "2"], "--nproc-per-node"),
                       (["--workers", "2", "--combine", "median"], "combine='median'")):
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
        r = runner.invoke(app, ["pretrain", str(store), "--out", str(tmp_path / "bad"), *args], env=env)
        lines = r.output.strip().splitlines()
        assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], r.output
        assert not (tmp_path / "bad").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun is not installed beside this Python")
def test_torchrun_two_ranks_on_localhost_equal_two_local_workers(store, cli_two, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "beatdbn", "pretrain", str(store),
           "--out", str(tmp_path / "tr"), "--distributed", "--sync-every", "2", "--no-plots"]
    # the CLI builds DBNConfig(seed=seed) at the paper's sizes: compare with local workers at those sizes
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _same(tmp_path / "tr", cli_two)
    assert not (tmp_path / "tr" / CHECKPOINT).exists()
    assert FeatureStore.open(store).metadata.num_rows == 24
