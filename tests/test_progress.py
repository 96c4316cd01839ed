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
