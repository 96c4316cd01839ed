"""utils/cluster and runs as on a cluster, on 127.0.0.1.

* Dask as several hosts run it: a ``dask scheduler`` and ``dask worker`` programs of their own (not a
  LocalCluster), and ``beatdbn extract`` / ``beatdbn reproduce --scheduler tcp://...`` as separate processes:
  the store and Table 1 equal the serial (``--scheduler sync``) ones; a worker SIGKILLed mid-extract or
  mid-sweep (a lost host: its nanny and worker together), a new worker started, and the running command (or
  its rerun) still ends with the serial store and Table 1.
* ``torchrun --nnodes 2`` (two launchers, c10d rendezvous): one launcher SIGKILLed mid-pass, the rerun
  resumes from the last checkpoint to bitwise the DBN of ``pretrain --workers 2``.
* A LocalCluster starts and closes without a line on stderr (Dask's INFO lines, "Port 8787 is already in
  use"), unless ``BEATDBN_DASK_LOGS`` asks for them.

The slow cases are marked ``slow`` (``make test`` runs them, ``make test-fast`` does not). Every program
started here runs in a process group of its own, killed whole when the test ends, however it ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from beatdbn.store.reader import FeatureStore

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
BEATDBN = [sys.executable, "-m", "beatdbn"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SHARD_DELAY = "0.05"  # seconds each worker's shard write sleeps (tests/_slow_worker.py): room to kill mid-extract
SHARD_SIZE = 4
TRACKS = 160
#: reproduce on the tiny corpus: the key task alone, 4 epochs (a rate job checkpoints after each one)
REPRODUCE = ["--quick", "--task", "key", "--per-key", "6", "--epochs", "4"]


def _free_port() -> int:
    """A free port of 127.0.0.1 below the ephemeral range: bind(0) would give one from the range that outgoing
    connections take their ports from, and one taken between this check and the launcher's bind leaves the
    c10d rendezvous waiting for a store that never started."""
    import random

    low = 20000
    try:
        low = min(low, int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]) - 2000)
    except (OSError, ValueError, IndexError):
        pass
    for port in random.sample(range(max(low - 8000, 1024), low), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal ``proc``, its process group (it was started in a session of its own) and every process below it
    (torchrun starts its ranks in sessions of their own), and reap it."""
    import psutil  # a dependency of distributed

    try:
        below = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        below = []
    for kill in (lambda: os.killpg(proc.pid, sig), *(lambda p=p: p.send_signal(sig) for p in below)):
        try:
            kill()
        except (ProcessLookupError, psutil.Error):
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    psutil.wait_procs(below, timeout=10)


class Programs:
    """Programs started by a test, each in a session (process group) of its own, its output in a log file;
    :meth:`close` kills every group still running."""

    def __init__(self, root: Path):
        self.root = root
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list, name: str, **env: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")
        try:
            proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                                    env={**ENV, **env}, start_new_session=True)
        finally:
            log.close()  # the child holds its own copy
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                _stop(proc, signal.SIGTERM)
        for proc in self.procs:  # a group whose leader exited may still hold children
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class DaskCluster(Programs):
    """``dask scheduler`` and ``dask worker`` programs on 127.0.0.1 (free ports, no dashboard, one thread per
    worker, shard writes slowed by :mod:`_slow_worker`)."""

    def __init__(self, root: Path):
        super().__init__(root)
        file = root / "scheduler.json"
        try:
            self.scheduler = self.start([BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                                         "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                                         "--scheduler-file", file], "scheduler")
            deadline = time.monotonic() + 60
            while True:
                try:
                    self.address = json.loads(file.read_text())["address"]
                    break
                except (OSError, ValueError, KeyError):
                    assert self.scheduler.poll() is None, self.log("scheduler")
                    assert time.monotonic() < deadline, "the scheduler did not start: " + self.log("scheduler")
                    time.sleep(0.05)
            self.workers: list[subprocess.Popen] = []
            self.started = 0  # worker names are never reused: the scheduler refuses a name it holds
        except BaseException:
            self.close()
            raise

    def add_worker(self) -> subprocess.Popen:
        name = f"worker-{self.started}"
        self.started += 1
        proc = self.start([BIN / "dask", "worker", self.address, "--nthreads", "1", "--nworkers", "1",
                           "--no-dashboard", "--name", name, "--local-directory", self.root / "scratch",
                           "--preload", HERE / "_slow_worker.py"], name, BEATDBN_TEST_SHARD_DELAY=SHARD_DELAY)
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(n, timeout=90)

    def kill(self, worker: subprocess.Popen) -> None:
        """SIGKILL a worker program whole (its nanny and its worker process: a lost host)."""
        _stop(worker)
        self.workers.remove(worker)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """160 synthetic MSD tracks of 6 artists and their serial store (shards of 4); the serial ``reproduce``
    (``--scheduler sync``) starts here, in the background, and :func:`_serial` waits for it (the Dask runs
    start meanwhile: on 2 cores this one uses the core they leave idle)."""
    from beatdbn.store.extract import extract
    from beatdbn.synth.corpus import generate_corpus

    root = tmp_path_factory.mktemp("cluster")
    generate_corpus(root / "msd", TRACKS, seed=0, n_artists=6)
    extract([root / "msd"], root / "store", scheduler="sync", shard_size=SHARD_SIZE)
    programs = Programs(root)
    try:
        serial = programs.start([*BEATDBN, "reproduce", root / "store", "--out", root / "serial", *REPRODUCE,
                                 "--scheduler", "sync"], "serial")
        yield {"msd": root / "msd", "store": root / "store", "serial": root / "serial", "proc": serial,
               "programs": programs}
    finally:
        programs.close()


def _serial(corpus: dict) -> Path:
    """The serial run's folder, once it has finished."""
    assert corpus["proc"].wait(timeout=300) == 0, corpus["programs"].log("serial")
    return corpus["serial"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two workers, shared by the Dask tests (a test that kills one starts another)."""
    root = tmp_path_factory.mktemp("dask")
    programs = DaskCluster(root)
    try:
        programs.add_worker()
        programs.add_worker()
        programs.wait_for_workers(2)
        yield programs
    finally:
        programs.close()


#: Start a LocalCluster the way beatdbn does (port 8787 held by someone else: Dask's "already in use" case),
#: run one task, close it. ``-c``: the spawned worker does not re-import a main module.
LOCAL_CLUSTER = """
import socket
from beatdbn.utils.cluster import dask_client
busy = socket.socket()
try:
    busy.bind(("127.0.0.1", 8787))
    busy.listen()
except OSError:
    pass  # held already: the same case
with dask_client("local", 1) as client:
    assert client.submit(sum, [1, 2]).result() == 3
print("ok")
"""


def test_a_local_cluster_prints_nothing_unless_verbose_is_asked():
    env = {k: v for k, v in ENV.items() if k != "BEATDBN_VERBOSE"}
    quiet = subprocess.run([sys.executable, "-c", LOCAL_CLUSTER], env=env, capture_output=True, text=True,
                           timeout=120)
    assert quiet.returncode == 0 and quiet.stdout == "ok\n" and quiet.stderr == "", quiet.stderr[-2000:]
    loud = subprocess.run([sys.executable, "-c", LOCAL_CLUSTER], env={**env, "BEATDBN_VERBOSE": "1"},
                          capture_output=True, text=True, timeout=120)
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert "distributed.scheduler - INFO" in loud.stderr and "distributed.nanny - INFO" in loud.stderr


def test_verbose_comes_from_the_environment_or_beatdbn_s_logger(monkeypatch):
    import logging

    from beatdbn.utils.cluster import VERBOSE_ENV, dask_verbose

    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    logger = logging.getLogger("beatdbn")
    before = logger.level
    try:
        logger.setLevel(logging.WARNING)
        assert not dask_verbose()
        for value, verbose in (("1", True), ("yes", True), ("0", False), ("false", False), ("", False)):
            monkeypatch.setenv(VERBOSE_ENV, value)
            assert dask_verbose() is verbose, value
        monkeypatch.delenv(VERBOSE_ENV)
        logger.setLevel(logging.INFO)  # as a --verbose flag would set it
        assert dask_verbose()
    finally:
        logger.setLevel(before)


def _store_content(path) -> dict:
    """Every track's features, beats and metadata (not where it is stored: shard and row)."""
    store = FeatureStore.open(path)
    out = {}
    for rec in store:
        meta = {k: v for k, v in rec.meta.items() if k not in ("shard", "row")}
        out[rec.track_id] = (rec.features.tobytes(), rec.beats.tobytes(), json.dumps(meta, sort_keys=True))
    return out


def _results(run: Path) -> dict:
    """Table 1 (table.json) and every experiment's runs, without wall times."""
    from beatdbn.metrics.results import ExperimentResult

    out = {"table": json.loads((run / "table.json").read_text())}
    for exp in sorted((run / "experiments" / "key").iterdir()):
        runs = ExperimentResult.load(exp).runs
        out[exp.name] = [{k: v for k, v in r.items() if k != "seconds"} for r in runs]
    return out


def _extract(cluster: DaskCluster, corpus: dict, store: Path) -> list:
    return [*BEATDBN, "extract", corpus["msd"], "--out", store, "--scheduler", cluster.address,
            "--shard-size", SHARD_SIZE]


def _finish(cluster: DaskCluster, proc: subprocess.Popen, cmd: list, name: str) -> None:
    """Wait for ``proc``; when it failed (a lost worker may fail a run), rerun ``cmd``, which must succeed."""
    try:
        proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} did not finish after a lost worker: {cluster.log(name)}")
    if proc.returncode != 0:
        rerun = cluster.start(cmd, f"{name}-rerun")
        assert rerun.wait(timeout=180) == 0, cluster.log(f"{name}-rerun")


@pytest.mark.slow
def test_extract_and_reproduce_on_dask_programs_equal_the_serial_run(corpus, cluster):
    store, run = cluster.root / "store", cluster.root / "run"
    extract = cluster.start(_extract(cluster, corpus, store), "extract")
    assert extract.wait(timeout=300) == 0, cluster.log("extract")
    assert _store_content(store) == _store_content(corpus["store"])
    reproduce = cluster.start([*BEATDBN, "reproduce", store, "--out", run, *REPRODUCE, "--scheduler", cluster.address],
                              "reproduce")
    assert reproduce.wait(timeout=300) == 0, cluster.log("reproduce")
    assert _results(run) == _results(_serial(corpus))
    for name in ("extract", "reproduce"):  # the client side of Dask says nothing either
        assert "Traceback" not in cluster.log(name) and "distributed." not in cluster.log(name), cluster.log(name)


@pytest.mark.slow
def test_a_worker_killed_mid_extract_costs_nothing(corpus, cluster):
    store = cluster.root / "store-cut"
    cmd = _extract(cluster, corpus, store)
    proc = cluster.start(cmd, "extract-cut")
    n_shards = -(-TRACKS // SHARD_SIZE)
    deadline = time.monotonic() + 120
    while len(list((store / "shards").glob("*.parquet"))) < 4 and proc.poll() is None:
        assert time.monotonic() < deadline, cluster.log("extract-cut")
        time.sleep(0.01)
    cluster.kill(cluster.workers[0])
    committed = len(list((store / "shards").glob("*.parquet")))
    assert proc.poll() is None and committed < n_shards, "the worker must be killed mid-extract"
    cluster.add_worker()
    _finish(cluster, proc, cmd, "extract-cut")
    assert _store_content(store) == _store_content(corpus["store"])


def _rate_job_worker(cluster: DaskCluster, experiments: Path) -> subprocess.Popen | None:
    """The worker program one of whose processes holds a rate job's lock, the job having written its first
    checkpoint: killed now, it loses a job mid-run."""
    import psutil  # a dependency of distributed

    for worker in cluster.workers:
        try:
            procs = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            try:
                held = [Path(f.path) for f in proc.open_files()]
            except psutil.Error:
                continue
            for lock in held:
                scratch = lock.with_suffix("")  # experiments/<task>/<model>/.job-lr-<v>(.lock)
                if (lock.suffix == ".lock" and scratch.name.startswith(".job-lr-")
                        and any(scratch.rglob("checkpoint.pt"))):
                    return worker
    return None


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_then_the_run_or_its_rerun_gives_the_serial_table(corpus, cluster):
    run = cluster.root / "run-cut"
    cmd = [*BEATDBN, "reproduce", corpus["store"], "--out", run, *REPRODUCE, "--scheduler", cluster.address]
    proc = cluster.start(cmd, "reproduce-cut")
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        killed = _rate_job_worker(cluster, run / "experiments")
        if killed is None:
            time.sleep(0.01)
    assert killed is not None, "no worker was killed mid-job: " + cluster.log("reproduce-cut")
    cluster.kill(killed)
    cluster.add_worker()
    _finish(cluster, proc, cmd, "reproduce-cut")
    assert _results(run) == _results(_serial(corpus))
    assert not list((run / "experiments").rglob(".job-*")) or proc.returncode != 0  # scratch moved into place


# --- torchrun --nnodes 2 (on conftest's ranks_store) -------------------------------------------------------------


def _launchers(programs: Programs, name: str, args: list, **env: str) -> list[subprocess.Popen]:
    """Two ``torchrun`` launchers of one rank each, meeting by c10d rendezvous on a free port of 127.0.0.1."""
    endpoint = f"127.0.0.1:{_free_port()}"
    return [programs.start([BIN / "torchrun", "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                            "--rdzv-endpoint", endpoint, "--rdzv-id", name, "--max-restarts", "0",
                            "--rdzv-conf", "join_timeout=60",
                            "--local-addr", "127.0.0.1", *args], f"{name}-{k}", **env) for k in range(2)]


def _weights(out: Path) -> dict:
    import torch

    return torch.load(out / "model.pt", weights_only=True)


#: pretrain on the 24 tracks: 2 ranks x 2 steps between exchanges
PRETRAIN = ["--sync-every", "2", "--no-plots"]
ROUNDS = -(-24 // 4)  # rounds of one pass


@pytest.fixture(scope="module")
def torchrun_cut(ranks_store, tmp_path_factory) -> dict:
    """``pretrain --workers 2`` (the reference); two torchrun launchers of the same run whose second is
    SIGKILLed (with its rank) once the first checkpoint is written: mid-pass; then the rerun (two launchers
    again). Returns the folders, the checkpoint's position in rounds, the rerun's exchange count, the surviving
    launcher's output and the ranks that ended with their process group still up."""
    import torch

    from beatdbn.train.pretrain import CHECKPOINT, PHASES

    root = tmp_path_factory.mktemp("torchrun-cut")
    programs = Programs(root)
    left_up = root / "left-up"  # tests/_slow_rank.py: ranks whose command ended with its process group up
    try:
        ref = programs.start([*BEATDBN, "pretrain", ranks_store, "--out", root / "ref", *PRETRAIN, "--workers", "2"],
                             "ref")
        # each exchange slowed (tests/_slow_rank.py), a checkpoint every 4 batches (one round of 2 ranks x 2)
        launchers = _launchers(programs, "cut", [HERE / "_slow_rank.py", "0.15", "pretrain", ranks_store, "--out",
                                                 root / "cut", *PRETRAIN, "--distributed", "--checkpoint-every", "4"],
                               BEATDBN_TEST_LEFT_UP=str(left_up))
        checkpoint = root / "cut" / CHECKPOINT
        deadline = time.monotonic() + 240
        while not checkpoint.exists():
            assert all(p.poll() is None for p in launchers), programs.log("cut-0") + programs.log("cut-1")
            assert time.monotonic() < deadline, programs.log("cut-0")
            time.sleep(0.01)
        _stop(launchers[1])  # SIGKILL: the launcher and its rank, mid-pass
        try:
            launchers[0].wait(timeout=30)  # the other rank loses its peer and stops
        except subprocess.TimeoutExpired:
            _stop(launchers[0])
        assert launchers[0].returncode != 0, programs.log("cut-0")
        assert checkpoint.exists() and not (root / "cut" / "model.pt").exists()
        position = torch.load(checkpoint, weights_only=True)["position"]
        rounds_done = (position[0] + position[1]) * ROUNDS + position[2] // 4  # one pass per phase
        assert 0 < rounds_done < len(PHASES) * ROUNDS, position

        count = root / "exchanges"  # the rerun counts its exchanges (one line per round and rank)
        rerun = _launchers(programs, "rerun", [HERE / "_slow_rank.py", "0", "pretrain", ranks_store, "--out",
                                               root / "cut", *PRETRAIN, "--distributed"],
                           BEATDBN_TEST_EXCHANGES=str(count), BEATDBN_TEST_LEFT_UP=str(left_up))
        for k, proc in enumerate(rerun):
            assert proc.wait(timeout=180) == 0, programs.log(f"rerun-{k}")
        assert ref.wait(timeout=300) == 0, programs.log("ref")
        yield {"ref": root / "ref", "cut": root / "cut", "rounds_done": rounds_done,
               "exchanges": len(count.read_text().splitlines()), "survivor": programs.log("cut-0"),
               "left_up": left_up.read_text().splitlines() if left_up.exists() else []}
    finally:
        programs.close()


@pytest.mark.slow
def test_a_torchrun_launcher_killed_mid_pass_then_rerun_resumes_to_the_two_workers_dbn(torchrun_cut):
    import torch

    from beatdbn.train.pretrain import CHECKPOINT, PHASES, iter_stats

    ref, cut = torchrun_cut["ref"], torchrun_cut["cut"]
    a, b = _weights(ref), _weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(iter_stats(ref)) == strip(iter_stats(cut))
    # resumed, not started afresh: each rank made only the rounds after the checkpoint
    assert torchrun_cut["exchanges"] == 2 * (len(PHASES) * ROUNDS - torchrun_cut["rounds_done"])
    assert not (cut / CHECKPOINT).exists()


@pytest.mark.slow
def test_a_rank_that_loses_its_peer_under_torchrun_says_so_in_one_line(torchrun_cut):
    rank_lines = [line for line in torchrun_cut["survivor"].splitlines() if line.startswith("[rank")]
    assert not any("Traceback" in line for line in rank_lines), "\n".join(rank_lines[:5])
    survivor = torchrun_cut["survivor"]
    # Which launcher hosts the c10d rendezvous store is a race. When the killed one hosted it, the surviving
    # launcher's own agent fails first (torchrun's RendezvousConnectionError) and stops its rank before the rank
    # can speak: then only "no traceback from the rank" can be checked. Otherwise the rank says so in one line.
    if "RendezvousConnectionError" not in survivor:
        assert any(line.startswith("error:") for line in survivor.splitlines()), survivor[-3000:]


@pytest.mark.slow
def test_every_torchrun_rank_ends_with_its_process_group_destroyed(torchrun_cut):
    assert torchrun_cut["left_up"] == []
