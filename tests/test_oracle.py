"""Oracle tests (contract §1): every count the registry answers equals a brute-force count over
the events this test ingested, for windows hypothesis draws (bounds inside dense hours, several
flows of one recipient on both sides of a bound, events carrying several categories, sums past
2^31), on SQLite and PostgreSQL. The aggregates are an optimisation, never a different answer."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.answers.drift import classify_flow, drift
from registry.answers.questions import recipient_detail, recipients_of, subject
from registry.exceptions import InputError
from registry.intake.ingest import Ingestor
from registry.model.manifest import Manifest
from registry.model.times import format_time
from registry.model.transfers import safeguard_problem
from registry.reports.ropa import build_ropa

from .helpers import record, ref

BASE = datetime(2026, 3, 1, tzinfo=timezone.utc)
RECIPIENTS = ["google-analytics", "stripe", "sift", "mailchimp", "sharethis", "hotjar", "unknown-cdn"]
SOURCES = ["//services/web", "//services/checkout", "//services/rogue"]
CATEGORIES = ["user.device.ip_address", "user.device.cookie_id", "user.contact.email", "user.name",
              "user.financial.credit_card", "user.behavior.browsing_history", "user.contact.address.city"]
PURPOSES = ["analytics.reporting", "essential.service.payment_processing", "essential.fraud_detection",
            "marketing.communications.email"]
BASES = ["consent", "contract", "legitimate_interests"]
REFS = [ref(f"person-{i}") for i in range(5)]
# a third of the events in four hours, so that bounds drawn anywhere often fall inside a busy hour
DENSE_HOURS = [BASE + timedelta(hours=h) for h in (10, 23, 24, 38)]


COMMON = [("google-analytics", ("user.device.cookie_id", "user.device.ip_address"), "analytics.reporting", "consent"),
          ("google-analytics", ("user.device.cookie_id",), "analytics.reporting", "consent"),
          ("stripe", ("user.name", "user.financial.credit_card", "user.contact.email"), "essential.service.payment_processing", "contract"),
          ("stripe", ("user.name",), "essential.service.payment_processing", "contract"),
          ("unknown-cdn", ("user.device.ip_address",), "analytics.reporting", "legitimate_interests")]


def _events(seed: int, count: int = 600) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        if rng.random() < 0.35:
            moment = rng.choice(DENSE_HOURS) + timedelta(seconds=rng.randrange(3600))
        else:
            moment = BASE + timedelta(seconds=rng.randrange(2 * 86400))
        if rng.random() < 0.5:  # a few busy signatures: several events of one row in an hour, rows that straddle a bound
            recipient, categories, purpose, basis = COMMON[rng.randrange(len(COMMON))]
            data: dict[str, Any] = {"recipient": recipient, "data_categories": list(categories), "purpose": purpose, "legal_basis": basis}
        else:
            data = {"recipient": rng.choice(RECIPIENTS), "data_categories": rng.sample(CATEGORIES, rng.choice([1, 1, 2, 3])),
                    "purpose": rng.choice(PURPOSES), "legal_basis": rng.choice(BASES)}
        if rng.random() < 0.3:
            data["record_count"] = rng.choice([2, 7, 10**12])
        if rng.random() < 0.1:
            data["destination_country"] = rng.choice(["BR", "DE", "US"])
        if rng.random() < 0.1:
            data["transfer_mechanism"] = rng.choice(["scc", "none", "adequacy"])
        if rng.random() < 0.4:
            data["subject_refs"] = rng.sample(REFS, rng.choice([1, 2]))
        out.append({"specversion": "1.0", "id": f"ev-{seed}-{i}", "source": rng.choice(SOURCES), "type": "registry.transfer.v1",
                    "time": format_time(moment), "data": data, "_time": moment})
    return out


def _covers(ancestor: str, key: str) -> bool:
    return key == ancestor or key.startswith(ancestor + ".")


def _in(e: dict[str, Any], since: datetime | None, until: datetime | None) -> bool:
    return (since is None or e["_time"] >= since) and (until is None or e["_time"] < until)


def _span(events: list[dict[str, Any]]) -> tuple[str, str]:
    return format_time(min(e["_time"] for e in events)), format_time(max(e["_time"] for e in events))


@pytest.fixture
def stocked(declared: sa.Engine) -> tuple[sa.Engine, list[dict[str, Any]]]:
    events = _events(seed=11)
    ingestor = Ingestor(declared)
    wire = [record({k: v for k, v in e.items() if k != "_time"}) for e in events]
    first = ingestor.ingest(wire, batch_size=97)
    again = ingestor.ingest(list(reversed(wire)), batch_size=250)  # redelivered: nothing may count twice
    assert (first.ingested, again.duplicates, again.ingested) == (len(events), len(events), 0)
    return declared, events


moments = st.integers(min_value=-3600, max_value=50 * 3600).map(lambda s: BASE + timedelta(seconds=s))
aligned = st.integers(min_value=-1, max_value=50).map(lambda h: BASE + timedelta(hours=h))
bounds = st.one_of(st.none(), moments, aligned)
ORACLE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _empty(since: datetime | None, until: datetime | None, ask: Callable[[], Any]) -> bool:
    """A window that holds no instant is an InputError (exit 2), never an empty answer
    (contract §6, v3): True when the window is empty and ``ask`` said so."""
    if since is None or until is None or since < until:
        return False
    with pytest.raises(InputError, match="the window is empty"):
        ask()
    return True


@ORACLE
@given(since=bounds, until=bounds, category=st.sampled_from(["user", "user.device", "user.contact", "user.contact.email",
                                                            "user.financial", "user.contact.address"]))
def test_recipients_count_each_event_once(stocked, since, until, category) -> None:  # type: ignore[no-untyped-def]
    engine, events = stocked
    expected: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if _in(e, since, until) and any(_covers(category, c) for c in e["data"]["data_categories"]):
            expected[e["data"]["recipient"]].append(e)
    if _empty(since, until, lambda: recipients_of(engine, category, since, until)):
        return
    rows = [r for r in recipients_of(engine, category, since, until) if r.via is None]
    assert {r.recipient: (r.events, r.categories, r.first_seen, r.last_seen) for r in rows} == {
        key: (len(items), sorted({c for e in items for c in e["data"]["data_categories"] if _covers(category, c)}), *_span(items))
        for key, items in expected.items()}


@ORACLE
@given(since=bounds, until=bounds, key=st.sampled_from(RECIPIENTS))
def test_recipient_flows_count_the_events_carrying_each_category(stocked, since, until, key) -> None:  # type: ignore[no-untyped-def]
    engine, events = stocked
    expected: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        d = e["data"]
        if _in(e, since, until) and d["recipient"] == key:
            for c in set(d["data_categories"]):
                expected[(e["source"], c, d["purpose"], d["legal_basis"])].append(e)
    if _empty(since, until, lambda: recipient_detail(engine, key, since, until)):
        return
    try:
        answer = recipient_detail(engine, key, since, until)
    except InputError:
        assert not expected and key == "unknown-cdn"
        return
    assert {(f.source, f.category, f.purpose, f.legal_basis): (f.events, f.records, f.first_seen, f.last_seen) for f in answer.flows} == {
        k: (len(items), sum(e["data"].get("record_count", 1) for e in items), *_span(items)) for k, items in expected.items()}


@ORACLE
@given(since=bounds, until=bounds)
def test_drift_counts(stocked, manifest: Manifest, since, until) -> None:  # type: ignore[no-untyped-def]
    engine, events = stocked
    window = [e for e in events if _in(e, since, until)]
    flows: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    unsafe: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in window:
        d = e["data"]
        for c in set(d["data_categories"]):
            found = classify_flow(manifest, e["source"], d["recipient"], c, d["purpose"], d["legal_basis"])
            if found:
                flows[(found[0], e["source"], d["recipient"], c, d["purpose"], d["legal_basis"])].append(e)
        declared = manifest.recipient(d["recipient"])
        country = d.get("destination_country") or (declared.country if declared else "")
        mechanism = d.get("transfer_mechanism") or (declared.transfer_mechanism if declared else None)
        if safeguard_problem(country, mechanism):
            unsafe[(d["recipient"], country)].append(e)
    if _empty(since, until, lambda: drift(engine, since, until)):
        return
    rows = drift(engine, since, until)
    # a drift row names no legal basis (§6), so flows differing only by basis are separate rows
    got_flows = sorted((r.kind, r.source, r.recipient, r.category, r.purpose, r.events, r.first_seen, r.last_seen)
                       for r in rows if r.kind not in ("transfer_without_safeguard", "declared_not_observed"))
    assert got_flows == sorted((*k[:5], len(v), *_span(v)) for k, v in flows.items())
    got_unsafe = sorted((r.recipient, r.events, r.first_seen, r.last_seen) for r in rows if r.kind == "transfer_without_safeguard")
    assert got_unsafe == sorted((k[0], len(v), *_span(v)) for k, v in unsafe.items())


def test_subject_answers_count_each_event_once(stocked) -> None:  # type: ignore[no-untyped-def]
    engine, events = stocked
    for subject_ref in REFS:
        expected: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for e in events:
            if subject_ref in e["data"].get("subject_refs", ()):
                expected[(e["data"]["recipient"], e["source"])].append(e)
        answer = subject(engine, subject_ref)
        assert {(t.recipient, t.source): (t.events, t.categories, t.purposes, t.first_seen, t.last_seen) for t in answer.transfers} == {
            k: (len(v), sorted({c for e in v for c in e["data"]["data_categories"]}), sorted({e["data"]["purpose"] for e in v}), *_span(v))
            for k, v in expected.items()}
        assert {t.recipient for t in answer.transfers} <= set(answer.notify_on_erasure)


def test_ropa_evidence_counts_each_event_once(stocked, manifest: Manifest) -> None:  # type: ignore[no-untyped-def]
    engine, events = stocked
    record_, _ = build_ropa(engine)
    by_key = {a.key: a for a in record_.activities}
    for activity in manifest.activities:
        keys = {r.key for r in record_.activities[[a.key for a in record_.activities].index(activity.key)].recipients}
        covered = [e for e in events if e["data"]["recipient"] in keys
                   and any(_covers(p, e["data"]["purpose"]) for p in activity.purposes)
                   and any(_covers(c, k) for c in activity.data_categories for k in e["data"]["data_categories"])]
        evidence = by_key[activity.key].evidence
        assert evidence.events == len(covered), activity.key
        assert (evidence.first_seen, evidence.last_seen) == (_span(covered) if covered else (None, None))
        assert evidence.recipients_observed == sorted({e["data"]["recipient"] for e in covered})


def test_records_sum_past_64_bit_counters_of_old(stocked) -> None:  # type: ignore[no-untyped-def]
    """10^12-record events sum exactly (the store's counters are 64-bit on PostgreSQL too)."""
    engine, events = stocked
    big = [e for e in events if e["data"].get("record_count") == 10**12]
    assert len(big) >= 3
    with engine.connect() as conn:
        total = conn.exec_driver_sql("SELECT SUM(records) FROM flow_day").scalar_one()
    assert int(total) == sum(e["data"].get("record_count", 1) for e in events) > 3 * 10**12


@pytest.mark.empty_store
def test_migration_rebuilds_old_per_category_aggregates(db_url: str, manifest: Manifest) -> None:
    """A store written before 0002 (per-category flow rows, 32-bit counters on PostgreSQL) answers
    with the contract's count semantics after the upgrade: the aggregates are rebuilt from events."""
    import orjson

    from registry.model.declarations import declare
    from registry.model.store import open_store

    from .helpers import store_at

    events = _events(seed=5, count=200)
    old = store_at(db_url, "0001")
    with old.begin() as conn:
        conn.execute(sa.text("INSERT INTO event (source, event_id, type, time, recipient, payload_hash, body) "
                             "VALUES (:s, :i, 'registry.transfer.v1', :t, :r, 'h', :b)"),
                     [{"s": e["source"], "i": e["id"], "t": e["_time"], "r": e["data"]["recipient"],
                       "b": orjson.dumps({k: v for k, v in e.items() if k != "_time"}).decode()} for e in events])
    old.dispose()
    engine = open_store(db_url)
    declare(engine, manifest)
    expected: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        expected[e["data"]["recipient"]].append(e)
    assert {r.recipient: (r.events, *_span_of(r)) for r in recipients_of(engine, "user") if r.via is None} == {
        k: (len(v), *_span(v)) for k, v in expected.items()}
    with engine.connect() as conn:
        assert int(conn.exec_driver_sql("SELECT SUM(records) FROM flow_hour").scalar_one()) == \
            sum(e["data"].get("record_count", 1) for e in events)


def _span_of(row: Any) -> tuple[str, str]:
    return row.first_seen, row.last_seen
