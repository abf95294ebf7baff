"""The ``registry`` command, assembled: the root options and every command group. Each group module
defines its own Typer app and imports only :mod:`.options`; this is the one place that knows
them all."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import disclosures, fides, history, intake, ledger, published, questions, retention, stream, web
from .options import Globals, JsonOpt

__all__ = ["app", "main"]

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Registry of who receives which personal data.")


@app.callback()
def _global(
    db: Annotated[Optional[str], typer.Option("--db", envvar="REGISTRY_DATABASE_URL", help="Database URL (default sqlite:///registry.db).")] = None,
    as_json: JsonOpt = False,
) -> None:
    Globals.db, Globals.json = db, as_json


# the order of the help's command list
for group in (intake, stream, questions, published, disclosures, ledger, history, retention, fides, web):
    app.add_typer(group.app)


def main() -> None:
    import sys

    if "consume" in sys.argv[1:]:
        from registry.stream.held import hold_signals

        hold_signals()  # a SIGTERM while the worker starts stops it cleanly (exit 0)
    app()
