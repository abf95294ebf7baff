"""Benchmark: server time of each page (routing, guard, queries, template) at a store's size.

    python bench/pages.py [--events 20000] [--runs 30] [--db URL]

Without --db: a fresh SQLite store with the example controller's manifest, ``--events``
generated events (the demo's size by default) and the demo's disclosure requests. With --db: that
store as it is (e.g. one of 1M events built with examples/blausen/generate.py and ``registry
ingest``), after adding a legal token. Each page is fetched ``--runs`` times in process
(FastAPI's TestClient: no network in the figure) and p50 / p95 are printed in milliseconds;
goals: p95 < 150 ms at the demo's size, < 500 ms at 1M events."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.blausen.generate import DEMO_SUBJECT_KEY, disclosure_events, generate  # noqa: E402
from registry.intake.ingest import Ingestor  # noqa: E402
from registry.model.declarations import current_manifest, declare  # noqa: E402
from registry.model.events import RawRecord  # noqa: E402
from registry.model.manifest import load_manifest  # noqa: E402
from registry.model.store import open_store  # noqa: E402
from registry.model.subjects import subject_ref  # noqa: E402

PAGES = ["/", "/status", "/recipients?category=user", "/recipients?category=user.contact&as_of=2026-04-01",
         "/recipients?category=user&format=csv", "/recipients/google-analytics", "/drift", "/drift?since=2026-03-01&until=2026-05-01",
         "/datamap", "/datamap?recipient=stripe", "/ropa", "/ropa?as_of=2026-04-01", "/ropa/download?format=xlsx",
         "/datamap/download?format=svg", "/subject?ref={ref}", "/subject/answer?ref={ref}", "/disclosures", "/disclosures/new",
         "/disclosures/requests/SUB-2026-014", "/disclosures/report?year=2026", "/dead-letters", "/dead-letters?format=csv"]


def main() -> None:
    parser = argparse.ArgumentParser(description="p50 / p95 server time of each page")
    parser.add_argument("--db", help="an existing store (default: a fresh one with --events generated events)")
    parser.add_argument("--events", type=int, default=20000, help="the demo's size by default")
    parser.add_argument("--runs", type=int, default=30, help="timed fetches of each page")
    args = parser.parse_args()
    os.environ.setdefault("REGISTRY_SUBJECT_KEY", DEMO_SUBJECT_KEY)
    from fastapi.testclient import TestClient

    from registry.web import create_app
    from registry.web.tokens import create_token

    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/bench.db"
        engine = open_store(url)
        if current_manifest(engine) is None:  # back-dated: the as-of pages ask about the events' months
            declare(engine, load_manifest(ROOT / "examples/blausen/manifest.yaml"), datetime(2025, 1, 1, tzinfo=timezone.utc))
        if not args.db:
            start = time.perf_counter()
            lines = [line for line, _ in generate(args.events, seed=7)] + disclosure_events()
            Ingestor(engine).ingest(RawRecord(value=line) for line in lines)
            print(f"ingested {args.events:,} generated events in {time.perf_counter() - start:.0f} s")
        with engine.connect() as conn:
            events = conn.exec_driver_sql("SELECT COUNT(*) FROM event").scalar_one()
        print(f"store: {url.split('///')[-1] if not args.db else url}, {events:,} events recorded")
        client = TestClient(create_app(url))
        token = create_token(engine, "legal", f"bench-{os.getpid()}").token
        form = client.get("/login").text
        csrf = form.split('name=csrf_token value="')[1].split('"')[0]
        assert client.post("/login", data={"token": token, "csrf_token": csrf}, follow_redirects=False).status_code == 303
        ref = subject_ref("customer-42")
        print(f"{'page':58} {'p50 ms':>8} {'p95 ms':>8}")
        worst = 0.0
        for path in PAGES:
            path = path.format(ref=ref)
            client.get(path)  # warm-up, not counted: the first call of a page compiles its template
            samples = []
            for _ in range(args.runs):
                started = time.perf_counter()
                answer = client.get(path)
                samples.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
            samples.sort()
            p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
            worst = max(worst, p95)
            shown = path if len(path) < 58 else path[:55] + "..."
            print(f"{shown:58} {statistics.median(samples):8.1f} {p95:8.1f}")
        print(f"slowest p95: {worst:.1f} ms")


if __name__ == "__main__":
    main()
