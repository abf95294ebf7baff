"""The main job, end to end: events of the example controller through a real Kafka broker into
the registry, then the reports.

    python -m examples.blausen.demo [--events 20000] [--out out/demo]

Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts the embedded test broker (tansu) and stops it
at the end. The store is a fresh SQLite file in the output folder."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from contextlib import ExitStack
from pathlib import Path

import orjson

from consumers.worker import Worker, WorkerConfig
from examples.blausen.announce import announced_versions, early_events
from examples.blausen.generate import DEMO_SUBJECT_KEY, disclosure_events, generate
from registry.answers.drift import drift
from registry.answers.notices import changes, published_list
from registry.intake.deadletters import list_dead_letters
from registry.ledger.chain import verify
from registry.ledger.disclosures import list_disclosures
from registry.model.declarations import declare
from registry.model.manifest import load_manifest
from registry.model.store import open_store
from registry.reports import datamap_document, write_all
from registry.reports.published import changes_document, list_document
from registry.stream.kafka import Topics, send_lines

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DIAGRAMS = ROOT / "diagrams"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "out" / "demo"))
    args = parser.parse_args(argv)
    os.environ.setdefault("REGISTRY_SUBJECT_KEY", DEMO_SUBJECT_KEY)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.monotonic()
    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from registry.stream.devbroker import embedded_broker

            bootstrap = stack.enter_context(embedded_broker(out / "broker.log"))
            print(f"started the embedded broker (tansu) at {bootstrap}")
        engine = open_store(f"sqlite:///{out / 'registry.db'}")
        manifest = load_manifest(HERE / "manifest.yaml")
        declared = declare(engine, manifest)
        print(f"declared {declared.controller}: {declared.recipients} recipients, {declared.activities} activities")
        for version, ahead in announced_versions(manifest):
            now = datetime.now(timezone.utc)  # one clock: 30 days ahead is not short notice by a microsecond
            effective = now + ahead
            declare(engine, version, effective, now)
            print(f"announced version {version_count(engine)}, in force from {effective:%Y-%m-%d} ({ahead.days} days ahead)")

        lines = [line for line, _ in generate(args.events, args.seed)]
        topics = Topics()
        half = len(lines) // 2
        sent = send_lines(lines[:half], bootstrap=bootstrap, topics=topics, mode="structured")
        sent += send_lines(lines[half:], bootstrap=bootstrap, topics=topics, mode="binary")
        print(f"published {sent} events to {topics.transfers} (half structured, half binary mode)")
        requests = send_lines(disclosure_events(), bootstrap=bootstrap, topics=topics, mode="structured")
        print(f"published {requests} disclosure events to {topics.disclosures}")
        early = send_lines(early_events(), bootstrap=bootstrap, topics=topics, mode="structured")
        print(f"published {early} events to SendGrid, before the notice that announces it runs out")

        config = WorkerConfig(bootstrap=bootstrap, group=f"demo-{uuid.uuid4().hex[:6]}", topics=topics,
                              stop_when_idle=3, session_timeout_ms=6000, heartbeat_interval_ms=1000)
        totals = Worker(engine, config).run(install_signals=False)
        print(f"consumed: {totals.ingested} recorded, {totals.duplicates} duplicates, {totals.dead_lettered} dead-lettered")

        summary = _summary(engine, totals.model_dump(), out)
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    print(f"reports in {out} ({time.monotonic() - started:.1f} s)")
    print(next_steps(out))
    return 0


def version_count(engine) -> int:  # type: ignore[no-untyped-def]
    from registry.model.declarations import versions

    return len(versions(engine))


def next_steps(out: Path) -> str:
    """What to type to open the pages on the store the demo just filled."""
    store = out / "registry.db"
    shown = store.relative_to(ROOT) if store.is_relative_to(ROOT) else store
    return "\n".join([
        "",
        "Next: open the pages on this store",
        "  source .venv/bin/activate",
        f"  export REGISTRY_DATABASE_URL=sqlite:///{shown} REGISTRY_SUBJECT_KEY={os.environ.get('REGISTRY_SUBJECT_KEY', DEMO_SUBJECT_KEY)}",
        "  registry tokens create --role legal --name me    # prints a token once: copy it",
        "  registry serve --port 8000                        # then open http://127.0.0.1:8000/ and paste the token",
        "  In Subject lookup, try customer-42 (two disclosures); in Disclosures, \"Log a request\".",
    ])


def _summary(engine, totals: dict, out: Path) -> dict:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        recipients = [r for (r,) in conn.exec_driver_sql("SELECT DISTINCT recipient FROM flow_day ORDER BY recipient")]
    dead = list_dead_letters(engine)
    (out / "dead-letters.json").write_bytes(orjson.dumps([d.model_dump() for d in dead], option=orjson.OPT_INDENT_2))
    files = write_all(engine, out / "reports")
    DIAGRAMS.mkdir(exist_ok=True)
    (DIAGRAMS / "blausen-datamap.svg").write_bytes((out / "reports" / "datamap.svg").read_bytes())
    (DIAGRAMS / "blausen-datamap.png").write_bytes(datamap_document(engine, "png"))
    listed, warnings = list_disclosures(engine)
    (out / "reports" / "recipients.html").write_text(list_document(engine, "html", public=True, feed_url="recipients.atom"))
    (out / "reports" / "recipients.atom").write_text(changes_document(engine, "atom"))
    # the page links the list as JSON beside it, as /public/recipients does
    (out / "reports" / "recipients.json").write_text(list_document(engine, "json", public=True))
    files += ["recipients.html", "recipients.atom", "recipients.json"]
    notices = changes(engine)
    return {"events": totals, "disclosures": {"requests": len(listed), "warnings": warnings, "ledger_ok": verify(engine).ok}, "recipients_observed": len(recipients), "dead_letters": dict(Counter(d.reason for d in dead)),
            "drift": dict(Counter(r.kind for r in drift(engine))),
            "published": {"recipients": len(published_list(engine)), "announced": [(c.recipient, c.change) for c in notices],
                          "short_notice": sum(c.short_notice for c in notices)}, "reports": [f"reports/{f}" for f in files] + ["dead-letters.json"],
            "data_map": str(DIAGRAMS / "blausen-datamap.svg")}


if __name__ == "__main__":
    sys.exit(main())
