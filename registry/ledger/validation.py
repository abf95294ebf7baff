"""Checking a disclosure snapshot typed by a person (``disclosures log``, ``POST
/api/disclosures``): every wrong field at once, in the order of the document, in words the legal
team reads without the JSON Schema at hand. A field whose requirement depends on another
(``notice_due`` when ``notice`` is delayed) is asked for only once that other field is valid and
sets the condition. The schema stays the single source of fields, kinds and conditions."""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from typing import Any

import yaml

from registry.exceptions import DisclosureError, EventError
from registry.model.events import DISCLOSURE, EventValidator
from registry.model.schemas import SCHEMA_DIR, SchemaViolation, validator
from registry.model.times import date_order_problems, parse_time

__all__ = ["load_snapshot", "disclosure_problems", "check_snapshot"]

_SCHEMA = "disclosure.v1"
_TIME = "give a date and time with its time zone, such as 2026-03-01T09:00:00Z"
_WORDS = {
    "request_id": "give the request's reference, up to 200 characters",
    "authority": "name the authority that made the request, up to 500 characters",
    "authority_country": "use a two-letter country code such as IE or US",
    "received_at": _TIME,
    "disclosed_at": _TIME,
    "confirmed_at": _TIME,
    "notice_due": "give a calendar date such as 2026-06-30",
    "data_categories": "list data category keys such as user.contact.email",
    "subject_refs": "list subject refs made by `registry subject-ref` (64 characters, 0-9 and a-f), never a person's own identifier",
    "subject_count": "give a whole number, 0 or more",
}


class _TextDates(yaml.SafeLoader):
    """YAML without its timestamp type: a date stays the text that was typed, so an impossible
    one (2026-02-30) is reported like any other wrong field, not raised by the parser."""


_TextDates.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_snapshot(text: str) -> dict[str, Any]:
    """The mapping in YAML or JSON text (dates kept as text)."""
    try:
        data = yaml.load(text, Loader=_TextDates)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise DisclosureError(f"not valid YAML or JSON: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise DisclosureError("a disclosure is a mapping of the fields of contract §2 (request_id: ..., authority: ...)")
    return {str(k): v for k, v in data.items()}


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{_SCHEMA}.schema.json").read_text())  # type: ignore[no-any-return]


def _words(name: str, spec: dict[str, Any], value: Any, exc: SchemaViolation) -> str:
    if name == "authority_country" and value is False:
        return f"{_WORDS[name]} (write Norway as 'NO', in quotes: YAML reads a bare NO as false)"
    if "enum" in spec:
        return f"use one of: {', '.join(map(str, spec['enum']))}"
    if spec.get("type") == "boolean":
        return "answer true or false"
    if "maxLength" in spec and isinstance(value, str) and len(value) > spec["maxLength"]:
        return f"is too long: at most {spec['maxLength']} characters"
    return _WORDS.get(name, exc.message)


def _valid(name: str, value: Any) -> bool:
    try:
        validator(_SCHEMA, name)(value)
    except SchemaViolation:
        return False
    if name.endswith("_at"):
        try:
            parse_time(value)
        except (ValueError, OverflowError):
            return False
    return True


def disclosure_problems(data: dict[str, Any], categories: frozenset[str] | set[str]) -> list[tuple[str, str]]:
    """(field path, message) for every wrong field, in the document's order, then the missing
    required fields in the schema's order, then those its conditions require."""
    schema = _schema()
    fields: dict[str, Any] = schema["properties"]
    problems: list[tuple[str, str]] = []
    for name, value in data.items():
        spec = fields.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(fields), n=1)
            problems.append((name, "is not a field of a disclosure" + (f" (did you mean {close[0]}?)" if close else "")))
            continue
        try:
            validator(_SCHEMA, name)(value)
        except SchemaViolation as exc:
            # an item of a list is named with its index (subject_refs[1])
            problems.append((name + exc.path if exc.path.startswith("[") else name, _words(name, spec, value, exc)))
            continue
        if name.endswith("_at") and not _valid(name, value):
            problems.append((name, f"is not a date on the calendar; {_TIME}"))
        elif name == "notice_due":
            try:
                parse_time(f"{value}T00:00:00Z")
            except ValueError:
                problems.append((name, "is not a date on the calendar; give one such as 2026-06-30"))
        elif name == "data_categories":
            for i, key in enumerate(value):
                if key not in categories:
                    close = difflib.get_close_matches(key, sorted(categories), n=2)
                    problems.append((f"{name}[{i}]", f"{key!r} is not a data category of the taxonomy"
                                     + (f" (did you mean {', '.join(close)}?)" if close else "")))
    problems += [(name, "is required") for name in schema["required"] if name not in data]
    for rule in schema.get("allOf", ()):
        condition = rule.get("if", {}).get("properties", {})
        if not condition or not all(n in data and _valid(n, data[n]) and _holds(spec, data[n]) for n, spec in condition.items()):
            continue
        when = " and ".join(f"{n} is {data[n]}" for n in condition)
        then = rule.get("then", {})
        problems += [(name, f"is required when {when}") for name in then.get("required", ()) if name not in data]
        for name, spec in then.get("properties", {}).items():
            if name in data and "minItems" in spec and isinstance(data[name], list) and len(data[name]) < spec["minItems"]:
                problems.append((name, f"must list at least {spec['minItems']} when {when}"))
    problems += date_order_problems(data)
    # the document's order for what it holds (a date contradicting another is reported where it
    # stands), the missing fields after it; sorted() is stable
    position = {name: i for i, name in enumerate(data)}
    return sorted(problems, key=lambda p: position.get(p[0].split("[")[0], len(position)))


def _holds(spec: dict[str, Any], value: Any) -> bool:
    if "const" in spec:
        return bool(value == spec["const"])
    if "enum" in spec:
        return value in spec["enum"]
    return False


def check_snapshot(data: dict[str, Any], event_validator: EventValidator) -> None:
    """DisclosureError listing every problem; then the checks a snapshot shares with a
    ``registry.disclosure.v1`` event (raw identifiers anywhere, never echoed)."""
    problems = disclosure_problems(data, event_validator.categories)
    if problems:
        raise DisclosureError.of(problems)
    try:
        event_validator.check_data(DISCLOSURE, data, prefix="")
    except EventError as exc:
        raise DisclosureError(exc.message, exc.path) from None
