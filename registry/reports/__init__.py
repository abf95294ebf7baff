"""Documents built from one model: the record of processing, the notice, the data map."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sqlalchemy.engine import Engine

from ..declarations import current_manifest
from ..drift import drift
from ..exceptions import InputError
from ..flows import observations

__all__ = ["FORMATS", "ropa_document", "datamap_document", "write_all"]

FORMATS = ("md", "csv", "xlsx", "json", "html")


def ropa_document(engine: Engine, fmt: str, role: Literal["controller", "processor"] = "controller") -> bytes:
    from .html import to_html
    from .ropa import build_ropa, to_csv, to_json, to_markdown
    from .xlsx import to_xlsx

    record, manifest = build_ropa(engine, role)
    if fmt == "xlsx":
        return to_xlsx(record, manifest)
    writer = {"md": to_markdown, "csv": to_csv, "html": to_html, "json": lambda r, _m: to_json(r)}[fmt]
    return writer(record, manifest).encode()  # type: ignore[operator]


def datamap_document(engine: Engine, fmt: Literal["svg", "png", "dot"], category: str | None = None,
                     recipient: str | None = None) -> bytes:
    from .diagram import datamap, render

    with engine.connect() as conn:
        manifest = current_manifest(conn)
        flows = observations(conn)
    if manifest is None:
        raise InputError("no manifest declared yet: run `registry declare FILE` first")
    return render(datamap(manifest, flows, category, recipient), fmt)


def write_all(engine: Engine, folder: Path) -> list[str]:
    """ropa.{xlsx,html,md,json,csv}, notice.md, datamap.svg, drift.json into ``folder``."""
    import orjson

    from .notice import to_notice

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {f"ropa.{fmt}": ropa_document(engine, fmt) for fmt in FORMATS}
    manifest = current_manifest(engine)
    assert manifest is not None  # ropa_document raised otherwise
    files["notice.md"] = to_notice(manifest).encode()
    files["datamap.svg"] = datamap_document(engine, "svg")
    files["drift.json"] = orjson.dumps([r.model_dump() for r in drift(engine)], option=orjson.OPT_INDENT_2)
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    return sorted(files)
