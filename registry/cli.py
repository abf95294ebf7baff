"""The ``registry`` command: each command opens the store, calls one library function and prints
the result (a rich table, or only JSON with ``--json``). Library errors become exit 2 with one
line on stderr; findings asked to fail become exit 1."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Optional, Sequence, TypeVar

import orjson
import typer
from sqlalchemy.exc import SQLAlchemyError
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from . import declarations
from . import ingest as ingest_mod
from .events import parse_bound
from .exceptions import InputError, RegistryError
from .manifest import load_manifest
from .store import database_url, open_store
from .subjects import subject_ref as make_subject_ref

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Registry of who receives which personal data.")
dead_app = typer.Typer(no_args_is_help=True, help="Events that were refused, with their reason; replay them.")
app.add_typer(dead_app, name="dead-letters")
disclosures_app = typer.Typer(no_args_is_help=True, help="The legal team's ledger of disclosures to authorities.")
app.add_typer(disclosures_app, name="disclosures")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # one error, one line
F = TypeVar("F", bound=Callable[..., Any])


class _Globals:
    db: Optional[str] = None
    json: bool = False


JsonOpt = Annotated[bool, typer.Option("--json", help="Print only JSON to stdout.")]


@app.callback()
def _global(
    db: Annotated[Optional[str], typer.Option("--db", envvar="REGISTRY_DATABASE_URL", help="Database URL (default sqlite:///registry.db).")] = None,
    as_json: JsonOpt = False,
) -> None:
    _Globals.db, _Globals.json = db, as_json


def command(fn: F) -> F:
    """Map library errors to the contract's exit codes, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            err.print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except RegistryError as exc:
            err.print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except SQLAlchemyError as exc:
            # e.g. a store written by another version of the schema: say so in one line
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            err.print(f"error: the store at {_Globals.db or database_url()} failed: {reason}", markup=False, highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _store() -> Any:
    return open_store(_Globals.db)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def emit(value: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    if as_json or _Globals.json or render is None:
        sys.stdout.write(orjson.dumps(_jsonable(value), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render(value)


def _counts_table(title: str, value: BaseModel) -> None:
    table = Table(title=title, show_header=False)
    for key, number in value.model_dump().items():
        table.add_row(key, str(number))
    out.print(table)


def _open_lines(path: str) -> Iterable[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None


@app.command()
@command
def declare(file: Annotated[Path, typer.Argument(help="Manifest (YAML or JSON).")],
            effective_from: Annotated[Optional[str], typer.Option(
                "--effective-from", help="When it takes effect (RFC 3339 or YYYY-MM-DD; default now; earlier for a change made on paper before).")] = None,
            as_json: JsonOpt = False) -> None:
    """Store a new version of the manifest (declarations). Invalid manifests store nothing."""
    manifest = load_manifest(file)
    result = declarations.declare(_store(), manifest, parse_bound(effective_from, "--effective-from"))
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
    ingestor = ingest_mod.Ingestor(_store())
    records = ingest_mod.lines_of(_open_lines(file), origin=None if file == "-" else file)
    if out.is_terminal and not (as_json or _Globals.json) and file != "-":
        from rich.progress import Progress

        with Progress(console=out, transient=True) as progress:
            size = Path(file).stat().st_size
            task = progress.add_task("ingesting", total=size)
            counted = _count_bytes(records, lambda n: progress.advance(task, n))
            result = ingestor.ingest(counted, batch_size)
    else:
        result = ingestor.ingest(records, batch_size)
    emit(result, as_json, lambda r: _counts_table("ingest", r))


def _count_bytes(records: Iterable[ingest_mod.RawRecord], advance: Callable[[int], None]) -> Iterable[ingest_mod.RawRecord]:
    for record in records:
        advance(len(record.value) + 1)
        yield record


@app.command("subject-ref")
@command
def subject_ref(stable_id: Annotated[str, typer.Argument(metavar="ID", help="The stable subject id (hashed, never stored).")],
                as_json: JsonOpt = False) -> None:
    """Print the subject ref of an id: HMAC-SHA256 keyed with REGISTRY_SUBJECT_KEY."""
    emit(make_subject_ref(stable_id), True)


SinceOpt = Annotated[Optional[str], typer.Option("--since", help="Window start, inclusive (RFC 3339 or YYYY-MM-DD).")]
UntilOpt = Annotated[Optional[str], typer.Option("--until", help="Window end, exclusive (RFC 3339 or YYYY-MM-DD).")]
AsOfOpt = Annotated[Optional[str], typer.Option("--as-of", help="Answer as it stood then: the manifest in force at T, events before T.")]


def _as_of(text: str | None) -> Any:
    return parse_bound(text, "--as-of")


def _table(rows: Sequence[BaseModel], columns: list[str], title: str | None = None) -> None:
    table = Table(*columns, title=title)
    for row in rows:
        values = row.model_dump()
        table.add_row(*(", ".join(v) if isinstance(v, list) else ("" if v is None else str(v)) for v in (values[c] for c in columns)))
    out.print(table)


OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of stdout.")]


def _write(data: bytes | str, out_path: Path | None, what: str) -> None:
    payload = data.encode() if isinstance(data, str) else data
    if out_path is None:
        sys.stdout.buffer.write(payload)
        return
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_bytes(payload)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", str(out_path)) from None
    err.print(f"wrote {what} to {out_path}", markup=False, highlight=False)



from . import cli_ledger  # noqa: E402,F401  (registers `disclosures head`, `disclosures verify`, `ledger-key`)
from . import cli_history  # noqa: E402,F401  (registers `manifests`, `manifests diff`)
from . import cli_fides  # noqa: E402,F401  (registers `import fides`, `export fides`)
from . import cli_questions, cli_stream, cli_disclosures, cli_web  # noqa: E402,F401  (the other command groups)


def main() -> None:
    app()
