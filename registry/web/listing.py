"""Lists on the pages: a search box, pagination and a CSV export of what the filters matched,
the same for every list (recipients, requests, dead letters). The CSV holds the stored values
(keys, RFC 3339 times), the table the words a person reads."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response

from registry.reports.csvcell import cell

__all__ = ["PAGE_SIZE", "Listing", "listing"]

PAGE_SIZE = 50  # a screenful or two: the longest list (dead letters) stays quick to scan and to render


@dataclass
class Listing:
    rows: list[Any]
    total: int
    matched: int
    page: int
    pages: int
    q: str
    params: dict[str, str] = field(default_factory=dict)

    def href(self, **changes: Any) -> str:
        params = {**self.params, **{k: str(v) for k, v in changes.items()}}
        return "?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    @property
    def csv_href(self) -> str:
        return self.href(format="csv", page="")

    @property
    def first(self) -> int:
        return (self.page - 1) * PAGE_SIZE + 1 if self.matched else 0

    @property
    def last(self) -> int:
        return min(self.page * PAGE_SIZE, self.matched)


def _text(row: Any, fields: Iterable[str]) -> str:
    return " ".join(str(row.get(f) or "") for f in fields).lower()


def listing(request: Request, rows: Sequence[dict[str, Any]], search: Sequence[str], columns: Sequence[str],
            filename: str, words: dict[str, str] | None = None) -> Listing | Response:
    """The page's slice of ``rows`` that match ``?q=`` (every word, in the ``search`` fields or
    their ``words``: the names shown for keys), or, with ``?format=csv``, all matching rows as a
    CSV download of ``columns``."""
    q = request.query_params.get("q", "").strip()
    matched = list(rows)
    if q:
        needles = q.lower().split()
        names = words or {}

        def hit(row: dict[str, Any]) -> bool:
            text = _text(row, search)
            text += " " + " ".join(names.get(str(row.get(f)), "") for f in search).lower()
            return all(n in text for n in needles)

        matched = [r for r in matched if hit(r)]
    if request.query_params.get("format") == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in matched:
            writer.writerow(cell("; ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v))
                            for v in (row.get(c) for c in columns))
        return Response(buffer.getvalue().encode(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'})
    pages = max(1, -(-len(matched) // PAGE_SIZE))
    try:
        page = min(max(1, int(request.query_params.get("page", "1"))), pages)
    except ValueError:
        page = 1
    params = {k: v for k, v in request.query_params.items() if k not in ("page", "format")}
    return Listing(rows=matched[(page - 1) * PAGE_SIZE:page * PAGE_SIZE], total=len(rows), matched=len(matched), page=page,
                   pages=pages, q=q, params=params)
