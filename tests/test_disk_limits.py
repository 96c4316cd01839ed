"""One line, never a traceback: a full disk or a file-size limit while saving (pretrain, finetune, extract), a
config asking for 10**9 feature maps, a model file holding pickled objects (never torch's weights_only=False
advice)."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys

import pytest
import torch

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.models.crbm import CRBMConfig
from beatdbn.models.dbn import ConvDBN, DBNConfig
from beatdbn.utils.atomic import save_torch, write_text
from beatdbn.utils.weights import load_weights


def test_torch_save_on_a_full_disk_is_one_line_naming_the_file_and_the_free_space(tmp_path, monkeypatch):
    def full(obj, f):
        open(f, "wb").write(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DataError, match=rf"^{tmp_path / 'model.pt'}: could not be written, disk full or file-size "
                                        rf"limit reached \(ulimit -f\) \([\d,]+ MiB free on {tmp_path}\); "
                                        rf"free some space"):
        save_torch({"w": torch.ones(2)}, tmp_path / "model.pt")
    assert os.listdir(tmp_path) == []  # no half file, no temporary left


def test_enospc_from_any_atomic_writer_is_one_line(tmp_path, monkeypatch):
    def no_space(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(tmp_path), "write_text", no_space)
    with pytest.raises(DataError, match=r"metrics\.csv: could not be written, disk full"):
        write_text(tmp_path / "metrics.csv", "a,b\n")


def test_other_torch_save_errors_are_not_disguised(tmp_path, monkeypatch):
    def broken(obj, f):
        raise RuntimeError("something else")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError, match="something else"):
        save_torch({}, tmp_path / "x.pt")


def _limited(args, limit: int, cwd):
    """``python -m beatdbn args...`` with files limited to ``limit`` bytes (RLIMIT_FSIZE: writes past it fail
    with EFBIG, Python ignoring SIGXFSZ)."""
    def setup():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "beatdbn", *args], cwd=cwd, env=env, preexec_fn=setup,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from beatdbn.store.extract import extract
    from beatdbn.synth.corpus import generate_corpus

    root = tmp_path_factory.mktemp("limits")
    generate_corpus(root / "msd", 24, seed=0, n_artists=4)
    extract([root / "msd"], root / "store", scheduler="sync", shard_size=64)
    return root


@pytest.mark.parametrize("command", ["extract", "pretrain"])
def test_a_file_size_limit_is_one_line(corpus, tmp_path, command):
    if command == "extract":
        args = ["extract", str(corpus / "msd"), "--out", str(tmp_path / "s"), "--scheduler", "sync"]
    else:  # the DBN's model.pt (~1.4 MB at the paper's sizes) passes the limit: torch's "unexpected pos"
        args = ["pretrain", str(corpus / "store"), "--out", str(tmp_path / "dbn"), "--no-plots"]
    r = _limited(args, 200_000, tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert "Traceback" not in r.stderr and len([x for x in lines if x.startswith("error:")]) == 1, r.stderr
    assert "could not be written, " in r.stderr and "file-size limit reached (ulimit -f)" in r.stderr, r.stderr


def test_a_config_asking_for_1e9_feature_maps_is_one_line(tmp_path):
    with pytest.raises(ParameterError, match=r"DBNConfig\.n_maps_1a=1000000000: a layer of 1,000,000,000 maps .* "
                                             r"choose fewer feature maps \(the paper: 100\)"):
        DBNConfig(n_maps_1a=10**9)
    with pytest.raises(ParameterError, match=r"DBNConfig\.n_maps_3=1000000000"):
        DBNConfig(n_maps_3=10**9)
    with pytest.raises(ParameterError, match=r"CRBMConfig\.n_hidden=1000000000"):
        CRBMConfig(n_visible=12, n_hidden=10**9, width=8)
    DBNConfig(n_maps_1a=1000, n_maps_1b=1000, n_maps_3=1000)  # large, still allowed
    from beatdbn.models.convmlp import MLPConfig

    with pytest.raises(ParameterError, match=r"MLPConfig\.n_maps_3=1000000000"):  # a conv MLP's config.json too
        MLPConfig(n_classes=2, n_maps_3=10**9)
    # a DBN folder whose config.json asks for it: refused before any allocation
    (tmp_path / "dbn").mkdir()
    (tmp_path / "dbn" / "config.json").write_text(json.dumps({**DBNConfig().to_dict(), "n_maps_1b": 10**9}))
    with pytest.raises(ParameterError, match=r"n_maps_1b=1000000000"):
        ConvDBN.load(tmp_path / "dbn")


class _Evil:
    def __reduce__(self):
        return (os.getpid, ())


def test_a_pickled_object_is_refused_without_torch_advice(tmp_path):
    dbn = ConvDBN(DBNConfig(n_maps_1a=2, n_maps_1b=2, n_maps_3=2))
    dbn.save(tmp_path / "dbn")
    torch.save({"a": _Evil()}, tmp_path / "dbn" / "model.pt")
    with pytest.raises(DataError) as info:
        ConvDBN.load(tmp_path / "dbn")
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'dbn' / 'model.pt'}: not a readable beatdbn DBN file: it holds Python "
                           f"objects besides tensors")
    assert "weights_only" not in text and "False" not in text and "\n" not in text
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=r"junk\.pt: not a readable beatdbn weights file: not a torch file") as info:
        load_weights(tmp_path / "junk.pt")
    assert "weights_only" not in str(info.value)
    with pytest.raises(DataError, match=r"none\.pt: missing"):
        load_weights(tmp_path / "none.pt")
