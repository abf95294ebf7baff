"""CLI commands of the Fides interchange: ``import fides PATH...`` and ``export fides``.
Merged into the root command by :mod:`.app`; each is a thin wrapper over :mod:`registry.interchange`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import (
    AsOfOpt,
    Globals,
    JsonOpt,
    as_of_bound,
    command,
    emit,
    err,
    read_db,
    out,
    write_out,
)

__all__ = ["app"]

app = typer.Typer()

import_app = typer.Typer(no_args_is_help=True, help="Read other tools' declarations into a manifest.")
export_app = typer.Typer(no_args_is_help=True, help="Write the declarations in other tools' formats.")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")


@import_app.command("fides")
@command
def import_fides_cmd(
    paths: Annotated[list[str], typer.Argument(metavar="PATH...", help="Fides resource YAML files or folders (fideslang 1.x to 3.x).")],
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Write the manifest here instead of stdout.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fides organization, systems, datasets and taxonomy → a manifest that declares; what has no
    place in it is listed (stderr, or `unmapped` with --json)."""
    from registry.interchange.fides import import_fides, manifest_yaml

    imported = import_fides(paths)
    text = manifest_yaml(imported.manifest)
    if as_json or Globals.json:
        if out_path is not None:
            write_out(text, out_path, "the manifest")
        emit(imported.summary(), True)
        return
    write_out(text, out_path, "the manifest")
    for item in imported.unmapped:
        err.print(f"unmapped: {item.path}: {item.reason}", markup=False, highlight=False)


@export_app.command("fides")
@command
def export_fides_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write organization.yml, systems.yml, taxonomy.yml into.")] = Path("fides"),
    observed: Annotated[bool, typer.Option("--observed", help="Add undeclared observed recipients as systems marked for review.")] = False,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The manifest in force as fideslang 3.x resources (validated with fideslang's models)."""
    from registry.interchange.fides_export import export_fides

    result = export_fides(read_db(), out_dir, observed, as_of_bound(as_of))
    emit(result, as_json, lambda r: out.print(f"wrote {', '.join(r.files)} ({r.systems} systems, {r.observed} observed) to {r.out}"))
    sys.stdout.flush()
