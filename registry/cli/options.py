"""What every command group shares: the Typer options several commands take, the error-to-exit
mapping as a decorator, and (re-exported from :mod:`.common`) the store and printing. Imports
nothing heavy: ``registry --help`` must not pay for the store, the taxonomy or the graph, so each
command imports the library it calls inside its body."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer

from .common import (
    Globals,
    as_of_bound,
    bound,
    console,
    emit,
    existing_db,
    open_db,
    open_lines,
    print_counts,
    print_failure,
    print_table,
    read_db,
    write_out,
)

__all__ = ["out", "err", "Globals", "JsonOpt", "SinceOpt", "UntilOpt", "AsOfOpt", "OutOpt", "command", "open_db", "read_db", "existing_db", "emit",
           "print_counts", "print_table", "open_lines", "as_of_bound", "bound", "write_out"]

out, err = console(), console(stderr=True)  # the group modules print tables: rich is wanted by now
F = TypeVar("F", bound=Callable[..., Any])

JsonOpt = Annotated[bool, typer.Option("--json", help="Print only JSON to stdout.")]
SinceOpt = Annotated[Optional[str], typer.Option("--since", help="Window start, inclusive (RFC 3339 or YYYY-MM-DD).")]
UntilOpt = Annotated[Optional[str], typer.Option("--until", help="Window end, exclusive (RFC 3339 or YYYY-MM-DD).")]
AsOfOpt = Annotated[Optional[str], typer.Option("--as-of", help="Answer as it stood then: the manifest in force at T, events before T.")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of stdout.")]


def command(fn: F) -> F:
    """Map library errors to the contract's exit codes, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not print_failure(exc):
                raise
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
