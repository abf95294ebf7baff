"""The disclosure form's reading and checking: every mistake of a submitted form at once, and
the snapshot it submits (date-times read as UTC, subject ids turned into refs)."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Any

from registry.model.subjects import subject_ref

from .render import FIELD_LABELS, choice_label, choices

__all__ = ["snapshot_from_form", "form_errors", "choice_words", "TIMES", "PRODUCED"]

TIMES = ("received_at", "disclosed_at", "confirmed_at")
_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")
REQUIRED = ("request_id", "authority", "authority_country", "received_at", "instrument", "outcome", "notice")
PRODUCED = ("produced", "partially_produced")  # the outcomes that disclose data: the categories are then required
_ONLY_FOR = {"emergency": "eu_production_order", "confirmed_at": "eu_preservation_order"}  # e-Evidence fields, by instrument
# kept from the previous version under the same instrument: the command line may mark any request
# as an emergency (the transparency report counts them); a confirmation means nothing elsewhere
_KEPT = ("emergency",)


def choice_words(field: str) -> dict[str, tuple[str, str]]:
    return {value: (label, text) for value, label, text in choices(field)}


def _utc(value: str) -> str:
    """A browser's date-time (``2026-04-02T10:00``, no zone) read as UTC."""
    return value + (":00Z" if len(value) == 16 else "Z") if _LOCAL.match(value) else value


def _moment(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def form_errors(values: dict[str, Any]) -> dict[str, str]:
    """Every mistake of a submitted form at once, in the order of the form: the required fields,
    the fields an outcome or a notice makes required, and dates in the wrong order."""
    errors: dict[str, str] = {}
    for name in REQUIRED:
        if not values.get(name):
            errors[name] = "is required"
    for name, allowed in (("instrument", "instrument"), ("outcome", "outcome"), ("notice", "notice")):
        if values.get(name) and values[name] not in choice_words(allowed):
            errors[name] = "is not one of the choices"
    if values.get("outcome") in PRODUCED and not values.get("data_categories"):
        errors["data_categories"] = f"is required when the outcome is {choice_label(values['outcome'], 'outcome').lower()}"
    if values.get("notice") == "delayed" and not values.get("notice_due"):
        errors["notice_due"] = "is required when notice is delayed"
    received = _moment(_utc(values["received_at"])) if values.get("received_at") else None
    if values.get("received_at") and received is None:
        errors["received_at"] = "is not a date and time"
    disclosed = _moment(_utc(values["disclosed_at"])) if values.get("disclosed_at") else None
    if values.get("disclosed_at") and disclosed is None:
        errors["disclosed_at"] = "is not a date and time"
    elif received and disclosed and disclosed < received:
        errors["disclosed_at"] = "is before the request was received"
    confirmed = _moment(_utc(values["confirmed_at"])) if values.get("confirmed_at") else None
    if values.get("confirmed_at") and values.get("instrument") == _ONLY_FOR["confirmed_at"]:
        if confirmed is None:
            errors["confirmed_at"] = "is not a date and time"
        elif received and confirmed < received:
            errors["confirmed_at"] = "is before the request was received"
    due = values.get("notice_due")
    if due:
        try:
            if received and date.fromisoformat(due) < received.date():
                errors["notice_due"] = "is before the request was received"
        except ValueError:
            errors["notice_due"] = "is not a date"
    if values.get("subject_count") not in (None, "") and _count(values["subject_count"]) is None:
        errors["subject_count"] = "is a whole number from 0 to 9223372036854775807"
    return errors


_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII digits only: "²" and "٣" pass str.isdigit() but are no number int() reads
_MAX_COUNT = 2**63 - 1  # the schema's maximum: what the store's JSON (orjson, 64-bit) can hold


def _count(value: Any) -> int | None:
    """The form's number of people as an int, or None if it is not one the ledger can store
    (checked before int() so a 4,000-digit number is never converted)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= _MAX_COUNT else None
    text = str(value).strip()
    return int(text) if _DIGITS.fullmatch(text) and int(text) <= _MAX_COUNT else None


def snapshot_from_form(values: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The disclosure snapshot a form submits: empty fields and fields that do not apply left out
    (categories unless data was produced, the notice date unless notice is delayed, the emergency
    mark unless an EU production order, the confirmation unless an EU preservation order; but the
    emergency mark of the request's ``previous`` version under the same instrument is kept: the
    command line may set it on any instrument, and the form, which offers it only for EU
    production orders, must not drop it silently),
    date-times read as UTC, a ticked checkbox ("on") true, categories a list (a comma list is
    accepted), subject ids turned into refs with the subject key and added to the refs kept from
    the version before (never stored raw)."""
    document: dict[str, Any] = {}
    for name in FIELD_LABELS:
        value = values.get(name)
        if value in (None, "", []):
            continue
        if name in TIMES and isinstance(value, str):
            value = _utc(value)
        elif name == "emergency" and isinstance(value, str):
            value = value.lower() in ("on", "true", "yes", "1")  # a ticked checkbox sends "on"
        elif name == "subject_count" and isinstance(value, str):
            number = _count(value)
            value = value if number is None else number  # not a number: left as text for the schema to refuse
        elif name == "data_categories" and isinstance(value, str):
            value = [c.strip() for c in value.split(",") if c.strip()]
        document[name] = value
    if document.get("outcome") not in PRODUCED:
        document.pop("data_categories", None)
    if document.get("notice") != "delayed":
        document.pop("notice_due", None)
    for name, instrument in _ONLY_FOR.items():
        if document.get("instrument") != instrument:
            document.pop(name, None)
            if name in _KEPT and previous and previous.get("instrument") == document.get("instrument") and name in previous:
                document[name] = previous[name]
    ids = [s.strip() for s in re.split(r"[\n,;]", str(values.get("subject_ids") or "")) if s.strip()]
    refs = list(dict.fromkeys([*(document.get("subject_refs") or []), *(subject_ref(i) for i in ids)]))
    if refs:
        document["subject_refs"] = refs
    return document
