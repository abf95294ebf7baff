"""The ``registry`` command, assembled: the root options and the command groups. Each group module
defines its own Typer app and imports only :mod:`.options` (and :mod:`.stream` the table of
``consume``'s options, :mod:`.consume`); this is the one place that knows them all. Which groups
a command line needs, :mod:`.entry` chooses."""

from __future__ import annotations

import importlib
from typing import Annotated, Optional, Sequence

import typer

from .options import Globals, JsonOpt

__all__ = ["build"]


def _global(
    db: Annotated[Optional[str], typer.Option("--db", envvar="REGISTRY_DATABASE_URL", help="Database URL (default sqlite:///registry.db).")] = None,
    as_json: JsonOpt = False,
) -> None:
    Globals.db, Globals.json = db, as_json


def build(groups: Sequence[str]) -> typer.Typer:
    """The root command with the command ``groups`` named (:data:`.entry.GROUPS`: all of them)."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      help="Registry of who receives which personal data.")
    app.callback()(_global)
    for name in groups:
        app.add_typer(importlib.import_module(f".{name}", __package__).app)
    return app
