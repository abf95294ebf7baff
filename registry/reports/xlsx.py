"""The record as an Excel workbook an auditor opens without rearranging: the ICO column order,
a frozen header row with filters, set widths, one sheet per section."""

from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from registry.model.manifest import Manifest

from .ropa import HISTORY_COLUMNS, ICO_COLUMNS, MECHANISMS, Ropa, history_rows, table_rows

__all__ = ["to_xlsx"]

_HEAD = Font(bold=True, color="FFFFFF")
_FILL = PatternFill("solid", fgColor="1F4E78")
_WRAP = Alignment(wrap_text=True, vertical="top")


def _cell(value: object) -> object:
    """A value Excel can hold: control characters a manifest may carry (a name declared through
    the API) become U+FFFD, visibly, instead of failing the whole workbook (found by `make fuzz`)."""
    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value) if isinstance(value, str) else value


def _sheet(ws: Worksheet, header: list[str], rows: list[list[object]], widths: list[int]) -> None:
    ws.append(header)
    for cell in ws[1]:
        cell.font, cell.fill, cell.alignment = _HEAD, _FILL, _WRAP
    for row in rows:
        ws.append([_cell(v) for v in row])
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = _WRAP
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(header))}{max(ws.max_row, 1)}"


def to_xlsx(ropa: Ropa, manifest: Manifest) -> bytes:
    wb = Workbook()
    controller = wb.active
    controller.title = "Controller"
    c = ropa.controller
    for label, value in (("Controller", c["name"]), ("Address", c.get("address")), ("Contact", c.get("contact")),
                         ("Country", c.get("country")), ("Data protection officer", c.get("dpo")),
                         ("Representative", c.get("representative")), ("Generated", ropa.generated_at), ("As of", ropa.as_of)):
        controller.append([label, _cell(value or "")])
        controller.cell(controller.max_row, 1).font = Font(bold=True)
    controller.column_dimensions["A"].width, controller.column_dimensions["B"].width = 26, 90

    widths = [28, 30, 24, 22, 36, 30, 30, 22, 34, 22, 34, 24, 44, 10, 22, 22, 28, 18]
    _sheet(wb.create_sheet("Record of processing"), ICO_COLUMNS, table_rows(ropa, manifest), widths)
    _sheet(wb.create_sheet("Recipients"), ["Activity", "Recipient", "Key", "Kind", "Role", "Country", "Observed"],
           [[a.name, r.name, r.key, r.service, r.role, r.country, "yes" if r.key in a.evidence.recipients_observed else "no"]
            for a in ropa.activities for r in a.recipients], [34, 40, 18, 18, 22, 10, 10])
    _sheet(wb.create_sheet("Transfers"), ["Activity", "Recipient", "Country", "Safeguard"],
           [[a.name, t.recipient, t.country, MECHANISMS[t.mechanism]] for a in ropa.activities for t in a.transfers],
           [34, 22, 10, 50])
    _sheet(wb.create_sheet("Undeclared flows"), ["Kind", "Source", "Recipient", "Category", "Purpose", "Events", "First seen",
                                                 "Last seen", "Detail"],
           [[r.kind, r.source, r.recipient, r.category, r.purpose, r.events, r.first_seen, r.last_seen, r.detail] for r in ropa.undeclared],
           [26, 22, 20, 28, 34, 10, 22, 22, 60])
    _sheet(wb.create_sheet("History"), HISTORY_COLUMNS, history_rows(ropa), [10, 22, 22, 12, 100])  # type: ignore[arg-type]
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
