"""History (contract §4, §6): effective-dated manifest versions, `manifests diff`, and `--as-of`.

The `--as-of` oracle: for times hypothesis draws across several manifest versions (one declared
last but back-dated before another), every answer equals the answer computed by brute force
from the version in force at T (picked here from the versions' own dates, not by the store) and
the test's own events before T."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook
from typer.testing import CliRunner

from registry.answers.drift import classify_flow, drift
from registry.answers.questions import recipient_detail, recipients_of, subject, subprocessor_chains
from registry.intake.ingest import Ingestor
from registry.model.declarations import declare, in_force
from registry.model.history import diff_manifests, diff_versions, history, list_versions
from registry.model.manifest import Manifest
from registry.model.transfers import safeguard_problem
from registry.reports import notice_document, ropa_document
from registry.reports.notice import to_notice
from registry.reports.ropa import build_ropa

from .helpers import record
from registry.exceptions import InputError

from .test_oracle import BASE, ORACLE, RECIPIENTS, REFS, _covers, _events, _span

# v1 from before the events; v2 from the second day at noon; v3 declared last but back-dated to
# the first morning, so it is in force between v1 and v2 although declared after v2
EFFECTIVE = {1: BASE - timedelta(days=3), 2: BASE + timedelta(hours=36), 3: BASE + timedelta(hours=6, minutes=30)}


def _variant(base: Manifest, version: int) -> Manifest:
    """Three different manifests: recipients added, removed and changed, activities too."""
    doc = base.model_dump()
    if version >= 2:  # sift leaves, google-analytics moves to Brazil without a safeguard, a new CDN is declared
        doc["recipients"] = [r for r in doc["recipients"] if r["key"] != "sift"]
        doc["activities"] = [a for a in doc["activities"] if a["key"] != "fraud-prevention"]
        for r in doc["recipients"]:
            if r["key"] == "google-analytics":
                r["country"], r["transfer_mechanism"] = "BR", None
        doc["recipients"].append({"key": "unknown-cdn", "name": "Edge CDN", "service": "hosting", "role": "processor",
                                  "country": "DE", "transfer_mechanism": None, "processor_of": None, "contract": None})
        doc["activities"].append({"key": "edge", "name": "Edge delivery", "purposes": ["analytics"], "legal_basis": "legitimate_interests",
                                  "data_subjects": [], "data_categories": ["user.device"], "recipients": ["unknown-cdn"], "sources": [],
                                  "retention": None, "security_measures": None})
    if version == 3:  # the back-dated one: stripe's payments need consent (a legal-basis mismatch), a new DPO
        doc["controller"]["dpo"] = "Jane Roe, dpo@blausen.example"
        for a in doc["activities"]:
            if a["key"] == "billing":
                a["legal_basis"] = "consent"
        doc["recipients"] = [r for r in doc["recipients"] if r["key"] != "mandrill-gcp"]
    return Manifest.model_validate(doc)


@pytest.fixture
def versioned(engine: sa.Engine, manifest: Manifest) -> tuple[sa.Engine, dict[int, Manifest], list[dict[str, Any]]]:
    manifests = {v: _variant(manifest, v) for v in (1, 2, 3)}
    for v in (1, 2, 3):
        assert declare(engine, manifests[v], EFFECTIVE[v]).version == v
    events = _events(seed=23, count=500)
    Ingestor(engine).ingest([record({k: v for k, v in e.items() if k != "_time"}) for e in events], batch_size=101)
    return engine, manifests, events


def _before_any_version(m: Manifest | None, ask: Any) -> bool:
    """Before the first version took effect every --as-of question is an InputError (review of
    issue 21), not an answer with every recipient undeclared; True when that was checked."""
    if m is not None:
        return False
    with pytest.raises(InputError, match="no manifest version was in force"):
        ask()
    return True


def _in_force(manifests: dict[int, Manifest], at: datetime) -> Manifest | None:
    """The oracle's pick: the latest effective_from ≤ at, the newest declaration on a tie."""
    eligible = [v for v in manifests if EFFECTIVE[v] <= at]
    return manifests[max(eligible, key=lambda v: (EFFECTIVE[v], v))] if eligible else None


moments = st.integers(min_value=-4 * 86400, max_value=3 * 86400).map(lambda s: BASE + timedelta(seconds=s))
near_versions = st.sampled_from(sorted(EFFECTIVE.values())).flatmap(
    lambda t: st.integers(min_value=-5, max_value=5).map(lambda s: t + timedelta(seconds=s)))
as_of_times = st.one_of(moments, near_versions, st.sampled_from([BASE + timedelta(hours=h) for h in (10, 23, 24, 38, 47, 48)]))


def test_in_force_follows_effective_dates_not_declaration_order(versioned) -> None:  # type: ignore[no-untyped-def]
    engine, manifests, _ = versioned
    for at in (EFFECTIVE[1] - timedelta(seconds=1), EFFECTIVE[1], EFFECTIVE[3] - timedelta(microseconds=1), EFFECTIVE[3],
               EFFECTIVE[2] - timedelta(seconds=1), EFFECTIVE[2], BASE + timedelta(days=400)):
        assert in_force(engine, at) == _in_force(manifests, at), at
    assert in_force(engine) == manifests[2]  # now: v2 took effect last (v3 is back-dated before it)
    assert [v.version for v in list_versions(engine)] == [1, 2, 3]
    assert [h.version for h in history(engine)] == [1, 3, 2]  # the order they took effect
    assert [h.version for h in history(engine, EFFECTIVE[3])] == [1, 3]


@ORACLE
@given(at=as_of_times, category=st.sampled_from(["user", "user.device", "user.contact", "user.financial"]))
def test_recipients_as_of(versioned, at, category) -> None:  # type: ignore[no-untyped-def]
    engine, manifests, events = versioned
    m = _in_force(manifests, at)
    if _before_any_version(m, lambda: recipients_of(engine, category, as_of=at)):
        return
    expected: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["_time"] < at and any(_covers(category, c) for c in e["data"]["data_categories"]):
            expected[e["data"]["recipient"]].append(e)
    rows = [r for r in recipients_of(engine, category, as_of=at) if r.via is None]
    assert {r.recipient: (r.events, r.first_seen, r.last_seen, r.declared) for r in rows} == {
        k: (len(v), *_span(v), bool(m and m.recipient(k))) for k, v in expected.items()}
    for r in rows:  # what the manifest in force then said of the recipient
        declared = m.recipient(r.recipient) if m else None
        assert declared is None or (r.country, r.role) == (declared.country, declared.role)
    with_subs = recipients_of(engine, category, as_of=at, include_subprocessors=True)
    subs = {(r.recipient, r.via) for r in with_subs if r.via}
    assert subs == {(r.key, r.processor_of) for r in (m.recipients if m else []) if r.processor_of and _chain_root_seen(m, r.key, expected)}


def _chain_root_seen(m: Manifest, key: str, seen: dict[str, Any]) -> bool:
    return any(k in seen for k in m.processor_chain(key)[:-1])


@ORACLE
@given(at=as_of_times, key=st.sampled_from(RECIPIENTS))
def test_recipient_as_of(versioned, at, key) -> None:  # type: ignore[no-untyped-def]
    engine, manifests, events = versioned
    m = _in_force(manifests, at)
    expected: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["_time"] < at and e["data"]["recipient"] == key:
            for c in set(e["data"]["data_categories"]):
                expected[(e["source"], c, e["data"]["purpose"], e["data"]["legal_basis"])].append(e)
    # strict questions (issue 21): a key no version declares and no event names is a typo (exit
    # 2); one declared in another version or observed at another time is a question whose answer
    # as of ``at`` may be empty
    if not any(mv.recipient(key) for mv in manifests.values()) and not any(e["data"]["recipient"] == key for e in events):
        with pytest.raises(InputError, match="unknown recipient"):
            recipient_detail(engine, key, as_of=at)
        return
    if _before_any_version(m, lambda: recipient_detail(engine, key, as_of=at)):
        return
    answer = recipient_detail(engine, key, as_of=at)
    assert answer.declared == bool(m and m.recipient(key))
    assert {(f.source, f.category, f.purpose, f.legal_basis): (f.events, f.records, f.first_seen, f.last_seen) for f in answer.flows} == {
        k: (len(v), sum(e["data"].get("record_count", 1) for e in v), *_span(v)) for k, v in expected.items()}


@ORACLE
@given(at=as_of_times)
def test_drift_as_of(versioned, at) -> None:  # type: ignore[no-untyped-def]
    engine, manifests, events = versioned
    m = _in_force(manifests, at)
    if _before_any_version(m, lambda: drift(engine, as_of=at)):
        return
    flows: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    unsafe: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["_time"] >= at:
            continue
        d = e["data"]
        for c in set(d["data_categories"]):
            found = classify_flow(m, e["source"], d["recipient"], c, d["purpose"], d["legal_basis"])
            if found:
                flows[(found[0], e["source"], d["recipient"], c, d["purpose"])].append(e)
        declared = m.recipient(d["recipient"]) if m else None
        country = d.get("destination_country") or (declared.country if declared else "")
        if safeguard_problem(country, d.get("transfer_mechanism") or (declared.transfer_mechanism if declared else None)):
            unsafe[(d["recipient"], country)].append(e)
    rows = drift(engine, as_of=at)
    got = sorted((r.kind, r.source, r.recipient, r.category, r.purpose, r.events, r.first_seen, r.last_seen)
                 for r in rows if r.kind not in ("transfer_without_safeguard", "declared_not_observed"))
    merged: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for k, v in flows.items():
        merged[k] += v
    # a drift row names no legal basis: flows differing only by basis are separate rows
    expected_rows = []
    for k, v in merged.items():
        by_basis: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in v:
            by_basis[e["data"]["legal_basis"]].append(e)
        expected_rows += [(*k, len(items), *_span(items)) for items in by_basis.values()]
    assert got == sorted(expected_rows)
    assert sorted((r.recipient, r.events) for r in rows if r.kind == "transfer_without_safeguard") == \
        sorted((k[0], len(v)) for k, v in unsafe.items())
    not_observed = {(r.activity, r.recipient) for r in rows if r.kind == "declared_not_observed"}
    assert not_observed == {(a.key, key) for a in (m.activities if m else []) for key in a.recipients
                            if not any(e["_time"] < at and e["data"]["recipient"] == key
                                       and any(_covers(p, e["data"]["purpose"]) for p in a.purposes)
                                       and any(_covers(c, k) for c in a.data_categories for k in e["data"]["data_categories"])
                                       for e in events)}


@ORACLE
@given(at=st.one_of(as_of_times, st.sampled_from([BASE + timedelta(days=d) for d in (-1, 0, 1, 2, 3)])))
def test_subject_as_of_cuts_the_week_exactly(versioned, at) -> None:  # type: ignore[no-untyped-def]
    engine, manifests, events = versioned
    m = _in_force(manifests, at)
    if _before_any_version(m, lambda: subject(engine, REFS[0], as_of=at)):
        return
    for ref in REFS:
        expected: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for e in events:
            if e["_time"] < at and ref in e["data"].get("subject_refs", ()):
                expected[(e["data"]["recipient"], e["source"])].append(e)
        answer = subject(engine, ref, as_of=at)
        assert {(t.recipient, t.source): (t.events, t.categories, t.purposes, t.first_seen, t.last_seen) for t in answer.transfers} == {
            k: (len(v), sorted({c for e in v for c in e["data"]["data_categories"]}), sorted({e["data"]["purpose"] for e in v}), *_span(v))
            for k, v in expected.items()}
        fanout = {k for k, _ in expected}
        for key in list(fanout):
            fanout |= {r.key for r in (m.recipients if m else []) if key in m.processor_chain(r.key)[:-1]}  # type: ignore[union-attr]
        assert set(answer.notify_on_erasure) == fanout


@ORACLE
@given(at=as_of_times)
def test_subprocessors_ropa_and_notice_as_of(versioned, at) -> None:  # type: ignore[no-untyped-def]
    engine, manifests, events = versioned
    m = _in_force(manifests, at)
    if _before_any_version(m, lambda: subprocessor_chains(engine, at)):
        with pytest.raises(InputError, match="no manifest version was in force"):
            build_ropa(engine, as_of=at)
        return
    assert {(r.recipient, r.processor_of) for r in subprocessor_chains(engine, at)} == \
        {(r.key, r.processor_of) for r in m.recipients if r.processor_of}
    assert notice_document(engine, at) == to_notice(m)
    ropa, used = build_ropa(engine, as_of=at)
    assert used == m
    assert [h.version for h in ropa.history] == sorted((v for v in EFFECTIVE if EFFECTIVE[v] <= at), key=lambda v: EFFECTIVE[v])
    for a in ropa.activities:
        activity = next(x for x in m.activities if x.key == a.key)
        keys = {r.key for r in a.recipients}
        covered = [e for e in events if e["_time"] < at and e["data"]["recipient"] in keys
                   and any(_covers(p, e["data"]["purpose"]) for p in activity.purposes)
                   and any(_covers(c, k) for c in activity.data_categories for k in e["data"]["data_categories"])]
        assert (a.evidence.events, a.evidence.first_seen, a.evidence.last_seen) == \
            ((len(covered), *_span(covered)) if covered else (0, None, None)), a.key


def test_diff_names_added_removed_and_changed(versioned) -> None:  # type: ignore[no-untyped-def]
    engine, manifests, _ = versioned
    d = diff_versions(engine, 1, 2)
    assert d.model_dump(mode="json")["from"] == 1 and d.to == 2
    assert d.controller == {}
    assert (d.recipients.added, d.recipients.removed) == (["unknown-cdn"], ["sift"])
    assert [(c.key, c.fields) for c in d.recipients.changed] == [
        ("google-analytics", {"country": ["US", "BR"], "transfer_mechanism": ["adequacy", None]})]
    assert (d.activities.added, d.activities.removed, d.activities.changed) == (["edge"], ["fraud-prevention"], [])
    d = diff_versions(engine, 2, 3)
    assert d.controller == {"dpo": ["Privacy Office, privacy@blausen.com", "Jane Roe, dpo@blausen.example"]}
    assert (d.recipients.added, d.recipients.removed, d.recipients.changed) == ([], ["mandrill-gcp"], [])
    assert [(c.key, c.fields) for c in d.activities.changed] == [("billing", {"legal_basis": ["contract", "consent"]})]
    back = diff_versions(engine, 3, 1)  # any two versions, either way round
    assert (back.recipients.added, sorted(back.recipients.removed)) == (["mandrill-gcp", "sift"], ["unknown-cdn"])
    assert diff_manifests(manifests[1], manifests[1], 1, 1).empty()


def test_cli_manifests_diff_and_as_of(versioned, db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from registry.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["--db", db_url, "manifests", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = orjson.loads(listed.stdout)
    assert [set(r) for r in rows] == [{"version", "declared_at", "effective_from", "controller", "recipients", "activities"}] * 3
    assert rows[2]["effective_from"] == "2026-03-01T06:30:00Z" and rows[2]["declared_at"] > rows[1]["declared_at"]
    diff = runner.invoke(app, ["--db", db_url, "manifests", "diff", "1", "2", "--json"])
    assert set(orjson.loads(diff.stdout)) == {"from", "to", "controller", "recipients", "activities"}
    assert runner.invoke(app, ["--db", db_url, "manifests", "diff", "1", "9"]).exit_code == 2
    assert runner.invoke(app, ["--db", db_url, "drift", "--as-of", "yesterday"]).exit_code == 2
    assert runner.invoke(app, ["--db", db_url, "ropa", "--as-of", "2020-01-01"]).exit_code == 2
    out = tmp_path / "r.json"
    got = runner.invoke(app, ["--db", db_url, "recipients", "--category", "user", "--as-of", "2026-03-01T12:00:00Z", "--json"])
    assert orjson.loads(got.stdout) == [r.model_dump(mode="json") for r in
                                        recipients_of(versioned[0], "user", as_of=datetime(2026, 3, 1, 12, tzinfo=timezone.utc))]
    for args in (["notice"], ["subprocessors"], ["diagram", "--format", "dot"], ["report", "--out", str(tmp_path / "rep")],
                 ["subject", REFS[0]], ["recipient", "stripe"], ["ropa", "--format", "md", "--out", str(out)]):
        result = runner.invoke(app, ["--db", db_url, *args, "--as-of", "2026-03-02"])
        assert result.exit_code == 0, (args, result.output)
    assert (tmp_path / "rep" / "ropa.xlsx").exists()


def test_declare_effective_from_on_the_cli(engine: sa.Engine, db_url: str) -> None:
    from registry.cli import app
    from tests.conftest import EXAMPLE_MANIFEST

    runner = CliRunner()
    result = runner.invoke(app, ["--db", db_url, "declare", str(EXAMPLE_MANIFEST), "--effective-from", "2026-01-31", "--json"])
    assert result.exit_code == 0, result.output
    assert list_versions(engine)[0].effective_from == "2026-01-31T00:00:00Z"
    assert in_force(engine, datetime(2026, 1, 30, tzinfo=timezone.utc)) is None
    assert runner.invoke(app, ["--db", db_url, "declare", str(EXAMPLE_MANIFEST), "--effective-from", "soon"]).exit_code == 2


def test_ropa_ends_with_the_history(versioned) -> None:  # type: ignore[no-untyped-def]
    engine, _, _ = versioned
    md = ropa_document(engine, "md").decode()
    tail = md[md.index("## History of the declarations"):]
    assert tail.index("**Version 1**") < tail.index("**Version 3**") < tail.index("**Version 2**")
    # each against the version in force before it took effect (v3 against v1, v2 against v3)
    assert "recipients removed: mandrill-gcp, sift" in tail and "activity billing changed: legal_basis contract → consent" in tail
    assert tail.index("activity billing changed: legal_basis consent → contract") > tail.index("**Version 2**")
    assert "controller dpo: Privacy Office, privacy@blausen.com → Jane Roe, dpo@blausen.example" in tail
    html = ropa_document(engine, "html").decode()
    assert "History of the declarations" in html and html.rindex("recipients added: mandrill-gcp") > html.index("Observed but not declared")
    import io

    sheet = load_workbook(io.BytesIO(ropa_document(engine, "xlsx")))["History"]
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0][:4] == ["Version", "Declared at", "Effective from", "Compared with version"]
    assert [r[0] for r in rows[1:]] == ["1", "3", "2"] and rows[3][3] == "3"
    early = ropa_document(engine, "md", as_of=EFFECTIVE[3]).decode()
    assert "**As of:** 2026-03-01T06:30:00Z" in early and "**Version 2**" not in early
    assert set(orjson.loads(ropa_document(engine, "json"))) == {"controller", "generated_at", "activities", "undeclared"}


def test_api_as_of_and_manifests(versioned, db_url: str) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from registry.web import create_app
    from registry.web.tokens import create_token

    engine, manifests, _ = versioned
    headers = {"Authorization": f"Bearer {create_token(engine, 'admin', 'a').token}"}
    client = TestClient(create_app(db_url))
    at = "2026-03-01T12:00:00Z"
    moment = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    got = client.get(f"/api/drift?as_of={at}", headers=headers)
    assert got.status_code == 200 and got.json() == [r.model_dump(mode="json") for r in drift(engine, as_of=moment)]
    got = client.get(f"/api/recipients?category=user&as_of={at}", headers=headers)
    assert got.json() == [r.model_dump(mode="json") for r in recipients_of(engine, "user", as_of=moment)]
    assert client.get(f"/api/subjects/{REFS[1]}?as_of={at}", headers=headers).json() == \
        subject(engine, REFS[1], as_of=moment).model_dump(mode="json")
    assert client.get(f"/api/notice?as_of={at}", headers=headers).text == to_notice(manifests[3])
    for path in ("/api/recipients/stripe", "/api/subprocessors", "/api/ropa?format=md", "/api/diagram?format=dot"):
        assert client.get(f"{path}{'&' if '?' in path else '?'}as_of={at}", headers=headers).status_code == 200, path
    bad = client.get("/api/drift?as_of=tomorrow", headers=headers)
    assert bad.status_code == 422 and "as_of" in bad.text
    assert [v["version"] for v in client.get("/api/manifests", headers=headers).json()] == [1, 2, 3]
    diff = client.get("/api/manifests/diff?a=1&b=2", headers=headers).json()
    assert diff["from"] == 1 and diff["recipients"]["removed"] == ["sift"]
    import yaml

    from .conftest import EXAMPLE_MANIFEST

    posted = client.post("/api/manifests?effective_from=2026-01-01", headers={**headers, "Content-Type": "application/json"},
                         content=orjson.dumps(yaml.safe_load(EXAMPLE_MANIFEST.read_text())))
    assert posted.status_code == 200 and list_versions(engine)[-1].effective_from == "2026-01-01T00:00:00Z"


@pytest.mark.empty_store
def test_migration_0004_dates_existing_versions_from_their_declaration(db_url: str, manifest: Manifest) -> None:
    """A store declared before effective dates existed: each version takes effect when declared."""
    from alembic import command
    from alembic.config import Config

    from registry.model.store import _MIGRATIONS, _normalise, open_store

    old = sa.create_engine(_normalise(db_url))
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    declared_at = datetime(2026, 2, 1, 9, 30, tzinfo=timezone.utc)
    with old.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        conn.execute(sa.text("INSERT INTO manifest_version (version, declared_at, controller, body) VALUES (1, :t, :c, :b)"),
                     {"t": declared_at, "c": manifest.controller.name, "b": manifest.model_dump_json()})
    old.dispose()
    engine = open_store(db_url)
    assert [(v.declared_at, v.effective_from) for v in list_versions(engine)] == [("2026-02-01T09:30:00Z", "2026-02-01T09:30:00Z")]
    assert in_force(engine, declared_at - timedelta(seconds=1)) is None and in_force(engine, declared_at) == manifest
