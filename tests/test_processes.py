"""utils/processes and the commands that start workers: --workers is capped at the CPUs; SIGTERM/SIGINT stop
every worker (pretrain --workers, reproduce's Dask LocalCluster and its fork server, extract --workers) and
leave no process behind."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from beatdbn.utils.threads import available_cpus, cap_workers

psutil = pytest.importorskip("psutil")


def test_workers_beyond_the_cpus_are_capped_with_one_line(caplog):
    cpus = available_cpus()
    with caplog.at_level(logging.WARNING, logger="beatdbn"):
        assert cap_workers(100000) == cpus
    assert [r.getMessage() for r in caplog.records] == [
        f"--workers 100000: this process may use {cpus} CPU{'' if cpus == 1 else 's'}; "
        f"starting {cpus} worker process{'' if cpus == 1 else 'es'}"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="beatdbn"):
        assert cap_workers(1) == 1 and cap_workers(None) is None
    assert not caplog.records


def _run_and_signal(args, *, when, sig=signal.SIGTERM, cwd=None, timeout=150.0, log=None):
    """Run ``python args...``, send ``sig`` once ``when(seen, seconds)`` is true (``seen``: every descendant so
    far); returns (exit code, output, seen descendants, those still running 10 s after the exit)."""
    log = log or Path(cwd or ".") / "out.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BEATDBN_PROGRESS_EVERY": "1"}
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, *args], stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    seen: dict[int, psutil.Process] = {}
    t0, sent = time.monotonic(), False
    try:
        while proc.poll() is None:
            try:
                for c in psutil.Process(proc.pid).children(recursive=True):
                    seen.setdefault(c.pid, c)
            except psutil.Error:
                pass
            if not sent and when(seen, time.monotonic() - t0):
                proc.send_signal(sig)
                sent = True
            assert time.monotonic() - t0 < timeout, "the command neither finished nor stopped"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10
    left = list(seen.values())
    while left and time.monotonic() < deadline:
        left = [p for p in left if _running(p)]
        time.sleep(0.1)
    for p in left:  # clean up after a failing check
        try:
            p.kill()
        except psutil.Error:
            pass
    assert sent, f"the signal was never sent: {Path(log).read_text()[-2000:]}"
    return proc.returncode, Path(log).read_text(), seen, left


def _running(p) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_a_signal_stops_the_block_and_every_descendant(tmp_path):
    """stop_on_signals: SIGTERM becomes a clean exit (finally runs, code 143) and the children and grandchildren
    still running are stopped; SIGINT the same with KeyboardInterrupt."""
    script = tmp_path / "holder.py"
    script.write_text(textwrap.dedent("""
        import subprocess, sys, time
        from beatdbn.utils.processes import stop_on_signals
        try:
            with stop_on_signals():
                subprocess.Popen([sys.executable, "-c", "import subprocess, time; "
                                  "subprocess.Popen(['sleep', '60']); time.sleep(60)"])
                subprocess.Popen(["sleep", "60"])
                time.sleep(60)
        finally:
            print("finally ran", flush=True)
    """))
    for sig, code in ((signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, -signal.SIGINT)):
        rc, out, seen, left = _run_and_signal([str(script)], cwd=tmp_path, sig=sig,
                                              when=lambda seen, s: len(seen) >= 3)
        assert "finally ran" in out and len(seen) >= 3 and not left, out
        assert rc == code, out


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> dict:
    from beatdbn.store.extract import extract
    from beatdbn.synth.corpus import generate_corpus

    root = tmp_path_factory.mktemp("procs")
    generate_corpus(root / "msd", 200, seed=0, n_artists=6)
    extract([root / "msd"], root / "store", scheduler="sync", shard_size=64)
    return {"msd": root / "msd", "store": root / "store", "root": root}


@pytest.mark.slow
def test_sigterm_to_pretrain_while_its_workers_start_leaves_none(small_store, tmp_path):
    rc, out, seen, left = _run_and_signal(
        ["-m", "beatdbn", "pretrain", str(small_store["store"]), "--out", str(tmp_path / "dbn"), "--workers",
         "100000", "--no-plots"], cwd=tmp_path, when=lambda seen, s: len(seen) >= 1)
    assert f"--workers 100000: this process may use {available_cpus()} CPU" in out
    assert seen and not left, out
    assert rc == 128 + signal.SIGTERM and "Traceback" not in out, out


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["start-up", "mid-run"])
def test_sigterm_to_reproduce_leaves_no_worker_or_fork_server(small_store, tmp_path, moment):
    out_dir = tmp_path / "run"

    def when(seen, seconds):
        if moment == "start-up":  # the cluster's fork server is starting while the DBN is pretrained
            return len(seen) >= 1
        return any((out_dir / "experiments").rglob(".job-lr-*")) and len(seen) >= 2

    rc, out, seen, left = _run_and_signal(
        ["-m", "beatdbn", "reproduce", str(small_store["store"]), "--out", str(out_dir), "--quick", "--task", "key",
         "--per-key", "6", "--workers", "2"], cwd=tmp_path, when=when)
    assert seen and not left, (out, [p.pid for p in left])
    assert rc == 128 + signal.SIGTERM and "Traceback" not in out, out
    assert "INFO distributed" not in out and "8787" not in out, out  # Dask's lines stay off the terminal


@pytest.mark.slow
def test_sigterm_to_extract_mid_run_leaves_no_worker(small_store, tmp_path):
    rc, out, seen, left = _run_and_signal(
        ["-m", "beatdbn", "extract", str(small_store["msd"]), "--out", str(tmp_path / "store"), "--workers", "2",
         "--scheduler", "local", "--shard-size", "8"], cwd=tmp_path,
        when=lambda seen, s: len(seen) >= 2 and "progress extract" in (tmp_path / "out.log").read_text())  # mid-run
    assert seen and not left, out
    assert rc == 128 + signal.SIGTERM and "Traceback" not in out, out
