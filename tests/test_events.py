"""Decoding and validation of single events: every reason code, both content modes."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.exceptions import EventError
from registry.model.events import EventValidator, RawRecord, stored_copy

from .helpers import record, ref, transfer


@pytest.fixture
def validator(manifest) -> EventValidator:  # type: ignore[no-untyped-def]
    return EventValidator(manifest.taxonomy_view())


def reason(validator: EventValidator, raw: RawRecord) -> str:
    with pytest.raises(EventError) as info:
        validator.decode(raw)
    return info.value.reason


def test_valid_structured_event(validator: EventValidator) -> None:
    event = validator.decode(record(transfer("e1", subject_refs=[ref("customer-1")])))
    assert (event.source, event.id, event.type) == ("//services/web", "e1", "registry.transfer.v1")
    assert event.time.isoformat() == "2026-03-01T10:00:00+00:00"
    assert len(event.payload_hash) == 64


def test_time_offsets_are_normalised_to_utc(validator: EventValidator) -> None:
    event = validator.decode(record(transfer("e1", time="2026-03-01T12:00:00+02:00")))
    assert event.time.isoformat() == "2026-03-01T10:00:00+00:00"


def test_binary_mode_gives_the_same_event_and_hash(validator: EventValidator) -> None:
    structured = transfer("e1")
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"e1"), ("ce_source", b"//services/web"),
               ("ce_type", b"registry.transfer.v1"), ("ce_time", b"2026-03-01T10:00:00Z"), ("content-type", b"application/json")]
    binary = validator.decode(RawRecord(value=orjson.dumps(structured["data"]), headers=headers))
    plain = validator.decode(record(structured))
    assert (binary.source, binary.id, binary.payload_hash) == (plain.source, plain.id, plain.payload_hash)
    assert orjson.loads(binary.body)["data"] == structured["data"]


def test_structured_mode_with_cloudevents_content_type(validator: EventValidator) -> None:
    raw = RawRecord(value=orjson.dumps(transfer("e1")), headers=[("content-type", b"application/cloudevents+json; charset=UTF-8"),
                                                                   ("ce_specversion", b"1.0")])
    assert validator.decode(raw).id == "e1"


def test_extension_category_is_known_only_with_the_manifest(validator: EventValidator) -> None:
    event = transfer("e1", data_categories=["user.workplace.specialty"])
    assert validator.decode(record(event)).data["data_categories"] == ["user.workplace.specialty"]
    assert reason(EventValidator(), record(event)) == "unknown_category"


@pytest.mark.parametrize(("raw", "expected"), [
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "invalid_envelope"),
    (orjson.dumps({k: v for k, v in transfer("e1").items() if k != "time"}), "invalid_envelope"),
    (orjson.dumps({**transfer("e1"), "specversion": "0.3"}), "invalid_envelope"),
    (orjson.dumps({**transfer("e1"), "time": "yesterday"}), "invalid_envelope"),
    (orjson.dumps({**transfer("e1"), "type": "registry.other.v1"}), "unknown_type"),
    (orjson.dumps(transfer("e1", legal_basis="because")), "invalid_data"),
    (orjson.dumps(transfer("e1", data_categories=[])), "invalid_data"),
    (orjson.dumps(transfer("e1", record_count=0)), "invalid_data"),
    (orjson.dumps(transfer("e1", record_count=2**63)), "invalid_data"),
    (orjson.dumps(transfer("e1", record_count=10**12 + 1)), "invalid_data"),
    (orjson.dumps(transfer("e1", surprise=1)), "invalid_data"),
    (orjson.dumps(transfer("e1", subject_refs=["abc123"])), "raw_identifier"),  # a numeric customer id is all hex
    (orjson.dumps(transfer("e1", subject_refs=["100234"])), "raw_identifier"),
    (orjson.dumps({**transfer("e1"), "time": "9999-12-31T23:59:59-01:00"}), "invalid_envelope"),
    (orjson.dumps(transfer("e1", activity="peer:2001:db8::1")), "raw_identifier"),
    (orjson.dumps({**transfer("e1"), "clientaddr": "client_203.0.113.7"}), "raw_identifier"),
    (orjson.dumps({**transfer("e1"), "subject": "user@[IPv6:2001:db8::2]"}), "raw_identifier"),
    (orjson.dumps(transfer("e1", **{"reviewer": "josé@example.com"})), "raw_identifier"),
    (orjson.dumps(transfer("e1", data_categories=["user.telepathy"])), "unknown_category"),
    (orjson.dumps(transfer("e1", purpose="world_domination")), "unknown_purpose"),
    (orjson.dumps(transfer("e1", data_subjects=["martian"])), "unknown_subject_category"),
    (orjson.dumps(transfer("e1", subject_refs=["jane.doe@example.org"])), "raw_identifier"),
    (orjson.dumps(transfer("e1", subject_refs=["+1 713 555 0100"])), "raw_identifier"),
    (orjson.dumps(transfer("e1", subject_refs=["203.0.113.9"])), "raw_identifier"),
    (orjson.dumps(transfer("e1", subject_refs=["Jane Doe"])), "raw_identifier"),
    (orjson.dumps(transfer("e1", recipient="198.51.100.7")), "raw_identifier"),
    (orjson.dumps({**transfer("e1"), "pad": "x" * (1024 * 1024)}), "too_large"),
])
def test_reason_codes(validator: EventValidator, raw: bytes, expected: str) -> None:
    assert reason(validator, RawRecord(value=raw)) == expected


def test_error_names_the_field(validator: EventValidator) -> None:
    with pytest.raises(EventError) as info:
        validator.decode(record(transfer("e1", data_categories=["user.contact.email", "user.telepathy"])))
    assert info.value.path == "data.data_categories[1]"


def test_stored_copy_masks_only_the_raw_identifiers() -> None:
    raw = RawRecord(value=orjson.dumps(transfer("e1", subject_refs=["jane.doe@example.org", "+1 713 555 0100", "Jane Doe", ref("x")])))
    kept, _ = stored_copy(raw)
    assert "jane.doe" not in kept and "555" not in kept and "Jane Doe" not in kept
    assert ref("x") in kept and "google-analytics" in kept
    assert orjson.loads(kept)["id"] == "e1" and orjson.loads(kept)["time"] == "2026-03-01T10:00:00Z"
    assert "jane@example.org" not in stored_copy(RawRecord(value=b'{"broken": "jane@example.org'))[0]


def test_stored_copy_of_a_clean_event_is_the_original() -> None:
    raw = RawRecord(value=b'{"id": "12345678", "time": "2026-03-02T10:00:00Z",  "data": {"n": 5551234567}}')
    assert stored_copy(raw)[0] == raw.value.decode()


def verdict(v: EventValidator, event: RawRecord) -> tuple[str, str | None] | None:
    try:
        v.decode(event)
        return None
    except EventError as exc:
        return exc.reason, exc.path


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, None),
    ({"subject_refs": [ref("a"), ref("b")], "record_count": 7}, None),
    ({"subject_refs": ["jane@example.org"]}, ("raw_identifier", "data.subject_refs[0]")),
    ({"subject_refs": [ref("a"), "abc123"]}, ("raw_identifier", "data.subject_refs[1]")),
    ({"subject_refs": "not-a-list"}, ("invalid_data", "data.subject_refs")),
    ({"record_count": 0}, ("invalid_data", "data.record_count")),
    ({"record_count": "3"}, ("invalid_data", "data.record_count")),
    ({"record_count": True}, ("invalid_data", "data.record_count")),
])
def test_a_known_shape_gives_the_same_verdict_as_a_fresh_validator(manifest, changes: dict, expected) -> None:  # type: ignore[no-untyped-def]
    """The shape cache is an optimisation only: a validator that has seen the shape before and
    one that has not must agree on every event, reason and field."""
    taxonomy = manifest.taxonomy_view()
    warm = EventValidator(taxonomy)
    warm.decode(record(transfer("seen", subject_refs=[ref("x")], record_count=2)))  # caches the shape
    event = record(transfer("e1", **changes))
    fresh = verdict(EventValidator(taxonomy), event)
    assert fresh == expected
    assert verdict(warm, event) == fresh


@pytest.mark.parametrize("changes", [{}, {"id": ""}, {"id": 7}, {"time": "yesterday"}, {"time": "2026-13-01T00:00:00Z"},
                                     {"specversion": "0.3"}, {"source": ""}])
def test_a_known_envelope_shape_gives_the_same_verdict(manifest, changes: dict) -> None:  # type: ignore[no-untyped-def]
    taxonomy = manifest.taxonomy_view()
    warm = EventValidator(taxonomy)
    warm.decode(record(transfer("seen")))
    event = record({**transfer("e1"), **changes})
    assert verdict(warm, event) == verdict(EventValidator(taxonomy), event)
    assert (verdict(warm, event) is None) == (changes == {})


def test_integral_floats_count_as_integers(validator: EventValidator) -> None:
    """JSON Schema accepts 7.0 as an integer; sums must stay exact integers (floats lose them past 2^53)."""
    event = validator.decode(record(transfer("e1", record_count=1e12)))
    assert event.data["record_count"] == 10**12 and isinstance(event.data["record_count"], int)
    assert event.payload_hash == validator.decode(record(transfer("e1", record_count=10**12))).payload_hash


def test_unparsed_copies_undo_json_escapes_and_mask_cut_addresses() -> None:
    kept, _ = stored_copy(RawRecord(value=b'{"note": "alice\\u0040example.com", "cut": "bob@exam'))
    assert "alice" not in kept and "bob" not in kept and "u0040" not in kept


# The scan skips a regex where its kind cannot match (no three dots: no IPv4; neither "::" nor
# seven colons: no IPv6). Oracle: the same spans as running every regex on every string.
def _spans_ungated(text: str) -> list[tuple[int, int, str]]:
    from registry.model import subjects

    found = [(a, b, "email") for a, b in subjects._emails(text)]
    found += [(*m.span(), "ip") for m in subjects._IPV4.finditer(text)]
    found += [(a, b, "ip") for a, b in subjects._ipv6s(text)]
    found += [(*m.span(), "phone") for m in subjects._PHONE_IN_TEXT.finditer(text)
              if 7 <= sum(c.isdigit() for c in m.group(0)) <= 15]
    return sorted(found)


@pytest.mark.parametrize("text", ["2026-03-02T09:00:00.123456Z", "2026-03-02T09:00:00+01:00", "10.0.0.1", "v1.2.3.4.5",
                                  "fe80::1ff:fe23:4567:890a", "1:2:3:4:5:6:7:8", "peer:2001:db8::1", "::ffff:10.0.0.1",
                                  "std::vector", "09:00:00", "a.b.c", "+49 30 1234567"])
def test_gated_scan_equals_every_regex_on_known_forms(text: str) -> None:
    from registry.model.subjects import _spans

    assert _spans(text) == _spans_ungated(text)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEF.:+@ -_xZT", max_size=60))
def test_gated_scan_equals_every_regex(text: str) -> None:
    from registry.model.subjects import _spans

    assert _spans(text) == _spans_ungated(text)


def test_headers_seen_clean_do_not_hide_a_new_identifier(validator: EventValidator) -> None:
    """Header pairs are scanned once and remembered clean: a later record with the same clean
    headers plus one holding an identifier, or a clean name with a new value, is still refused."""
    ct = ("content-type", b"application/cloudevents+json")
    assert validator.decode(RawRecord(value=orjson.dumps(transfer("h1")), headers=[ct, ("x-trace", b"abc")])).id == "h1"
    planted = [[ct, ("x-trace", b"abc"), ("x-user", b"alice@example.com")], [ct, ("x-trace", b"from 10.1.2.3")],
               [ct, ("x-trace", b"abc"), ("x-phone", b"+49 30 1234567")]]
    for i, headers in enumerate(planted):
        with pytest.raises(EventError) as info:
            validator.decode(RawRecord(value=orjson.dumps(transfer(f"h{i + 2}")), headers=headers))
        assert info.value.reason == "raw_identifier" and info.value.path.startswith("headers.")
    assert validator.decode(RawRecord(value=orjson.dumps(transfer("h9")), headers=[ct, ("x-trace", b"abc")])).id == "h9"
