"""Deterministic stream of structured CloudEvents for the example controller (Blausen Medical).

    python -m examples.blausen.generate --events 100000 --seed 7 --out stream.jsonl --summary summary.json

Most events follow the declarations in manifest.yaml; a few flows are undeclared on purpose
(one of each drift kind) and ``--poison`` events of each dead-letter reason are mixed in, so the
registry's counts can be checked against the summary this writes."""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import IO, Any, Iterator

import orjson

from registry.model.subjects import subject_ref

DEMO_SUBJECT_KEY = "blausen-demo-subject-key"  # used when REGISTRY_SUBJECT_KEY is unset
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SPAN = timedelta(days=180)


@dataclass(frozen=True)
class Flow:
    source: str
    recipient: str
    categories: tuple[str, ...]
    purpose: str
    legal_basis: str
    subjects: tuple[str, ...]
    weight: int
    activity: str | None = None
    destination_country: str | None = None
    refs: bool = False


FLOWS: tuple[Flow, ...] = (
    Flow("//services/web", "aws-hosting", ("user.device.ip_address", "user.behavior.browsing_history"), "essential.service.operations", "legitimate_interests", ("visitor",), 30, "hosting"),
    Flow("//services/api", "aws-hosting", ("user.device.ip_address", "user.device.cookie_id"), "essential.service.operations", "legitimate_interests", ("visitor",), 10, "hosting"),
    Flow("//services/web", "cloudflare", ("user.device.ip_address", "user.device.device_id"), "essential.service.security", "legitimate_interests", ("visitor",), 12, "security"),
    Flow("//services/web", "google-analytics", ("user.device.ip_address", "user.device.cookie_id", "user.behavior.browsing_history"), "analytics.reporting", "consent", ("visitor",), 25, "web-analytics"),
    Flow("//services/web", "google-ads", ("user.device.cookie_id", "user.behavior.browsing_history", "user.workplace.specialty"), "marketing.advertising.third_party.targeted", "consent", ("visitor",), 10, "advertising"),
    Flow("//services/mobile-app", "google-ads", ("user.device.advertising_id", "user.location.imprecise"), "marketing.advertising.third_party.targeted", "consent", ("customer",), 5, "advertising", refs=True),
    Flow("//services/newsletter", "mailchimp", ("user.contact.email", "user.name", "user.workplace.specialty"), "marketing.communications.email", "consent", ("customer", "prospect"), 8, "newsletter", refs=True),
    Flow("//services/checkout", "stripe", ("user.name", "user.contact.email", "user.financial.credit_card"), "essential.service.payment_processing", "contract", ("customer",), 6, "billing", refs=True),
    Flow("//services/checkout", "sift", ("user.device.ip_address", "user.device.device_id", "user.contact.email"), "essential.fraud_detection", "legitimate_interests", ("customer",), 5, "fraud-prevention", refs=True),
    Flow("//services/support", "twilio", ("user.contact.email", "user.name", "user.content.private"), "essential.service.operations.support", "contract", ("customer",), 3, "support", refs=True),
    Flow("//services/support", "teamviewer", ("user.contact.email", "user.name"), "essential.service.operations.support", "contract", ("customer",), 1, "support", refs=True),
    Flow("//services/web", "hotjar", ("user.behavior.browsing_history", "user.device.cookie_id"), "functional.service.improve", "consent", ("visitor",), 6, "session-recording"),
    Flow("//services/web", "vimeo", ("user.device.ip_address", "user.device.cookie_id"), "essential.service", "legitimate_interests", ("visitor",), 6, "content"),
    Flow("//services/web", "sharethis", ("user.device.ip_address", "user.behavior.browsing_history"), "functional.service", "consent", ("visitor",), 4, "social-sharing"),
    Flow("//services/backoffice", "baker-legal", ("user.name", "user.contact.email"), "essential.legal_obligation", "legal_obligation", ("customer",), 1, "professional-advice", refs=True),
    Flow("//services/crm", "blausen-europe", ("user.name", "user.contact.email", "user.job_title"), "essential.service.operations", "legitimate_interests", ("customer",), 3, "group-sharing", refs=True),
    # Undeclared on purpose, one per drift kind (contract §5):
    Flow("//services/web", "facebook-pixel", ("user.device.cookie_id", "user.behavior.browsing_history"), "marketing.advertising.third_party.targeted", "consent", ("visitor",), 1),
    Flow("//services/web", "google-analytics", ("user.device.cookie_id",), "marketing.advertising.profiling", "consent", ("visitor",), 1),
    Flow("//services/checkout", "sift", ("user.location.precise",), "essential.fraud_detection", "legitimate_interests", ("customer",), 1),
    Flow("//services/newsletter", "mailchimp", ("user.contact.email",), "marketing.communications.email", "legitimate_interests", ("customer",), 1, refs=True),
    Flow("//services/mobile-app", "google-analytics", ("user.device.cookie_id",), "analytics.reporting", "consent", ("visitor",), 1),
    Flow("//services/web", "hotjar", ("user.behavior.browsing_history",), "functional.service.improve", "consent", ("visitor",), 1, destination_country="CN"),
)

POISON_REASONS = ("invalid_json", "invalid_envelope", "unknown_type", "invalid_data", "unknown_category",
                  "unknown_purpose", "unknown_subject_category", "raw_identifier", "conflicting_duplicate", "too_large")


def envelope(event_id: str, source: str, moment: datetime, data: dict[str, Any], kind: str = "registry.transfer.v1") -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": source, "type": kind,
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "datacontenttype": "application/json", "data": data}


def transfer_data(flow: Flow, rng: random.Random, subject_key: str, population: int) -> dict[str, Any]:
    data: dict[str, Any] = {"recipient": flow.recipient, "data_categories": list(flow.categories),
                            "purpose": flow.purpose, "legal_basis": flow.legal_basis, "data_subjects": list(flow.subjects)}
    if flow.activity:
        data["activity"] = flow.activity
    if flow.destination_country:
        data["destination_country"] = flow.destination_country
    if flow.refs:
        data["subject_refs"] = [subject_ref(f"customer-{rng.randrange(population)}", subject_key) for _ in range(rng.randint(1, 3))]
    data["record_count"] = rng.randint(1, 20)
    return data


def poison(reason: str, n: int, good: dict[str, Any], moment: datetime) -> bytes:
    """One event refused for ``reason`` (``good`` is an earlier valid event, for the duplicate)."""
    base = envelope(f"poison-{reason}-{n}", "//services/web", moment,
                    {"recipient": "aws-hosting", "data_categories": ["user.device.ip_address"],
                     "purpose": "essential.service.operations", "legal_basis": "legitimate_interests"})
    d = base["data"]
    if reason == "invalid_json":
        return b'{"specversion": "1.0", "id": "broken-' + str(n).encode() + b'", '
    if reason == "invalid_envelope":
        del base["source"]
    elif reason == "unknown_type":
        base["type"] = "registry.teleport.v1"
    elif reason == "invalid_data":
        d["legal_basis"] = "because"
    elif reason == "unknown_category":
        d["data_categories"] = ["user.mind_reading"]
    elif reason == "unknown_purpose":
        d["purpose"] = "world_domination"
    elif reason == "unknown_subject_category":
        d["data_subjects"] = ["martian"]
    elif reason == "raw_identifier":
        d["subject_refs"] = [("jane.doe%d@example.org" % n, "+1 713 555 01%02d" % n, "203.0.113.%d" % n)[n % 3]]
    elif reason == "conflicting_duplicate":
        base = dict(good, data={**good["data"], "record_count": good["data"]["record_count"] + 1000})
    elif reason == "too_large":
        d["notes"] = "x" * (1024 * 1024)  # inside data, so it is too large in binary mode too
    return orjson.dumps(base)


def generate(events: int, seed: int, poison_per_reason: int = 3, subject_key: str | None = None,
             population: int = 20000, span: timedelta = SPAN, start: datetime = START) -> Iterator[tuple[bytes, str | None]]:
    """Yield (line, dead-letter reason or None) in time order, spread evenly over ``span``."""
    import os

    rng = random.Random(seed)
    key = subject_key or os.environ.get("REGISTRY_SUBJECT_KEY") or DEMO_SUBJECT_KEY
    weights = [f.weight for f in FLOWS]
    poison_total = poison_per_reason * len(POISON_REASONS)
    valid = events - poison_total
    if valid < 1:
        raise ValueError(f"--events must exceed {poison_total} (the poison events)")
    slots = sorted(rng.sample(range(valid // 10 + 1, valid + poison_total), poison_total))
    schedule = {slot: POISON_REASONS[i % len(POISON_REASONS)] for i, slot in enumerate(slots)}
    counters = dict.fromkeys(POISON_REASONS, 0)
    step = span / max(events, 1)
    last_good: dict[str, Any] | None = None
    for i in range(events):
        moment = start + step * i
        reason = schedule.get(i)
        if reason is not None and last_good is not None:
            counters[reason] += 1
            yield poison(reason, counters[reason], last_good, moment), reason
            continue
        flow = rng.choices(FLOWS, weights)[0]
        event = envelope(f"evt-{seed}-{i:09d}", flow.source, moment, transfer_data(flow, rng, key, population))
        last_good = event
        yield orjson.dumps(event), None


def disclosure_events(subject_key: str | None = None, today: date | None = None) -> list[bytes]:
    """A handful of requests from authorities (``registry.disclosure.v1``, one event per version)
    so the ledger, the transparency report and the warnings show something on a first run: a US
    subpoena (logged, then produced), a court order with delayed notice (due three weeks after
    ``today``), an emergency request whose delayed notice is overdue, and a court order from
    outside the EEA that cites no international agreement (GDPR Art. 48)."""
    import os

    key = subject_key or os.environ.get("REGISTRY_SUBJECT_KEY") or DEMO_SUBJECT_KEY
    today = today or datetime.now(timezone.utc).date()
    refs = [subject_ref(f"customer-{n}", key) for n in (42, 4711)]
    subpoena = {"request_id": "SUB-2026-014", "authority": "District Court of Harris County", "authority_country": "US",
                "instrument": "subpoena", "received_at": "2026-03-02T09:00:00Z", "outcome": "pending", "notice": "pending",
                "legal_reference": "Case 4:26-cv-00113", "subject_refs": refs}
    versions: list[tuple[str, dict[str, Any]]] = [
        ("2026-03-02T09:30:00Z", subpoena),
        ("2026-03-20T15:00:00Z", {**subpoena, "outcome": "produced", "disclosed_at": "2026-03-20T14:00:00Z",
                                  "data_categories": ["user.name", "user.contact.email"], "notice": "given",
                                  "reviewed_by": "Legal team (M. Ortiz)"}),
        ("2026-04-14T11:00:00Z", {"request_id": "CO-2026-031", "authority": "Tribunale di Milano", "authority_country": "IT",
                                  "instrument": "court_order", "received_at": "2026-04-14T10:15:00Z", "outcome": "produced",
                                  "disclosed_at": "2026-04-16T09:00:00Z", "data_categories": ["user.contact.email"],
                                  "subject_refs": refs[:1], "notice": "delayed",
                                  "notice_due": (today + timedelta(days=21)).isoformat(),
                                  "notice_reason": "Order of non-disclosure, RG 1187/2026", "legal_reference": "RG 1187/2026"}),
        ("2026-05-21T00:10:00Z", {"request_id": "EM-2026-007", "authority": "Police nationale, Paris", "authority_country": "FR",
                                  "instrument": "emergency_request", "received_at": "2026-05-20T23:40:00Z", "outcome": "produced",
                                  "disclosed_at": "2026-05-21T01:05:00Z",
                                  "data_categories": ["user.location.imprecise", "user.device.ip_address"], "subject_count": 1,
                                  "notice": "delayed", "notice_due": "2026-08-20", "notice_reason": "Risk to life"}),
        ("2026-06-03T08:00:00Z", {"request_id": "CN-2026-002", "authority": "Shanghai No. 1 Intermediate People's Court",
                                  "authority_country": "CN", "instrument": "court_order", "received_at": "2026-06-02T06:00:00Z",
                                  "outcome": "pending", "notice": "pending", "legal_reference": "(2026) Hu 01 Xing Chu 77"}),
    ]
    return [orjson.dumps(envelope(f"disclosure-{data['request_id']}-{n}", "//services/legal",
                                  datetime.fromisoformat(moment.replace("Z", "+00:00")), data, "registry.disclosure.v1"))
            for n, (moment, data) in enumerate(versions, 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10000, help="lines to write, poison included")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--poison", type=int, default=3, help="poison events per dead-letter reason")
    parser.add_argument("--out", default="-", help="output file (default stdout)")
    parser.add_argument("--summary", help="write the expected counts as JSON here")
    args = parser.parse_args(argv)
    sink: IO[bytes] = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")
    dead: dict[str, int] = {}
    lines = 0
    with sink:
        for line, reason in generate(args.events, args.seed, args.poison):
            sink.write(line + b"\n")
            lines += 1
            if reason:
                dead[reason] = dead.get(reason, 0) + 1
    summary = {"lines": lines, "valid": lines - sum(dead.values()), "dead_lettered": sum(dead.values()), "dead_by_reason": dead}
    if args.summary:
        with open(args.summary, "wb") as fh:
            fh.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(summary).decode(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
