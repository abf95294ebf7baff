"""Where ``registry`` starts: which command a command line names, and so which command groups it
loads (``COMMANDS``; a test keeps it in step with the groups): ``registry consume`` does not
import, nor build the options of, the sixty other commands. A plain ``consume`` line does not load
Typer at all (:mod:`.consume`). Standard library only; :mod:`.root` assembles the Typer app."""

from __future__ import annotations

import os
import sys
from typing import Sequence

__all__ = ["main", "GROUPS", "COMMANDS", "command_of"]

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
    command = command_of(sys.argv[1:])
    if command == "consume":
        from registry.stream.held import hold_signals

        hold_signals()  # a SIGTERM while the worker starts stops it cleanly (exit 0)
        from .consume import read, run

        values = read(sys.argv[1:])
        if values is not None:
            try:
                sys.exit(run(values))
            except BrokenPipeError:  # as Click: a reader that went away (`| head`) is exit 1, no traceback
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                sys.exit(1)
    from .root import build

    build(COMMANDS.get(command or "", GROUPS))()
