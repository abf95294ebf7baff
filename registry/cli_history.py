"""CLI commands of the manifest history: ``manifests`` (the versions) and ``manifests diff A B``.
Registered on the app of :mod:`registry.cli`; each is a thin wrapper over :mod:`registry.history`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from . import history
from .cli import JsonOpt, _store, _table, app, command, emit, out

__all__ = ["manifests_app"]

manifests_app = typer.Typer(help="Manifest versions: when each was declared and took effect; what changed.")
app.add_typer(manifests_app, name="manifests")


@manifests_app.callback(invoke_without_command=True)
@command
def manifests(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The manifest versions with their declaration and effective times."""
    if ctx.invoked_subcommand is not None:
        return
    emit(history.list_versions(_store()), as_json,
         lambda r: _table(r, ["version", "declared_at", "effective_from", "controller", "recipients", "activities"]))


@manifests_app.command("diff")
@command
def manifests_diff(a: Annotated[int, typer.Argument(metavar="A", help="The older version.")],
                   b: Annotated[int, typer.Argument(metavar="B", help="The newer version.")],
                   as_json: JsonOpt = False) -> None:
    """What changed from version A to version B: controller fields, recipients and activities."""
    emit(history.diff_versions(_store(), a, b), as_json, _render_diff)


def _render_diff(d: history.ManifestDiff) -> None:
    table = Table("what", "key", "change", title=f"version {d.from_} → {d.to}")
    for field, (old, new) in d.controller.items():
        table.add_row("controller", field, f"{old} → {new}")
    for what in ("recipients", "activities"):
        changes: history.KeyedChanges = getattr(d, what)
        for key in changes.added:
            table.add_row(what, key, "added")
        for key in changes.removed:
            table.add_row(what, key, "removed")
        for c in changes.changed:
            table.add_row(what, c.key, "; ".join(f"{f}: {o} → {n}" for f, (o, n) in c.fields.items()))
    out.print(table)
