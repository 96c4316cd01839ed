"""The ``beatdbn`` command line (Typer).

Commands stay thin: parse options, build a config, call the library. Each
command module registers its commands on :data:`app`; every
:class:`~beatdbn.exceptions.BeatdbnError` becomes a one-line message on
stderr and exit code 1.

Global options (before the command: ``beatdbn --quiet reproduce ...``):
``--quiet`` silences progress; ``--progress-every SECONDS`` sets how often a
plain progress line is printed off a terminal (default 30; also
``BEATDBN_PROGRESS_EVERY``). See :mod:`beatdbn.cli.progress`. ``--threads N``
sets torch's intra-op threads for the command (:mod:`beatdbn.utils.threads`:
the process-wide thread policy lives here, at the entry, not in library code),
applied when torch loads: commands that do not need torch (``--help``,
``info``) start without it. The command modules import torch, scikit-learn,
Dask and matplotlib inside the commands (tests/test_cli_start.py).
"""

from __future__ import annotations

from beatdbn.utils.heap import keep_heap
from beatdbn.utils.threads import apply_threads, passive_wait

passive_wait()  # first: OpenMP reads its wait policy when torch loads it (see beatdbn.utils.threads)
keep_heap()  # freed tensors stay for the next step, in this process and those it starts (beatdbn.utils.heap)

import functools  # noqa: E402
import importlib.abc  # noqa: E402
import importlib.util  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

import typer
from rich.console import Console
from rich.markup import escape

from beatdbn.cli.progress import configure as configure_progress
from beatdbn.exceptions import BeatdbnError

__all__ = ["app", "main", "command", "console", "err_console", "threads_given", "apply_threads_when_torch_loads"]

app = typer.Typer(
    help="beatdbn: music classification with a pretrained convolutional network (Dieleman et al., ISMIR 2011).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _console(*, stderr: bool = False) -> Console:
    """A rich console that wraps lines on a terminal only: off one (a pipe, a log file, CI) a line is written
    whole, so a suggested command or a path is never broken across lines."""
    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, soft_wrap=True)


console = _console()
err_console = _console(stderr=True)


def _print_version() -> None:
    """``beatdbn --version``: the installed package's version, then exit."""
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        typer.echo(f"beatdbn {installed('beatdbn')}")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        typer.echo("beatdbn (not installed)")
    raise typer.Exit(0)


@app.callback()
def _global_options(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output (bars, progress and stage lines)."),
    progress_every: float = typer.Option(
        30.0, "--progress-every", envvar="BEATDBN_PROGRESS_EVERY", metavar="SECONDS",
        help="Off a terminal (logs, CI, nohup): print a plain progress line this often; stages print a line "
             "when they finish."),
    threads: int = typer.Option(
        None, "--threads", envvar="BEATDBN_THREADS",
        help="torch intra-op threads for this command (default: the CPUs this process may use). On a busy "
             "machine, 1 is often fastest: the kernels are small."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=lambda v: _print_version() if v else None,
                                 help="Print beatdbn's version and exit."),
) -> None:
    """beatdbn: music classification with a pretrained convolutional network (Dieleman et al., ISMIR 2011)."""
    if not progress_every > 0:
        _fail(f"--progress-every {progress_every}: must be a number of seconds > 0")
    if threads is not None and threads < 1:
        _fail(f"--threads {threads}: expected 1 or more threads (or leave it out: the CPUs this process may use)")
    configure_progress(quiet=quiet, every=progress_every)
    apply_threads_when_torch_loads(threads)
    _state["threads"] = threads


_state: dict = {"threads": None}


class _ThreadsOnTorchImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``torch`` is first imported, lets it load, then applies the thread policy."""

    def __init__(self, threads: int | None):
        self.threads = threads

    def find_spec(self, name, path, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)  # once; the real finders locate torch
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load, threads = spec.loader.exec_module, self.threads

        def exec_module(module):
            load(module)
            apply_threads(threads)

        spec.loader.exec_module = exec_module
        return spec


def apply_threads_when_torch_loads(threads: int | None) -> None:
    """``--threads`` (None: the CPUs this process may use) for torch, now if torch is loaded, else as it loads:
    a command that never needs torch (``--help``, ``info``) never imports it."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _ThreadsOnTorchImport)]
    if "torch" in sys.modules:
        apply_threads(threads)
    else:
        sys.meta_path.insert(0, _ThreadsOnTorchImport(threads))


def threads_given() -> int | None:
    """``--threads N`` when the user gave it (commands with a policy of their own keep to it then)."""
    return _state["threads"]


def _fail(message: str) -> None:
    """A bad global option: one line on stderr, exit code 1 (as a command's errors)."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def command(*args, **kwargs):
    """``app.command`` that turns a BeatdbnError into ``error: ...`` and exit code 1."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*a, **kw):
            try:
                return fn(*a, **kw)
            except BeatdbnError as exc:
                # escaped: a value like [nan] in the message is text, not rich markup
                err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
                raise typer.Exit(1) from None

        return app.command(*args, **kwargs)(run)

    return wrap


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


from beatdbn.cli import synth, extract, info, check, tasks, pretrain, finetune, predict, baseline, reproduce, embed, serve, curve  # noqa: E402,F401  (registers the commands)
