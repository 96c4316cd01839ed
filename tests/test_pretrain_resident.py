"""The resident pretraining pass (beatdbn.train.resident): the streaming pass's DBN bitwise, no host read
between steps, the memory guard's fallback, resume, the CLI."""

from __future__ import annotations

import contextlib
import json
import logging
import math

import pytest
import torch
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.models.crbm import BernoulliCRBM, ConvRBM
from beatdbn.models.dbn import ConvDBN, DBNConfig
from beatdbn.store.extract import extract
from beatdbn.store.reader import FeatureStore
from beatdbn.synth.corpus import make_track
from beatdbn.synth.msd_writer import write_track
from beatdbn.train.pretrain import CHECKPOINT, PretrainConfig, iter_stats, pretrain
from beatdbn.train.resident import ResidentConfig, ResidentPhase

SMALL = DBNConfig(n_maps_1a=8, n_maps_1b=8, n_maps_3=6)
#: 3 passes over the 2,770 beats below; checkpoints every 5 steps, statistics read every 3: chunks cut at both
CONFIG = PretrainConfig(min_beats=6000, checkpoint_every=5)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """15 tracks of 5..400 beats in 4 shards: one shorter than a layer-1 filter, three too short for layer 3."""
    root = tmp_path_factory.mktemp("resident")
    for i, n in enumerate([5, 20, 45, 60, 90, 120, 150, 180, 200, 240, 260, 300, 330, 370, 400]):
        tid = f"TRRES{i:013d}"
        write_track(root / "msd" / f"{tid}.h5", make_track(track_id=tid, n_beats=n, seed=i))
    extract([root / "msd"], root / "store", scheduler="sync", shard_size=4)
    return root / "store"


def _same_rows(a, b) -> bool:
    """pretrain.csv rows equal, NaN equal to NaN (tracks too short for a filter), seconds left out."""
    a, b = list(a), list(b)
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(x[k] == y[k] or (math.isnan(x[k]) and math.isnan(y[k]))
                                     for k in x if k not in ("seconds", "stage")) and x["stage"] == y["stage"]
        for x, y in zip(a, b))


def _weights(out):
    return torch.load(out / "model.pt", weights_only=True)


@pytest.mark.parametrize("dbn_config", [SMALL, DBNConfig(n_maps_1a=8, n_maps_1b=8, n_maps_3=6, momentum=0.5,
                                                         weight_decay=1e-3),
                                        DBNConfig(n_maps_1a=8, n_maps_1b=8, n_maps_3=6, sparsity="goh-rank")],
                         ids=["paper", "momentum", "goh-rank"])
def test_resident_pass_gives_the_streaming_pass_dbn_bitwise(store, tmp_path, dbn_config):
    streamed, resident = tmp_path / "streamed", tmp_path / "resident"
    s = pretrain(store, streamed, config=CONFIG, dbn_config=dbn_config, resident="off")
    r = pretrain(store, resident, config=CONFIG, dbn_config=dbn_config,
                 resident=ResidentConfig(mode="on", monitor_every=3))
    assert s["passes"] == r["passes"] == 3
    assert {p: i["resident"] for p, i in s["pass"]["phases"].items()} == {"layer1": False, "layer3": False}
    assert {p: i["resident"] for p, i in r["pass"]["phases"].items()} == {"layer1": True, "layer3": True}
    assert r["pass"]["phases"]["layer1"]["bytes"] == 4 * 24 * r["n_beats"]
    a, b = _weights(streamed), _weights(resident)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert int(b["layer1a.n_updates"]) == 14 * 3  # the 5-beat track is shorter than the filter: no update
    assert _same_rows(iter_stats(streamed), iter_stats(resident))
    # the comparison can fail: another seed's resident pass differs
    other = pretrain(store, tmp_path / "other", config=PretrainConfig(min_beats=6000, seed=1), dbn_config=dbn_config,
                     resident="on")
    assert other["complete"] and not torch.equal(_weights(tmp_path / "other")["layer3.weight"], a["layer3.weight"])


def test_batched_loading_gives_the_same_inputs_to_float_rounding(store, tmp_path):
    """A GPU loads padded batches of similar lengths (load_batch 64): each track's input as loaded one at a time,
    to within float rounding (the timbre statistics and convolutions of a padded batch sum in another order)."""
    fs = FeatureStore.open(store)
    rows = fs.select_rows()
    lengths = fs.metadata.column("n_beats").to_numpy()[rows]
    dbn = ConvDBN(SMALL)
    for phase in ("layer1", "layer3"):
        one = ResidentPhase(fs, rows, lengths, dbn, phase, load_batch=1)
        many = ResidentPhase(fs, rows, lengths, dbn, phase, load_batch=6)
        assert one.offsets == many.offsets and one.inputs.keys() == many.inputs.keys()
        for s in one.inputs:
            torch.testing.assert_close(many.inputs[s], one.inputs[s], rtol=1e-5, atol=1e-5)  # values ~1: float32
            assert not torch.equal(many.inputs[s], torch.zeros_like(many.inputs[s]))
    assert ResidentConfig().load_batch_on(torch.device("cpu")) == 1
    assert ResidentConfig().load_batch_on(torch.device("cuda")) == 64
    assert ResidentConfig(load_batch=3).load_batch_on(torch.device("cpu")) == 3
    r = pretrain(store, tmp_path / "dbn", config=PretrainConfig(), dbn_config=SMALL,
                 resident=ResidentConfig(mode="on", load_batch=6))
    assert r["complete"] and {i["load_batch"] for i in r["pass"]["phases"].values()} == {6}


_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


@contextlib.contextmanager
def _count_host_reads(monkeypatch):
    """Count the calls of every Tensor method that reads a value on the host, while ``counting[0]`` is set."""
    counting, calls = [False], []
    for name in _READS:
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            if counting[0]:
                calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    yield counting, calls


@pytest.mark.parametrize("kernel, from_layer1_input, sparsity", [("conv", False, "goh"), ("auto", False, "goh"),
                                                                   ("conv", True, "goh"), ("conv", False, "goh-rank")])
def test_no_host_read_inside_the_step_loop(store, tmp_path, monkeypatch, kernel, from_layer1_input, sparsity):
    """The steps between two reads read nothing on the host. 'conv' is the kernel CUDA runs; on the CPU 'auto'
    takes 'gemm', whose free-energy guard reads one CPU scalar per free energy (a CPU read, not a device sync).
    ``from_layer1_input``: layer 3's input computed each step from the kept layer-1 input."""
    dbn_config, budget = DBNConfig(n_maps_1a=8, n_maps_1b=8, n_maps_3=6, sparsity=sparsity), None
    if from_layer1_input:
        dbn_config = DBNConfig(n_maps_3=6)
        budget = ResidentPhase.bytes_needed(dbn_config, "layer3", [2770], from_layer1_input=True)
    monkeypatch.setattr(ConvRBM, "cd_kernel", kernel)
    with _count_host_reads(monkeypatch) as (counting, calls):
        # the counter sees the streaming step's read: the assertions below can fail
        counting[0] = True
        BernoulliCRBM(n_visible=12, n_hidden=4, width=4).partial_fit(torch.rand(1, 12, 20))
        counting[0] = False
        assert calls and calls.count("tolist") >= 1
        calls.clear()

        launched, reads = [], []
        launch, read = ResidentPhase.launch, ResidentPhase.read

        def counted_launch(self, plan, start, end, generator):
            counting[0] = True
            try:
                launch(self, plan, start, end, generator)
            finally:
                counting[0] = False
            launched.append(end - start)

        def counted_read(self, *args, **kwargs):
            reads.append(1)
            return read(self, *args, **kwargs)

        monkeypatch.setattr(ResidentPhase, "launch", counted_launch)
        monkeypatch.setattr(ResidentPhase, "read", counted_read)
        summary = pretrain(store, tmp_path / "dbn", config=CONFIG, dbn_config=dbn_config,
                           resident=ResidentConfig(mode="on", monitor_every=4, budget_bytes=budget))
    assert summary["pass"]["phases"]["layer3"]["from_layer1_input"] == from_layer1_input
    assert sum(launched) == 2 * 3 * 15 and max(launched) == 4  # 2 phases x 3 passes x 15 tracks, chunks <= 4
    assert len(reads) == len(launched)  # one host read per chunk of steps
    steps_with_free_energy = 3 * sum(1 for n in (5, 20, 45, 60, 90, 120, 150, 180, 200, 240, 260, 300, 330, 370, 400)
                                     for need in (8, 8) if n >= need)  # layer 1a and 1b on a 'gemm' CPU
    if kernel == "conv":
        assert calls == []
    else:  # only the gemm kernel's CPU free-energy guard: two reads per layer-1 step, layer 3 too at one track
        assert set(calls) == {"__float__"} and len(calls) >= 2 * steps_with_free_energy
    assert summary["complete"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: torch.cuda.is_available() is False")
def test_resident_pass_on_cuda_syncs_only_at_reads_and_matches_streaming(store, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    launch = ResidentPhase.launch

    def strict_launch(self, *args):
        torch.cuda.set_sync_debug_mode("error")  # any synchronizing call inside raises
        try:
            launch(self, *args)
        finally:
            torch.cuda.set_sync_debug_mode(0)

    monkeypatch.setattr(ResidentPhase, "launch", strict_launch)
    r = pretrain(store, tmp_path / "resident", config=CONFIG, dbn_config=SMALL, device="cuda",
                 resident=ResidentConfig(mode="auto", load_batch=1))  # load_batch 64 would round inputs otherwise
    assert all(i["resident"] and i["device"].startswith("cuda") for i in r["pass"]["phases"].values())
    pretrain(store, tmp_path / "streamed", config=CONFIG, dbn_config=SMALL, device="cuda", resident="off")
    a, b = _weights(tmp_path / "streamed"), _weights(tmp_path / "resident")
    for k in a:  # the same steps on the same device: equal up to cuDNN's floating-point order
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6, msg=k)


def test_a_phase_over_the_budget_streams_with_one_line(store, tmp_path, caplog):
    need = ResidentPhase.bytes_needed(SMALL, "layer1", [5, 20, 45, 60, 90, 120, 150, 180, 200, 240, 260, 300, 330,
                                                         370, 400])
    assert need == 4 * 24 * 2770
    budget = ResidentPhase.bytes_needed(SMALL, "layer3", [5, 20, 45, 60, 90, 120, 150, 180, 200, 240, 260, 300, 330,
                                                          370, 400])
    with caplog.at_level(logging.WARNING, logger="beatdbn.train.pretrain"):
        r = pretrain(store, tmp_path / "dbn", config=CONFIG, dbn_config=SMALL,
                     resident=ResidentConfig(mode="on", budget_bytes=budget))  # layer 3 fits, layer 1 does not
    lines = [rec.getMessage() for rec in caplog.records if "streams from the store" in rec.getMessage()]
    assert len(lines) == 1 and "layer1 streams" in lines[0] and "over the budget" in lines[0], lines
    phases = r["pass"]["phases"]
    assert not phases["layer1"]["resident"] and phases["layer1"]["bytes"] == need and phases["layer3"]["resident"]
    pretrain(store, tmp_path / "streamed", config=CONFIG, dbn_config=SMALL, resident="off")
    a, b = _weights(tmp_path / "streamed"), _weights(tmp_path / "dbn")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_layer3_over_the_budget_keeps_the_layer1_input_and_gives_the_same_dbn(store, tmp_path):
    wide = DBNConfig(n_maps_3=6)  # 200 pooled layer-1 channels: layer 3's own input outweighs the 24 input channels
    lengths = [5, 20, 45, 60, 90, 120, 150, 180, 200, 240, 260, 300, 330, 370, 400]
    x_bytes = ResidentPhase.bytes_needed(wide, "layer3", lengths, from_layer1_input=True)
    assert x_bytes == 4 * 24 * 2770 == ResidentPhase.bytes_needed(wide, "layer1", lengths)
    assert ResidentPhase.bytes_needed(wide, "layer3", lengths) > x_bytes
    config = PretrainConfig(checkpoint_every=5)
    r = pretrain(store, tmp_path / "resident", config=config, dbn_config=wide,
                 resident=ResidentConfig(mode="on", budget_bytes=x_bytes, monitor_every=4))
    phases = r["pass"]["phases"]
    assert phases["layer3"]["resident"] and phases["layer3"]["from_layer1_input"]
    assert phases["layer3"]["bytes"] == x_bytes and not phases["layer1"]["from_layer1_input"]
    pretrain(store, tmp_path / "streamed", config=config, dbn_config=wide, resident="off")
    a, b = _weights(tmp_path / "streamed"), _weights(tmp_path / "resident")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _same_rows(iter_stats(tmp_path / "streamed"), iter_stats(tmp_path / "resident"))


def test_modes_auto_streams_on_cpu_on_refuses_what_it_cannot_do(store, tmp_path):
    r = pretrain(store, tmp_path / "auto", config=CONFIG, dbn_config=SMALL)  # the default: auto
    assert r["pass"]["resident"]["mode"] == "auto"
    assert r["pass"]["phases"]["layer1"] == {"resident": False,
                                             "why": "--resident auto streams on cpu (resident: --resident on)"}
    with pytest.raises(ParameterError, match="--resident on with 2 tracks a step"):
        pretrain(store, tmp_path / "b2", config=PretrainConfig(batch_size=2), dbn_config=SMALL, resident="on")
    auto_b2 = ResidentConfig().wanted(torch.device("cuda"), batch_size=2, world=1)
    assert auto_b2 == (False, "2 tracks a step (the resident pass takes one)")
    assert ResidentConfig().wanted(torch.device("cuda"), batch_size=1, world=1) == (True, "")
    with pytest.raises(ParameterError, match="processes"):
        ResidentConfig(mode="on").wanted(torch.device("cpu"), batch_size=1, world=2)
    for bad in ({"mode": "yes"}, {"monitor_every": 0}, {"budget_bytes": -1}):
        with pytest.raises(ParameterError):
            ResidentConfig(**bad)


def test_a_non_finite_step_stops_the_resident_pass_as_the_streaming_one(store, tmp_path):
    diverging = DBNConfig(n_maps_1a=8, n_maps_1b=8, n_maps_3=6, learning_rate_1b=1.0)
    messages = {}
    for mode in ("off", "on"):
        with pytest.raises(DataError, match="non-finite") as err:
            pretrain(store, tmp_path / mode, config=CONFIG, dbn_config=diverging, resident=mode)
        messages[mode] = str(err.value)
    assert messages["on"] == messages["off"]


def test_the_device_latch_leaves_the_parameters_unchanged_from_a_non_finite_step_on():
    rbm = BernoulliCRBM(n_visible=12, n_hidden=4, width=4)
    g = torch.Generator().manual_seed(0)
    raw, ok = torch.empty(5), torch.ones((), dtype=torch.bool)
    rbm.partial_fit_on_device(torch.rand(1, 12, 20), generator=g, raw_out=raw, ok=ok)
    assert bool(ok) and int(rbm.n_updates) == 1 and torch.isfinite(raw).all()
    before = {k: v.clone() for k, v in rbm.state_dict().items()}
    bad = torch.rand(1, 12, 20)
    bad[0, 3, 5] = float("nan")
    rbm.partial_fit_on_device(bad, generator=g, raw_out=raw, ok=ok)
    assert not bool(ok) and not torch.isfinite(raw).all()
    rbm.partial_fit_on_device(torch.rand(1, 12, 20), generator=g, raw_out=raw, ok=ok)  # latched: still nothing
    for k, v in rbm.state_dict().items():
        assert torch.equal(v, before[k]), k


class Killed(Exception):
    pass


def test_a_killed_resident_run_resumes_to_the_same_weights(store, tmp_path):
    config = ResidentConfig(mode="on", monitor_every=3)
    whole = tmp_path / "whole"
    pretrain(store, whole, config=CONFIG, dbn_config=SMALL, resident=config)
    seen = []

    def kill(info):
        seen.append(info)
        if len(seen) == 57:  # layer 3's 2nd pass (45 batches a phase), after the checkpoint at its 5th batch
            raise Killed

    cut = tmp_path / "cut"
    with pytest.raises(Killed):
        pretrain(store, cut, config=CONFIG, dbn_config=SMALL, resident=config, progress=kill)
    assert (cut / CHECKPOINT).exists()
    done = pretrain(store, cut, config=CONFIG, dbn_config=SMALL, resident="off")  # resumed by the streaming pass
    assert done["pass"]["phases"] == {"layer3": {"resident": False, "why": "--resident off"}}  # layer 1 was done
    a, b = _weights(whole), _weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _same_rows(iter_stats(whole), iter_stats(cut))


def test_cli_resident_option(store, tmp_path):
    out = tmp_path / "dbn"
    r = CliRunner().invoke(app, ["pretrain", str(store), "--out", str(out), "--resident", "on", "--monitor-every",
                                 "2", "--no-plots"])
    assert r.exit_code == 0, r.output
    assert "layer1: resident on cpu" in r.output and "statistics read every 2 steps" in r.output
    record = json.loads((out / "pretrain.json").read_text())["pass"]
    assert record["resident"] == {"mode": "on", "monitor_every": 2, "budget_bytes": None, "load_batch": None}
    assert record["phases"]["layer3"]["load_batch"] == 1  # on the CPU: one track at a time
    over = CliRunner().invoke(app, ["pretrain", str(store), "--out", str(tmp_path / "small"), "--resident", "on",
                                    "--resident-budget", "0", "--no-plots"])
    assert over.exit_code == 0, over.output
    assert "layer1: streamed from the store (its inputs need" in over.output
    for args, words in ((["--resident", "maybe"], "resident mode 'maybe'"),
                        (["--resident", "on", "--batch-size", "4"], "--resident on with 4 tracks a step"),
                        (["--monitor-every", "0"], "monitor_every=0")):
        bad = CliRunner().invoke(app, ["pretrain", str(store), "--out", str(tmp_path / "bad"), *args, "--no-plots"])
        assert bad.exit_code == 1 and words in bad.output, bad.output
