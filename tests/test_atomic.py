"""utils.atomic: a write either replaces the file whole or leaves the old one, and never a temporary behind."""

from __future__ import annotations

import json
import os

import pytest

from beatdbn.utils.atomic import TMP_MARK, atomic_path, save_torch, write_json, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            assert TMP_MARK + str(os.getpid()) in tmp.name
            raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_folders_json_and_torch(tmp_path):
    import torch

    with atomic_path(tmp_path / "model") as tmp:
        tmp.mkdir()
        (tmp / "w.txt").write_text("1")
    with atomic_path(tmp_path / "model") as tmp:  # a second folder replaces the first
        tmp.mkdir()
        (tmp / "v.txt").write_text("2")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["v.txt"]
    write_json(tmp_path / "x.json", {"a": [1, 2]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [1, 2]}
    with pytest.raises(ValueError):
        write_json(tmp_path / "bad.json", {"a": float("nan")})  # strict JSON: never a bare NaN
    assert not (tmp_path / "bad.json").exists()
    save_torch({"w": torch.ones(3)}, tmp_path / "w.pt")
    assert torch.equal(torch.load(tmp_path / "w.pt", weights_only=True)["w"], torch.ones(3))
    assert not [p for p in tmp_path.iterdir() if TMP_MARK in p.name]
