"""Shared fixtures: where the real data lives (skip when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_MSD = SHARED / "data" / "msd"
SHARED_AUDIO = SHARED / "data" / "audio"
RICK = SHARED_MSD / "TRAXLZU12903D05F94.h5"


@pytest.fixture
def shared_msd() -> Path:
    """The folder of ten real MSD track files; skips the test when absent."""
    if not RICK.exists():
        pytest.skip("../shared/data/msd is not present")
    return SHARED_MSD
