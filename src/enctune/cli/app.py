"""The Typer application every command registers on, and what each command does first (``setup``)."""

from __future__ import annotations

import os
import sys
import warnings

import typer

from .. import progress
from ..version import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Adapt pre-trained sequence encoders to your task.\n\n"
                       "Start with 'enctune check --data DATA' (is the data sound?), then 'enctune advise --data "
                       "DATA' (which strategy, and what it costs), then 'enctune train --data DATA --out RUN'. "
                       "'enctune COMMAND --help' explains each command.")
Opt = typer.Option


def _version(value: bool) -> None:
    if value:
        print(f"enctune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = Opt(False, "--version", callback=_version, is_eager=True,
                              help="Print enctune's version and exit.")) -> None:
    """Adapt pre-trained sequence encoders to your task."""


def setup(quiet: bool) -> None:
    """Progress on stderr unless ``quiet``; warnings as one line each; transformers' own chatter off."""

    progress.set_quiet(quiet)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    def show(message, category, filename, lineno, file=None, line=None):
        if not progress.is_quiet():  # quiet, or a process other than the main one
            print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    import transformers  # lazy: transformers (~2 s) only for the commands that load a model

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def main_process() -> bool:
    """Whether this is the process that prints and writes (under a launcher, rank 0)."""
    return int(os.environ.get("RANK", "0")) == 0
