"""CLI commands of the manifest history: ``manifests`` (the versions) and ``manifests diff A B``.
Merged into the root command by :mod:`.app`; each is a thin wrapper over :mod:`registry.model.history`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .options import JsonOpt, command, emit, read_db, out, print_table

if TYPE_CHECKING:
    from registry.model.history import ManifestDiff

__all__ = ["app"]

app = typer.Typer()

manifests_app = typer.Typer(help="Manifest versions: when each was declared and took effect; what changed.")
app.add_typer(manifests_app, name="manifests")


@manifests_app.callback(invoke_without_command=True)
@command
def manifests(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The manifest versions with their declaration and effective times."""
    from registry.model import history

    if ctx.invoked_subcommand is not None:
        return
    emit(history.list_versions(read_db()), as_json,
         lambda r: print_table(r, ["version", "declared_at", "effective_from", "controller", "recipients", "activities"]))


@manifests_app.command("diff")
@command
def manifests_diff(a: Annotated[int, typer.Argument(metavar="A", help="The older version.")],
                   b: Annotated[int, typer.Argument(metavar="B", help="The newer version.")],
                   as_json: JsonOpt = False) -> None:
    """What changed from version A to version B: controller fields, recipients and activities."""
    from registry.model import history

    emit(history.diff_versions(read_db(), a, b), as_json, _render_diff)


def _render_diff(d: ManifestDiff) -> None:
    from registry.model import history

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
