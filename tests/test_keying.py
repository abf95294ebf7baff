"""Contract §3 (v3): transfers are keyed by ``source/id`` (spread over every partition, a
redelivery lands where the original did), disclosures by ``request_id``."""

from __future__ import annotations

import uuid
from collections import Counter

import orjson

from registry.stream.emitter import Emitter
from registry.stream.kafka import Topics, send_lines, to_kafka

from .test_kafka import _dead_letter_topic  # reads any topic from its start


def _transfer(i: int, recipient: str = "stripe") -> bytes:
    return orjson.dumps({"specversion": "1.0", "id": f"e-{i}", "source": "//services/checkout", "type": "registry.transfer.v1",
                         "time": "2026-03-01T10:00:00Z", "data": {"recipient": recipient, "data_categories": ["user.contact.email"],
                                                                 "purpose": "marketing", "legal_basis": "consent"}})


def test_to_kafka_keys_transfers_by_source_and_id_in_both_modes() -> None:
    for mode in ("structured", "binary"):
        _kind, key, _value, _headers = to_kafka(_transfer(7), mode)  # type: ignore[arg-type]
        assert key == b"//services/checkout/e-7"
    disclosure = orjson.dumps({"specversion": "1.0", "id": "d-1", "source": "//legal", "type": "registry.disclosure.v1",
                               "time": "2026-03-01T10:00:00Z", "data": {"request_id": "SUB-9"}})
    assert to_kafka(disclosure, "structured")[1] == b"SUB-9"


def test_one_recipient_spreads_over_all_partitions(kafka_bootstrap: str) -> None:
    tag = uuid.uuid4().hex[:8]
    topics = Topics(f"k{tag}.transfers", f"k{tag}.disclosures", f"k{tag}.dead-letter")
    send_lines([_transfer(i) for i in range(400)], bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=8)
    with Emitter("//services/web", bootstrap_servers=kafka_bootstrap, topics=topics) as emit:
        emitted = emit.transfer(recipient="stripe", data_categories=["user.contact.email"], purpose="marketing",
                                legal_basis="consent")
        emit.disclosure(request_id="SUB-9", authority="Court", authority_country="US", instrument="subpoena",
                        received_at="2026-03-02T09:00:00Z", outcome="pending", notice="pending")
    records = _dead_letter_topic(kafka_bootstrap, topics.transfers, 401)
    assert len(records) == 401
    keys = {r.key for r in records}
    assert f"//services/web/{emitted}".encode() in keys
    assert {f"//services/checkout/e-{i}".encode() for i in range(400)} <= keys
    shares = Counter(r.partition for r in records)
    # one recipient, 401 events: every one of the 8 partitions gets some, none more than a quarter
    assert len(shares) == 8 and max(shares.values()) <= 401 // 4, shares
    assert [r.key for r in _dead_letter_topic(kafka_bootstrap, topics.disclosures, 1)] == [b"SUB-9"]
