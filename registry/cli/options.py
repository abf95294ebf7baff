"""What every command group shares: the global options, the error-to-exit mapping, the store, and
printing (a rich table, or only JSON with ``--json``). Imports nothing heavy: ``registry --help``
must not pay for the store, the taxonomy or the graph, so each command imports the library it
calls inside its body."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Callable,
    Iterable,
    Optional,
    Sequence,
    TypeVar,
)

import typer
from rich.console import Console
from rich.table import Table

from registry.exceptions import InputError, RegistryError

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Engine

__all__ = ["out", "err", "Globals", "JsonOpt", "SinceOpt", "UntilOpt", "AsOfOpt", "OutOpt", "command", "open_db", "read_db", "existing_db", "emit",
           "print_counts", "print_table", "open_lines", "as_of_bound", "bound", "write_out"]

out = Console()
err = Console(stderr=True, soft_wrap=True)  # one error, one line
F = TypeVar("F", bound=Callable[..., Any])


class Globals:
    """The root command's options, read by every command."""

    db: Optional[str] = None
    json: bool = False


JsonOpt = Annotated[bool, typer.Option("--json", help="Print only JSON to stdout.")]
SinceOpt = Annotated[Optional[str], typer.Option("--since", help="Window start, inclusive (RFC 3339 or YYYY-MM-DD).")]
UntilOpt = Annotated[Optional[str], typer.Option("--until", help="Window end, exclusive (RFC 3339 or YYYY-MM-DD).")]
AsOfOpt = Annotated[Optional[str], typer.Option("--as-of", help="Answer as it stood then: the manifest in force at T, events before T.")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of stdout.")]


def _fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False)
    return typer.Exit(2)


def command(fn: F) -> F:
    """Map library errors to the contract's exit codes, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RegistryError as exc:
            raise _fail(str(exc)) from None
        except Exception as exc:
            # SQLAlchemy is imported only by commands that open a store: look it up, never load it
            errors = sys.modules.get("sqlalchemy.exc")
            if errors is None or not isinstance(exc, errors.SQLAlchemyError):
                raise
            # e.g. a store written by another version of the schema: say so in one line
            from registry.model.store import database_url

            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise _fail(f"the store at {Globals.db or database_url()} failed: {reason}") from None

    return wrapper  # type: ignore[return-value]


def open_db() -> Engine:
    """The store for a command that writes: created and migrated when needed."""
    from registry.model.store import open_store

    return open_store(Globals.db)


def read_db() -> Engine:
    """The store for a command that only reads: never created, migrated or locked (contract §6)."""
    from registry.model.store import open_store_readonly

    return open_store_readonly(Globals.db)


def existing_db() -> Engine:
    """The store for a command that changes one but must not create it (``tokens revoke``)."""
    from registry.model.store import open_existing_store

    return open_existing_store(Globals.db)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def emit(value: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    if as_json or Globals.json or render is None:
        import orjson

        sys.stdout.write(orjson.dumps(_jsonable(value), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render(value)


def print_counts(title: str, value: Any) -> None:
    table = Table(title=title, show_header=False)
    for key, number in value.model_dump().items():
        table.add_row(key, str(number))
    out.print(table)


def print_table(rows: Sequence[Any], columns: list[str], title: str | None = None) -> None:
    table = Table(*columns, title=title)
    for row in rows:
        values = row.model_dump()
        table.add_row(*(", ".join(v) if isinstance(v, list) else ("" if v is None else str(v)) for v in (values[c] for c in columns)))
    out.print(table)


def open_lines(path: str) -> Iterable[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None


def bound(text: str | None, name: str) -> datetime | None:
    from registry.model.times import parse_bound

    return parse_bound(text, name)


def as_of_bound(text: str | None) -> datetime | None:
    return bound(text, "--as-of")


def write_out(data: bytes | str, out_path: Path | None, what: str) -> None:
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
