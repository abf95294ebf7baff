"""CSV cells a spreadsheet will not run (OWASP CSV injection): every CSV the registry hands out
(the RoPA, the published list, the pages' list exports, the Art. 15 answer) writes its cells through
:func:`cell`, since their text comes from manifests, events and forms other people fill in."""

from __future__ import annotations

from typing import Any

__all__ = ["FORMULA_STARTS", "cell", "row"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what Excel, LibreOffice and Sheets read as the start of a formula


def cell(value: Any) -> Any:
    """``value`` with a leading ``'`` if a spreadsheet would read it as a formula; other values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def row(values: Any) -> list[Any]:
    """A row of cells, each through :func:`cell`."""
    return [cell(v) for v in values]
