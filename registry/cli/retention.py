"""``retention apply``: remove the registry's own data older than the manifest's
``registry_retention`` (contract §6). A thin wrapper over :mod:`registry.intake.retention`."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import JsonOpt, command, emit, open_db, print_counts, read_db

__all__ = ["app"]

app = typer.Typer()

retention_app = typer.Typer(no_args_is_help=True,
                            help="Retention of the registry's own data (manifest registry_retention).")
app.add_typer(retention_app, name="retention")


@retention_app.command("apply")
@command
def apply(dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; remove nothing.")] = False,
          as_json: JsonOpt = False) -> None:
    """Remove events, subject index rows and dead letters older than their horizons."""
    from registry.intake.retention import apply_retention

    # a dry run only reads: like every reading command it never creates or migrates a store
    result = apply_retention(read_db() if dry_run else open_db(), dry_run=dry_run)
    emit(result, as_json, lambda r: print_counts("retention (dry run: nothing removed)" if dry_run else "retention", r))
