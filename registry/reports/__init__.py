"""Documents built from one model: the record of processing (ropa, with its HTML and XLSX
renderings), the notice, the data map (diagram) and the transparency report.

May import :mod:`registry.answers` and everything below it; not :mod:`registry.interchange`
(its layer-mate), :mod:`registry.web` or :mod:`registry.cli`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import Engine

from registry.answers.drift import drift
from registry.answers.flows import cut, observations
from registry.answers.strict import check_category, check_recipient
from registry.exceptions import InputError
from registry.model.declarations import in_force

__all__ = ["FORMATS", "ropa_document", "datamap_document", "notice_document", "write_all"]

FORMATS = ("md", "csv", "xlsx", "json", "html")


def ropa_document(engine: Engine, fmt: str, role: Literal["controller", "processor"] = "controller",
                  as_of: datetime | None = None) -> bytes:
    from .html import to_html
    from .ropa import build_ropa, to_csv, to_json, to_markdown
    from .xlsx import to_xlsx

    record, manifest = build_ropa(engine, role, as_of)
    if fmt == "xlsx":
        return to_xlsx(record, manifest)
    writer = {"md": to_markdown, "csv": to_csv, "html": to_html, "json": lambda r, _m: to_json(r)}[fmt]
    return writer(record, manifest).encode()  # type: ignore[operator]


def datamap_document(engine: Engine, fmt: Literal["svg", "png", "dot"], category: str | None = None,
                     recipient: str | None = None, as_of: datetime | None = None) -> bytes:
    from .diagram import datamap, render
    from .ropa import no_manifest_message

    with engine.connect() as conn:
        if category is not None:
            check_category(conn, category)
        if recipient is not None:
            check_recipient(conn, recipient)
        manifest = in_force(conn, as_of)
        flows = observations(conn, until=cut(None, as_of))
    if manifest is None:
        raise InputError(no_manifest_message(as_of))
    return render(datamap(manifest, flows, category, recipient), fmt)


def notice_document(engine: Engine, as_of: datetime | None = None) -> str:
    """The notice's recipients and transfers sections from the manifest in force (at ``as_of``)."""
    from .notice import to_notice
    from .ropa import no_manifest_message

    manifest = in_force(engine, as_of)
    if manifest is None:
        raise InputError(no_manifest_message(as_of))
    return to_notice(manifest)


def write_all(engine: Engine, folder: Path, as_of: datetime | None = None) -> list[str]:
    """ropa.{xlsx,html,md,json,csv}, notice.md, datamap.svg, drift.json into ``folder`` (as of
    ``as_of``, when given)."""
    import orjson

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {f"ropa.{fmt}": ropa_document(engine, fmt, as_of=as_of) for fmt in FORMATS}
    files["notice.md"] = notice_document(engine, as_of).encode()
    files["datamap.svg"] = datamap_document(engine, "svg", as_of=as_of)
    files["drift.json"] = orjson.dumps([r.model_dump() for r in drift(engine, as_of=as_of)], option=orjson.OPT_INDENT_2)
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    return sorted(files)
