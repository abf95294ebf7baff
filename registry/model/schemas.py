"""The JSON Schemas (package data in ``registry/model/jsonschemas/``, published as ``schemas/``), compiled
once per process and used to validate at run time."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Callable

import fastjsonschema

__all__ = ["SCHEMA_DIR", "validator", "SchemaViolation"]

SCHEMA_DIR = resources.files("registry.model") / "jsonschemas"

_MISSING = re.compile(r"must contain \['([^']+)'")
_INDEX = re.compile(r"^\d+$")


class SchemaViolation(ValueError):
    """A document that breaks its schema; ``path`` is like ``activities[3].legal_basis``."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def _format_path(parts: list[str]) -> str:
    out = ""
    for part in parts[1:]:  # parts[0] is fastjsonschema's root name "data"
        out += f"[{part}]" if _INDEX.match(str(part)) else (f".{part}" if out else str(part))
    return out


@lru_cache(maxsize=None)
def validator(name: str, prop: str | None = None) -> Callable[[Any], Any]:
    """A compiled validator for ``schemas/<name>.schema.json`` (or for one of its top-level
    properties, ``prop``) raising SchemaViolation."""
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    if prop is not None:
        # the property's own schema, with the shared definitions its $refs point into
        schema = {"$schema": schema["$schema"], **({"$defs": schema["$defs"]} if "$defs" in schema else {}),
                  **schema["properties"][prop]}
    compiled = fastjsonschema.compile(schema)

    def validate(document: Any) -> Any:
        try:
            return compiled(document)
        except fastjsonschema.JsonSchemaValueException as exc:
            path = _format_path([str(p) for p in (exc.path or ["data"])])
            message = str(exc.message).replace(str(exc.name), "", 1).strip()
            missing = _MISSING.search(message)
            if missing:  # point at the missing field itself, not at its parent object
                path = f"{path}.{missing.group(1)}" if path else missing.group(1)
                message = "is required"
            raise SchemaViolation(path, message) from None

    return validate
