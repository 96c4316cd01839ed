"""Real MSD files (../shared/data/msd/subset-AA, 319 tracks): extract -> tasks --scale auto builds all three tasks."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from beatdbn.cli import app

from conftest import SHARED_MSD, missing

SUBSET_AA = SHARED_MSD / "subset-AA"
TAGTRAUM = SHARED_MSD / "additional" / "msd_tagtraum_cd1.cls"


@pytest.fixture(scope="module")
def aa_store(tmp_path_factory):
    if not SUBSET_AA.is_dir():
        pytest.skip(missing(SUBSET_AA))
    store = tmp_path_factory.mktemp("aa") / "store"
    r = CliRunner().invoke(app, ["extract", str(SUBSET_AA), "--out", str(store), "--scheduler", "sync"])
    assert r.exit_code == 0, r.output
    return store


@pytest.mark.parametrize("labels", ["musicbrainz", "tagtraum"])
def test_subset_aa_builds_every_task_at_auto_scale(aa_store, tmp_path, labels):
    if labels == "tagtraum" and not TAGTRAUM.exists():
        pytest.skip(missing(TAGTRAUM))
    # the earlier auto rule (every class, at the rarest's size): 'auto' needs 20 tracks per class (issue 23 item 3)
    args = ["tasks", str(aa_store), "--out", str(tmp_path / "tasks"), "--scale", "auto-all-classes"]
    args += ["--genre-labels", str(TAGTRAUM)] if labels == "tagtraum" else []
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "tasks" / "tasks.json").read_text())
    assert summary["corpus"]["tracks"] == 319 and not summary["errors"], summary["errors"]
    assert set(summary["tasks"]) == {"artist", "genre", "key", "decade"}  # real years: decade builds too
    assert summary["corpus"]["decade"]["dated"] + summary["corpus"]["decade"]["undated"] == 319
    for name, info in summary["tasks"].items():
        assert info["scale_rule"] == "auto-all-classes" and info["classes"] >= 2
        assert all(info["counts"][s] >= 1 for s in ("train", "valid", "test")), (name, info)
        ids = []
        for split in ("train", "valid", "test"):
            lines = (tmp_path / "tasks" / name / f"{split}.tsv").read_text().splitlines()[1:]
            ids.append({line.split("\t")[0] for line in lines})
            assert len(ids[-1]) == len(lines)  # no track twice within a split
        assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]), name
    assert summary["tasks"]["key"]["scale"] == "12\u00d710"  # D# is the rarest key of the 319 tracks: 10
    if labels == "tagtraum":
        assert "133,615 for track ids not in the store" in r.output
