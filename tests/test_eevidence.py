"""e-Evidence clocks (Regulation (EU) 2023/1543) and the transparency report as open data.

Oracle tests: requests are generated (both EU instruments, emergencies, confirmations,
amendments as later snapshots, received across half-year bounds in several time zones) and every
due time, overdue flag, ``--due-within`` answer and report figure is compared with an answer the
test computes itself, the plainest way, from the snapshots it logged."""

from __future__ import annotations

import csv
import json
import random
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from registry.cli import app
from registry.ledger.disclosures import list_disclosures, log_disclosure
from registry.reports.datapackage import package_files, write_package
from registry.reports.transparency import report_rows, transparency_report
from registry.stream.metrics import REGISTRY, set_disclosures_due

from .helpers import ref

UTC = timezone.utc
INSTRUMENTS = ["subpoena", "court_order", "search_warrant", "emergency_request", "preservation_request",
               "other_legal_obligation", "eu_production_order", "eu_preservation_order"]
COUNTRIES = ["DE", "FR", "IE", "NO", "US", "GB", "BR"]  # EU, EEA-not-EU, third countries
ZONES = ["Z", "+02:00", "-05:00", "+05:30", "+14:00", "-11:00"]
# received times cluster around the half-year and year bounds, where the zone decides the period
BOUNDS = [datetime(2026, 7, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)]


def _text(moment: datetime, zone: str) -> str:
    """``moment`` written in another zone, as an authority's form would show it."""
    if zone == "Z":
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sign = 1 if zone[0] == "+" else -1
    offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])) * sign
    local = moment.astimezone(timezone(offset))
    return local.strftime("%Y-%m-%dT%H:%M:%S") + zone


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _generate(seed: int, n: int) -> list[dict[str, Any]]:
    """Snapshots in the order they are logged; a request's later snapshot amends it."""
    rng = random.Random(seed)
    snapshots: list[dict[str, Any]] = []
    for i in range(n):
        instrument = INSTRUMENTS[6 + i % 2] if i % 3 else rng.choice(INSTRUMENTS)
        received = rng.choice(BOUNDS) + timedelta(minutes=rng.randint(-36 * 60, 36 * 60))
        snap: dict[str, Any] = {
            "request_id": f"R-{seed}-{i:03d}", "authority": f"Authority {i}", "authority_country": rng.choice(COUNTRIES),
            "instrument": instrument, "received_at": _text(received, rng.choice(ZONES)), "outcome": "pending", "notice": "pending",
        }
        if rng.random() < 0.4:
            snap["emergency"] = True
        if instrument == "eu_preservation_order" and rng.random() < 0.4:
            snap["confirmed_at"] = _text(received + timedelta(days=rng.randint(1, 50), minutes=rng.randint(0, 600)), rng.choice(ZONES))
        if rng.random() < 0.2:
            snap["legal_reference"] = "MLAT 2026/1"
        if rng.random() < 0.15:
            snap["notice"], snap["notice_due"] = "delayed", (received + timedelta(days=rng.randint(1, 90))).date().isoformat()
        snapshots.append(snap)
        if rng.random() < 0.55:  # an amendment: a later snapshot of the same request
            later = dict(snap)
            choice = rng.random()
            if choice < 0.5:
                later["outcome"] = rng.choice(["produced", "partially_produced", "no_data", "rejected"])
                later["disclosed_at"] = _text(received + timedelta(hours=rng.randint(1, 400)), rng.choice(ZONES))
                if later["outcome"] in ("produced", "partially_produced"):
                    later["data_categories"] = ["user.contact.email"]
                    if rng.random() < 0.5:
                        later["subject_refs"] = [ref(f"s{i}-{k}") for k in range(rng.randint(1, 3))]
                    else:
                        later["subject_count"] = rng.randint(0, 40)
                later["notice"] = rng.choice(["given", "delayed", "prohibited", "not_given"])
                if later["notice"] == "delayed":
                    later["notice_due"] = (received + timedelta(days=rng.randint(1, 90))).date().isoformat()
                else:
                    later.pop("notice_due", None)
            elif choice < 0.65 and instrument == "eu_preservation_order" and "confirmed_at" in later:
                del later["confirmed_at"]  # a confirmation recorded in error, withdrawn: the 60 days again
            elif choice < 0.65 and instrument == "eu_preservation_order":
                later["confirmed_at"] = _text(received + timedelta(days=rng.randint(1, 59)), rng.choice(ZONES))
            elif choice < 0.75:  # the instrument corrected (a preservation order's confirmation goes with it)
                later["instrument"] = INSTRUMENTS[7] if instrument == INSTRUMENTS[6] else INSTRUMENTS[6]
                later.pop("confirmed_at", None)
            elif choice < 0.9 and ("confirmed_at" in later or "emergency" in later):
                later.pop("confirmed_at" if "confirmed_at" in later else "emergency")  # a field given in error, withdrawn
            else:
                later["emergency"] = not later.get("emergency", False)
            snapshots.append(later)
    return snapshots


def _current(snapshots: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s in snapshots:
        out[s["request_id"]] = s  # logged in this order: the last one is the newest
    return out


def _due(s: dict[str, Any]) -> datetime | None:
    """The clocks as the Regulation states them, in seconds."""
    if s["instrument"] == "eu_production_order":
        return _instant(s["received_at"]) + timedelta(seconds=8 * 3600 if s.get("emergency") else 10 * 86400)
    if s["instrument"] == "eu_preservation_order":
        if "confirmed_at" in s:
            return _instant(s["confirmed_at"]) + timedelta(seconds=30 * 86400)
        return _instant(s["received_at"]) + timedelta(seconds=60 * 86400)
    return None


def _open(s: dict[str, Any]) -> bool:
    return s["outcome"] == "pending" and "disclosed_at" not in s


@pytest.fixture(scope="module")
def generated() -> list[dict[str, Any]]:
    return _generate(seed=25, n=36)


@pytest.fixture
def logged(declared: sa.Engine, generated: list[dict[str, Any]]) -> sa.Engine:
    for snap in generated:
        log_disclosure(declared, yaml.safe_dump(snap))
    return declared


NOWS = [datetime(2026, 7, 1, 3, tzinfo=UTC), datetime(2026, 8, 20, 12, tzinfo=UTC), datetime(2027, 1, 2, tzinfo=UTC)]


def test_due_at_overdue_and_due_within_equal_brute_force(logged: sa.Engine, generated: list[dict[str, Any]]) -> None:
    current = _current(generated)
    assert {s["instrument"] for s in current.values()} >= {"eu_production_order", "eu_preservation_order"}
    assert any(s.get("emergency") and s["instrument"] == "eu_production_order" for s in current.values())
    assert any("confirmed_at" in s for s in current.values())
    # amendments that change the clock's inputs: the instrument, and confirmed_at / emergency dropped
    history: dict[str, list[dict[str, Any]]] = {}
    for s in generated:
        history.setdefault(s["request_id"], []).append(s)
    versions = [v for v in history.values() if len(v) > 1]
    assert any(v[0]["instrument"] != v[-1]["instrument"] for v in versions)
    assert any("confirmed_at" in v[0] and "confirmed_at" not in v[-1] and v[-1]["instrument"] == v[0]["instrument"] for v in versions)
    assert any(v[0].get("emergency") and "emergency" not in v[-1] for v in versions)
    for now in NOWS:
        rows, _ = list_disclosures(logged, now=now)
        assert len(rows) == len(current)
        for row in rows:
            s = current[row.request_id]
            due = _due(s)
            assert (row.due_at is None) == (due is None), row.request_id
            if due is not None:
                assert row.due_at is not None and _instant(row.due_at) == due, row.request_id
            assert row.emergency == bool(s.get("emergency"))
            # warnings for missed and near clocks: exactly the open requests within 24 hours or past
            near = due is not None and _open(s) and due - now <= timedelta(hours=24)
            has_clock_warning = any("Regulation (EU) 2023/1543 Art. 1" in w for w in row.warnings)
            assert has_clock_warning == near, (row.request_id, row.warnings)
            # GDPR Art. 48 only for third-country (non-EEA) court orders, subpoenas and so-called EU orders
            art48 = (s["authority_country"] not in ("DE", "FR", "IE", "NO") and "legal_reference" not in s
                     and s["instrument"] in ("court_order", "subpoena", "eu_production_order", "eu_preservation_order"))
            assert any("GDPR Art. 48" in w for w in row.warnings) == art48, (row.request_id, row.warnings)

        overdue = {rid for rid, s in current.items()
                   if (s["notice"] == "delayed" and date.fromisoformat(s["notice_due"]) < now.date())
                   or ((d := _due(s)) is not None and _open(s) and d <= now)}
        assert {r.request_id for r in list_disclosures(logged, overdue_only=True, now=now)[0]} == overdue
        assert {r.request_id for r in list_disclosures(logged, open_only=True, now=now)[0]} == \
            {rid for rid, s in current.items() if _open(s)}
        set_disclosures_due(logged, now)
        for state, test in (("overdue", lambda d: d <= now), ("due_24h", lambda d: now < d <= now + timedelta(hours=24))):
            expected_n = sum(1 for s in current.values() if (d := _due(s)) is not None and _open(s) and test(d))
            assert REGISTRY.get_sample_value("registry_disclosures_due", {"state": state}) == expected_n, (now, state)
        for hours in (0, 1, 8, 24, 24 * 30, 24 * 90):
            expected = {rid for rid, s in current.items()
                        if (d := _due(s)) is not None and _open(s) and d <= now + timedelta(hours=hours)}
            got = {r.request_id for r in list_disclosures(logged, now=now, due_within=hours)[0]}
            assert got == expected, (now, hours)


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _expected_report(current: dict[str, dict[str, Any]], year: int, half: int | None) -> dict[str, Any]:
    def in_period(s: dict[str, Any]) -> bool:
        t = _instant(s["received_at"])
        return t.year == year and (half is None or (t.month <= 6) == (half == 1))

    rows = [s for s in current.values() if in_period(s)]

    def count(field: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in rows:
            out[s[field]] = out.get(s[field], 0) + 1
        return dict(sorted(out.items()))

    days = [(_instant(s["disclosed_at"]) - _instant(s["received_at"])).total_seconds() / 86400 for s in rows
            if "disclosed_at" in s and s["outcome"] in ("produced", "partially_produced")]  # data handed over, not refusals
    median = _median(days)
    return {
        "year": year, "half": half, "requests": len(rows), "by_instrument": count("instrument"), "by_outcome": count("outcome"),
        "by_country": count("authority_country"),
        "subjects_affected": sum(s.get("subject_count", len(s.get("subject_refs", []))) for s in rows
                                 if s["outcome"] in ("produced", "partially_produced")),
        "notice": count("notice"),
        "emergency": sum(1 for s in rows if s.get("emergency") or s["instrument"] == "emergency_request"),
        "median_days_to_disclose": None if median is None else round(median, 2),
    }


def _expected_warnings(current: dict[str, dict[str, Any]], year: int, half: int | None) -> list[tuple[str, str]]:
    """(request, kind) of each warning the report must carry, from the snapshots themselves."""
    out = []
    for rid, s in current.items():
        t = _instant(s["received_at"])
        if t.year != year or (half is not None and (t.month <= 6) != (half == 1)):
            continue
        eu_order = s["instrument"] in ("eu_production_order", "eu_preservation_order")
        if (s["authority_country"] in ("US", "GB", "BR") and "legal_reference" not in s
                and (eu_order or s["instrument"] in ("court_order", "subpoena"))):
            out.append((rid, "art48"))
        if eu_order and s["authority_country"] not in ("DE", "FR", "IE"):
            out.append((rid, "not-eu"))
        if s["instrument"] == "eu_production_order" and "disclosed_at" in s and _instant(s["disclosed_at"]) > _due(s):  # type: ignore[operator]
            out.append((rid, "late"))
    return out


def _warning_kinds(warnings: list[str]) -> list[tuple[str, str]]:
    kinds = []
    for w in warnings:
        rid = w.split(":", 1)[0]
        kind = ("art48" if "(GDPR Art. 48)" in w else "not-eu" if "not an EU member-state authority" in w
                else "late" if re.search(r"disclosed [\d.]+ (hours|days) after it was due", w) else w)
        kinds.append((rid, kind))
    return kinds


def test_report_numbers_equal_brute_force(logged: sa.Engine, generated: list[dict[str, Any]]) -> None:
    def written_half(s: dict[str, Any]) -> tuple[int, bool]:
        return int(s["received_at"][:4]), int(s["received_at"][5:7]) <= 6

    def utc_half(s: dict[str, Any]) -> tuple[int, bool]:
        return _instant(s["received_at"]).year, _instant(s["received_at"]).month <= 6

    # the generator's zones move some requests into another half-year than the date written in them
    assert any(written_half(s) != utc_half(s) for s in _current(generated).values())
    kinds: set[str] = set()
    for year, half in ((2026, 1), (2026, 2), (2026, None), (2027, 1), (2025, 2), (2027, None)):
        expected = _expected_report(_current(generated), year, half)
        report, warnings = transparency_report(logged, year, half)
        got = report.model_dump()
        listed = got.pop("warnings")
        assert got == expected, (year, half)
        expected_warnings = sorted(_expected_warnings(_current(generated), year, half))
        assert sorted(_warning_kinds(listed)) == sorted(_warning_kinds(warnings)) == expected_warnings, (year, half)
        kinds |= {kind for _, kind in expected_warnings}
        if (year, half) == (2026, 2):
            assert expected["requests"] > 0 and expected["emergency"] > 0 and expected["median_days_to_disclose"] is not None
    assert kinds == {"art48", "not-eu", "late"}  # each kind of warning is checked somewhere


def _frictionless_valid(path: Path) -> bool:
    from frictionless import validate

    report = validate(str(path))
    assert report.valid, report.flatten(["type", "message"])
    return bool(report.valid)


def _read(directory: Path, name: str) -> list[dict[str, str]]:
    with (directory / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_data_package_is_valid_and_its_totals_equal_the_json_report(logged: sa.Engine, tmp_path: Path,
                                                                     generated: list[dict[str, Any]]) -> None:
    for year, half in ((2026, 2), (2026, None)):
        report, _ = transparency_report(logged, year, half)
        out = tmp_path / f"{year}-{half}"
        write_package(out, package_files(report, report_rows(logged, year, half), "Blausen"))
        assert _frictionless_valid(out / "datapackage.json")
        descriptor = json.loads((out / "datapackage.json").read_text())
        assert {r["path"] for r in descriptor["resources"]} == {p.name for p in out.glob("*.csv")}
        by_type = _read(out, "requests-by-type.csv")
        assert sum(int(r["received"]) for r in by_type) == report.requests
        assert {r["instrument"]: int(r["received"]) for r in by_type if int(r["received"])} == report.by_instrument
        produced = report.by_outcome.get("produced", 0) + report.by_outcome.get("partially_produced", 0)
        assert sum(int(r["disclosed"]) for r in by_type) == produced
        assert {r["country"]: int(r["requests"]) for r in _read(out, "countries.csv")} == report.by_country
        assert sum(int(r["disclosed"]) for r in _read(out, "countries.csv")) == produced
        assert {r["notice"]: int(r["requests"]) for r in _read(out, "notice.csv") if int(r["requests"])} == report.notice
        assert {r["outcome"]: int(r["requests"]) for r in _read(out, "outcomes.csv") if int(r["requests"])} == report.by_outcome
        assert sum(int(r["subjects_affected"]) for r in _read(out, "subjects-affected.csv")) == report.subjects_affected
        assert sum(int(r["emergency_requests"]) for r in _read(out, "emergency.csv")) == report.emergency
        (summary,) = _read(out, "summary.csv")
        assert int(summary["requests"]) == report.requests and int(summary["emergency"]) == report.emergency
        assert (float(summary["median_days_to_disclose"]) if summary["median_days_to_disclose"] else None) == \
            report.median_days_to_disclose
        assert {r["period"] for r in by_type} == {f"{year}-H{half}" if half else f"{year}"}


runner = CliRunner()


def _cli(db: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--db", db, *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_due_within_and_the_package(declared: sa.Engine, db_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    emergency = {"request_id": "EPOC-1", "authority": "Staatsanwaltschaft Berlin", "authority_country": "DE",
                 "instrument": "eu_production_order", "emergency": True, "received_at": _text(now - timedelta(hours=1), "+01:00"),
                 "outcome": "pending", "notice": "pending"}
    ordinary = {**emergency, "request_id": "EPOC-2", "emergency": False}
    lapsed = {**emergency, "request_id": "EPOC-PR-1", "instrument": "eu_preservation_order", "emergency": False,
              "received_at": _text(now - timedelta(days=61), "Z")}
    confirmed = {**lapsed, "request_id": "EPOC-PR-2", "confirmed_at": _text(now - timedelta(days=10), "Z")}
    for snap in (emergency, ordinary, lapsed, confirmed):
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(snap))
        assert _cli(db_url, "disclosures", "log", str(tmp_path / "s.yaml"), "--json")[0] == 0
    code, out, err = _cli(db_url, "disclosures", "list", "--due-within", "8", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["request_id"] for r in rows] == ["EPOC-1", "EPOC-PR-1"]  # the emergency, and the lapsed preservation
    assert _instant(rows[0]["due_at"]) == _instant(emergency["received_at"]) + timedelta(hours=8)
    assert list(rows[0]) == ["request_id", "authority", "authority_country", "instrument", "emergency", "received_at",
                             "disclosed_at", "due_at", "outcome", "notice", "notice_due", "versions", "warnings"]
    assert "in 7.0 hours" in rows[0]["warnings"][0] and "lapsed" in rows[1]["warnings"][0]
    assert "European Production Order" in err and "GDPR Art. 48" not in err
    code, out, _ = _cli(db_url, "disclosures", "list", "--overdue", "--json")
    assert [r["request_id"] for r in json.loads(out)] == ["EPOC-PR-1"]
    code, out, _ = _cli(db_url, "disclosures", "list", "--due-within", "24", "--json")
    assert [r["request_id"] for r in json.loads(out)] == ["EPOC-1", "EPOC-PR-1"]
    assert _cli(db_url, "disclosures", "list", "--due-within", "-1")[0] == 2
    # disclosed: no longer open, not due
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**emergency, "outcome": "produced", "data_categories": ["user.contact.email"],
                                                     "disclosed_at": _text(now, "Z"), "subject_count": 1}))
    assert _cli(db_url, "disclosures", "log", str(tmp_path / "s.yaml"))[0] == 0
    code, out, _ = _cli(db_url, "disclosures", "list", "--due-within", "8", "--json")
    assert [r["request_id"] for r in json.loads(out)] == ["EPOC-PR-1"]

    year, half = now.year, 1 if now.month <= 6 else 2
    code, out, err = _cli(db_url, "disclosures", "report", "--year", str(year), "--half", str(half), "--format", "csv",
                          "--out", str(tmp_path / "pkg"), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["half"], report["emergency"]) == (half, 1)
    assert _frictionless_valid(tmp_path / "pkg" / "datapackage.json")
    assert sum(int(r["received"]) for r in _read(tmp_path / "pkg", "requests-by-type.csv")) == report["requests"]
    code, _, err = _cli(db_url, "disclosures", "report", "--year", str(year), "--format", "csv")
    assert code == 2 and "--out" in err and "Traceback" not in err
    code, _, err = _cli(db_url, "disclosures", "report", "--year", str(year), "--half", "3")
    assert code == 2 and "--half" in err
    code, out, _ = _cli(db_url, "disclosures", "report", "--year", str(year), "--half", str(half), "--format", "md")
    assert code == 0 and f"# Transparency report {year}-H{half}" in out and "Emergency requests: **1**" in out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_eu_orders_validate_their_new_fields(declared: sa.Engine, db_url: str, tmp_path: Path) -> None:
    base = {"request_id": "X", "authority": "Parquet de Paris", "authority_country": "FR", "instrument": "eu_preservation_order",
            "received_at": "2026-09-01T10:00:00+02:00", "outcome": "pending", "notice": "pending"}
    for bad, field in (({"emergency": "yes"}, "emergency"), ({"confirmed_at": "2026-13-01T10:00:00Z"}, "confirmed_at"),
                       ({"instrument": "eu_order"}, "instrument"),
                       ({"confirmed_at": "2026-09-01T07:59:59Z"}, "confirmed_at"),  # a second before receipt (08:00Z)
                       ({"confirmed_at": "9999-12-20T00:00:00Z"}, "confirmed_at"), ({"received_at": "9999-12-31T00:00:00Z"}, "received_at"),
                       ({"received_at": "0001-01-01T00:30:00+01:00"}, "received_at")):
        (tmp_path / "s.yaml").write_text(json.dumps({**base, **bad}))
        code, _, err = _cli(db_url, "disclosures", "log", str(tmp_path / "s.yaml"))
        assert code == 2 and field in err and "Traceback" not in err, err


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_api_pages_and_metric_carry_the_clocks(declared: sa.Engine, db_url: str, tmp_path: Path) -> None:
    import io
    import zipfile

    from fastapi.testclient import TestClient

    from registry.web import create_app
    from registry.web.tokens import create_token

    from .test_web import sign_in

    now = datetime.now(UTC)
    snaps = [
        {"request_id": "EPOC-E", "authority": "Parquet de Paris", "authority_country": "FR", "instrument": "eu_production_order",
         "emergency": True, "received_at": _text(now - timedelta(hours=2), "+01:00"), "outcome": "pending", "notice": "pending"},
        {"request_id": "EPOC-LATE", "authority": "Garda", "authority_country": "IE", "instrument": "eu_production_order",
         "received_at": _text(now - timedelta(days=11), "Z"), "outcome": "pending", "notice": "pending"},
        {"request_id": "EPOC-PR", "authority": "Garda", "authority_country": "IE", "instrument": "eu_preservation_order",
         "received_at": _text(now - timedelta(days=70), "Z"), "confirmed_at": _text(now - timedelta(days=5), "Z"),
         "outcome": "pending", "notice": "pending"},
        {"request_id": "SUB-1", "authority": "Court", "authority_country": "US", "instrument": "subpoena",
         "received_at": _text(now - timedelta(days=1), "Z"), "outcome": "pending", "notice": "pending"},
    ]
    for s in snaps:
        log_disclosure(declared, yaml.safe_dump(s))
    token = create_token(declared, "legal", "lena").token
    client = TestClient(create_app(db_url))
    auth = {"Authorization": f"Bearer {token}"}
    rows = {r["request_id"]: r for r in client.get("/api/disclosures", headers=auth).json()}
    assert _instant(rows["EPOC-E"]["due_at"]) == _instant(snaps[0]["received_at"]) + timedelta(hours=8)
    assert _instant(rows["EPOC-PR"]["due_at"]) == _instant(snaps[2]["confirmed_at"]) + timedelta(days=30)
    assert rows["SUB-1"]["due_at"] is None and rows["EPOC-E"]["emergency"] is True
    due = client.get("/api/disclosures?due_within=24", headers=auth).json()
    assert [r["request_id"] for r in due] == ["EPOC-E", "EPOC-LATE"]
    assert client.get("/api/disclosures?due_within=-1", headers=auth).status_code == 422

    metrics = client.get("/metrics").text
    assert 'registry_disclosures_due{state="due_24h"} 1.0' in metrics
    assert 'registry_disclosures_due{state="overdue"} 1.0' in metrics
    assert not any(rid in metrics for rid in ("EPOC", "Garda", "Parquet"))  # no keys or names in labels

    half = 1 if now.month <= 6 else 2
    report = client.get(f"/api/disclosures/report?year={now.year}&half={half}", headers=auth).json()
    assert report["half"] == half and report["emergency"] >= 1
    assert client.get(f"/api/disclosures/report?year={now.year}&half=3", headers=auth).status_code == 422
    package = client.get(f"/api/disclosures/report/package?year={now.year}", headers=auth)
    assert package.headers["content-type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(package.content)).extractall(tmp_path / "zip")
    assert _frictionless_valid(tmp_path / "zip" / "datapackage.json")

    assert sign_in(client, token, "/disclosures").status_code == 303
    page = client.get("/disclosures").text
    clocks = page[page.index('id="clocks"'):page.index("</table>", page.index('id="clocks"'))]
    assert clocks.index("EPOC-LATE") < clocks.index("EPOC-E") < clocks.index("EPOC-PR")  # by due time, overdue first
    assert "SUB-1" not in clocks
    assert re.search(r'data-state="overdue"[^>]*>overdue by 1 days? \d+ h|overdue by \d+ h \d+ min', clocks)
    assert re.search(r'class="clock badge due"[^>]*data-due="[^"]+" data-emergency="true"[^>]*>\s*5 h \d+ min left', clocks.replace("\n", " "))
    dashboard = client.get("/").text
    assert "EPOC-E" in dashboard and "1 due within 24 hours" in dashboard
    request_page = client.get("/disclosures/requests/EPOC-E").text
    assert 'id="clock-row"' in request_page and "Data due (emergency)" in request_page
    report_page = client.get(f"/disclosures/report?year={now.year}&half={half}").text
    assert f'href="/disclosures/report/package.zip?year={now.year}&amp;half={half}"' in report_page
    download = client.get(f"/disclosures/report/package.zip?year={now.year}&half={half}")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    assert "datapackage.json" in zipfile.ZipFile(io.BytesIO(download.content)).namelist()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_request_form_logs_and_prefills_the_eu_fields(declared: sa.Engine, db_url: str) -> None:
    """The form at /disclosures/new (issue 22's workflow) takes the e-Evidence fields: the
    Emergency box ("on") for a production order, Confirmed on for a preservation order (read as
    UTC, not before receipt), each left out for other instruments; Update this request prefills
    them, times shown in UTC; the report downloads take the half-year."""
    from fastapi.testclient import TestClient

    from registry.ledger.disclosures import request_history
    from registry.web import create_app
    from registry.web.tokens import create_token

    from .test_web import csrf_of, sign_in

    client = TestClient(create_app(db_url))
    assert sign_in(client, create_token(declared, "legal", "lena").token, "/disclosures/new").status_code == 303
    csrf = csrf_of(client, "/disclosures/new")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    base = {"authority": "Parquet de Paris", "authority_country": "FR", "received_at": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            "outcome": "pending", "notice": "pending", "csrf_token": csrf}
    form = client.get("/disclosures/new").text
    assert 'data-when="instrument:eu_production_order"' in form and 'data-when="instrument:eu_preservation_order"' in form
    logged = client.post("/disclosures/new", data={**base, "request_id": "EPOC-F", "instrument": "eu_production_order",
                                                   "emergency": "on", "confirmed_at": "2026-01-01T10:00"}, follow_redirects=False)
    assert logged.status_code == 303, logged.text
    (version,) = request_history(declared, "EPOC-F")
    assert version.data["emergency"] is True and "confirmed_at" not in version.data  # not a preservation order
    page = client.get(logged.headers["location"]).text
    assert 'id="clock-row"' in page and "Data due (emergency)" in page and "Emergency</strong>:" in page and "yes" in page
    # a court order keeps no emergency mark; a preservation order its confirmation, not before receipt
    client.post("/disclosures/new", data={**base, "request_id": "CO-F", "instrument": "court_order", "emergency": "on"})
    assert "emergency" not in request_history(declared, "CO-F")[0].data
    early = client.post("/disclosures/new", data={**base, "request_id": "EPOC-PR-F", "instrument": "eu_preservation_order",
                                                  "confirmed_at": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")})
    assert early.status_code == 422 and "Confirmed on</strong></a> — is before the request was received" in early.text
    confirmed = now.strftime("%Y-%m-%dT%H:%M")
    client.post("/disclosures/new", data={**base, "request_id": "EPOC-PR-F", "instrument": "eu_preservation_order",
                                          "confirmed_at": confirmed})
    rows = {r.request_id: r for r in list_disclosures(declared)[0]}
    assert _instant(rows["EPOC-PR-F"].due_at or "") == now + timedelta(days=30)
    # an order logged with an offset (CLI, event stream) is prefilled in UTC, the box ticked
    log_disclosure(declared, yaml.safe_dump({"request_id": "EPOC-Z", "authority": "Garda", "authority_country": "IE",
                                             "instrument": "eu_production_order", "emergency": True,
                                             "received_at": "2026-09-01T01:30:00+02:00", "outcome": "pending", "notice": "pending"}))
    update = client.get("/disclosures/new?update=EPOC-Z").text
    assert 'name="received_at" type="datetime-local" value="2026-08-31T23:30"' in update
    assert re.search(r'id="f-emergency"[^>]*checked', update)
    for fmt, mark in (("md", "# Transparency report 2026-H2"), ("json", '"half": 2')):
        answer = client.get(f"/disclosures/report/download?year=2026&half=2&format={fmt}")
        assert answer.status_code == 200 and mark in answer.text and "transparency-2026-h2" in answer.headers["content-disposition"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_eu_order_from_the_event_stream_gets_its_clock(declared: sa.Engine) -> None:
    """The same clocks for a request that arrives as a registry.disclosure.v1 event (Kafka, API)."""
    from registry.intake.ingest import Ingestor

    from .helpers import record

    data = {"request_id": "EPOC-K", "authority": "Policie ČR", "authority_country": "CZ", "instrument": "eu_preservation_order",
            "received_at": "2026-08-18T23:30:00-02:00", "confirmed_at": "2026-09-30T12:00:00+02:00", "outcome": "pending",
            "notice": "pending"}
    event = {"specversion": "1.0", "id": "cms-k", "source": "//services/case-management", "type": "registry.disclosure.v1",
             "time": "2026-09-30T10:00:00Z", "data": data}
    assert Ingestor(declared).ingest([record(event)]).ingested == 1
    (row,), warnings = list_disclosures(declared, now=datetime(2026, 10, 30, 9, 0, tzinfo=UTC))
    assert row.due_at == "2026-10-30T10:00:00Z"  # 30 days after the confirmation, an instant in UTC
    assert len(warnings) == 1 and "lapses at 2026-10-30T10:00:00Z, in 1.0 hours" in warnings[0] and "Art. 48" not in warnings[0]
    assert transparency_report(declared, 2026, 2)[0].requests == 1  # received 2026-08-19T01:30Z: second half


def _stored_without_checks(engine: sa.Engine, data: dict[str, Any]) -> None:
    """A ledger entry as intake accepted it before it refused such times (the ledger is append-only)."""
    from registry.ledger.chain import append_snapshots

    with engine.begin() as conn:
        append_snapshots(conn, [(datetime.now(UTC), data, "file:legacy")])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_times_a_clock_cannot_hold_are_refused_and_a_stored_one_breaks_nothing(declared: sa.Engine, db_url: str,
                                                                              tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from registry.intake.ingest import Ingestor
    from registry.web import create_app
    from registry.web.tokens import create_token

    from .helpers import record
    from .test_web import sign_in

    order = {"request_id": "EPOC-9999", "authority": "Parquet de Paris", "authority_country": "FR",
             "instrument": "eu_preservation_order", "received_at": "2026-01-01T00:00:00Z",
             "confirmed_at": "9999-12-20T00:00:00Z", "outcome": "pending", "notice": "pending"}
    token = create_token(declared, "legal", "lena").token
    client = TestClient(create_app(db_url))
    auth = {"Authorization": f"Bearer {token}"}
    # refused at every door: the API, the stream (a dead letter naming the field), the CLI (above)
    answer = client.post("/api/disclosures", json=order, headers=auth)
    assert answer.status_code == 422 and "confirmed_at" in answer.text, answer.text
    produced = {**order, "request_id": "EPOC-9998", "instrument": "eu_production_order", "received_at": "9999-12-31T20:00:00Z"}
    produced.pop("confirmed_at")
    event = {"specversion": "1.0", "id": "cms-9999", "source": "//services/case-management", "type": "registry.disclosure.v1",
             "time": "2026-09-30T10:00:00Z", "data": produced}
    outcome = Ingestor(declared).ingest_batch([record(event)])
    assert outcome.result.ingested == 0 and [(d.reason, "data.received_at" in (d.detail or "")) for d in outcome.dead] == \
        [("invalid_data", True)], outcome.dead
    assert list_disclosures(declared)[0] == []

    # one such entry stored before the refusal: every answer still comes, the row says why it has no clock
    _stored_without_checks(declared, order)
    _stored_without_checks(declared, produced)
    code, out, err = _cli(db_url, "disclosures", "list", "--json")
    assert code == 0 and "Traceback" not in err, err
    rows = {r["request_id"]: r for r in json.loads(out)}
    assert rows["EPOC-9999"]["due_at"] is None and rows["EPOC-9998"]["due_at"] is None
    assert "no e-Evidence clock: confirmed_at 9999-12-20T00:00:00Z" in rows["EPOC-9999"]["warnings"][0]
    assert "no e-Evidence clock: received_at 9999-12-31T20:00:00Z" in rows["EPOC-9998"]["warnings"][0]
    for args in (("list", "--overdue"), ("list", "--due-within", "24"), ("list", "--open"), ("report", "--year", "2026")):
        code, _, err = _cli(db_url, "disclosures", *args)
        assert code == 0 and "Traceback" not in err, (args, err)
    listed = client.get("/api/disclosures", headers=auth)
    assert listed.status_code == 200 and {r["request_id"] for r in listed.json()} == {"EPOC-9999", "EPOC-9998"}
    assert client.get("/api/disclosures?due_within=24", headers=auth).json() == []
    assert client.get("/api/disclosures/report?year=2026", headers=auth).status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and 'registry_disclosures_due{state="overdue"} 0.0' in metrics.text
    assert sign_in(client, token, "/disclosures").status_code == 303
    for page in ("/disclosures", "/", "/disclosures/requests/EPOC-9999"):
        assert client.get(page).status_code == 200, page


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_report_out_that_cannot_be_written_is_exit_2(declared: sa.Engine, db_url: str, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for target in (str(a_file), "/proc/nope"):
        for fmt in ("json", "csv", "md"):
            code, _, err = _cli(db_url, "disclosures", "report", "--year", "2026", "--format", fmt, "--out", target)
            assert code == 2 and "Traceback" not in err, (target, fmt, err)
            assert "cannot write" in err and target in err and len(err.strip().splitlines()) == 1, (target, fmt, err)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_api_report_years_are_the_clis(declared: sa.Engine, db_url: str) -> None:
    from fastapi.testclient import TestClient

    from registry.web import create_app
    from registry.web.tokens import create_token

    auth = {"Authorization": f"Bearer {create_token(declared, 'legal', 'lena').token}"}
    client = TestClient(create_app(db_url))
    for year, status in ((1, 200), (1969, 200), (9998, 200), (0, 422), (9999, 422)):
        assert client.get(f"/api/disclosures/report?year={year}", headers=auth).status_code == status, year
        assert client.get(f"/api/disclosures/report/package?year={year}", headers=auth).status_code == status, year
        code, _, _ = _cli(db_url, "disclosures", "report", "--year", str(year), "--json")
        assert code == (0 if status == 200 else 2), year


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_workers_metrics_port_counts_disclosures_due(declared: sa.Engine) -> None:
    import socket
    import urllib.request

    from registry.stream import metrics

    now = datetime.now(UTC)
    log_disclosure(declared, yaml.safe_dump({
        "request_id": "EPOC-W", "authority": "Garda", "authority_country": "IE", "instrument": "eu_production_order",
        "received_at": _text(now - timedelta(days=11), "Z"), "outcome": "pending", "notice": "pending"}))
    set_disclosures_due(declared, now - timedelta(days=30))  # a stale count: the scrape must not show it
    assert REGISTRY.get_sample_value("registry_disclosures_due", {"state": "overdue"}) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics.serve(port, "127.0.0.1", engine=declared)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'registry_disclosures_due{state="overdue"} 1.0' in text and "registry_events_ingested_total" in text
