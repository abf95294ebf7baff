"""What every command shares that does not need Typer: the global options' values, the mapping
of library errors to the contract's exit 2, the store, and printing (a rich table, or only JSON
with ``--json``). Neither Typer nor rich loads here: ``registry consume`` runs its worker through
this module alone (:mod:`.consume`), and rich loads with the first thing printed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence

from registry.exceptions import InputError, RegistryError

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console
    from sqlalchemy.engine import Engine

__all__ = ["out", "err", "console", "Globals", "failure", "print_failure", "open_db", "read_db", "existing_db", "emit", "print_counts", "print_table",
           "open_lines", "as_of_bound", "bound", "write_out"]

out: Console
err: Console  # one error, one line


def console(stderr: bool = False) -> Console:
    """``out`` or ``err``: rich consoles, built on first use."""
    if "out" not in globals():
        from rich.console import Console

        globals().update(out=Console(), err=Console(stderr=True, soft_wrap=True))
    return globals()["err" if stderr else "out"]  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    if name in ("out", "err"):
        return console(name == "err")
    raise AttributeError(name)


class Globals:
    """The root command's options, read by every command."""

    db: Optional[str] = None
    json: bool = False


def failure(exc: Exception) -> str | None:
    """The one line a command prints for a failure of the library or the store (exit 2), or None
    for anything else (a bug: its traceback is wanted)."""
    if isinstance(exc, RegistryError):
        return str(exc)
    # SQLAlchemy is imported only by commands that open a store: look it up, never load it
    errors = sys.modules.get("sqlalchemy.exc")
    if errors is None or not isinstance(exc, errors.SQLAlchemyError):
        return None
    # e.g. a store written by another version of the schema: say so in one line
    from registry.model.store import database_url

    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return f"the store at {Globals.db or database_url()} failed: {reason}"


def print_failure(exc: Exception) -> bool:
    """Print the one line of a failure of the library or the store (the caller exits 2); False,
    printing nothing, for anything else (the caller re-raises it)."""
    message = failure(exc)
    if message is not None:
        console(stderr=True).print(f"error: {message}", markup=False, highlight=False)
    return message is not None


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
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for key, number in value.model_dump().items():
        table.add_row(key, str(number))
    console().print(table)


def print_table(rows: Sequence[Any], columns: list[str], title: str | None = None) -> None:
    from rich.table import Table

    table = Table(*columns, title=title)
    for row in rows:
        values = row.model_dump()
        table.add_row(*(", ".join(v) if isinstance(v, list) else ("" if v is None else str(v)) for v in (values[c] for c in columns)))
    console().print(table)


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
    console(stderr=True).print(f"wrote {what} to {out_path}", markup=False, highlight=False)
