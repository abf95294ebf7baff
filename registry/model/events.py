"""CloudEvents in, validated events out: decoding (structured, binary, JSON Lines), validation
against the compiled schemas and the taxonomy, and the contract's dead-letter reason codes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Iterator, Sequence

import orjson

from registry.exceptions import EventError

from .canonical import DISCLOSURE, TRANSFER, payload_hash
from .schemas import SchemaViolation, validator
from .subjects import Finding, identifier_in, mask_text, mask_unparsed, scrub
from .taxonomy import Taxonomy, default_taxonomy
from .times import check_dates, parse_time

__all__ = [
    "TRANSFER",
    "DISCLOSURE",
    "MAX_EVENT_BYTES",
    "REASONS",
    "RawRecord",
    "Event",
    "EventValidator",
    "stored_copy",
    "header_bytes",
    "record_size",
    "lines_of",
    "payload_hash",
    "loads_strict",
]

MAX_EVENT_BYTES = 1024 * 1024
REASONS = (
    "invalid_json", "invalid_envelope", "unknown_type", "invalid_data", "unknown_category",
    "unknown_purpose", "unknown_subject_category", "raw_identifier", "conflicting_duplicate", "too_large",
)
_SCHEMAS = {TRANSFER: "transfer.v1", DISCLOSURE: "disclosure.v1"}
_CE_ATTRS = ("specversion", "id", "source", "type", "time", "subject", "dataschema")
_VARYING = ("subject_refs", "record_count")  # the transfer fields that change from event to event
_PER_EVENT = ("id", "time", "data")
_COUNTS = ("record_count", "subject_count")  # envelope members that change from event to event
_SHAPES_KEPT = 10_000

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class RawRecord:
    """Bytes as they arrived, and where from (topic/partition/offset, or file line)."""

    value: bytes | None  # None: a tombstone (a Kafka record without a value)
    headers: Headers | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


@dataclass(slots=True)  # built once per event: a frozen dataclass's __init__ costs twice as much
class Event:
    source: str
    id: str
    type: str
    time: datetime  # aware, UTC
    data: dict[str, Any]
    payload_hash: str
    body: bytes = field(repr=False)  # the structured envelope as received, kept as evidence


def header_bytes(headers: Headers | None) -> int:
    """What a record's headers weigh (names and values, as the broker holds them)."""
    return sum(len(name.encode("utf-8", "replace")) + len(value or b"") for name, value in headers or ())


def record_size(record: RawRecord) -> int:
    """The size the 1 MiB limit applies to: value and headers."""
    return len(record.value or b"") + header_bytes(record.headers)


def lines_of(stream: Iterable[bytes], origin: str | None = None) -> Iterator[RawRecord]:
    """JSON Lines → raw records (blank lines skipped; the line number kept as the offset)."""
    for number, line in enumerate(stream, start=1):
        line = line.rstrip(b"\r\n")
        if line.strip():
            yield RawRecord(value=line, topic=origin, offset=number)


def _header_map(headers: Headers | None) -> dict[str, str]:
    """Header names lower-cased, values as text. A name given twice (in any case: ``ce_id`` and
    ``CE_ID``) is refused as invalid_json: one of the values would shadow the other, unchecked.
    A CloudEvents attribute or content type that is not UTF-8 is refused (invalid_envelope):
    replacing its bytes would merge distinct ids. Other headers (tracing ids may be binary) are
    read with replacement, for the identifier scan only."""
    out: dict[str, str] = {}
    for name, value in headers or ():
        lowered = name.lower()
        if lowered in out:
            raise EventError("invalid_json", f"header {mask_text(name)!r} is given twice (names differ only in case)",
                             f"headers.{mask_text(lowered)}")
        if value is None:
            out[lowered] = ""
        elif isinstance(value, (bytes, bytearray)):
            try:
                out[lowered] = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                if lowered.startswith("ce_") or lowered == "content-type":
                    raise EventError("invalid_envelope", f"header {mask_text(name)!r} is not UTF-8",
                                     f"headers.{mask_text(lowered)}") from None
                out[lowered] = bytes(value).decode("utf-8", "replace")
        else:
            out[lowered] = str(value)
    return out


def loads_strict(raw: bytes) -> Any:
    """``orjson.loads``, refusing an object with a duplicate key (contract §1: a parser keeping
    one of the values would check another event than the bytes stored). orjson keeps the last
    value silently, so colons are counted: re-serialising what was parsed keeps every colon of
    the input but those of the members a duplicate dropped (each at least its own separator).
    Only an escaped colon (``\\u003a``) adds one back: then the strings are cut out first and
    the members counted exactly. A value nested deeper than orjson writes (255 levels) is refused
    here too: every later step (shapes, the stored copy) re-serialises it."""
    value = orjson.loads(raw)
    if isinstance(value, (dict, list)):
        try:
            again = orjson.dumps(value)
        except (TypeError, RecursionError):  # orjson reads 1024 levels but writes 255: not an event
            raise EventError("invalid_json", "nested too deeply (over 255 levels)") from None
        if b":" not in raw:
            return value
        if b"\\u003" in raw.lower():
            raw, again = _JSON_STRING.sub(b"", raw), _JSON_STRING.sub(b"", again)
        if raw.count(b":") != again.count(b":"):
            raise EventError("invalid_json", "an object has a duplicate key")
    return value


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # with its escapes


def _is_binary(headers: dict[str, str]) -> bool:
    """Binary content mode: a ``ce_specversion`` header and no cloudevents content type."""
    return not headers.get("content-type", "").startswith("application/cloudevents") and "ce_specversion" in headers


class EventValidator:
    """Validates raw records against the schemas and one taxonomy (built once per batch run)."""

    def __init__(self, taxonomy: Taxonomy | None = None) -> None:
        taxonomy = taxonomy or default_taxonomy()
        self.categories = taxonomy.keys("data_categories")
        self.uses = taxonomy.keys("data_uses")
        self.subjects = taxonomy.keys("data_subjects")
        self._envelope = validator("cloudevent")
        self._data = {t: validator(name) for t, name in _SCHEMAS.items()}
        self._varying = {name: validator(_SCHEMAS[TRANSFER], name) for name in _VARYING}
        self._valid_shapes: set[bytes] = set()
        self._attributes = {name: validator("cloudevent", name) for name in ("id", "time")}
        self._valid_envelopes: set[bytes] = set()
        self._clean_headers: set[tuple[str, str]] = set()  # (name, value) pairs scanned clean

    def decode(self, record: RawRecord) -> Event:
        """The validated event, or EventError with the reason code."""
        if record.value is None:
            raise EventError("invalid_json", "a record without a value (tombstone)")
        size = record_size(record)
        if size > MAX_EVENT_BYTES:  # headers count: 9 MiB of header on a small value is no event either
            raise EventError("too_large", f"{size} bytes (value and headers) is over the 1 MiB limit")
        envelope, binary, headers = self._envelope_of(record)
        if not isinstance(envelope, dict):
            _refuse(scrub(envelope)[1])
            raise EventError("invalid_envelope", "a structured event must be a JSON object")
        # Raw identifiers first, in every string of the event (keys included): whatever else is
        # wrong with it, such an event is a raw_identifier dead letter, and an event refused for
        # any other reason is known to be clean, so its stored copy can be the original.
        if not self._clean_headers.issuperset(headers.items()):  # most repeat on every record (content-type)
            _refuse([Finding(f"headers.{mask_text(name)}", kind) for name, value in headers.items()
                     for kind in (identifier_in(name) or identifier_in(value),) if kind])
            for pair in headers.items():
                _remember(self._clean_headers, pair)
        attributes = {k: v for k, v in envelope.items() if k not in _PER_EVENT}
        shape = orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS)
        if shape not in self._valid_envelopes:  # a shape seen valid was seen clean
            _refuse(scrub(attributes)[1])
        for name in ("id", "time"):
            value = envelope.get(name)
            if value is not None and (not isinstance(value, str) or identifier_in(value)):
                _refuse(scrub(value, name)[1])
        data = envelope.get("data")
        data_shape = None
        if isinstance(data, dict) and envelope.get("type") == TRANSFER:
            data_shape = orjson.dumps({k: v for k, v in data.items() if k not in _VARYING}, option=orjson.OPT_SORT_KEYS)
            if data_shape in self._valid_shapes:
                for name in _VARYING:
                    if name in data:
                        _refuse(scrub(data[name], f"data.{name}", name == "subject_refs" and isinstance(data[name], list))[1])
            else:
                _refuse(scrub(data, "data")[1])
        elif "data" in envelope:
            _refuse(scrub(data, "data")[1])
        self._check_envelope(envelope, shape)
        try:
            moment = parse_time(envelope["time"])
        except (ValueError, OverflowError) as exc:  # a year 9999 time past UTC midnight overflows
            raise EventError("invalid_envelope", str(exc), "time") from None
        kind = envelope["type"]
        if kind not in _SCHEMAS:
            raise EventError("unknown_type", f"unknown event type {kind!r}", "type")
        if not isinstance(data, dict):
            raise EventError("invalid_data", "data must be a JSON object", "data")
        if kind == TRANSFER:
            self._check_transfer(data, data_shape)
        else:
            self.check_data(kind, data)
        for name in _COUNTS:  # JSON Schema takes 7.0 for an integer: counted and summed as 7, exactly
            if isinstance(data.get(name), float):
                data[name] = int(data[name])
        digest = payload_hash(kind, moment, data)
        return Event(
            source=envelope["source"], id=envelope["id"], type=kind, time=moment, data=data,
            payload_hash=digest, body=orjson.dumps(envelope) if binary else record.value,  # type: ignore[arg-type]
        )

    def check_data(self, kind: str, data: dict[str, Any], prefix: str = "data.") -> None:
        """Validate an event's data (raw identifiers, schema, taxonomy); EventError names the field."""
        try:
            self._check_fully(kind, data)
        except EventError as exc:
            if prefix == "data." or not exc.path:
                raise
            raise EventError(exc.reason, exc.message, prefix + exc.path.removeprefix("data.")) from None

    def _check_fully(self, kind: str, data: dict[str, Any]) -> None:
        _refuse(scrub(data, "data")[1])
        try:
            self._data[kind](data)
        except SchemaViolation as exc:
            raise EventError("invalid_data", exc.message, f"data.{exc.path}" if exc.path else "data") from None
        self._check_taxonomy(data)
        if kind == DISCLOSURE:
            check_dates(data)

    def _check_envelope(self, envelope: dict[str, Any], shape: bytes) -> None:
        """As for data: the attributes but id and time repeat per source, so a shape seen valid
        is not validated again, only id and time against their own definitions."""
        if "id" not in envelope or "time" not in envelope:
            shape = None  # type: ignore[assignment]
        try:
            if shape is None or shape not in self._valid_envelopes:
                self._envelope(envelope)
                if shape is not None:
                    _remember(self._valid_envelopes, shape)
                return
            for name in ("id", "time"):
                try:
                    self._attributes[name](envelope[name])
                except SchemaViolation as exc:
                    raise SchemaViolation(name, exc.message) from None
        except SchemaViolation as exc:
            raise EventError("invalid_envelope", exc.message, exc.path or "(envelope)") from None

    def _check_transfer(self, data: dict[str, Any], shape: bytes | None = None) -> None:
        """Transfers from one service mostly repeat the same fields but for subject_refs and
        record_count: a shape (all the other fields) seen valid once is not validated again, and
        only the varying fields are, against their own definitions in the same schema."""
        if shape is None:
            shape = orjson.dumps({k: v for k, v in data.items() if k not in _VARYING}, option=orjson.OPT_SORT_KEYS)
        if shape not in self._valid_shapes:
            self._check_fully(TRANSFER, data)
            _remember(self._valid_shapes, shape)
            return
        for name in _VARYING:
            if name in data:
                try:
                    self._varying[name](data[name])
                except SchemaViolation as exc:
                    raise EventError("invalid_data", exc.message, f"data.{name}{exc.path}") from None

    def _envelope_of(self, record: RawRecord) -> tuple[Any, bool, dict[str, str]]:
        headers = _header_map(record.headers)
        binary = _is_binary(headers)
        try:
            value = loads_strict(record.value)  # type: ignore[arg-type]  # decode refused None
        except orjson.JSONDecodeError as exc:
            raise EventError("invalid_json", f"not JSON: {exc}") from None
        if not binary:
            return value, False, headers
        envelope: dict[str, Any] = {a: headers[f"ce_{a}"] for a in _CE_ATTRS if f"ce_{a}" in headers}
        envelope["data"] = value
        return envelope, True, headers

    def _check_taxonomy(self, data: dict[str, Any]) -> None:
        for i, key in enumerate(data.get("data_categories", ())):
            if key not in self.categories:
                raise EventError("unknown_category", f"unknown data category {key!r}", f"data.data_categories[{i}]")
        if "purpose" in data and data["purpose"] not in self.uses:
            raise EventError("unknown_purpose", f"unknown purpose {data['purpose']!r}", "data.purpose")
        for i, key in enumerate(data.get("data_subjects", ())):
            if key not in self.subjects:
                raise EventError("unknown_subject_category", f"unknown data subject category {key!r}", f"data.data_subjects[{i}]")


def _remember(shapes: set[Any], shape: Any) -> None:
    if len(shapes) >= _SHAPES_KEPT:  # a stream of ever-new shapes must not grow memory without bound
        shapes.clear()
    shapes.add(shape)


def _refuse(findings: list[Finding]) -> None:
    """raw_identifier naming where (paths whose keys are masked), never what."""
    if findings:
        others = ", ".join(dict.fromkeys(f.path or "(value)" for f in findings[1:]))
        kinds = ", ".join(sorted({f.kind for f in findings}))
        raise EventError("raw_identifier", f"a raw identifier ({kinds})" + (f"; also at {others}" if others else ""),
                         findings[0].path or "(value)")


def stored_copy(record: RawRecord, limit: int = 4096) -> tuple[str, str | None]:
    """What a dead-letter row keeps (payload, headers as JSON): the original itself where it holds
    no raw identifier, so that a replay is exactly the original event; else a copy with only the
    identifiers masked (structure-aware: ids, dates and numbers stay as they were). Oversized or
    unparseable bytes keep at most ``limit`` characters of masked text; a tombstone keeps ``""``."""
    big = header_bytes(record.headers) > MAX_EVENT_BYTES  # a row keeps at most ``limit`` characters of each
    headers = orjson.dumps([[mask_text(k[:limit] if big else k),
                             mask_text(bytes(v[:limit] if big else v).decode("utf-8", "replace") if v is not None else "")]
                            for k, v in record.headers]).decode() if record.headers else None
    if record.value is None:
        return "", headers
    if len(record.value) > MAX_EVENT_BYTES:
        return mask_unparsed(record.value[:limit].decode("utf-8", "replace")), headers
    try:
        masked, findings = scrub(loads_strict(record.value))
    except (orjson.JSONDecodeError, EventError):
        return mask_unparsed(record.value[:limit].decode("utf-8", "replace")), headers
    return (orjson.dumps(masked).decode() if findings else record.value.decode("utf-8")), headers
