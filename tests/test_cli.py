"""The CLI: synth -> extract -> info -> tasks, driven with Typer's CliRunner."""

import json

from typer.testing import CliRunner

from beatdbn.cli import app

runner = CliRunner()


def test_synth_extract_info_tasks(tmp_path):
    r = runner.invoke(app, ["synth", str(tmp_path / "msd"), "--tracks", "150", "--artists", "6", "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert "not real music" in r.output
    r = runner.invoke(app, ["extract", str(tmp_path / "msd"), "--out", str(tmp_path / "store"),
                            "--scheduler", "sync", "--shard-size", "64"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["info", str(tmp_path / "store"), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["tracks"] == 150 and isinstance(info["beats"], int) and info["beats"] > 150 * 100
    r = runner.invoke(app, ["tasks", str(tmp_path / "store"), "--out", str(tmp_path / "tasks"),
                            "--artists", "3", "--per-artist", "10", "--per-key", "5", "--task", "artist",
                            "--task", "key"])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "tasks" / "tasks.json").read_text())
    assert summary["tasks"]["artist"]["counts"] == {"train": 24, "valid": 3, "test": 3}
    assert summary["tasks"]["key"]["classes"] == 12
    held_out = set()
    for name in ("artist", "key"):
        for split in ("valid", "test"):
            lines = (tmp_path / "tasks" / name / f"{split}.tsv").read_text().splitlines()[1:]
            held_out |= {line.split("\t")[0] for line in lines}
    assert 24 <= len(held_out) <= 3 + 3 + 12 * 2
    assert set((tmp_path / "tasks" / "exclude.txt").read_text().split()) == held_out
    r = runner.invoke(app, ["tasks", str(tmp_path / "store"), "--out", str(tmp_path / "tasks2")])
    assert r.exit_code == 1 and "supports" in r.output


def test_errors_are_one_line_and_exit_1(tmp_path):
    r = runner.invoke(app, ["info", str(tmp_path)])
    assert r.exit_code == 1 and "not a beatdbn feature store" in r.output and "Traceback" not in r.output
    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(app, ["extract", str(empty), "--out", str(tmp_path / "s"), "--scheduler", "sync"])
    assert r.exit_code == 1 and "no input files" in r.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.h5").write_text("nope")
    r = runner.invoke(app, ["extract", str(bad), "--out", str(tmp_path / "s2"), "--scheduler", "sync"])
    assert r.exit_code == 1 and "x.h5" in r.output and "nothing could be read" in r.output


def test_tasks_builds_what_it_can_and_exits_0(demo_corpus, tmp_path):
    store = str(demo_corpus["store"])
    labels = tmp_path / "none.cls"  # genre labels for tracks of another corpus: the store has no genre labels
    labels.write_text("TRAAAAW128F429D538\tRap\nTRAAABD128F429CF47\tPop_Rock\n")
    r = runner.invoke(app, ["tasks", store, "--out", str(tmp_path / "t"), "--scale", "auto",
                            "--genre-labels", str(labels)])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "t" / "tasks.json").read_text())
    assert set(summary["tasks"]) == {"artist", "key", "decade"} and "genre" in summary["errors"]
    assert "not built: genre task" in r.output and "2 for track ids not in the store" in r.output
    assert summary["config"]["scale"] == "auto" and "(auto)" in r.output
    r = runner.invoke(app, ["tasks", store, "--out", str(tmp_path / "t2"), "--genres", "rock,grunge"])
    assert r.exit_code == 1 and "'grunge' not among the musicbrainz genre classes; available" in r.output


def test_reproduce_refuses_tasks_of_another_store(demo_corpus, tmp_path):
    other = tmp_path / "other"
    r = runner.invoke(app, ["synth", str(other / "msd"), "--tracks", "40", "--artists", "4", "--seed", "9"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["extract", str(other / "msd"), "--out", str(other / "store"), "--scheduler", "sync"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["reproduce", str(other / "store"), "--out", str(tmp_path / "run"), "--quick",
                            "--tasks", str(demo_corpus["tasks"])])
    n = len((demo_corpus["tasks"] / "exclude.txt").read_text().split())
    assert r.exit_code == 1 and "track ids are not in the store" in r.output, r.output
    assert "another store" in r.output and n > 0


def test_finetune_option_errors_are_one_clear_line(tmp_path):
    """Before: '--lr nan' printed 'learning_rates=:' (the value eaten as markup), --snapshot past --epochs was
    ignored, and only artist/genre/key were accepted."""
    base = ["finetune", str(tmp_path), str(tmp_path), "--init", "random", "--out", str(tmp_path / "o")]
    r = runner.invoke(app, [*base, "--task", "key", "--lr", "nan"])
    assert r.exit_code == 1 and "learning_rates=[nan]" in r.output
    r = runner.invoke(app, [*base, "--task", "key", "--epochs", "5", "--snapshot", "8"])
    assert r.exit_code == 1 and "--snapshot 8: beyond the 5 epochs" in r.output
    r = runner.invoke(app, [*base, "--task", "mood"])
    assert r.exit_code == 1 and "unknown task 'mood'; choose from genre, artist, key, decade" in r.output


def test_off_a_terminal_lines_are_never_wrapped():
    """A long line (a suggested command, a path) reaches a pipe or a log file whole (issue 25 item 3)."""
    import subprocess
    import sys

    line = "beatdbn extract " + "/very/long/folder" * 12 + " --out store"
    code = ("from beatdbn.cli import console, err_console; import sys; "
            f"console.print({line!r}); err_console.print({line!r})")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == line + "\n" and done.stderr == line + "\n"


def test_version():
    from importlib.metadata import version

    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"beatdbn {version('beatdbn')}"


def test_mp3_decoder_notes_reach_the_user_only_when_verbose(tmp_path, capfd, monkeypatch):
    """issue 25 item 3: mpg123's notes ("Note: Illegal Audio-MPEG-Header ... Trying to resync") reached the
    user's terminal from `predict`; they pass with BEATDBN_VERBOSE=1 (as Dask's lines do)."""
    import numpy as np
    import pytest
    import soundfile as sf

    from beatdbn.features.audio_decode import decode_blocks

    sr = 22050
    t = np.arange(6 * sr) / sr
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 277.2 * t)).astype(np.float32)
    good = tmp_path / "song.mp3"
    try:
        sf.write(good, tone, sr, format="MP3")
    except (sf.LibsndfileError, ValueError, TypeError):
        pytest.skip("this libsndfile writes no MP3")
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(0)
    for k in range(2000, len(data), 3000):  # damaged frames: the decoder resyncs, and says so on fd 2
        data[k:k + 200] = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    bad = tmp_path / "damaged.mp3"
    bad.write_bytes(bytes(data))
    monkeypatch.delenv("BEATDBN_VERBOSE", raising=False)
    capfd.readouterr()
    r = runner.invoke(app, ["predict", "--task", "key", str(bad)])
    err = capfd.readouterr().err
    assert r.exit_code == 0 and "damaged.mp3" in r.output, r.output
    assert "Note:" not in err + r.output and "mpg123" not in err + r.output
    monkeypatch.setenv("BEATDBN_VERBOSE", "1")
    assert sum(len(b) for b in decode_blocks(bad)) > sr
    assert "Note:" in capfd.readouterr().err


# -- reproduce's screen (issue 25, newcomer items 7-8): the tasks chosen, an honest sweep ETA, Table 1's legend ------

import pytest


@pytest.fixture
def quiet_ticks():
    """--progress-every 3600 for the test (no timed lines), the global progress settings restored after."""
    from beatdbn.cli.progress import configure, settings

    before = (settings().quiet, settings().every)
    yield ["--progress-every", "3600"]
    configure(quiet=before[0], every=before[1])


def _fake_pipeline(demo_corpus, monkeypatch, calls: list[dict]):
    """``beatdbn reproduce`` with the pipeline replaced: the run gets demo_corpus' tasks and one naive Bayes result,
    and the progress callback gets ``calls`` (after the tasks stage, which is sent first)."""
    import shutil

    import beatdbn.pipeline.reproduce as pipeline
    from beatdbn.metrics.results import ExperimentResult

    def fake(store, out, *, progress, **_):
        progress({"stage": "tasks", "step": 0, "total": 1, "message": "building tasks", "work_done": 0,
                  "work_total": 1})
        shutil.copytree(demo_corpus["tasks"], out / "tasks")
        r = ExperimentResult("key", "naive_bayes", classes=["C", "D"], chance=0.5)
        r.runs.append({"learning_rate": None, "epoch": 0, "valid_accuracy": 0.6, "test_accuracy": 0.7})
        r.save(out / "experiments" / "key" / "naive_bayes")
        for p in calls:
            progress(p)
        return {}

    monkeypatch.setattr(pipeline, "reproduce", fake)


def test_reproduce_prints_the_tasks_chosen_before_the_sweep_and_table1_with_its_legend(demo_corpus, tmp_path,
                                                                                     monkeypatch, quiet_ticks):
    from beatdbn.evaluate.table import Table1

    sweep = {"stage": "sweep", "step": 0, "total": 7, "message": "7 jobs on local", "work_done": 0.2, "work_total": 1}
    _fake_pipeline(demo_corpus, monkeypatch, [
        {"stage": "pretrain", "step": 3, "total": 10, "message": "layer1: 1,000 beats/s", "work_done": 0.1,
         "work_total": 1}, sweep, {**sweep, "step": 1, "message": "key/naive_bayes done"}])
    out = tmp_path / "run"
    r = runner.invoke(app, [*quiet_ticks, "reproduce", str(demo_corpus["store"]), "--out", str(out)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    head = lines.index(f"tasks ({out / 'tasks' / 'tasks.json'}):")
    key = next(x for x in lines if x.startswith("  key: "))
    assert key.startswith("  key: 12 classes × 16 tracks (--scale paper; paper 12×250): train ") and "C, " in key
    assert "(2 per class)" in key  # the test tracks per class: 16 per class at 80/10/10
    assert [x.split(":")[0] for x in lines[head + 1:head + 5]] == ["  genre", "  artist", "  key", "  decade"]
    assert head < min(i for i, x in enumerate(lines) if "sweep" in x)  # before the sweep's first line
    assert sum(x.startswith("tasks (") for x in lines) == 1  # once
    # under the table, every footnote of table.md: what bold means, chance, the paper's columns, ...
    table = Table1.from_run(out)
    notes = [n for n in table.footnotes]
    assert "**bold**" in notes[0] and "Chance level" in notes[1] and "*paper*" in notes[2]
    for note in notes:
        assert f"  {note}" in lines, note


def test_reproduce_seeds_print_each_seeds_tasks_once(demo_corpus, tmp_path, monkeypatch, quiet_ticks):
    import shutil

    import beatdbn.pipeline.reproduce as pipeline

    def fake_seeds(store, out, *, seeds, progress, **_):
        for s in seeds:
            progress({"stage": f"seed {s}: tasks", "seed": s, "step": 0, "total": 1, "message": "", "work_done": s,
                      "work_total": len(seeds)})
            shutil.copytree(demo_corpus["tasks"], pipeline.seed_dir(out, s) / "tasks")
            for _ in range(2):
                progress({"stage": f"seed {s}: pretrain", "seed": s, "step": 1, "total": 2, "message": "",
                          "work_done": s + 0.5, "work_total": len(seeds)})
        shutil.copytree(demo_corpus["tasks"], out / "tasks")  # for Table 1's header
        return {}

    monkeypatch.setattr(pipeline, "reproduce_seeds", fake_seeds)
    out = tmp_path / "run"
    r = runner.invoke(app, [*quiet_ticks, "reproduce", str(demo_corpus["store"]), "--out", str(out),
                            "--seeds", "2"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines.count(f"seed 0: tasks ({out / 'seed-0' / 'tasks' / 'tasks.json'}):") == 1
    assert lines.count("seed 1: tasks: the same scales and classes as the seed before (each seed its own split)") == 1


def test_task_scale_lines_name_the_unbuilt_and_shorten_long_class_lists(demo_corpus, tmp_path):
    import json
    import shutil

    from beatdbn.cli.reproduce import task_scale_lines

    assert task_scale_lines(tmp_path / "none") == []
    shutil.copytree(demo_corpus["tasks"], tmp_path / "tasks")
    summary = json.loads((tmp_path / "tasks" / "tasks.json").read_text())
    summary["errors"] = {"artist": "artist task: --scale auto needs two artists with at least 20 tracks each"}
    (tmp_path / "tasks" / "tasks.json").write_text(json.dumps(summary))
    lines = task_scale_lines(tmp_path / "tasks", show_classes=3)
    genre = next(x for x in lines if x.startswith("genre: "))
    assert genre.startswith("genre: 20 classes × 6 tracks") and genre.endswith(", … (17 more)")
    assert lines[-1] == "not built: artist task: --scale auto needs two artists with at least 20 tracks each"


def test_table1_on_a_narrow_terminal_keeps_its_legend_and_says_where_the_paper_columns_are(tmp_path):
    import io

    from rich.console import Console

    from beatdbn.cli.reproduce import PAPER_WIDTH, print_table1
    from beatdbn.evaluate.table import Table1
    from beatdbn.metrics.results import ExperimentResult

    r = ExperimentResult("key", "naive_bayes", classes=["C", "D"], chance=0.5)
    r.runs.append({"learning_rate": None, "epoch": 0, "valid_accuracy": 0.6, "test_accuracy": 0.7})
    table = Table1([r])
    for width, paper in ((100, False), (PAPER_WIDTH, True)):
        buf = io.StringIO()
        print_table1(Console(file=buf, force_terminal=True, width=width, color_system=None), table, out=tmp_path)
        text = buf.getvalue()
        assert ("paper: key 12×250" in text) is paper
        assert (f"{tmp_path / 'table.md'} has them" in text) is not paper
        for note in table.footnotes:  # the legend, whole (soft-wrapped, never cut)
            assert f"  {note}" in text, note
