"""Weekly timelines (registry.answers.timeline) against a brute-force count of this test's own events:
an event counts once per week however many categories it carries, redeliveries count nothing,
weeks start on Monday 00:00 UTC, empty weeks are 0 — on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from registry.answers.timeline import weekly_events
from registry.intake.ingest import Ingestor
from registry.model.times import format_time

from .helpers import record

START = datetime(2026, 1, 5, tzinfo=timezone.utc)  # a Monday
RECIPIENTS = ["google-analytics", "stripe", "unknown-cdn"]
CATEGORY_SETS = [["user.device.cookie_id"], ["user.device.cookie_id", "user.device.ip_address"],
                 ["user.name", "user.contact.email", "user.financial.credit_card"]]


def _events(seed: int = 5) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    edges = [START + timedelta(weeks=w) - timedelta(milliseconds=1) for w in (1, 2, 5)] + \
            [START + timedelta(weeks=w) for w in (1, 2, 5)]  # the last moment of a Sunday, the first of a Monday
    out = []
    for i in range(400):
        moment = edges[i] if i < len(edges) else START + timedelta(seconds=rng.randrange(9 * 7 * 86400))
        if 3 * 7 * 86400 <= (moment - START).total_seconds() < 4 * 7 * 86400:
            moment += timedelta(weeks=1)  # leave week 4 empty
        data = {"recipient": rng.choice(RECIPIENTS), "data_categories": rng.choice(CATEGORY_SETS),
                "purpose": "analytics.reporting", "legal_basis": "consent", "record_count": rng.choice([1, 3, 10])}
        out.append({"specversion": "1.0", "id": f"tl-{i}", "source": rng.choice(["//services/web", "//services/api"]),
                    "type": "registry.transfer.v1", "time": format_time(moment), "data": data, "_time": moment})
    return out


def _monday(moment: datetime) -> date:
    day = moment.astimezone(timezone.utc).date()
    return day - timedelta(days=day.weekday())


def test_weekly_events_equal_a_count_of_the_events(declared: sa.Engine) -> None:
    events = _events()
    wire = [record({k: v for k, v in e.items() if k != "_time"}) for e in events]
    Ingestor(declared).ingest(wire, batch_size=61)
    Ingestor(declared).ingest(list(reversed(wire)), batch_size=200)  # redelivered: counts nothing
    for recipient in (None, *RECIPIENTS):
        mine = [e for e in events if recipient is None or e["data"]["recipient"] == recipient]
        expected = Counter(_monday(e["_time"]) for e in mine)
        records = Counter()
        for e in mine:
            records[_monday(e["_time"])] += e["data"]["record_count"]
        weeks = weekly_events(declared, recipient)
        assert [w.week for w in weeks] == [min(expected) + timedelta(weeks=i) for i in range(len(weeks))]
        assert weeks[-1].week == max(expected)
        assert {w.week: w.events for w in weeks} == {w.week: expected.get(w.week, 0) for w in weeks}
        assert {w.week: w.records for w in weeks} == {w.week: records.get(w.week, 0) for w in weeks}
        assert sum(w.events for w in weeks) == len(mine)
    empty = next(w for w in weekly_events(declared) if w.week == date(2026, 1, 26))
    assert empty.events == 0
    assert weekly_events(declared, "nobody") == []
