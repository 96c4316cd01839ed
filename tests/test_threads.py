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
