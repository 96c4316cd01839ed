"""tests/conftest.py: where the real data is looked up (BEATDBN_SHARED_DATA), and the skip reason that names it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, SHARED_DATA_ENV, missing, shared_data


def test_shared_data_defaults_to_the_folder_beside_the_repository():
    assert shared_data({}) == ROOT.parent / "shared" / "data"
    assert shared_data({SHARED_DATA_ENV: "  "}) == ROOT.parent / "shared" / "data"  # blank: the default


def test_shared_data_follows_the_variable(tmp_path):
    assert SHARED_DATA_ENV == "BEATDBN_SHARED_DATA"
    assert shared_data({SHARED_DATA_ENV: str(tmp_path)}) == tmp_path
    assert shared_data({SHARED_DATA_ENV: "~/data", "HOME": str(tmp_path)}) == Path("~/data").expanduser()


def test_the_skip_reason_names_the_path_and_the_variable(tmp_path):
    reason = missing(tmp_path / "msd" / "x.h5")
    assert str(tmp_path / "msd" / "x.h5") in reason and "BEATDBN_SHARED_DATA" in reason


def _run_real_data_test(data: Path) -> str:
    """pytest, in a fresh process with BEATDBN_SHARED_DATA=data, on one test that reads the real MSD files
    (through conftest's ``shared_msd`` fixture)."""
    env = {**os.environ, SHARED_DATA_ENV: str(data), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          "tests/test_msd.py::test_all_real_files_align_including_no_beats_and_non_ascii"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return res.stdout + res.stderr


def test_a_real_data_test_skips_naming_the_variable_and_runs_where_it_points(tmp_path):
    out = _run_real_data_test(tmp_path / "nowhere")
    assert "1 skipped" in out and "BEATDBN_SHARED_DATA" in out and str(tmp_path / "nowhere") in out, out

    # the same test runs on the folder the variable names: stand-ins by beatdbn's writer, under the real names
    from beatdbn.synth import make_track, write_track

    msd = tmp_path / "data" / "msd"
    write_track(msd / "TRAXLZU12903D05F94.h5", make_track(track_id="TRAXLZU12903D05F94", n_beats=40))
    write_track(msd / "TRBDOXZ128F93420F3.h5", make_track(track_id="TRBDOXZ128F93420F3", n_beats=40,
                                                          title="\u00c7a c'est Paris"))
    out = _run_real_data_test(tmp_path / "data")
    assert "1 passed" in out, out
