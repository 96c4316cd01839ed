"""The ``beatdbn`` command line (Typer).

Commands stay thin: parse options, build a config, call the library. Each
command module registers its commands on :data:`app`; every
:class:`~beatdbn.exceptions.BeatdbnError` becomes a one-line message on
stderr and exit code 1.
"""

from __future__ import annotations

import functools
import logging

import typer
from rich.console import Console

from beatdbn.exceptions import BeatdbnError

__all__ = ["app", "main", "command", "console", "err_console"]

app = typer.Typer(
    help="beatdbn: music classification with a pretrained convolutional network (Dieleman et al., ISMIR 2011).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def command(*args, **kwargs):
    """``app.command`` that turns a BeatdbnError into ``error: ...`` and exit code 1."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*a, **kw):
            try:
                return fn(*a, **kw)
            except BeatdbnError as exc:
                err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
                raise typer.Exit(1) from None

        return app.command(*args, **kwargs)(run)

    return wrap


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


from beatdbn.cli import data, tasks, pretrain, finetune, predict, baselines, report, audio_corpus  # noqa: E402,F401  (registers the commands)
