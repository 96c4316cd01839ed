"""Progress off a terminal (plain lines every N seconds, one per finished stage), --quiet, whole tables."""

from __future__ import annotations

import io
import re
import time

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.cli.output import print_table, rich_to_markdown
from beatdbn.cli.progress import PlainProgress, SilentProgress, configure, format_seconds, progress_bar, settings

runner = CliRunner()


def _console(terminal: bool = False) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=80), buf


@pytest.fixture(autouse=True)
def _restore():
    s = settings()
    quiet, every = s.quiet, s.every
    yield
    configure(quiet=quiet, every=every)


def test_off_a_terminal_lines_come_every_n_seconds_and_per_stage():
    console, buf = _console()
    configure(quiet=False, every=0.05)
    with progress_bar(console) as bar:
        assert isinstance(bar, PlainProgress)
        job = bar.add_task("extract", total=200, rate="")
        bar.update(job, completed=50)
        time.sleep(0.3)
        bar.update(job, completed=200)
        stage = bar.add_task("tasks", total=3, info="")
        bar.update(stage, description="pretrain 1a", completed=2, total=4)
        bar.update(stage, description="pretrain 1b", completed=1, total=4)  # 1a is over: one line
    lines = buf.getvalue().splitlines()
    progress = [x for x in lines if x.startswith("progress extract: 50/200 (25%)")]
    assert len(progress) >= 2, lines
    assert re.search(r"[\d.,]+ items/s, elapsed \d+:\d\d, eta \d+:\d\d", progress[0])  # a unit, plain digits
    assert not any("e+" in x for x in lines)
    assert sum(x.startswith("done extract: 200/200 (100%)") for x in lines) == 1
    # a stage of a longer job ends part-way through the job's count: said so, not a bare "done ... (50%)"
    assert any(x.startswith("done pretrain 1a: 2/4 (50% of the job)") for x in lines)
    assert any(x.startswith("stopped pretrain 1b: 1/4") for x in lines)  # left unfinished


def test_quiet_prints_nothing_and_a_terminal_gets_rich():
    console, buf = _console()
    configure(quiet=True)
    with progress_bar(console) as bar:
        assert isinstance(bar, SilentProgress)
        job = bar.add_task("x", total=2, rate="")
        bar.update(job, completed=2)
    assert buf.getvalue() == ""
    configure(quiet=False)
    term, _ = _console(terminal=True)
    assert not isinstance(progress_bar(term), PlainProgress)


def test_format_seconds():
    assert format_seconds(75) == "1:15" and format_seconds(3725) == "1:02:05" and format_seconds(None) == "?"


def test_global_options():
    res = runner.invoke(app, ["--quiet", "--progress-every", "5", "predict", "--help"])
    assert res.exit_code == 0 and settings().quiet and settings().every == 5
    res = runner.invoke(app, ["--progress-every", "0", "predict", "--help"])
    assert res.exit_code == 1 and res.output.strip().startswith("error: --progress-every 0") \
        and len(res.output.strip().splitlines()) == 1
    res = runner.invoke(app, ["--help"])
    assert "--quiet" in res.output and "--progress-every" in res.output


def test_wide_tables_are_whole_off_a_terminal():
    table = Table(title="Table 1")
    for col in ("model", "block", "genre (20x250)", "artist (50x100)", "key (12x250)", "paper genre", "paper key"):
        table.add_column(col, justify="right" if "(" in col else "left")
    table.add_row("conv. MLP with pretraining", "10 epochs (final)", "[bold]55.00%[/bold]", "35.00%", "85.00%",
                  "29.52%", "86.41%")
    console, buf = _console()
    print_table(console, table)
    text = buf.getvalue()
    assert "| conv. MLP with pretraining | 10 epochs (final) | 55.00% |" in text
    assert "…" not in text and text.startswith("Table 1")
    assert rich_to_markdown(table).splitlines()[3].startswith("|---|---|---:|")
    term, buf = _console(terminal=True)
    print_table(term, table, "markdown")
    assert "markdown" not in buf.getvalue()


def test_a_rate_given_with_its_unit_is_the_one_shown():
    console, buf = _console()
    configure(quiet=False, every=10)
    with progress_bar(console) as bar:
        job = bar.add_task("pretrain", total=10, rate="")
        bar.update(job, completed=10, rate="76,466 beats/s")
    (line,) = [x for x in buf.getvalue().splitlines() if x.startswith("done")]
    assert "76,466 beats/s" in line and "items/s" not in line and line.count("/s") == 1


MESSAGE = "convmlp_pretrained artist lr=0.05 epoch 3/10: loss 55.203, valid 0.412"


@pytest.mark.parametrize("width", [30, 44, 60, 80, 100, 160])
def test_a_narrow_terminal_shortens_the_rest_never_the_figures(width):
    """issue 25 item 3: the bar's message was cut before the validation accuracy ('loss 55.203, vali]')."""
    from beatdbn.cli.progress import FitProgress

    console = Console(file=io.StringIO(), force_terminal=True, width=width, color_system=None)
    bar = progress_bar(console)
    assert isinstance(bar, FitProgress)
    overall = bar.add_task("reproduce", total=1.0, info="now: artist/convmlp_pretrained")
    job = bar.add_task("artist/convmlp_pretrained", total=20, info="")
    bar.update(overall, completed=0.3)
    bar.update(job, completed=3, info=MESSAGE)
    console.print(bar.make_tasks_table(bar.tasks))
    lines = console.file.getvalue().splitlines()
    assert all(len(x) <= width for x in lines), lines
    if width < 40:  # narrower than the figures themselves: the row wraps, nothing is cut
        text = " ".join(" ".join(lines).split())
        assert "3/20 15% " in text and "loss 55.203, valid 0.412" in text and "vali…" not in text
        return
    assert len(lines) == 2, lines
    assert lines[0].startswith("reproduce") and " 30% " in lines[0] and "0.3/1" not in lines[0]
    assert "3/20 15% " in lines[1] and "loss 55.203, valid 0.412" in lines[1]
    if width >= 160:  # room for everything: nothing shortened
        assert MESSAGE in lines[1] and "artist/convmlp_pretrained ━" in lines[1] and "…" not in lines[1]
    if width <= 60:
        assert "━" not in lines[1]  # the bar went before any text


def test_fit_row_gives_up_the_bar_then_the_description_then_the_message_head():
    from beatdbn.cli.progress import fit_row

    row = dict(description="genre/convmlp_pretrained", count="3/20", percent="15%", message=MESSAGE,
               times="0:32 eta 0:04")
    assert fit_row(200, **row)[:2] == ("genre/convmlp_pretrained", 40)
    full = len("genre/convmlp_pretrained 3/20 15% ") + len(MESSAGE) + len(" 0:32 eta 0:04")
    assert fit_row(full, **row) == ("genre/convmlp_pretrained", 0, "3/20", "15%", MESSAGE, "0:32 eta 0:04")
    desc, bar, _, _, msg, times = fit_row(full - 10, **row)
    assert (desc, bar, msg, times) == ("genre/convmlp…", 0, MESSAGE, "0:32 eta 0:04")  # 10 fewer
    desc, _, _, _, msg, times = fit_row(73, **row)
    assert (desc, msg, times) == ("genre/convm…", "…epoch 3/10: loss 55.203, valid 0.412", "0:32 eta 0:04")
    desc, _, _, _, msg, times = fit_row(60, **row)
    assert (desc, msg, times) == ("genre/convm…", "…loss 55.203, valid 0.412", "")
    desc, _, count, pct, msg, times = fit_row(44, **row)  # the times go, then more of the description
    assert (desc, count, pct, msg, times) == ("genre/co…", "3/20", "15%", "…loss 55.203, valid 0.412", "")
    desc, _, count, pct, msg, times = fit_row(20, **row)  # narrower than the figures: nothing of them cut
    assert (desc, count, pct, msg, times) == ("", "3/20", "15%", "…loss 55.203, valid 0.412", "")


def test_plain_lines_are_whole_on_a_narrow_console_and_read_as_a_user_would():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=40)
    configure(quiet=False, every=0.05)
    with progress_bar(console) as bar:
        overall = bar.add_task("reproduce", total=1.0, info="")
        job = bar.add_task("sweep", total=28, info="", unit="jobs")
        bar.update(overall, completed=0.09, info="now: sweep")
        bar.update(job, completed=1.1, info=MESSAGE)
        time.sleep(0.3)
        bar.update(overall, completed=1.0)
        bar.update(job, completed=28)
        one = bar.add_task("embed", total=1, info="")  # a count of one input, not a share
        bar.update(one, completed=1)
        pre = bar.add_task("pretrain", total=100, info="")
        bar.update(pre, completed=100, info="layer3: 109,745 beats/s")
    lines = buf.getvalue().splitlines()
    sweep = [x for x in lines if x.startswith("progress sweep: 1.1/28 (4%)")]
    assert sweep and MESSAGE in sweep[0] and re.search(r", [\d.,]+ jobs/(s|min), ", sweep[0])  # the unit given
    assert any(x.startswith("progress reproduce: 9%, elapsed") for x in lines)  # not '0.09/1 (9%)'
    (done,) = [x for x in lines if x.startswith("done reproduce")]
    assert done.startswith("done reproduce: 100%, elapsed") and "now:" not in done
    assert any(x.startswith("done embed: 1/1 (100%), ") for x in lines)
    (pretrain,) = [x for x in lines if x.startswith("done pretrain")]
    assert "109,745 beats/s" in pretrain and "items/s" not in pretrain  # one rate, the one with a unit


def test_format_rate():
    from beatdbn.cli.progress import format_rate

    assert format_rate(12.34) == "12.3 items/s" and format_rate(0.1, "jobs") == "6.0 jobs/min"
    assert format_rate(None) == format_rate(0) == format_rate(float("nan")) == ""


def test_stages_that_continue_a_job_count_its_elapsed_time_and_eta():
    """An epoch per stage, counted over the job (15/60): the ETA was the job's remaining count over one
    epoch's seconds ('elapsed 0:02, eta 0:06' with 45 epochs of ~2 s to go)."""
    now = [0.0]
    console, buf = _console()
    bar = PlainProgress(console, every=0, clock=lambda: now[0])
    with bar:
        job = bar.add_task("finetune key", total=60, rate="")
        for epoch in range(1, 16):
            now[0] += 2.0
            bar.update(job, completed=epoch, description=f"key epoch {epoch}/30", rate="180,000 beats/s")
        now[0] += 1.0
        line = bar.tasks[0].line(now[0])
        assert line.startswith("key epoch 15/30: 15/60 (25%), 180,000 beats/s, elapsed 0:31, eta 1:33"), line
        stage = bar.add_task("sweep", total=4, info="")  # a new count (a new total): a new clock
        bar.update(stage, completed=1, description="genre")
        now[0] += 10.0
        bar.update(stage, completed=1, total=8, description="key")
        now[0] += 4.0
        bar.update(stage, completed=2)
        assert bar.tasks[1].line(now[0]).startswith("key: 2/8 (25%), 30.0 items/min, elapsed 0:04, eta 0:12")
    assert "done key epoch 14/30: 14/60 (23% of the job), 180,000 beats/s, elapsed 0:30\n" in buf.getvalue()


def test_a_caller_given_eta_and_its_basis_replace_the_counts_own():
    """reproduce's sweep: 0.1 of 48 jobs done in 15 s made the count's ETA 'eta 2:00:00'-ish (the real one was
    16 minutes); the caller says what it knows instead, on plain lines and on a terminal."""
    now = [0.0]
    console, buf = _console()
    bar = PlainProgress(console, every=0, clock=lambda: now[0])
    with bar:
        job = bar.add_task("seed 0: sweep", total=48, info="")
        now[0] += 15.0
        bar.update(job, completed=0.1, eta="after the first job", eta_basis=None)
        line = bar.tasks[0].line(now[0])
        assert ", eta after the first job" in line and "2:00" not in line, line
        bar.update(job, completed=2.0, eta=730.0, eta_basis="from the running jobs' epoch rates")
        line = bar.tasks[0].line(now[0])
        assert ", eta 12:10 (from the running jobs' epoch rates)" in line, line
        now[0] += 60.0  # no word from the caller for a minute (an epoch): its figure counts down, not repeated
        assert ", eta 11:10 (from the running jobs' epoch rates)" in bar.tasks[0].line(now[0])
        assert "running jobs' epoch rates" not in line.split("eta 12:10")[0] + line.split(")")[-1]  # not a field too
        bar.update(job, eta=None, eta_basis="at most")  # the count's own again, with the basis
        assert bar.tasks[0].line(now[0]).endswith(", eta 28:45 (at most)"), bar.tasks[0].line(now[0])
        bar.update(job, eta=None, eta_basis=None)
        assert bar.tasks[0].line(now[0]).endswith(", eta 28:45")

    term, out = _console(terminal=True)
    term.width = 160
    with progress_bar(term) as rich_bar:
        job = rich_bar.add_task("seed 0: sweep", total=48, info="1 running", unit="jobs")
        rich_bar.update(job, completed=0.1, eta="after the first job", eta_basis=None)
        rich_bar.refresh()
    shown = out.getvalue()
    assert "eta after the first job" in shown and "1 running" in shown and "None" not in shown


def _sweep(stage="sweep", **p):
    return {"stage": stage, "step": 0, "total": 48, "message": "", "work_done": 0.1, "work_total": 1, **p}


def test_sweep_eta_waits_for_a_job_without_costs_and_says_the_count_is_an_upper_bound():
    from beatdbn.cli.reproduce import SweepEta

    eta = SweepEta(clock=lambda: 0.0)
    assert eta(_sweep(stage="pretrain")) == {"eta": None, "eta_basis": None}  # other stages: the count's own
    running = [{"job": "key/convmlp_random lr=0.05", "step": 2, "total": 30, "eta_seconds": 166.0}]
    assert eta(_sweep(running=running, message="1 running: ...")) == {"eta": "after the first job", "eta_basis": None}
    assert eta(_sweep(step=1, message="key/convmlp_random lr=0.05 done")) == {
        "eta": None, "eta_basis": "at most: the longest jobs run first"}
    # a new seed's sweep starts over
    assert eta(_sweep(stage="seed 1: sweep", running=running))["eta"] == "after the first job"


def test_sweep_eta_from_the_running_jobs_rates_and_the_cost_left():
    from beatdbn.cli.reproduce import SweepEta

    now = [0.0]
    eta = SweepEta(clock=lambda: now[0])
    starting = {"job": "key/logreg lr=0.005", "step": 0, "total": 0, "eta_seconds": None, "cost": 1.0}
    # no job with two epochs yet: no rate to go on
    assert eta(_sweep(running=[starting], sweep_left=30.0)) == {"eta": "after the first epochs", "eta_basis": None}
    measured = {"job": "key/convmlp_random lr=0.05", "step": 10, "total": 30, "eta_seconds": 40.0, "cost": 6.0}
    # the measured job gets through 6 x 20/30 of cost in 40 s: 0.1/s; the starting one holds the other worker
    got = eta(_sweep(running=[measured, starting], sweep_left=30.0))
    assert got["eta"] == pytest.approx(30.0 / 0.2) and got["eta_basis"] == SweepEta.RATES
    now[0] += 10.0  # the measured job ends; the other has no rate yet: the last estimate, counted down
    got = eta(_sweep(step=1, message="key/convmlp_random lr=0.05 done", sweep_left=28.0))
    assert got["eta"] == pytest.approx(140.0) and got["eta_basis"] == SweepEta.RATES
    slower = {**measured, "step": 15, "eta_seconds": 60.0}  # 6 x 15/30 in 60 s: 0.05/s
    # one job seen running between two polls: the other worker is taking the next job, so still 2 busy ...
    assert eta(_sweep(running=[slower], sweep_left=10.0))["eta"] == pytest.approx(10.0 / 0.1)
    # ... unless it was the last job: 1 of 2 jobs done, 1 left, 1 worker busy
    assert eta(_sweep(total=2, running=[slower], sweep_left=10.0))["eta"] == pytest.approx(10.0 / 0.05)


def test_the_whole_runs_eta_follows_the_sweeps_and_counts_the_seeds_to_come():
    from beatdbn.cli.reproduce import SweepEta

    now = [0.0]
    eta = SweepEta(clock=lambda: now[0])
    seed = {"stage": "seed 0: pretrain", "seed": 0, "step": 1, "total": 2, "message": "", "work_done": 0.1,
            "work_total": 3}
    assert eta.overall(seed, eta(seed)) == {"eta": None, "eta_basis": None}  # not a sweep: the count's own
    sweep = {**seed, "stage": "seed 0: sweep", "total": 10, "step": 0, "sweep_left": 30.0, "running": []}
    assert eta.overall(sweep, eta(sweep)) == {"eta": "after the first epochs", "eta_basis": None}
    now[0] = 100.0  # the seed began at 0; its sweep has 150 s to go; 2 seeds after it, each as long (250 s)
    job = {"job": "key/convmlp_random lr=0.05", "step": 10, "total": 30, "eta_seconds": 40.0, "cost": 6.0}
    stage = eta({**sweep, "running": [job, {**job, "job": "b"}], "work_done": 0.5})
    assert stage["eta"] == pytest.approx(150.0)
    got = eta.overall({**sweep, "work_done": 0.5}, stage)
    assert got["eta"] == pytest.approx(150.0 + 2 * 250.0) and "2 more seeds as long" in got["eta_basis"]
    last = {**sweep, "seed": 2, "stage": "seed 2: sweep", "work_done": 2.5}
    assert eta.overall(last, stage)["eta"] == pytest.approx(150.0)  # the last seed: its sweep's ETA
    single = {k: v for k, v in sweep.items() if k != "seed"}
    assert eta.overall({**single, "work_done": 0.5, "work_total": 1}, stage) == {
        "eta": stage["eta"], "eta_basis": "the sweep, " + SweepEta.RATES}
