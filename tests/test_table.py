"""Tests of Table 1 (beatdbn.evaluate.table); the report's own tests are in test_report.py.

The results are hand-made with known numbers, so every cell, every bold mark and every
chance level can be checked; the report is built from a fake run directory laid out as
``beatdbn reproduce`` writes it, complete and partial.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from rich.console import Console

from beatdbn.evaluate.report import write_report
from beatdbn.metrics.results import ExperimentResult
from beatdbn.evaluate.table import PAPER_TABLE1, Table1, format_learning_rate, load_results
from beatdbn.exceptions import ParameterError
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
