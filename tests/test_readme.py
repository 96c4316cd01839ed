"""The README leads with two commands that work, and every `beatdbn COMMAND --option` it shows exists
(issue 25 item 5: a README must stay true to the CLI it documents)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beatdbn.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
runner = CliRunner()


def _text() -> str:
    return README.read_text(encoding="utf-8")


def _code(text: str) -> list[str]:
    """Every command line in ``text``'s code: fenced blocks (continuation lines joined) and inline spans."""
    lines = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M):
        lines += block.replace("\\\n", " ").splitlines()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    lines += re.findall(r"`([^`\n]+)`", prose)
    return lines


def _uses(text: str) -> list[tuple[str, list[str], list[str], str]]:
    """``(command, global options, its options, the line)`` for every ``beatdbn ...`` in ``text``'s code."""
    found = []
    for line in _code(text):
        for m in re.finditer(r"(?:^|[\s/])beatdbn((?: --?[a-z][a-z-]*(?: [0-9A-Z]+)?)*) ([a-z][a-z-]*)\b(.*)", line):
            rest = m.group(3).split("#", 1)[0]
            rest = re.split(r"[;|]| && ", rest, maxsplit=1)[0]  # one command only
            found.append((m.group(2), re.findall(r"--[a-z][a-z0-9-]*", m.group(1)),
                          re.findall(r"(?:^|\s)(--[a-z][a-z0-9-]*)", rest), line.strip()))
    return found


@lru_cache(maxsize=None)
def _help(*args: str) -> str:
    res = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})
    assert res.exit_code == 0, res.output
    return res.output


def test_the_readme_starts_with_make_demo_and_make_test():
    text = _text()
    assert text.startswith("# beatdbn\n"), "the title first (indented lines above it render as a stray code block)"
    first = re.search(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M)
    assert first and text.index(first.group(0)) < text.index("\n## "), "the two commands come before any section"
    commands = [line.split("#", 1)[0].strip() for line in first.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    before = text[:text.index(first.group(0))]
    assert not re.search(r"^( {4}|\t)\S", before, flags=re.M), "no indented (code block) lines above the commands"


def test_the_readme_leads_with_use_and_keeps_the_architecture_below():
    text = _text()
    key = text.index("beatdbn predict --task key")
    assert key < text.index("make real REAL_MSD=") < text.index("### The pipeline")
    assert text.index("beatdbn serve") < text.index("### The pipeline") and "docs/cluster.md" in text


def _problems(uses) -> list[str]:
    """What in ``uses`` the CLI does not have: a command, a global option, or an option of the command."""
    top = _help()
    commands = set(re.findall(r"^│ ([a-z][a-z-]+) ", top, flags=re.M))
    assert {"predict", "synth-audio", "serve"} <= commands  # the help's command list was read
    problems = []
    for command, global_options, options, line in uses:
        if command not in commands:
            problems.append(f"unknown command {command!r} in: {line}")
            continue
        problems += [f"unknown global option {o} in: {line}" for o in global_options if o not in top]
        text = _help(command)
        problems += [f"`beatdbn {command}` has no {o}, in: {line}" for o in options
                     if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)]
    return problems


def test_every_beatdbn_command_in_the_readme_exists_with_the_options_it_uses():
    uses = _uses(_text())
    assert len(uses) > 40 and {u[0] for u in uses} >= {"predict", "extract", "tasks", "reproduce", "serve", "embed"}
    problems = _problems(uses)
    assert not problems, "\n".join(problems)


def test_the_checker_catches_a_wrong_command_and_a_wrong_option():
    text = ("# beatdbn\n\n```bash\nbeatdbn predict x --top-k 0 --no-such-flag   # --not-this\n"
            "beatdbn frobnicate y\n```\n\nThen `beatdbn --nope info store`.\n")
    assert _problems(_uses(text)) == [
        "`beatdbn predict` has no --no-such-flag, in: beatdbn predict x --top-k 0 --no-such-flag   # --not-this",
        "unknown command 'frobnicate' in: beatdbn frobnicate y",
        "unknown global option --nope in: beatdbn --nope info store"]


ROOT = README.parent


def _make_dry_run(*args: str) -> str:
    """The commands ``make -n -B setup ARGS`` would run (printed, none run: -n; -B: as on a fresh clone)."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    res = subprocess.run(["make", "-n", "-B", "setup", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_make_setup_takes_the_torch_index_only_when_given():
    """On stock PyPI the plain pin pulls a CUDA build: TORCH_INDEX names PyTorch's CPU index (the README says so);
    unset, the torch line is the plain pin this machine's wheel store answers."""
    plain = [line for line in _make_dry_run().splitlines() if "pip install" in line and "torch==" in line]
    assert len(plain) == 1 and "--index-url" not in plain[0] and "torch==2.13.0" in plain[0]
    index = "https://download.pytorch.org/whl/cpu"
    lines = _make_dry_run(f"TORCH_INDEX={index}").splitlines()
    given = [line for line in lines if "torch==" in line]
    assert len(given) == 1 and given[0].endswith(f"torch==2.13.0 --index-url {index}")
    assert not any("--index-url" in line for line in lines if "torch==" not in line)  # beatdbn's own deps: PyPI
    assert f"make setup TORCH_INDEX={index}" in _text()


def test_the_readme_says_what_setup_and_test_install_and_how_to_point_the_real_data_tests():
    from conftest import SHARED_DATA_ENV

    text = _text()
    section = text[text.index("## Setup, disk and tests"):text.index("## How it works")]
    makefile = (ROOT / "Makefile").read_text()
    for package in ("chromium", "fluidsynth", "timgm6mb-soundfont", "espeak-ng"):  # what make test may apt-install
        assert package in section and package in makefile
    assert f"{SHARED_DATA_ENV}=/path/to/data make test" in section
    assert "GB" in section and "demo/" in section  # the disk the venv and the demo take
