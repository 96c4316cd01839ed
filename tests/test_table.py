"""Tests of Table 1 (beatdbn.evaluate.table); the report's own tests are in test_report.py.

The results are hand-made with known numbers, so every cell, every bold mark and every
chance level can be checked; the report is built from a fake run directory laid out as
``beatdbn reproduce`` writes it, complete and partial.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from beatdbn.evaluate.report import write_report
from beatdbn.metrics.results import ExperimentResult
from beatdbn.evaluate.table import PAPER_TABLE1, Table1, format_learning_rate, load_results
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.models.dbn import ConvDBN, DBNConfig

CLASSES = {"genre": ["rock", "pop", "jazz", "folk"], "artist": ["a1", "a2", "a3", "a4", "a5"],
           "key": ["C", "D", "E"]}
CHANCE = {"genre": 0.25, "artist": 0.2, "key": 1 / 3}
# test accuracies of the validation-chosen runs: (task, model, epoch) -> (lr, test accuracy)
CHOSEN = {
    ("genre", "naive_bayes", 0): (None, 0.3125),
    ("genre", "logreg", 30): (5e-6, 0.4),
    ("genre", "convmlp_random", 30): (0.005, 0.55),
    ("genre", "convmlp_pretrained", 30): (0.005, 0.5),
    ("genre", "convmlp_random", 20): (0.05, 0.45),
    ("genre", "convmlp_pretrained", 20): (0.005, 0.475),
    ("artist", "naive_bayes", 0): (None, 0.21),
    ("artist", "logreg", 30): (5e-5, 0.3),
    ("artist", "convmlp_random", 30): (0.05, 0.35),
    ("artist", "convmlp_pretrained", 30): (0.05, 0.35),  # a tie: both bold
    ("artist", "convmlp_random", 20): (0.05, 0.3),
    ("artist", "convmlp_pretrained", 20): (0.05, 0.34),
    ("key", "naive_bayes", 0): (None, 0.7),
    ("key", "logreg", 30): (5e-5, 0.9),
    ("key", "convmlp_random", 30): (0.05, 0.8),
    ("key", "convmlp_pretrained", 30): (0.0005, 0.85),
    ("key", "convmlp_random", 20): (0.05, 0.6),
    ("key", "convmlp_pretrained", 20): (0.005, 0.8125),
}
SWEEPS = {"naive_bayes": [None], "logreg": [5e-3, 5e-4, 5e-5, 5e-6, 5e-7],
          "convmlp_random": [0.05, 0.005, 0.0005], "convmlp_pretrained": [0.05, 0.005, 0.0005]}


def make_result(task: str, model: str, *, epochs=None) -> ExperimentResult:
    """An experiment whose validation-chosen run is CHOSEN's; the other runs score lower on
    validation but *higher* on test, so a table that ignored validation would show them."""
    n = len(CLASSES[task])
    r = ExperimentResult(task, model, classes=CLASSES[task], chance=CHANCE[task], seconds=12.0)
    if epochs is None:
        epochs = {"naive_bayes": [0], "logreg": [30]}.get(model, [20, 30])
    for epoch in epochs:
        lr_best, test = CHOSEN.get((task, model, epoch), (SWEEPS[model][0], 0.5))
        for lr in SWEEPS[model]:
            chosen = lr == lr_best
            conf = np.full((n, n), 1) + 6 * np.eye(n, dtype=int)
            row = {"learning_rate": lr, "epoch": epoch, "valid_accuracy": 0.6 if chosen else 0.4,
                   "test_accuracy": test if chosen else 0.99, "confusion": conf.tolist()}
            if model == "naive_bayes":
                row["test_accuracy_sum_log"] = 0.333
            r.runs.append(row)
    return r


def all_results(skip=()):
    return [make_result(t, m) for t in ("genre", "artist", "key") for m in SWEEPS if (t, m) not in skip]


# -- formatting -------------------------------------------------------------------------------


def test_format_learning_rate_uses_the_papers_notation():
    assert format_learning_rate(0.05) == "0.05"
    assert format_learning_rate(0.0005) == "0.0005"
    assert format_learning_rate(5e-6) == "5\u00b710\u207b\u2076"
    assert format_learning_rate(None) == ""


def test_cells_hold_the_validation_chosen_test_accuracy():
    t = Table1(all_results())
    assert t.final_epoch == 30 and t.early_epoch == 20
    for (task, model, epoch), (lr, acc) in CHOSEN.items():
        block = "early" if epoch == 20 else "final"
        c = t.cell(model, block, task)
        assert c.test_accuracy == pytest.approx(acc), (task, model, epoch)
        assert c.learning_rate == lr
    assert t.cell("convmlp_random", "final", "genre").text == "55.00% (0.005)"
    assert t.cell("logreg", "final", "genre").text == "40.00% (5\u00b710\u207b\u2076)"
    assert t.cell("naive_bayes", "final", "genre").text == "31.25%"
    assert t.missing == []


def test_best_per_column_and_block_is_bold():
    t = Table1(all_results())
    best = {(m, b, task) for (m, b), row in t.cells.items() for task, c in row.items() if c.best}
    assert best == {
        ("convmlp_random", "final", "genre"), ("convmlp_pretrained", "early", "genre"),
        ("convmlp_random", "final", "artist"), ("convmlp_pretrained", "final", "artist"),
        ("convmlp_pretrained", "early", "artist"),
        ("logreg", "final", "key"), ("convmlp_pretrained", "early", "key"),
    }
    md = t.to_markdown()
    assert "**55.00%** (0.005)" in md and "**90.00%** (5\u00b710\u207b\u2075)" in md
    assert "**81.25%** (0.005)" in md
    assert "| 80.00% (0.05) |" in md  # key, random, 30 epochs: not bold
    assert md.count("**35.00%**") == 2


def test_chance_row_and_paper_columns():
    t = Table1(all_results())
    assert t.chance == {"genre": 0.25, "artist": 0.2, "key": pytest.approx(1 / 3)}
    md = t.to_markdown()
    chance_line = next(line for line in md.splitlines() if "chance level" in line)
    assert "| 25.00% | 20.00% | 33.33% |" in chance_line
    assert "5.00% (1/20)" in chance_line and "2.00% (1/50)" in chance_line
    # the paper's numbers, transcribed, in their own columns, with the paper's own bolding
    assert t.paper[("naive_bayes", "final")]["genre"].text == "10.02%"
    assert t.paper[("naive_bayes", "final")]["artist"].text == "6.80%"
    assert t.paper[("naive_bayes", "final")]["key"].text == "73.74%"
    assert t.paper[("logreg", "final")]["key"].text == "86.53% (5\u00b710\u207b\u2075)"
    assert t.paper[("convmlp_pretrained", "early")]["key"].text == "84.51% (0.005)"
    paper_best = {(m, b, task) for (m, b), row in t.paper.items() for task, c in row.items() if c.best}
    assert paper_best == {
        ("convmlp_random", "final", "genre"), ("convmlp_pretrained", "final", "artist"), ("logreg", "final", "key"),
        ("convmlp_pretrained", "early", "genre"), ("convmlp_pretrained", "early", "artist"),
        ("convmlp_pretrained", "early", "key"),
    }
    header = md.splitlines()[0]
    assert header.index("*paper:* genre") > header.index("| key |")  # ours first, then the paper's
    nb_line = next(line for line in md.splitlines() if "naive Bayes |" in line)
    ours, _, theirs = nb_line.partition("\u2016")
    assert "31.25%" in ours and "10.02%" not in ours and "10.02%" in theirs


def test_missing_experiments_show_a_dash_and_are_listed():
    t = Table1(all_results(skip={("key", "convmlp_pretrained"), ("genre", "naive_bayes")}))
    assert t.cell("convmlp_pretrained", "final", "key") is None
    assert t.cell("convmlp_pretrained", "early", "key") is None
    assert any("key / conv. MLP with pretraining" in m for m in t.missing)
    assert any("genre / naive Bayes" in m for m in t.missing)
    md = t.to_markdown()
    nb_line = next(line for line in md.splitlines() if "naive Bayes |" in line)
    assert nb_line.split("|")[3].strip() == "\u2014"
    # the best key cell of the early block is now the random one
    assert t.cell("convmlp_random", "early", "key").best
    empty = Table1([])
    assert all(c is None for row in empty.cells.values() for c in row.values())
    assert len(empty.missing) == 12


def test_quick_run_epochs_are_inferred_and_labelled():
    rs = [make_result("key", "convmlp_random", epochs=[2, 4]), make_result("key", "logreg", epochs=[3])]
    t = Table1(rs)
    assert (t.final_epoch, t.early_epoch) == (4, 2)
    assert t.block_label("final") == "4 epochs (paper: 30)"
    c = t.cell("logreg", "final", "key")
    assert c.epoch == 3 and "epoch 3" in c.note
    assert "\u2020" in t.to_markdown()


def test_to_dict_is_json_and_write(tmp_path):
    t = Table1(all_results(skip={("artist", "logreg")}))
    d = json.loads(json.dumps(t.to_dict()))
    row = next(r for r in d["rows"] if r["model"] == "convmlp_pretrained" and r["block"] == "early")
    assert row["epoch"] == 20
    assert row["cells"]["key"]["test_accuracy"] == pytest.approx(0.8125)
    assert row["cells"]["key"]["learning_rate"] == 0.005 and row["cells"]["key"]["best"] is True
    lr_row = next(r for r in d["rows"] if r["model"] == "logreg")
    assert lr_row["cells"]["artist"] is None
    prow = next(r for r in d["paper"]["rows"] if r["model"] == "naive_bayes")
    assert prow["cells"]["key"]["test_accuracy"] == pytest.approx(0.7374)
    assert d["chance"]["artist"] == 0.2
    paths = t.write(tmp_path / "t")
    assert json.loads(paths["json"].read_text()) == d
    assert "| 85.00% (0.0005) |" in paths["markdown"].read_text()


def test_to_rich_renders_the_numbers():
    t = Table1(all_results())
    console = Console(file=io.StringIO(), width=200, record=True)
    console.print(t.to_rich())
    text = console.export_text()
    assert "55.00% (0.005)" in text and "86.53%" in text and "25.00%" in text


def test_bad_inputs():
    with pytest.raises(ParameterError, match="ExperimentResult"):
        Table1([{"task": "key"}])
    with pytest.raises(ParameterError, match="tasks"):
        Table1([], tasks=("mood",))
    t = Table1([ExperimentResult("mood", "logreg"), make_result("key", "logreg"), make_result("key", "logreg")])
    assert any("mood" in n for n in t.notes) and any("twice" in n for n in t.notes)


def test_load_results_skips_unreadable_files(tmp_path):
    make_result("key", "logreg").save(tmp_path / "key" / "logreg")
    (tmp_path / "genre" / "logreg").mkdir(parents=True)
    (tmp_path / "genre" / "logreg" / "result.json").write_text("{not json")
    results, problems = load_results(tmp_path)
    assert [(r.task, r.model) for r in results] == [("key", "logreg")]
    assert len(problems) == 1 and "genre" in problems[0]


# -- report ------------------------------------------------------------------------------------------


def _write_metrics(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def make_run_dir(root, *, tasks=("genre", "artist", "key"), with_dbn=True, with_config=True):
    root.mkdir(parents=True, exist_ok=True)
    if with_config:
        (root / "config.json").write_text(json.dumps({
            "config": {"quick": True, "seed": 0}, "versions": {"python": "3.11.2", "torch": "2.13.0"},
            "git_commit": "abc1234", "timings": {"tasks": 3.5, "pretrain": 125.0, "experiments": 3725.0},
            "projected": {"text": "full scale: about 1 h 40 min", "seconds": 6000}}))
    (root / "tasks").mkdir()
    (root / "tasks" / "tasks.json").write_text(json.dumps({"tasks": {
        t: {"classes": len(CLASSES[t]), "chance": 1 / len(CLASSES[t]),
            "counts": {"train": 80, "valid": 10, "test": 10}} for t in tasks}, "errors": {}}))
    if with_dbn:
        dbn = ConvDBN(DBNConfig(n_maps_1a=4, n_maps_1b=4, n_maps_3=4))
        dbn.save(root / "dbn")
        rows = [{"stage": s, "pass": 1, "batch": i, "tracks": 4 * i, "beats": 2000 * i,
                 "reconstruction_error": 1 / i, "mean_hidden": 0.1 / i,
                 "free_energy_data": "nan" if s == "1b" else -i, "free_energy_recon": "nan" if s == "1b" else 1 - i,
                 "seconds": i} for s in ("1a", "1b", "3") for i in range(1, 6)]
        _write_metrics(root / "dbn" / "pretrain.csv", rows)
    for task in tasks:
        for model in SWEEPS:
            make_result(task, model).save(root / "experiments" / task / model)
            if model == "naive_bayes":
                continue
            for lr in SWEEPS[model][:2]:
                _write_metrics(root / "experiments" / task / model / f"lr-{lr}" / "metrics.csv", [
                    {"epoch": e, "learning_rate": lr, "train_loss": 2 / e, "train_accuracy": 0.1 * e / 3,
                     "valid_accuracy": 0.1 * e / 3, "seconds": 1.0} for e in range(1, 31)])
    return root


# -- real corpora: scales, unbuilt tasks, split protocol, recipes, key scores ------------------


def test_unbuilt_task_is_a_dash_with_its_reason_and_scales_in_the_header():
    results = [r for r in all_results() if r.task != "genre"]
    why = "genre task: --scale auto needs two classes with at least 3 tracks each (--min-per-class), but only 1"
    t = Table1(results, scales={"artist": "14\u00d72", "key": "12\u00d710"}, unbuilt={"genre": why},
               chance=CHANCE)
    assert all(t.cell(m, b, "genre") is None for m, b in t.rows)
    assert not any("genre" in m for m in t.missing)  # listed once, in the footnote, not as missing results
    md = t.to_markdown()
    assert f"genre: not built on this corpus (\u2014 in every row): {why}" in md
    header = md.splitlines()[0]
    assert "| artist 14\u00d72 |" in header and "| key 12\u00d710 |" in header
    assert "*paper:* genre 20\u00d7250" in header and "*paper:* artist 50\u00d7100" in header
    assert "key 12\u00d710" in t.to_html() and "artist 14\u00d72" in _rich_text(t)
    assert t.to_dict()["unbuilt"] == {"genre": why} and t.to_dict()["scales"]["key"] == "12\u00d710"


def _rich_text(table) -> str:
    console = Console(file=io.StringIO(), width=300, record=True)
    console.print(table.to_rich())
    return console.export_text()


def test_split_protocol_footnote():
    assert "Genre splits: random per class, as in the paper" in Table1(all_results()).to_markdown()
    filtered = Table1(all_results(), protocols={"genre": "artist-filtered"})
    assert "Genre splits: artist-filtered (all of an artist's tracks in one split)" in filtered.to_markdown()


def test_beatdbn_recipe_rows():
    extra = []
    for r in (make_result("key", "convmlp_random"), make_result("key", "convmlp_pretrained")):
        r.model += "_beatdbn"
        r.runs = [dict(row, test_accuracy=row["test_accuracy"] / 2) for row in r.runs]
        extra.append(r)
    both = Table1(all_results() + extra)
    assert both.recipes == ("paper", "beatdbn")
    assert both.cell("convmlp_random_beatdbn", "final", "key").test_accuracy == pytest.approx(0.4)
    assert both.cell("convmlp_pretrained_beatdbn", "early", "key").test_accuracy == pytest.approx(0.40625)
    md = both.to_markdown()
    assert "conv. MLP (beatdbn recipe), random init" in md and "conv. MLP (beatdbn recipe), pretrained" in md
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert sum("conv. MLP (beatdbn recipe), pretrained" in line for line in rows) == 2  # both epoch blocks
    only = Table1([r for r in all_results() if not r.model.startswith("convmlp")] + extra)
    assert only.recipes == ("beatdbn",)
    assert [m for m, _ in only.rows].count("convmlp_random") == 0
    assert "conv. MLP with pretraining" not in only.to_markdown()
    with pytest.raises(ParameterError, match="recipes"):
        Table1([], recipes=("fancy",))


def test_key_scores_in_the_footnotes_and_report(tmp_path):
    results = all_results()
    for r in results:
        if r.task == "key":
            r.classes = ["C", "D", "E", "F", "F#", "G", "G#", "A", "A#", "B", "C#", "D#"]
            for row in r.runs:  # every track C, predicted C (1.0) or G (0.5): score = (3 + 0.5) / 4
                conf = np.zeros((12, 12), dtype=int)
                conf[0, 0], conf[0, 5] = 3, 1
                row["confusion"] = conf.tolist()
            r.add_key_scores()
    t = Table1(results)
    scores = t.key_scores()
    assert len(scores) == len(t.rows) and all(s == pytest.approx(0.875) for _, _, s in scores)
    assert "MIREX weighted key score" in t.to_markdown() and "naive Bayes 0.875" in t.to_markdown()
    run = tmp_path / "run"
    for r in results:
        r.save(run / "experiments" / r.task / r.model)
    write_report(run)
    md = (run / "report.md").read_text()
    assert "## Key scores" in md and "0.8750" in md and "ascending only" in md


# -- flat layout: today's output; seeds, intervals, paired comparisons, chance (issue 23 items 1, 2, 5) --------


def test_a_flat_run_of_old_results_gives_todays_table(tmp_path):
    """A single run (no seeds.json) of results without per-track predictions: the Markdown written before
    seeds existed (tests/table1_flat_before.md, from the code of 2026-12-05), plus one footnote saying the
    differences are untested."""
    from beatdbn.evaluate.table import NO_PREDICTIONS

    before = (Path(__file__).parent / "table1_flat_before.md").read_text()
    chosen = dict(CHOSEN)
    try:
        CHOSEN[("artist", "naive_bayes", 0)] = (None, 0.26)  # clear of chance, as in the file
        run = make_run_dir(tmp_path / "run", with_dbn=False)
    finally:
        CHOSEN.clear()
        CHOSEN.update(chosen)
    md = Table1.from_run(run).to_markdown()
    assert f"- {NO_PREDICTIONS}\n" in md
    assert md.replace(f"- {NO_PREDICTIONS}\n", "") == before


N_TEST = 60


def _predicted(targets, correct, n_classes):
    return [t if i in correct else (t + 1) % n_classes for i, t in enumerate(targets)]


def pred_result(task, model, seed, correct_by_epoch, *, classes, lr=0.005, chance=None):
    """A result whose rows carry per-track predictions: at each epoch the tracks in ``correct_by_epoch[epoch]``
    (indices of the seed's test tracks) are right, the others wrong."""
    n = len(classes)
    targets = [(i + seed) % n for i in range(N_TEST)]
    r = ExperimentResult(task, model, classes=list(classes), chance=1 / n if chance is None else chance)
    r.extra.update(test_track_ids=[f"TR{seed}{task}{i:03d}" for i in range(N_TEST)], test_targets=targets)
    for epoch, correct in correct_by_epoch.items():
        pred = _predicted(targets, set(correct), n)
        r.runs.append({"learning_rate": None if model == "naive_bayes" else lr, "epoch": epoch,
                       "valid_accuracy": 0.5, "test_accuracy": len(set(correct)) / N_TEST, "test_predicted": pred})
    return r


KEY3 = ["C", "D", "E"]


def seed_results(seed):
    """Key (3 classes, chance 1/3) and genre (4 classes, chance 1/4), 60 test tracks per seed.

    key: naive Bayes 21/60 and the random conv MLP 20/60 (at chance); windowed LR 40+2s; the pretrained conv MLP
    right on LR's tracks and 10 more (a real difference). genre: LR right on tracks 0..29, the pretrained conv MLP
    on 2..32 (3 vs 2 discordant pairs a seed: not a real difference), random init 24/60.
    """
    k = 2 * seed
    key = [pred_result("key", "naive_bayes", seed, {0: range(21)}, classes=KEY3),
           pred_result("key", "logreg", seed, {4: range(40 + k)}, classes=KEY3, lr=5e-5),
           pred_result("key", "convmlp_random", seed, {3: range(20), 4: range(20)}, classes=KEY3),
           pred_result("key", "convmlp_pretrained", seed, {3: range(42 + k), 4: range(50 + k)}, classes=KEY3)]
    g4 = ["rock", "pop", "jazz", "folk"]
    genre = [pred_result("genre", "naive_bayes", seed, {0: range(18)}, classes=g4),
             pred_result("genre", "logreg", seed, {4: range(30)}, classes=g4, lr=5e-5),
             pred_result("genre", "convmlp_random", seed, {3: range(24), 4: range(24)}, classes=g4),
             pred_result("genre", "convmlp_pretrained", seed, {3: range(2, 33), 4: range(2, 33)}, classes=g4)]
    return key + genre


def write_seeds_run(root, seeds=(0, 1, 2), *, finished=None, config=None, results=seed_results):
    """OUT as `beatdbn reproduce --seeds` writes it: seeds.json and one single-run folder per seed."""
    config = {"quick": True, "recipe": "paper", "recipes": ["paper"], "tasks": {"tasks": ["genre", "key"]},
              **(config or {})}
    root.mkdir(parents=True, exist_ok=True)
    (root / "seeds.json").write_text(json.dumps({"seeds": list(seeds), "config": config,
                                                 "finished": list(seeds if finished is None else finished)}))
    for s in seeds:
        run = root / f"seed-{s}"
        (run / "tasks").mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"config": dict(config, seed=s)}))
        (run / "tasks" / "tasks.json").write_text(json.dumps({
            "tasks": {"key": {"chance": 1 / 3, "scale": "3\u00d7100"}, "genre": {"chance": 0.25, "scale": "4\u00d775"}},
            "errors": {}, "config": {"tasks": ["genre", "key"]}}))
        for r in results(s):
            r.save(run / "experiments" / r.task / r.model)
    return root


def test_seeds_layout_cells_are_mean_sd_and_interval(tmp_path):
    from beatdbn.metrics.intervals import summarize

    out = write_seeds_run(tmp_path / "out")
    t = Table1.from_run(out)
    assert t.multi_seed and t.seed_ids == (0, 1, 2) and t.tasks == ("genre", "key")
    assert (t.final_epoch, t.early_epoch) == (4, 3)
    lr = t.cell("logreg", "final", "key")
    expected = summarize([40 / 60, 42 / 60, 44 / 60], tracks=60)
    assert lr.test_accuracy == pytest.approx(0.7) and lr.summary.sd == pytest.approx(1 / 30)
    assert (lr.summary.low, lr.summary.high) == (pytest.approx(expected.low), pytest.approx(expected.high))
    assert lr.seeds == (0, 1, 2) and lr.learning_rate == 5e-5
    assert lr.text == f"70.00 \u00b1 3.33% (n=3) [{100 * expected.low:.2f}\u2013{100 * expected.high:.2f}]"
    assert t.chance == {"genre": 0.25, "key": pytest.approx(1 / 3)}
    d = json.loads(json.dumps(t.to_dict()))
    assert d["seeds"] == [0, 1, 2]
    cell = next(r for r in d["rows"] if r["model"] == "logreg")["cells"]["key"]
    assert cell["interval"]["method"] == "t over 3 seeds" and cell["interval"]["values"] == pytest.approx(
        [40 / 60, 42 / 60, 44 / 60]) and cell["seeds"] == [0, 1, 2]


def test_bold_only_beyond_the_interval_and_never_at_chance(tmp_path):
    from beatdbn.metrics.intervals import wilson_interval

    t = Table1.from_run(write_seeds_run(tmp_path / "out"))
    best = {(m, b, task) for (m, b), row in t.cells.items() for task, c in row.items() if c is not None and c.best}
    # key: pretrained beats LR on 30 pooled pairs to 0 (bold); early block: the pretrained snapshot against the
    # random one at chance (bold). genre: pretrained 51.67% vs LR 50% is 9 vs 6 discordant pairs: nobody bold,
    # and the early block's top (pretrained) against random init: 27 vs 9 pairs pooled, p < 0.05: bold
    assert best == {("convmlp_pretrained", "final", "key"), ("convmlp_pretrained", "early", "key"),
                    ("convmlp_pretrained", "early", "genre")}
    assert t.cell("convmlp_random", "final", "key").at_chance and t.cell("naive_bayes", "final", "key").at_chance
    assert not t.cell("logreg", "final", "key").at_chance
    genre_top = t.paired("genre", ("convmlp_pretrained", "final"), ("logreg", "final"))
    assert (genre_top.a_only, genre_top.b_only, genre_top.pairs) == (9, 6, 180) and not genre_top.real
    md = t.to_markdown()
    assert "beyond the interval" in md and "\u2248chance: did not leave chance" in md
    # the random conv MLP on key: 20 of 60 in every seed (sd 0), its interval that of the 180 pooled tracks
    low, high = wilson_interval(60, 180)
    assert f"| 33.33 \u00b1 0.00% (n=3) [{100 * low:.2f}\u2013{100 * high:.2f}] \u2248chance \u25bc |" in md
    assert t.cell("convmlp_random", "final", "key").summary.method == (
        "t over 3 seeds, widened to Wilson over 180 pooled test tracks")


def test_all_at_chance_is_never_bold_even_without_predictions():
    """The quick synthetic run of the issue: the paper's conv MLPs at chance were printed bold as the best of
    their block. Old results (no predictions): the top of a block is bold only when it left chance."""
    rs = [make_result("key", m, epochs=e) for m, e in (("convmlp_random", [2, 4]), ("convmlp_pretrained", [2, 4]))]
    for r in rs:
        for row in r.runs:
            row["test_accuracy"] = 1 / 3 if row["valid_accuracy"] == 0.6 else 0.3
    t = Table1(rs)
    assert not any(c.best for row in t.cells.values() for c in row.values() if c is not None)
    assert all(t.cell(m, b, "key").at_chance for m, b in t.rows if m.startswith("convmlp"))
    ours = [line.split("\u2016")[0] for line in t.to_markdown().splitlines() if line.startswith("|  | conv. MLP")]
    assert ours and not any("**" in line for line in ours) and all("\u2248chance" in line for line in ours)


def test_paired_comparisons_with_windowed_lr_in_every_output(tmp_path):
    t = Table1.from_run(write_seeds_run(tmp_path / "out"))
    p = t.comparisons[("key", "convmlp_pretrained", "final")]
    assert (p.a_only, p.b_only, p.pairs, p.seeds) == (30, 0, 180, 3) and p.real and p.difference > 0
    r = t.comparisons[("key", "convmlp_random", "final")]
    assert r.real and r.difference < 0  # at chance, below LR
    lines = t.comparison_lines
    assert len(lines) == 8  # 2 tasks x 2 conv MLPs x 2 blocks
    key_line = next(line for line in lines if line.startswith("key: conv. MLP, pretrained \u2212"))
    assert "+16.67 points" in key_line and "McNemar, 30 vs 0 of 180 pairs, 3 seeds" in key_line and "real" in key_line
    md = t.to_markdown()
    assert "Paired comparisons with windowed logistic regression" in md and key_line in md
    pre_line = next(line for line in md.splitlines() if line.startswith("|  | conv. MLP with pretraining"))
    assert pre_line.split("\u2016")[0].rstrip(" |").endswith("\u25b2")  # pretrained above LR on key: marked
    assert "\u25b2 / \u25bc" in md
    d = json.loads(json.dumps(t.to_dict()))
    comp = next(c for c in d["comparisons"] if c["task"] == "key" and c["model"] == "convmlp_pretrained"
                and c["block"] == "final")
    assert comp["versus"] == "logreg" and comp["paired"]["a_only"] == 30 and comp["paired"]["real"] is True
    cell = next(r for r in d["rows"] if r["model"] == "convmlp_pretrained" and r["block"] == "final")["cells"]["key"]
    assert cell["versus_logreg"]["p_value"] < 1e-6
    page = t.to_html()
    assert "at-chance" in page and "minus windowed LR: +16.67 points" in page and "\u25b2" in page
    text = _rich_text(t)
    assert "paired: key: conv. MLP, pretrained" in text and "warning: key / conv. MLP without pretraining" in text
    assert "70.00 \u00b1 3.33%" in text


def test_warnings_say_what_would_help_from_the_runs_config(tmp_path):
    t = Table1.from_run(write_seeds_run(tmp_path / "out"))
    w = [x for x in t.warnings if x.startswith("key / conv. MLP without pretraining")]
    assert len(w) == 1 and "did not leave chance" in w[0] and "each: 33.33%, 33.33%, 33.33%" in w[0]
    assert "--epochs 30" in w[0] and "this run trained 4, --quick" in w[0] and "--recipe beatdbn" in w[0]
    assert any(x.startswith("key / naive Bayes") and "larger task scale" in x for x in t.warnings)
    assert not any("windowed logistic" in x for x in t.warnings)
    assert "Warnings:" in t.to_markdown() and json.loads(json.dumps(t.to_dict()))["warnings"] == t.warnings
    # a run with the beatdbn rows and --epochs: no recipe advice for them, the epochs it was given
    beat = Table1.from_run(write_seeds_run(tmp_path / "b", config={"quick": False, "epochs": 4,
                                                                   "recipes": ["paper", "beatdbn"]}))
    w = next(x for x in beat.warnings if x.startswith("key / conv. MLP without pretraining"))
    assert "this run trained 4, --epochs 4" in w and "its beatdbn-recipe rows" in w


def test_a_single_run_with_predictions(tmp_path):
    """One seed's folder is a flat run: today's cells, bold decided by the paired test, no chance bold."""
    out = write_seeds_run(tmp_path / "out", seeds=(0,))
    t = Table1.from_run(out / "seed-0")
    assert not t.multi_seed and t.cell("logreg", "final", "key").text == "66.67% (5\u00b710\u207b\u2075)"
    c = t.cell("convmlp_pretrained", "final", "key")
    assert c.best and c.text == "83.33% (0.005)" and c.summary.method == "Wilson over 60 test tracks"
    assert t.cell("naive_bayes", "final", "key").at_chance  # 21/60 <= 1/3 + 1/60
    assert not t.cell("convmlp_pretrained", "final", "genre").best  # 3 vs 2 discordant pairs
    assert "beyond the interval" in t.footnotes[0] and "its learning rate in parentheses" in t.footnotes[0]
    assert any("at most chance plus one test track" in n for n in t.footnotes)
    assert t.comparisons[("key", "convmlp_pretrained", "final")].seeds == 1


def test_seeds_layout_partial_and_old_results(tmp_path):
    """An unfinished seed is left out; results without predictions load, show, and are untested."""
    def old(seed):
        rs = seed_results(seed)
        for r in rs:
            r.extra.clear()
            for row in r.runs:
                row.pop("test_predicted")
        return rs

    out = write_seeds_run(tmp_path / "out", seeds=(0, 1, 2), finished=(0, 2), results=old)
    t = Table1.from_run(out)
    assert t.seed_ids == (0, 2)
    lr = t.cell("logreg", "final", "key")
    assert lr.summary.n == 2 and lr.test_accuracy == pytest.approx(42 / 60)
    assert all(p is None for p in t.comparisons.values()) and t.comparison_lines == []
    assert t.bold_rules == {"untested"} and t.cell("convmlp_pretrained", "final", "key").best
    from beatdbn.evaluate.table import NO_PREDICTIONS
    assert NO_PREDICTIONS in t.footnotes and "bold, untested" in t.footnotes[0]
    # one finished seed: its Wilson interval; a seed without a result is listed as missing
    one = write_seeds_run(tmp_path / "one", seeds=(5, 6), finished=(5, 6))
    (one / "seed-6" / "experiments" / "key" / "logreg" / "result.json").unlink()
    t1 = Table1.from_run(one)
    assert t1.cell("logreg", "final", "key").summary.method == "Wilson over 60 test tracks"
    assert any("key / windowed logistic regression: no result in seed 6" in m for m in t1.missing)
    none = write_seeds_run(tmp_path / "none", seeds=(0,), finished=())
    empty = Table1.from_run(none)
    assert empty.seed_ids == () and "no finished seed" in " ".join(empty.notes)
    (none / "seeds.json").write_text("{not json")
    with pytest.raises(DataError, match="not a seeds record"):
        Table1.from_run(none)
    with pytest.raises(ParameterError, match="either flat"):
        Table1([make_result("key", "logreg")], seeds={0: []})
