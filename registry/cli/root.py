"""The ``registry`` command, assembled: the root options and the command groups. Each group module
defines its own Typer app and imports only :mod:`.options`; this is the one place that knows
them all. A command line naming one command loads only the groups that define it (``COMMANDS``;
a test keeps it in step with the groups): ``registry consume`` does not import, nor build the
options of, the sixty other commands."""

from __future__ import annotations

import importlib
from typing import Annotated, Optional, Sequence

import typer

from .options import Globals, JsonOpt

__all__ = ["build", "main", "GROUPS", "COMMANDS"]

# the order of the help's command list
GROUPS = ("intake", "stream", "questions", "published", "disclosures", "ledger", "history", "retention", "fides", "web")
_QUESTIONS = ("recipients", "recipient", "subject", "drift", "ropa", "notice", "diagram", "report")
COMMANDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("declare", "ingest", "subject-ref"), ("intake",)),
    **dict.fromkeys(("publish", "consume", "status", "dead-letters"), ("stream",)),
    **dict.fromkeys(_QUESTIONS, ("questions",)),
    "subprocessors": ("published",),
    "disclosures": ("disclosures", "ledger"),  # the ledger group adds `head` and `verify` to it
    "ledger-key": ("ledger",),
    "manifests": ("history",),
    "retention": ("retention",),
    **dict.fromkeys(("import", "export"), ("fides",)),
    **dict.fromkeys(("serve", "tokens"), ("web",)),
}


def _global(
    db: Annotated[Optional[str], typer.Option("--db", envvar="REGISTRY_DATABASE_URL", help="Database URL (default sqlite:///registry.db).")] = None,
    as_json: JsonOpt = False,
) -> None:
    Globals.db, Globals.json = db, as_json


def build(groups: Sequence[str] = GROUPS) -> typer.Typer:
    """The root command with ``groups`` (all by default)."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      help="Registry of who receives which personal data.")
    app.callback()(_global)
    for name in groups:
        app.add_typer(importlib.import_module(f".{name}", __package__).app)
    return app


def command_of(args: Sequence[str]) -> str | None:
    """The command an argument list names (after the root options), or None."""
    rest = iter(args)
    for arg in rest:
        if arg == "--db":
            next(rest, None)
        elif not arg.startswith("-"):
            return arg
        elif arg != "--json" and not arg.startswith("--db="):
            return None  # --help, or an option the root does not know: the whole command answers
    return None


def main() -> None:
    import sys

    command = command_of(sys.argv[1:])
    if command == "consume":
        from registry.stream.held import hold_signals

        hold_signals()  # a SIGTERM while the worker starts stops it cleanly (exit 0)
    build(COMMANDS.get(command or "", GROUPS))()
