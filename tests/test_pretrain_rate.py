"""Pretraining's progress rate and its summary are one measure (issue 25 item 3: 8,330 beats/s per pass
beside a summary of 76,466 in one run: the progress divided one pass's beats by every pass's seconds)."""

from __future__ import annotations

import pytest

from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.models.dbn import DBNConfig
from beatdbn.store.extract import extract
from beatdbn.synth.corpus import make_track
from beatdbn.synth.msd_writer import write_track
from beatdbn.train.pretrain import PHASES, PretrainConfig, pretrain

SMALL = DBNConfig(n_maps_1a=4, n_maps_1b=4, n_maps_3=8, seed=0)


def _store(tmp_path):
    for i, n in enumerate((60, 200, 140)):
        write_track(tmp_path / "msd" / f"TRRATE{i:012d}.h5", make_track(track_id=f"TRRATE{i:012d}", n_beats=n, seed=i))
    extract([tmp_path / "msd"], tmp_path / "store", scheduler="sync")


def test_progress_beats_per_s_ends_each_phase_at_the_summary_figure(tmp_path):
    _store(tmp_path)
    seen: list[dict] = []
    summary = pretrain(tmp_path / "store", tmp_path / "dbn", config=PretrainConfig(batch_size=1, min_beats=1000),
                       dbn_config=SMALL, progress=seen.append)
    assert summary["passes"] == 3  # 400 beats: 3 passes reach 1,000
    for phase in PHASES:
        mine = [p for p in seen if p["phase"] == phase]
        assert {p["passes"] for p in mine} == {3} and [p["pass"] for p in mine][-1] == 2
        # the last figure shown is the summary's (it was a third of it: one pass's beats over three passes' time)
        assert mine[-1]["beats_per_s"] == pytest.approx(summary["phases"][phase]["beats_per_s"], rel=1e-9)


def test_the_cli_names_the_passes_in_progress_and_summary(tmp_path):
    _store(tmp_path)
    r = CliRunner().invoke(app, ["pretrain", str(tmp_path / "store"), "--out", str(tmp_path / "dbn"), "--min-beats",
                                 "1000", "--no-plots", "--batch-size", "1"])
    assert r.exit_code == 0, r.output
    done = [x for x in r.output.splitlines() if x.startswith("done pretrain layer3 pass 3/3: ")]
    summary = [x for x in r.output.splitlines() if x.startswith("layer3: 3 passes over 400 beats in ")]
    assert done and summary, r.output
    rate = summary[0].rsplit(": ", 1)[1]  # "12,345 beats/s": the figure the progress lines ended on
    assert rate.endswith(" beats/s") and f", {rate}, " in done[-1]
