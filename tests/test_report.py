"""The run report (beatdbn.evaluate.report): complete, partial and empty runs, and the posteriors over time.

The fake run directories come from test_table's helpers (the same hand-made results Table 1 is tested on).
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from beatdbn.data.splits import load_split, padded_batch
from beatdbn.evaluate.examples import task_examples
from beatdbn.evaluate.report import format_duration, write_report
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.models.convmlp import ConvMLP, MLPConfig
from beatdbn.plots.posterior import plot_posterior_over_time
from beatdbn.store.reader import FeatureStore
from beatdbn.tasks.build import load_task
from test_table import make_run_dir  # noqa: E402  (tests/ is on sys.path under pytest)


def _linked_images(text, pattern):
    return re.findall(pattern, text)


def test_format_duration():
    assert format_duration(4.2) == "4.2 s"
    assert format_duration(75.3) == "1 min 15 s"
    assert format_duration(3725) == "1 h 02 min"
    assert format_duration("n/a") == "n/a" and format_duration(float("nan")) == "nan"


def test_report_of_a_complete_run(tmp_path):
    run = make_run_dir(tmp_path / "run")
    out = write_report(run)
    assert out == run / "report.html"
    md = (run / "report.md").read_text()
    page = out.read_text()
    for text in ("**55.00%** (0.005)", "80.00% (0.05)", "**90.00%** (5\u00b710\u207b\u2075)", "| 25.00% | 20.00% | 33.33% |",
                 "73.74%", "abc1234", "2 min 05 s", "1 h 02 min", "full scale: about 1 h 40 min", "torch"):
        assert text in md, text
    assert "<b>55.00%</b>" in page and "paper (Dieleman et al. 2011, Table 1)" in page
    md_links = _linked_images(md, r"\]\((report/[^)]+\.png)\)")
    html_links = _linked_images(page, r'src="(report/[^"]+\.png)"')
    assert set(md_links) == set(html_links)
    names = {link.split("/")[-1] for link in md_links}
    assert {"filters_1a.png", "filters_1b.png", "filters_3.png", "pretraining.png",
            "curves_genre_convmlp.png", "curves_key_logreg.png",
            "confusion_artist_convmlp_pretrained.png", "confusion_key_naive_bayes.png"} <= names
    assert len([n for n in names if n.startswith("confusion_")]) == 12
    for link in md_links:
        img = imread(run / link)
        assert min(img.shape[:2]) > 100
    assert "key / conv. MLP with pretraining, lr 0.0005, epoch 30: test 85.00%" in md
    # no model files in this fake run: the posterior section says so, in the missing list too
    assert "## Posteriors over time" in md and "posteriors over time: key" in md


def test_report_of_a_partial_run_lists_what_is_missing(tmp_path):
    run = make_run_dir(tmp_path / "run", tasks=("key",), with_dbn=False, with_config=False)
    (run / "experiments" / "key" / "convmlp_pretrained" / "result.json").unlink()
    write_report(run)
    md = (run / "report.md").read_text()
    missing = md.split("## Missing from this run", 1)[1].split("\n## ", 1)[0]
    for text in ("config.json not found", "genre / naive Bayes: no result", "artist / conv. MLP with pretraining",
                 "key / conv. MLP with pretraining: no result", "dbn/pretrain.csv not found", "DBN filters"):
        assert text in missing, text
    assert "key / windowed logistic regression" not in missing
    assert "90.00%" in md
    links = _linked_images(md, r"\]\((report/[^)]+\.png)\)")
    assert "report/curves_key_convmlp.png" in links and not any("filters" in link for link in links)
    for link in links:
        assert (run / link).is_file()


def test_report_of_an_empty_dir_and_embedding(tmp_path):
    (tmp_path / "empty").mkdir()
    page = write_report(tmp_path / "empty", embed_images=True).read_text()
    assert "Missing from this run" in page and page.count("\u2014") >= 18
    run = make_run_dir(tmp_path / "run", tasks=("key",), with_dbn=False)
    page = write_report(run, embed_images=True).read_text()
    assert 'src="data:image/png;base64,' in page and 'src="report/' not in page
    with pytest.raises(DataError, match="not a run directory"):
        write_report(tmp_path / "absent")


def test_posterior_plot_names_beats_and_bars(tmp_path):
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    out = plot_posterior_over_time(p, np.array([[0, 51], [16, 67], [32, 80]]), ["C", "G", "D"], tmp_path / "p.png",
                                   true_label="G", title="key: a track")
    assert imread(out).shape[1] > 400
    with pytest.raises(ParameterError):
        plot_posterior_over_time(p, np.zeros((2, 2)), ["C", "G", "D"], tmp_path / "q.png")


def test_report_shows_a_correct_and_a_wrong_track_per_task(demo_corpus, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_corpus["tasks"], run / "tasks")
    (run / "config.json").write_text(json.dumps({"store": str(demo_corpus["store"])}))
    task = load_task(run / "tasks", "key")
    model = ConvMLP(MLPConfig(n_classes=12, classes=tuple(task.classes), task="key", n_maps_1a=8, n_maps_1b=8,
                              n_maps_3=8, seed=0))
    train = load_split(FeatureStore.open(demo_corpus["store"]), task, "train")
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    x, lengths = padded_batch(train.features)
    for _ in range(20):  # some right, some wrong
        opt.zero_grad()
        logits, l4 = model(x, lengths)
        ConvMLP.loss(logits, l4, torch.as_tensor(train.labels)).backward()
        opt.step()
    model.save(run / "experiments" / "key" / "convmlp_pretrained" / "model")
    examples = task_examples(run, "key")
    assert examples and all(e.correct == (e.true_label == e.predicted) for e in examples)
    assert [e.correct for e in examples] in ([True, False], [True], [False])
    write_report(run)
    md = (run / "report.md").read_text()
    section = md.split("## Posteriors over time", 1)[1].split("\n## ", 1)[0]
    for e in examples:
        what = "correct" if e.correct else "wrong"
        assert f"report/posterior_key_{what}.png" in section and f"true {e.true_label}" in section
        assert imread(run / "report" / f"posterior_key_{what}.png").shape[0] > 100


# -- seeds (issue 23 items 1, 2, 5) ---------------------------------------------------------------------------


def test_report_of_a_seeds_run(tmp_path):
    from matplotlib.image import imread as read_png

    from test_table import write_seeds_run

    out = write_seeds_run(tmp_path / "out")
    (out / "seed-0" / "report.html").write_text("<html></html>")  # reproduce writes each seed's own report
    page = write_report(out).read_text()
    md = (out / "report.md").read_text()
    # Table 1 over seeds, the plot of each seed's point, each seed's numbers
    assert "70.00 \u00b1 3.33% (n=3)" in md and "## Seeds" in md and "report/seeds.png" in md
    assert read_png(out / "report" / "seeds.png").shape[1] > 600
    seeds = md.split("## Seeds", 1)[1].split("\n## ", 1)[0]
    assert "| seed 0 | seed 1 | seed 2 |" in seeds and "| key | windowed LR | 66.67% | 70.00% | 73.33% | 70.00% |" in seeds
    assert "t over 3 seeds" in seeds
    # the paired comparisons, the warnings (at the top and under the table), the per-seed reports
    paired = md.split("## Paired comparisons", 1)[1].split("\n## ", 1)[0]
    assert "| key | conv. MLP with pretraining | +16.67 | [+12.81, +16.67] | < 0.001 | 30 / 0 | 180 | 3 | above LR |" \
        in paired
    assert "| genre | conv. MLP with pretraining | +1.67 | [-2.95, +5.61] | 0.607 | 9 / 6 | 180 | 3 | not shown to differ |" \
        in paired
    top = md.split("## Models that did not leave chance", 1)[1].split("\n## ", 1)[0]
    assert "key / conv. MLP without pretraining did not leave chance" in top and "--recipe beatdbn" in top
    assert "\u26a0 key / conv. MLP without pretraining" in page and "warn-box" in page
    assert "[seed 0](seed-0/report.html)\n" in md and "[seed 1](seed-1/report.html) (not written)" in md
    assert 'href="#paired-comparisons"' in page and 'href="#seeds"' in page and "seeds 0, 1, 2" in page
    # nothing is missing in a complete seeds run; the run's options come from seeds.json
    assert "## Missing from this run" not in md and '"quick": true' in md


def test_report_of_a_seeds_run_without_finished_seeds_or_with_a_damaged_record(tmp_path):
    from test_table import write_seeds_run

    out = write_seeds_run(tmp_path / "out", seeds=(0,), finished=())
    md_path = write_report(out).with_suffix(".md")
    assert "seeds: none finished yet" in md_path.read_text()
    (out / "seeds.json").write_text("[")
    write_report(out)
    assert "not a seeds record" in md_path.read_text()


def test_report_of_a_single_run_has_intervals_and_paired_comparisons(tmp_path):
    from test_table import write_seeds_run

    run = write_seeds_run(tmp_path / "out", seeds=(0,)) / "seed-0"
    md = (write_report(run).with_suffix(".md")).read_text()
    assert "## Intervals" in md and "Wilson over 60 test tracks" in md and "report/seeds.png" in md
    paired = md.split("## Paired comparisons", 1)[1].split("\n## ", 1)[0]
    assert "| key | conv. MLP with pretraining | +16.67 |" in paired and "| 1 | above LR |" in paired
    assert "## Learning curves" in md and "## Each seed's report" not in md


def test_plot_seeds_refuses_nothing_to_draw(tmp_path):
    from beatdbn.plots.seeds import SeedRow, plot_seeds

    with pytest.raises(ParameterError, match="no Table 1 cell"):
        plot_seeds({"key": []}, tmp_path / "s.png")
    with pytest.raises(ParameterError, match="no seed value"):
        plot_seeds({"key": [SeedRow("LR", [], [], 0.5, 0.4, 0.6)]}, tmp_path / "s.png")
    one = plot_seeds({"key": [SeedRow("LR", [0.5], [], 0.5, 0.4, 0.6, best=True)]}, tmp_path / "one.png",
                     chance={"key": None})
    assert imread(one).shape[0] > 100


def _curve_dir(path):
    path.mkdir(parents=True)
    curve = {"task": "key", "classes": list("ABC"), "chance": 1 / 3, "config": {"seeds": [0, 1]},
             "summary": {"convmlp_random_beatdbn": [{"n": 1, "values": [0.5, 0.7], "mean": 0.6, "sd": 0.141,
                                                     "low": 0.4, "high": 0.8}],
                         "logreg": [{"n": 1, "values": [0.3, 0.4], "mean": 0.35, "sd": 0.07, "low": 0.2,
                                     "high": 0.5}]},
             "paired": [{"a": "convmlp_random_beatdbn", "b": "logreg", "n": 1, "difference": 0.25, "low": 0.1,
                         "high": 0.4, "p_value": 0.002, "real": True}]}
    (path / "curve.json").write_text(json.dumps(curve))
    return path


def test_report_shows_a_label_efficiency_curve(tmp_path):
    from typer.testing import CliRunner

    from beatdbn.cli import app

    run = make_run_dir(tmp_path / "run", tasks=("key",), with_dbn=False)
    curve = _curve_dir(tmp_path / "curve")
    page = write_report(run, curves=[curve]).read_text()
    md = (run / "report.md").read_text()
    assert "Label-efficiency curve: key" in page and (run / "report" / "label-curve-key.png").is_file()
    assert "| convmlp_random_beatdbn | 60.0 ± 14.1 [40.0, 80.0] |" in md
    assert "| convmlp_random_beatdbn − logreg | +25.0 [+10.0, +40.0], p = 0.002 * |" in md
    assert "Label-efficiency" not in write_report(run).read_text()  # only when asked
    # the command: --curve names a folder without curve.json -> one line, exit 1
    bad = CliRunner().invoke(app, ["report", str(run), "--curve", str(tmp_path)])
    assert bad.exit_code == 1 and "no curve.json there" in bad.output
    ok = CliRunner().invoke(app, ["report", str(run), "--curve", str(curve)])
    assert ok.exit_code == 0 and "Label-efficiency curve: key" in (run / "report.md").read_text()
