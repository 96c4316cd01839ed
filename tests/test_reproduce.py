"""beatdbn reproduce: the twelve experiments end to end on the demo corpus, resumable, Table 1 honest."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.metrics.results import ExperimentResult
from beatdbn.exceptions import ParameterError
from beatdbn.models.dbn import DBNConfig
from beatdbn.tasks.registry import TaskConfig
from beatdbn.train.baselines import BaselineConfig
from beatdbn.train.finetune import FinetuneConfig
from beatdbn.train.pretrain import PretrainConfig
from beatdbn.pipeline.reproduce import EXPERIMENTS, ReproduceConfig, reproduce

TINY = ReproduceConfig(
    tasks=TaskConfig(artists=4, per_artist=20, per_genre=6, per_key=16, per_decade=10, seed=0),
    dbn=DBNConfig(n_maps_1a=8, n_maps_1b=8, n_maps_3=6),
    pretrain=PretrainConfig(batch_size=64),
    finetune=FinetuneConfig(learning_rates=(0.05,), epochs=2, snapshot_epochs=(1, 2)),
    baselines=BaselineConfig(learning_rates=(5e-4, 5e-5), epochs=2),
    quick=True,
)


@pytest.mark.slow
def test_reproduce_runs_every_experiment_and_resumes(demo_corpus, tmp_path):
    out = tmp_path / "run"
    stages = []
    record = reproduce(demo_corpus["store"], out, config=TINY, progress=lambda p: stages.append(p["stage"]),
                       scheduler="sync")
    for task in ("artist", "genre", "key", "decade"):  # decade: the registry's fourth task, not in the paper
        for model in EXPERIMENTS:
            result = ExperimentResult.load(out / "experiments" / task / model)
            assert result.task == task and result.model == model
            assert f"{task}/{model}" in stages and f"{task}/{model}" in record["timings"]
    table = json.loads((out / "table.json").read_text())
    ours = json.dumps(table)
    # every number of ours comes from a result file: the key task's naive Bayes accuracy appears in the table
    nb = ExperimentResult.load(out / "experiments" / "key" / "naive_bayes").select()["test_accuracy"]
    assert f"{nb:.4f}"[:5] in ours or str(round(nb, 4)) in ours
    assert (out / "report.html").exists() and (out / "report.md").exists()
    md = (out / "table.md").read_text()
    header = md.splitlines()[[i for i, line in enumerate(md.splitlines()) if line.startswith("|")][0]]
    ours, _, paper = header.partition("\u2016")
    assert "decade" in ours and "decade" not in paper and "key" in paper  # no paper column for decade
    assert "decade" in (out / "report.md").read_text()
    assert (out / "dbn" / "model.pt").exists() and (out / "tasks" / "exclude.txt").exists()
    assert record["projected"]["total_seconds"] > 0
    # a rerun resumes: nothing is retrained (the trainers return their result.json)
    before = {p: p.stat().st_mtime_ns for p in (out / "experiments").rglob("result.json")}
    reproduce(demo_corpus["store"], out, config=TINY, scheduler="sync")
    after = {p: p.stat().st_mtime_ns for p in (out / "experiments").rglob("result.json")}
    assert before == after


def test_reproduce_refuses_other_settings_and_cli_reports(demo_corpus, tmp_path):
    out = tmp_path / "run"
    (out).mkdir()
    (out / "config.json").write_text(json.dumps({"config": {"quick": False}}))
    result = CliRunner().invoke(app, ["reproduce", str(demo_corpus["store"]), "--out", str(out), "--quick"])
    assert result.exit_code == 1 and "other settings" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["report", str(empty)])
    assert result.exit_code == 0 and (empty / "report.html").exists()


class _Stop(Exception):
    pass


def test_reproduce_computes_every_number_on_one_thread_whatever_the_callers(demo_corpus, tmp_path, monkeypatch):
    """The pretraining and the serial path's experiments see one torch thread with the caller on 2 (a DBN
    pretrained on 2 threads differs in its last bits from one pretrained on 1, and so does every conv MLP
    started from it: tests/test_sweep.py); the caller's count is restored, also when the run stops."""
    import dataclasses

    import torch

    import beatdbn.pipeline.reproduce as rep
    from beatdbn.models.dbn import ConvDBN

    seen = {}

    def pretrain(fs, out, **kwargs):
        seen["pretrain"] = torch.get_num_threads()
        ConvDBN(DBNConfig(n_maps_1a=4, n_maps_1b=4, n_maps_3=4)).save(out)
        (out / "plots").mkdir()

    def trainer(name, stop=False):
        def run(*splits, **kwargs):
            seen[kwargs.get("init", name)] = torch.get_num_threads()
            if stop:
                raise _Stop()
        return run

    import beatdbn.train.kinds as kinds  # the trainers the registry's kinds bind by name

    monkeypatch.setattr(rep, "pretrain", pretrain)
    monkeypatch.setattr(kinds, "run_naive_bayes", trainer("naive_bayes"))
    monkeypatch.setattr(kinds, "run_logreg", trainer("logreg"))
    monkeypatch.setattr(kinds, "run_convmlp", trainer("convmlp", stop=True))
    config = dataclasses.replace(TINY, tasks=TaskConfig(per_key=16, tasks=("key",), seed=0))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(_Stop):
            reproduce(demo_corpus["store"], tmp_path / "run", config=config, scheduler="sync")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen == {"pretrain": 1, "naive_bayes": 1, "logreg": 1, "random": 1}


@pytest.mark.slow
def test_reproduce_at_auto_scale_runs_the_tasks_it_can(tmp_path):
    from beatdbn.store.extract import extract
    from beatdbn.synth.corpus import generate_corpus

    generate_corpus(tmp_path / "msd", 120, seed=1, n_artists=6)  # small: pretraining is most of the time
    extract([tmp_path / "msd"], tmp_path / "store", scheduler="sync", shard_size=64)
    labels = tmp_path / "labels.cls"  # tagtraum labels of another corpus: no genre task on this one
    labels.write_text("TRAAAAW128F429D538\tRap\nTRAAABD128F429CF47\tPop_Rock\n")
    config = ReproduceConfig(
        tasks=TaskConfig(artists=3, per_artist=8, per_key=4, scale="auto", seed=0, tasks=("artist", "genre", "key"),
                             min_per_class=3),  # a tiny corpus: below the default 20-track floor
        dbn=TINY.dbn, pretrain=TINY.pretrain, finetune=FinetuneConfig(learning_rates=(0.05,), epochs=2,
                                                                      snapshot_epochs=(1, 2)),
        baselines=BaselineConfig(learning_rates=(5e-4,), epochs=2), quick=True, genre_labels=str(labels))
    out = tmp_path / "run"
    record = reproduce(tmp_path / "store", out, config=config, scheduler="sync")
    tasks = json.loads((out / "tasks" / "tasks.json").read_text())
    assert set(tasks["tasks"]) == {"artist", "key"} and "genre" in tasks["errors"]
    assert tasks["tasks"]["artist"]["scale"] == "3\u00d78" and tasks["tasks"]["key"]["scale"] == "12\u00d74"
    assert not (out / "experiments" / "genre").exists()
    table = json.loads((out / "table.json").read_text())
    assert table["unbuilt"]["genre"] == tasks["errors"]["genre"]
    assert table["scales"] == {"artist": "3\u00d78", "key": "12\u00d74"}
    assert all(row["cells"]["genre"] is None for row in table["rows"])
    assert all(row["cells"]["key"] is not None for row in table["rows"])
    assert table["key_scores"] and all(0 <= k["test_weighted_key_score"] <= 1 for k in table["key_scores"])
    md = (out / "table.md").read_text()
    assert "| genre | artist 3\u00d78 | key 12\u00d74 |" in md and "genre: not built on this corpus" in md
    assert "## Key scores" in (out / "report.md").read_text()
    proj = record["projected"]
    assert "4.6e8 beats" in proj["basis"] and "load average" in proj["machine"]
    # the paper's pass: ~4.6e8 beats at this run's measured pretraining rate
    assert proj["pretrain_seconds"] == pytest.approx(4.6e8 / proj["measured_rates"]["pretrain_beats_per_s"])
    assert record["config"]["recipes"] == ["paper"] and record["machine"]["start"]["cpus"] >= 1


def test_the_sweep_runs_on_a_local_dask_cluster_unless_on_a_gpu():
    from beatdbn.pipeline.reproduce import default_scheduler

    assert default_scheduler("cpu") == "local" and default_scheduler("cuda") == "sync"
    assert default_scheduler("cuda:1") == "sync"


def test_recipes_choose_the_conv_mlp_experiments():
    from beatdbn.pipeline.reproduce import experiments

    assert [m for m, _ in experiments(ReproduceConfig.make(quick=True))] == list(EXPERIMENTS)
    both = ReproduceConfig.make(quick=True, recipe="both")
    assert [m for m, _ in experiments(both)] == list(EXPERIMENTS) + ["convmlp_random_beatdbn",
                                                                     "convmlp_pretrained_beatdbn"]
    assert both.finetune_for("beatdbn").recipe == "beatdbn" and both.finetune_for("beatdbn").epochs == 10
    assert both.finetune_for("paper").snapshot_epochs == (7, 10)
    only = ReproduceConfig.make(recipe="beatdbn")
    assert [m for m, _ in experiments(only)][2:] == ["convmlp_random_beatdbn", "convmlp_pretrained_beatdbn"]
    assert only.to_dict()["recipes"] == ["beatdbn"] and only.finetune_for("beatdbn").snapshots == (20, 30)
    with pytest.raises(ParameterError, match="recipe"):
        ReproduceConfig.make(recipe="fancy")


def test_projection_of_a_crop_recipe_scales_with_its_crops_not_its_beats():
    """The beatdbn recipe trains on fixed-size crops with a minimum of updates: on a tiny task its time is no
    guide per training beat; it scales with the crops (updates x batch) the paper's task size would need."""
    from beatdbn.train.finetune import updates_per_epoch
    from beatdbn.pipeline.reproduce import ReproduceConfig, projected_time

    config = ReproduceConfig.make(recipe="both")
    timings = {"key/convmlp_random_beatdbn": 100.0, "key/convmlp_random": 100.0}
    got = projected_time(timings, config, fs=None, n_pretrain=0, train_beats={"key": 48_000},
                         train_tracks={"key": 96})["stages_seconds"]
    ft = config.finetune_for("beatdbn")
    here = updates_per_epoch(96, ft) * 32  # 50 updates an epoch (the minimum) of 32 crops
    there = updates_per_epoch(2400, ft) * 32  # 75 updates an epoch (one pass over 2,400 tracks)
    assert (here, there) == (50 * 32, 75 * 32)
    assert got["key/convmlp_random_beatdbn"] == pytest.approx(100.0 * there / here)
    # the paper's recipe trains on whole tracks: seconds per training beat x the paper's 2,400 x 500 beats
    assert got["key/convmlp_random"] == pytest.approx(100.0 / 48_000 * 2400 * 500)


# ---------------------------------------------------------------------------
# seeds (issue 23 item 1) and --epochs (item 5)

SEEDED = dataclasses.replace(TINY, tasks=TaskConfig(per_key=16, tasks=("key",), seed=0),
                             finetune=FinetuneConfig(learning_rates=(0.05,), epochs=1, snapshot_epochs=(1,)),
                             baselines=BaselineConfig(learning_rates=(5e-4,), epochs=1))


def _light_run(monkeypatch, calls: dict) -> None:
    """Pretraining (a tiny DBN, recording the tracks it was told to leave out) and the report writers (recording
    the folders) replaced: the seeds' own runs, tasks and experiments are real."""
    import beatdbn.pipeline.reproduce as rep
    from beatdbn.models.dbn import ConvDBN

    def pretrain(fs, out, *, exclude, config, dbn_config, **kwargs):
        calls.setdefault("pretrain", []).append((out.parent.name, frozenset(exclude), config.seed, dbn_config.seed))
        ConvDBN(DBNConfig(n_maps_1a=4, n_maps_1b=4, n_maps_3=4, seed=dbn_config.seed)).save(out)
        (out / "plots").mkdir(exist_ok=True)

    class Table:
        @classmethod
        def from_run(cls, run_dir):
            calls.setdefault("table", []).append(run_dir.name)
            return cls()

        def write(self, run_dir):
            pass

    monkeypatch.setattr(rep, "pretrain", pretrain)
    monkeypatch.setattr(rep, "Table1", Table)
    monkeypatch.setattr(rep, "write_report", lambda run_dir: calls.setdefault("report", []).append(run_dir.name))


def _tracks(run, split: str) -> list[str]:
    return (run / "tasks" / "key" / f"{split}.tsv").read_text().splitlines()


def test_seeds_are_whole_runs_each_with_its_split_and_a_rerun_adds_only_new_seeds(demo_corpus, tmp_path,
                                                                                  monkeypatch):
    from beatdbn.pipeline.reproduce import SEEDS_FILE, reproduce_seeds, seed_dir

    calls: dict = {}
    _light_run(monkeypatch, calls)
    out = tmp_path / "run"
    stages = []
    record = reproduce_seeds(demo_corpus["store"], out, seeds=[0, 1], config=SEEDED, scheduler="sync",
                             progress=lambda p: stages.append((p["stage"], p["work_done"], p["work_total"])))
    assert record == json.loads((out / SEEDS_FILE).read_text())
    assert record["seeds"] == [0, 1] and record["finished"] == [0, 1]
    assert "seed" not in json.dumps(record["config"]) and record["config"]["tasks"]["tasks"] == ["key"]
    runs = [seed_dir(out, s) for s in (0, 1)]
    assert [r.name for r in runs] == ["seed-0", "seed-1"]
    for s, run in enumerate(runs):  # each seed: today's single-run layout, with its seed everywhere
        config = json.loads((run / "config.json").read_text())["config"]
        assert config == json.loads(json.dumps(SEEDED.with_seed(s).to_dict()))
        assert {config[k]["seed"] for k in ("tasks", "dbn", "pretrain", "finetune", "baselines")} == {s}
        for model in EXPERIMENTS:
            result = ExperimentResult.load(run / "experiments" / "key" / model)
            assert result.extra["test_track_ids"] == [line.split("\t")[0] for line in _tracks(run, "test")[1:]]
    # different splits, each DBN pretrained without its own split's valid/test tracks
    assert _tracks(runs[0], "test") != _tracks(runs[1], "test")
    pretrained = {name: (exclude, seeds) for name, exclude, *seeds in calls["pretrain"]}
    assert sorted(pretrained) == ["seed-0", "seed-1"]
    for s, run in enumerate(runs):
        exclude, seeds = pretrained[run.name]
        held = {line.split("\t")[0] for split in ("valid", "test") for line in _tracks(run, split)[1:]}
        assert held <= exclude and seeds == [s, s]
    assert pretrained["seed-0"][0] != pretrained["seed-1"][0]
    # each seed trained its own conv MLPs (the seeds in config.json above: split, initial weights, batch order)
    w = [ExperimentResult.load(r / "experiments" / "key" / "convmlp_random").runs[0]["train_loss"] for r in runs]
    assert w[0] != w[1]
    # OUT's Table 1 and report come after the seeds' own
    assert calls["table"] == ["seed-0", "seed-1", "run"] and calls["report"] == ["seed-0", "seed-1", "run"]
    assert [s for s in dict.fromkeys(s for s, *_ in stages) if s.endswith("key/logreg")] == [
        "seed 0: key/logreg", "seed 1: key/logreg"]
    done = [(d, t) for _, d, t in stages]
    assert all(t == 2 for _, t in done) and [d for d, _ in done] == sorted(d for d, _ in done)

    # --seeds 3: seeds 0 and 1 are not touched; only seed 2 is trained
    kept = {p: p.stat().st_mtime_ns for r in runs for p in r.rglob("*") if p.is_file()}
    calls.clear()
    stages.clear()
    record = reproduce_seeds(demo_corpus["store"], out, seeds=[0, 1, 2], config=SEEDED, scheduler="sync",
                             progress=lambda p: stages.append((p["stage"], p["work_done"], p["work_total"])))
    assert record["seeds"] == record["finished"] == [0, 1, 2]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert [name for name, *_ in calls["pretrain"]] == ["seed-2"] and calls["table"] == ["seed-2", "run"]
    assert {s.split(":")[0] for s, *_ in stages} == {"seed 2", "report"}
    assert stages[0][1] == 2 and stages[-1][1:] == (3, 3)  # the two finished seeds count as done
    assert (seed_dir(out, 2) / "experiments" / "key" / "convmlp_pretrained" / "result.json").exists()
    # a rerun with fewer seeds keeps all three and trains nothing
    calls.clear()
    assert reproduce_seeds(demo_corpus["store"], out, seeds=[0], config=SEEDED, scheduler="sync")["seeds"] == [0, 1, 2]
    assert "pretrain" not in calls and calls["table"] == ["run"]


def test_seeds_refuse_other_options_a_single_run_folder_and_a_tasks_folder(demo_corpus, tmp_path, monkeypatch):
    from beatdbn.exceptions import DataError
    from beatdbn.pipeline.reproduce import SEEDS_FILE, reproduce_seeds

    calls: dict = {}
    _light_run(monkeypatch, calls)
    store = demo_corpus["store"]
    out = tmp_path / "seeds"
    out.mkdir()
    other = json.loads(json.dumps({"seeds": [0], "config": {"quick": False}, "finished": [0]}))
    (out / SEEDS_FILE).write_text(json.dumps(other))
    with pytest.raises(DataError, match=r"seeds\.json: this multi-seed run was started with other settings"):
        reproduce_seeds(store, out, seeds=[0, 1], config=SEEDED, scheduler="sync")
    with pytest.raises(DataError, match=r"holds a multi-seed run .*rerun it with --seeds or --seed-list"):
        reproduce(store, out, config=SEEDED, scheduler="sync")  # a single run into a multi-seed folder
    assert json.loads((out / SEEDS_FILE).read_text()) == other and not (out / "seed-1").exists()
    single = tmp_path / "single"
    single.mkdir()
    (single / "config.json").write_text("{}")
    with pytest.raises(DataError, match="holds a single-seed run"):
        reproduce_seeds(store, single, seeds=[0], config=SEEDED, scheduler="sync")
    with pytest.raises(ParameterError, match="a tasks folder holds one split"):
        reproduce_seeds(store, tmp_path / "t", seeds=[0, 1], config=dataclasses.replace(SEEDED, tasks_dir="x"))
    with pytest.raises(ParameterError, match="distinct ints"):
        reproduce_seeds(store, tmp_path / "t", seeds=[1, 1], config=SEEDED)
    assert calls == {}


def test_a_seeds_run_that_fails_at_once_can_be_rerun_with_other_options(demo_corpus, tmp_path, monkeypatch):
    """No seeds.json before a seed has finished: tasks that cannot be built do not lock the folder's options."""
    from beatdbn.exceptions import DataError
    from beatdbn.pipeline.reproduce import SEEDS_FILE, reproduce_seeds

    calls: dict = {}
    _light_run(monkeypatch, calls)
    out = tmp_path / "seeds"
    too_big = dataclasses.replace(SEEDED, tasks=SEEDED.tasks.replace(per_key=10_000))
    with pytest.raises(DataError, match="no task could be built"):
        reproduce_seeds(demo_corpus["store"], out, seeds=[0, 1], config=too_big, scheduler="sync")
    assert not (out / SEEDS_FILE).exists()
    record = reproduce_seeds(demo_corpus["store"], out, seeds=[0], config=SEEDED, scheduler="sync")
    assert record["finished"] == [0] and json.loads((out / SEEDS_FILE).read_text()) == record


def test_seed_options_parse_and_make_each_seeds_config():
    from beatdbn.pipeline.reproduce import parse_seeds

    assert parse_seeds() is None and parse_seeds(seeds=3) == [0, 1, 2]
    assert parse_seeds(seed_list="3,7, 9") == [3, 7, 9] and parse_seeds(seed_list=[4]) == [4]
    for bad in ({"seeds": 0}, {"seed_list": "1,1"}, {"seed_list": "a"}, {"seed_list": ""}, {"seed_list": "-1"},
                {"seed_list": "1.5"}, {"seeds": 2, "seed_list": "3"}):
        with pytest.raises(ParameterError, match="--seed"):
            parse_seeds(**bad)
    # each seed's configuration is make(seed=s) with the same options: every random thing follows the seed
    tasks = TaskConfig(per_key=16, tasks=("key",), seed=0)
    for s in (0, 5):
        assert (ReproduceConfig.make(quick=True, recipe="both", epochs=4, tasks=tasks).with_seed(s)
                == ReproduceConfig.make(quick=True, recipe="both", epochs=4, seed=s, tasks=tasks.replace(seed=s)))


def test_cli_seed_options_say_what_is_wrong(demo_corpus, tmp_path):
    store, out = str(demo_corpus["store"]), str(tmp_path / "run")
    for args, said in ((["--seeds", "2", "--seed-list", "1,2"], "give one"),
                       (["--seeds", "2", "--seed", "4"], "--seed-list 4"),
                       (["--seed-list", "1,x"], "distinct ints"),
                       (["--epochs", "0"], "--epochs 0: must be an int >= 1")):
        result = CliRunner().invoke(app, ["reproduce", store, "--out", out, *args])
        assert result.exit_code == 1 and said in result.output, (args, result.output)
    assert not (tmp_path / "run" / "seeds.json").exists()
    result = CliRunner().invoke(app, ["reproduce", "--help"])
    assert "--seeds" in result.output and "--seed-list" in result.output and "20 of 30" in result.output


def test_epochs_are_recorded_and_used_with_the_snapshot_scaled(demo_corpus, tmp_path, monkeypatch):
    from beatdbn.pipeline.reproduce import snapshot_epoch

    config = ReproduceConfig.make(epochs=12, recipe="both")
    assert config.finetune.epochs == config.finetune_beatdbn.epochs == config.baselines.epochs == 12
    assert config.finetune.snapshots == config.finetune_beatdbn.snapshots == (8, 12)
    assert config.finetune.learning_rates == (0.05, 0.005, 0.0005)  # the rest of the protocol as it was
    quick = ReproduceConfig.make(quick=True, epochs=3)
    assert quick.finetune.snapshots == (2, 3) and quick.baselines.epochs == 3
    assert quick.baselines.learning_rates == (5e-4, 5e-5) and len(quick.finetune.learning_rates) == 2
    assert ReproduceConfig.make(quick=True).finetune.snapshots == (snapshot_epoch(10), 10) == (7, 10)
    assert "epochs" not in ReproduceConfig.make().to_dict()  # older run folders (no --epochs) still resume
    # recorded in config.json, and the trainers train that many epochs
    calls: dict = {}
    _light_run(monkeypatch, calls)
    small = dataclasses.replace(ReproduceConfig.make(quick=True, epochs=2, tasks=SEEDED.tasks),
                                baselines=dataclasses.replace(SEEDED.baselines, epochs=2))
    small = dataclasses.replace(small, finetune=dataclasses.replace(small.finetune, learning_rates=(0.05,)))
    record = reproduce(demo_corpus["store"], tmp_path / "run", config=small, scheduler="sync")
    assert record["config"]["epochs"] == 2 and record["config"]["finetune"]["epochs"] == 2
    assert record["config"]["finetune"]["snapshot_epochs"] == [1, 2]
    conv = ExperimentResult.load(tmp_path / "run" / "experiments" / "key" / "convmlp_random")
    assert [r["epoch"] for r in conv.runs] == [1, 2]
    logreg = ExperimentResult.load(tmp_path / "run" / "experiments" / "key" / "logreg")
    assert [r["epoch"] for r in logreg.runs] == [2]


def test_cli_reproduce_seeds_and_epochs(demo_corpus, tmp_path, monkeypatch):
    """`beatdbn reproduce --seeds 2 --epochs 1`: two seed runs, seeds.json, the epochs recorded, Table 1 of OUT
    printed (pretraining and the HTML report replaced: the seeds' tasks, experiments and Table 1 are real)."""
    import beatdbn.pipeline.reproduce as rep
    from beatdbn.models.dbn import ConvDBN

    def pretrain(fs, out, **kwargs):
        ConvDBN(DBNConfig(n_maps_1a=4, n_maps_1b=4, n_maps_3=4)).save(out)
        (out / "plots").mkdir(exist_ok=True)

    reports = []
    monkeypatch.setattr(rep, "pretrain", pretrain)
    monkeypatch.setattr(rep, "write_report", lambda run_dir: reports.append(run_dir.name))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["reproduce", str(demo_corpus["store"]), "--out", str(out), "--quick",
                                      "--epochs", "1", "--task", "key", "--per-key", "16", "--scheduler", "sync",
                                      "--seeds", "2"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "seeds.json").read_text())
    assert record["seeds"] == record["finished"] == [0, 1] and record["config"]["epochs"] == 1
    for s in (0, 1):
        config = json.loads((out / f"seed-{s}" / "config.json").read_text())["config"]
        assert config["epochs"] == 1 and config["finetune"]["epochs"] == config["baselines"]["epochs"] == 1
        assert config["tasks"]["seed"] == config["finetune"]["seed"] == s
        assert (out / f"seed-{s}" / "table.md").exists()
    assert reports == ["seed-0", "seed-1", "run"] and (out / "table.md").exists()
    assert "Table 1:" in result.output
    # OUT's Table 1 is over the two seeds (evaluate.table reads seeds.json), with its paired comparisons and its
    # warnings printed off a terminal: the 1-epoch conv MLPs stay at chance
    table = json.loads((out / "table.json").read_text())
    assert table["seeds"] == [0, 1] and table["final_epoch"] == 1
    assert "(n=2)" in result.output and "paired: key: conv. MLP" in result.output
    assert "warning: key / conv. MLP without pretraining did not leave chance" in result.output


def test_an_experiments_cost_counts_crops_and_evaluation():
    """The ETAs' and the sweep order's cost model (issue 25): a crop recipe costs its crops (at least
    min_updates updates, however few the tracks), not its tracks' beats; evaluating the 12 transpositions of
    the key task costs more."""
    from beatdbn.experiments import registry as model_kinds

    config = ReproduceConfig.make(recipe="both")
    conv = model_kinds.kind("convmlp")
    crops = [conv.cost(config.finetune_beatdbn, beats, tracks=n, task="genre") for beats, n in ((16_000, 32),
                                                                                                  (160_000, 320))]
    whole = [conv.cost(config.finetune, beats, tracks=n, task="genre") for beats, n in ((16_000, 32), (160_000, 320))]
    assert whole[1] == pytest.approx(10 * whole[0])  # whole tracks: the beats
    assert crops[1] < 1.3 * crops[0] and crops[0] > 5 * whole[0]  # 1,500 updates of 32 crops either way
    assert conv.cost(config.finetune_beatdbn, 160_000, tracks=320, task="key") > 1.5 * crops[1]
