"""Hostile records that need no broker (issue 26, contract v3 §1–§3): tombstones, huge values,
duplicate JSON keys and header names, identifiers hidden behind Unicode or percent-encoding,
non-UTF-8 attributes, re-serialised redeliveries, and the migration of stored payload hashes."""

from __future__ import annotations

import re

import orjson
import pytest
import sqlalchemy as sa

from registry.exceptions import EventError
from registry.intake.deadletters import list_dead_letters
from registry.intake.ingest import DeadRecord, Ingestor
from registry.model.events import MAX_EVENT_BYTES, EventValidator, RawRecord

from .conftest import all_text
from .helpers import record, store_at, transfer

BINARY = [("ce_specversion", b"1.0"), ("ce_source", b"//services/web"), ("ce_type", b"registry.transfer.v1"),
          ("ce_time", b"2026-03-01T10:00:00Z"), ("content-type", b"application/json")]


def _reason(raw: RawRecord) -> str:
    with pytest.raises(EventError) as info:
        EventValidator().decode(raw)
    return info.value.reason


def _envelope_bytes(event_id: str, data_json: str, **attributes: str) -> bytes:
    attrs = {"specversion": "1.0", "id": event_id, "source": "//services/web", "type": "registry.transfer.v1",
             "time": "2026-03-01T10:00:00Z", **attributes}
    head = ",".join(f'"{k}":{orjson.dumps(v).decode()}' for k, v in attrs.items())
    return f'{{{head},"data":{data_json}}}'.encode()


def test_a_tombstone_is_an_invalid_json_dead_letter_and_the_batch_around_it_is_kept(declared: sa.Engine) -> None:
    """Finding 1: a record with a null value crashed the batch's dead-letter write."""
    records = [record(transfer("t1")), RawRecord(value=None, headers=[("k", None)], topic="x", partition=0, offset=1),
               record(transfer("t2"))]
    result = Ingestor(declared).ingest(records)
    assert (result.ingested, result.dead_lettered) == (2, 1)
    [dead] = list_dead_letters(declared)
    assert dead.reason == "invalid_json" and "tombstone" in dead.detail


def test_a_huge_record_is_too_large_and_its_dead_letter_record_is_cut_to_1_mib() -> None:
    """Finding 2: the forwarder re-sent 10 MiB, more than the producer may send."""
    from consumers.forwarder import dlq_headers, dlq_value

    value = b'{"x":"' + b"a" * (10 * MAX_EVENT_BYTES) + b'"}'
    raw = RawRecord(value=value, topic="t", partition=0, offset=5)
    assert _reason(raw) == "too_large"
    dead = DeadRecord(raw, "too_large", "over")
    cut = dlq_value(dead) or b""
    assert MAX_EVENT_BYTES - 2000 < len(cut) and cut == value[:len(cut)]
    assert len(cut) + sum(len(k) + len(v) for k, v in dlq_headers(dead)) <= MAX_EVENT_BYTES
    assert dict(dlq_headers(dead))["dlq_truncated"] == str(len(value)).encode()
    small = DeadRecord(RawRecord(value=b"{}", topic="t", partition=0, offset=6), "invalid_envelope", "x")
    assert dlq_value(small) == b"{}" and "dlq_truncated" not in dict(dlq_headers(small))


@pytest.mark.parametrize("data_json, envelope_extra", [
    ('{"recipient":"google-analytics","recipient":"stripe","data_categories":["user.device.cookie_id"],'
     '"purpose":"analytics.reporting","legal_basis":"consent"}', {}),
    ('{"recipient":"bob@example.org","recipient":"google-analytics","data_categories":["user.device.cookie_id"],'
     '"purpose":"analytics.reporting","legal_basis":"consent"}', {}),
    ('{"recipient":"google-analytics","data_categories":["user.nope"],"purpose":"analytics.reporting",'
     '"legal_basis":"consent","note":{"who":"carol@example.net","who":"x"}}', {}),
])
def test_duplicate_json_keys_are_invalid_json_and_nothing_stores_the_hidden_value(
        declared: sa.Engine, data_json: str, envelope_extra: dict[str, str]) -> None:
    """Finding 5: orjson kept the last value; the first (an email) was stored unchecked."""
    raw = _envelope_bytes("d1", data_json, **envelope_extra)
    assert _reason(RawRecord(value=raw)) == "invalid_json"
    result = Ingestor(declared).ingest([RawRecord(value=raw)])
    assert result.dead_lettered == 1
    text = all_text(declared) + orjson.dumps([d.model_dump(mode="json") for d in list_dead_letters(declared)]).decode()
    assert "example.org" not in text and "example.net" not in text


def test_a_duplicate_subject_attribute_is_invalid_json() -> None:
    raw = b'{"specversion":"1.0","id":"d2","source":"//s","type":"registry.transfer.v1","time":"2026-03-01T10:00:00Z",' \
          b'"subject":"alice@example.com","subject":"ok","data":{}}'
    assert _reason(RawRecord(value=raw)) == "invalid_json"


def test_header_names_differing_only_in_case_are_invalid_json() -> None:
    """Finding 6 (headers): an identifier shadowed by the same header name in another case."""
    headers = [*BINARY, ("ce_id", b"h1"), ("X-User", b"erin@example.com"), ("x-user", b"ok")]
    data = orjson.dumps(transfer("h1")["data"])
    assert _reason(RawRecord(value=data, headers=headers)) == "invalid_json"
    assert _reason(RawRecord(value=data, headers=[*BINARY, ("ce_id", b"h1"), ("CE_ID", b"h2")])) == "invalid_json"


def _stored_text(engine: sa.Engine) -> str:
    """Every stored string and the dead letters as listed, without the digits of the store's own
    making, which are no leak: hashes (hex runs) and the times it recorded (a time's microseconds
    once held "7946")."""
    text = all_text(engine) + orjson.dumps([d.model_dump() for d in list_dead_letters(engine)]).decode()
    return re.sub(r"[0-9a-f]{16,}|\d{2}:\d{2}:\d{2}(\.\d+)?", "", text)


@pytest.mark.parametrize("where, value", [
    ("source", "//services/web?u=erin%40example.com"),
    ("source", "//services/web?u=erin%2540example.com"),
    ("source", "//services/erin＠example.com"),
    ("subject", "call ＋44 20 7946 0958"),
    ("source", "//services/erin@exam\u200bple.com"),
    ("source", "//services/erin@exam\u00adple.com"),
    ("data", "+49 170/9876543"),
    ("data", "192.168.001.010"),
    ("data", "ｅｒｉｎ＠ｅｘａｍｐｌｅ．ｃｏｍ"),
])
def test_disguised_identifiers_are_raw_identifier_and_never_stored(declared: sa.Engine, where: str, value: str) -> None:
    """Finding 6: identifiers behind percent-encoding, fullwidth forms, format characters, a
    slash in a phone number, zero-padded IPv4 octets."""
    event = transfer("i1", note=value) if where == "data" else {**transfer("i1"), where: value}
    assert _reason(record(event)) == "raw_identifier"
    Ingestor(declared).ingest([record(event)])
    [dead] = list_dead_letters(declared)
    assert dead.reason == "raw_identifier"
    text = _stored_text(declared)
    for needle in ("erin", "9876543", "7946", "192.168", "ｅｒｉｎ"):
        assert needle not in text, needle


def test_a_disguised_identifier_in_a_header_is_refused() -> None:
    headers = [*BINARY, ("ce_id", b"h3"), ("x-trace", "erin＠example.com".encode())]
    assert _reason(RawRecord(value=orjson.dumps(transfer("h3")["data"]), headers=headers)) == "raw_identifier"


def test_non_utf8_attribute_bytes_are_invalid_envelope_and_never_merge_ids(declared: sa.Engine) -> None:
    """Finding 7: ce_id bytes s5\\xff were stored as s5\\ufffd (two distinct ids merged)."""
    data = orjson.dumps(transfer("x")["data"])
    bad = RawRecord(value=data, headers=[*BINARY, ("ce_id", b"s5\xff")], topic="t", partition=0, offset=1)
    other = RawRecord(value=data, headers=[*BINARY, ("ce_id", b"s5\xfe")], topic="t", partition=0, offset=2)
    assert _reason(bad) == "invalid_envelope"
    result = Ingestor(declared).ingest([bad, other])
    assert (result.ingested, result.dead_lettered) == (0, 2)
    assert {d.reason for d in list_dead_letters(declared)} == {"invalid_envelope"}
    # a non-UTF-8 header that is no attribute (binary tracing ids exist) does not refuse the event
    fine = RawRecord(value=data, headers=[*BINARY, ("ce_id", b"s6"), ("traceparent", b"\xff\x00")])
    assert EventValidator().decode(fine).id == "s6"


def test_a_re_serialised_redelivery_is_a_duplicate(declared: sa.Engine) -> None:
    """Finding 8: the same event with +00:00 instead of Z (other key order, whitespace, binary
    mode) was a conflicting_duplicate."""
    original = transfer("r1", record_count=3)
    again = {**original, "time": "2026-03-01T10:00:00+00:00"}
    spaced = orjson.dumps(dict(reversed(list(again.items()))), option=orjson.OPT_INDENT_2)
    shifted = {**original, "time": "2026-03-01T12:00:00+02:00"}
    binary = RawRecord(value=b'{ "record_count" : 3.0, ' + orjson.dumps({k: v for k, v in original["data"].items() if k != "record_count"})[1:],
                       headers=[*BINARY[:3], ("ce_time", b"2026-03-01T10:00:00.000+00:00"), BINARY[4], ("ce_id", b"r1")])
    ingestor = Ingestor(declared)
    assert ingestor.ingest([record(original)]).ingested == 1
    result = ingestor.ingest([record(again), RawRecord(value=spaced), record(shifted), binary])
    assert (result.ingested, result.duplicates, result.dead_lettered) == (0, 4, 0)
    changed = {**original, "data": {**original["data"], "record_count": 4}, "time": "2026-03-01T10:00:00+00:00"}
    assert ingestor.ingest([record(changed)]).dead_lettered == 1
    assert list_dead_letters(declared)[0].reason == "conflicting_duplicate"


def _insert_old_event(old: sa.Engine, event: dict, digest: str) -> None:  # type: ignore[type-arg]
    """``event`` as an older store version holds it (its hash as that version computed it)."""
    with old.begin() as conn:
        conn.execute(sa.text("INSERT INTO event (source, event_id, type, time, recipient, payload_hash, body) "
                             "VALUES (:s, :i, :t, :tm, :r, :h, :b)"),
                     {"s": event["source"], "i": event["id"], "t": event["type"], "tm": "2026-03-01 10:00:00.000000",
                      "r": "google-analytics", "h": digest, "b": orjson.dumps(event).decode()})
    old.dispose()


@pytest.mark.empty_store
def test_migration_0005_rehashes_stored_events_canonically(db_url: str, manifest) -> None:  # type: ignore[no-untyped-def]
    """A store written with the old hash (raw time text) accepts the re-serialised redelivery as
    a duplicate once migrated."""
    import hashlib

    from registry.model.declarations import declare
    from registry.model.store import open_store

    old = store_at(db_url, "0004")
    event = transfer("m1")
    legacy = hashlib.sha256(orjson.dumps(event["data"], option=orjson.OPT_SORT_KEYS))
    legacy.update(f"|registry.transfer.v1|{event['time']}".encode())
    _insert_old_event(old, event, legacy.hexdigest())
    engine = open_store(db_url)
    declare(engine, manifest)
    result = Ingestor(engine).ingest([record({**event, "time": "2026-03-01T10:00:00+00:00"})])
    assert (result.ingested, result.duplicates, result.dead_lettered) == (0, 1, 0)


def _deep_event(event_id: str, depth: int) -> bytes:
    return _envelope_bytes(event_id, '{"x":' + "[" * depth + '"z"' + "]" * depth + "}")


def test_a_record_nested_300_deep_is_invalid_json_and_the_file_around_it_is_stored(declared: sa.Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Review finding 1: orjson reads 1024 levels but writes 255; the dead-letter copy raised
    TypeError (the batch failed at every run, the partition was stuck)."""
    from registry.model.events import lines_of

    path = tmp_path / "deep.jsonl"
    path.write_bytes(b"\n".join([orjson.dumps(transfer("d-before")), _deep_event("deep", 300),
                                 orjson.dumps(transfer("d-after")), b"[" * 1000 + b"]" * 1000]) + b"\n")
    with path.open("rb") as stream:
        result = Ingestor(declared).ingest(lines_of(stream, str(path)))
    assert (result.ingested, result.dead_lettered) == (2, 2)
    dead = list_dead_letters(declared)
    assert {d.reason for d in dead} == {"invalid_json"} and all("nested too deeply" in d.detail for d in dead)


def test_huge_headers_make_a_record_too_large_and_its_dead_letter_record_fits_1_mib(declared: sa.Engine) -> None:
    """Review finding 3: only the value was measured; a 9 MiB header on a small value was decoded,
    stored whole in the dead-letter row and forwarded whole (the producer refused it for ever)."""
    from consumers.forwarder import dlq_headers, dlq_value

    headers = [("content-type", b"application/cloudevents+json"), ("trace", b"a" * (9 * MAX_EVENT_BYTES)), ("after", b"x")]
    raw = RawRecord(value=orjson.dumps(transfer("hh")), headers=headers, topic="t", partition=0, offset=3)
    assert _reason(raw) == "too_large"
    dead = DeadRecord(raw, "too_large", "over")
    value, out = dlq_value(dead), dict(dlq_headers(dead))
    assert value == raw.value  # the value is kept whole; the header is cut, the one after it dropped
    assert len(value or b"") + sum(len(k) + len(v) for k, v in dlq_headers(dead)) <= MAX_EVENT_BYTES
    assert out["content-type"] == headers[0][1] and headers[1][1].startswith(out["trace"]) and "after" not in out
    assert out["dlq_truncated_headers"] == str(sum(len(k) + len(v) for k, v in headers)).encode()
    assert out["dlq_truncated"] == str(len(raw.value or b"")).encode()
    assert Ingestor(declared).ingest([raw, record(transfer("hh2"))]).ingested == 1
    [row] = list_dead_letters(declared)
    assert row.reason == "too_large"
    with declared.connect() as conn:
        stored = conn.execute(sa.text("SELECT headers FROM dead_letter")).scalar()
    assert stored is not None and len(stored) < 20_000  # each header cut to 4096 characters


@pytest.mark.parametrize("where, value", [
    ("source", "//services/erin@exam\ufe0fple.com"),  # variation selector 16
    ("data", "erin@exam\U000e0100ple.com"),  # variation selector 17
    ("data", "erin@exam\u180bple.com"),  # Mongolian free variation selector
    ("data", "erin@exam\u3164ple.com"),  # Hangul filler
    ("data", "erin@exam\u034fple.com"),  # combining grapheme joiner
    ("source", "//services/web?u=erin%25252540example.com"),  # encoded four times
    ("source", "//services/web?p=%2B44+20+7946+0958"),  # form-encoded phone
    ("data", "+44+20+7946+0958"),
    ("data", "erin@example\u3002com"),  # ideographic full stop
    ("data", "erin@example\uff61com"),  # halfwidth ideographic full stop
    ("data", "192\u3002168\u30021\u300210"),
    ("subject", "call +44\u201320\u20137946\u20130958"),  # en dashes
])
def test_identifiers_behind_ignorable_characters_plus_signs_and_deep_encoding_are_never_stored(
        declared: sa.Engine, where: str, value: str) -> None:
    """Review finding 5: default-ignorable code points, ``+`` separators, percent-encoding more
    than three times and other scripts' full stops hid identifiers from the guard."""
    event = transfer("i5", note=value) if where == "data" else {**transfer("i5"), where: value}
    assert _reason(record(event)) == "raw_identifier"
    Ingestor(declared).ingest([record(event)])
    [dead] = list_dead_letters(declared)
    assert dead.reason == "raw_identifier"
    text = _stored_text(declared)
    for needle in ("erin", "7946", "168"):
        assert needle not in text, needle


def _disclosure_event(event_id: str, **data: object) -> dict:  # type: ignore[type-arg]
    body = {"request_id": "SUB-9", "authority": "District Court", "authority_country": "US", "instrument": "subpoena",
            "received_at": "2026-02-01T09:00:00Z", "outcome": "pending", "notice": "pending", "subject_refs": ["a" * 64]}
    return {"specversion": "1.0", "id": event_id, "source": "//services/legal", "type": "registry.disclosure.v1",
            "time": "2026-02-01T09:00:00Z", "data": {**body, **data}}


@pytest.mark.parametrize("left_out, spelt_out", [
    (transfer("dflt-t"), {**transfer("dflt-t"), "data": {**transfer("dflt-t")["data"], "record_count": 1}}),
    (_disclosure_event("dflt-d"), _disclosure_event("dflt-d", emergency=False, subject_count=1)),
])
def test_a_default_spelt_out_is_the_same_event(declared: sa.Engine, left_out: dict, spelt_out: dict) -> None:  # type: ignore[type-arg]
    """Review finding 6: a redelivery spelling out ``record_count`` 1 (or a disclosure's
    ``emergency`` false, ``subject_count`` = its refs) was a conflicting duplicate."""
    ingestor = Ingestor(declared)
    assert ingestor.ingest([record(left_out)]).ingested == 1
    result = ingestor.ingest([record(spelt_out)])
    assert (result.ingested, result.duplicates, result.dead_lettered) == (0, 1, 0)
    changed = {**spelt_out, "data": {**spelt_out["data"], ("record_count" if "record_count" in spelt_out["data"] else "subject_count"): 2}}
    assert ingestor.ingest([record(changed)]).dead_lettered == 1


@pytest.mark.empty_store
def test_migration_0008_rehashes_events_stored_without_their_defaults(db_url: str, manifest) -> None:  # type: ignore[no-untyped-def]
    """Review finding 6 on a store that ran 0005 before defaults were hashed: its hashes are
    recomputed, so the redelivery with the default spelt out is a duplicate."""
    import hashlib

    from registry.model.declarations import declare
    from registry.model.store import open_store

    old = store_at(db_url, "0006")
    event = transfer("m8")
    before = hashlib.sha256(orjson.dumps(event["data"], option=orjson.OPT_SORT_KEYS))  # the 0005 hash: no defaults
    before.update(b"|registry.transfer.v1|2026-03-01T10:00:00+00:00")
    _insert_old_event(old, event, before.hexdigest())
    engine = open_store(db_url)
    declare(engine, manifest)
    result = Ingestor(engine).ingest([record({**event, "data": {**event["data"], "record_count": 1}})])
    assert (result.ingested, result.duplicates, result.dead_lettered) == (0, 1, 0)
