"""utils/threads: the thread policy is set at the CLI entry, never by library code."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.utils.threads import apply_threads, available_cpus


def test_apply_threads_and_the_cli_option(tmp_path):
    before = torch.get_num_threads()
    try:
        assert apply_threads(1) == 1 and torch.get_num_threads() == 1
        assert apply_threads(None) == available_cpus() >= 1
        with pytest.raises(ValueError):
            apply_threads(0)
        result = CliRunner().invoke(app, ["--threads", "1", "info", str(tmp_path / "missing")])
        assert torch.get_num_threads() == 1 and result.exit_code == 1  # the option ran; the store is missing
        for bad in ("0", "-1"):  # one line, exit 1, as every other bad option (issue 16)
            result = CliRunner().invoke(app, ["--threads", bad, "info", str(tmp_path)])
            lines = result.output.strip().splitlines()
            assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith(f"error: --threads {bad}")
    finally:
        torch.set_num_threads(before)


def test_the_cli_entry_asks_openmp_threads_to_sleep_rather_than_spin():
    """OMP_WAIT_POLICY=PASSIVE before torch loads (issue 16: spin-waiting collapsed a busy 2-core machine)."""
    import subprocess
    import sys

    code = ("import os, sys; import beatdbn.cli; import torch; "
            "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["PASSIVE", "True"]
    code = ("import os, beatdbn.utils.threads as t; os.environ['OMP_WAIT_POLICY'] = 'ACTIVE'; a = t.passive_wait(); "
            "b = os.environ['OMP_WAIT_POLICY']; del os.environ['OMP_WAIT_POLICY']; import torch; "
            "print(a, b, t.passive_wait())")  # the user's choice stands; too late once torch is loaded
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "ACTIVE", "False"]
