"""Commands that put things into the store: ``declare`` (a manifest version), ``ingest`` (events
from a file) and ``subject-ref`` (the one-way ref of a subject id, stored by nobody)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Optional

import typer

from .options import (
    Globals,
    JsonOpt,
    bound,
    command,
    emit,
    open_db,
    open_lines,
    out,
    print_counts,
)

__all__ = ["app"]

app = typer.Typer()


@app.command()
@command
def declare(file: Annotated[Path, typer.Argument(help="Manifest (YAML or JSON).")],
            effective_from: Annotated[Optional[str], typer.Option(
                "--effective-from", help="When it takes effect (RFC 3339 or YYYY-MM-DD; default now; earlier for a change made on paper before).")] = None,
            as_json: JsonOpt = False) -> None:
    """Store a new version of the manifest (declarations). Invalid manifests store nothing."""
    from registry.model import declarations
    from registry.model.manifest import load_manifest

    manifest = load_manifest(file)
    result = declarations.declare(open_db(), manifest, bound(effective_from, "--effective-from"))
    emit(result, as_json, lambda r: out.print(
        f"Declared [bold]{r.controller}[/]: {r.recipients} recipients, {r.activities} activities (version {r.version})"))


@app.command()
@command
def ingest(
    file: Annotated[str, typer.Argument(help="JSON Lines of structured CloudEvents, or - for stdin.")],
    batch_size: Annotated[int, typer.Option(min=1, help="Events per transaction.")] = 5000,
    as_json: JsonOpt = False,
) -> None:
    """Record events from a file: valid ones once each, invalid ones as dead letters."""
    from registry.intake.ingest import Ingestor
    from registry.model.events import lines_of

    ingestor = Ingestor(open_db())
    records = lines_of(open_lines(file), origin=None if file == "-" else file)
    if out.is_terminal and not (as_json or Globals.json) and file != "-":
        from rich.progress import Progress

        with Progress(console=out, transient=True) as progress:
            size = Path(file).stat().st_size
            task = progress.add_task("ingesting", total=size)
            counted = _count_bytes(records, lambda n: progress.advance(task, n))
            result = ingestor.ingest(counted, batch_size)
    else:
        result = ingestor.ingest(records, batch_size)
    emit(result, as_json, lambda r: print_counts("ingest", r))


def _count_bytes(records: Iterable[Any], advance: Callable[[int], None]) -> Iterable[Any]:
    for record in records:
        advance(len(record.value) + 1)
        yield record


@app.command("subject-ref")
@command
def subject_ref(stable_id: Annotated[str, typer.Argument(metavar="ID", help="The stable subject id (hashed, never stored).")],
                as_json: JsonOpt = False) -> None:
    """Print the subject ref of an id: HMAC-SHA256 keyed with REGISTRY_SUBJECT_KEY."""
    from registry.model.subjects import subject_ref as make_subject_ref

    emit(make_subject_ref(stable_id), True)
