"""Benchmark: the questions over a store of generated events for the example controller.

    python bench/queries.py [--events 1000000] [--runs 200] [--db URL]

Generates and ingests the events into a fresh SQLite store (or --db), then times each question
``--runs`` times and prints p50 / p95 in milliseconds."""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.blausen.generate import DEMO_SUBJECT_KEY, generate  # noqa: E402
from registry.answers.drift import drift  # noqa: E402
from registry.answers.questions import recipient_detail, recipients_of, subject, subprocessor_chains  # noqa: E402
from registry.intake.ingest import Ingestor  # noqa: E402
from registry.model.declarations import declare  # noqa: E402
from registry.model.events import RawRecord  # noqa: E402
from registry.model.manifest import load_manifest  # noqa: E402
from registry.model.store import open_store  # noqa: E402
from registry.model.subjects import subject_ref  # noqa: E402
from registry.reports import ropa_document  # noqa: E402


def timed(runs: int, fn: Callable[[int], object]) -> tuple[float, float]:
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--db")
    args = parser.parse_args()
    os.environ.setdefault("REGISTRY_SUBJECT_KEY", DEMO_SUBJECT_KEY)
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_store(args.db or f"sqlite:///{tmp}/bench.db")
        declare(engine, load_manifest(ROOT / "examples/blausen/manifest.yaml"))
        start = time.perf_counter()
        result = Ingestor(engine).ingest(RawRecord(value=line) for line, _ in generate(args.events, seed=4))
        print(f"ingested {result.ingested:,} events in {time.perf_counter() - start:.0f} s")
        with engine.connect() as conn:
            print("flow_day rows", conn.exec_driver_sql("SELECT COUNT(*) FROM flow_day").scalar_one(),
                  "| subject index rows", conn.exec_driver_sql("SELECT COUNT(*) FROM subject_flow").scalar_one())
        rng = random.Random(1)
        categories = ["user", "user.device", "user.contact", "user.device.cookie_id", "user.behavior", "user.workplace"]
        recipients = ["google-analytics", "mailchimp", "stripe", "aws-hosting", "sharethis", "sift"]
        refs = [subject_ref(f"customer-{rng.randrange(20000)}", os.environ["REGISTRY_SUBJECT_KEY"]) for _ in range(args.runs)]
        day = lambda d: datetime(2026, d // 100, d % 100, tzinfo=timezone.utc)  # noqa: E731
        inside = lambda h: datetime(2026, 2, 10, h, 17, tzinfo=timezone.utc)  # noqa: E731
        declare(engine, load_manifest(ROOT / "examples/blausen/manifest.yaml"), datetime(2026, 1, 1, tzinfo=timezone.utc))
        as_of_rng = random.Random(2)
        moments = [datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=as_of_rng.randrange(180 * 86400)) for _ in range(args.runs)]
        as_of = lambda i: moments[i]  # noqa: E731
        cases: list[tuple[str, Callable[[int], object], int]] = [
            ("recipients --category (all time)", lambda i: recipients_of(engine, categories[i % 6], include_subprocessors=True), args.runs),
            ("recipients --category (whole days, 1 month)", lambda i: recipients_of(engine, categories[i % 6], day(201), day(301)), args.runs),
            ("recipients --category (edges inside days)", lambda i: recipients_of(engine, categories[i % 6], inside(9), day(310)), args.runs),
            ("recipient KEY (all time)", lambda i: recipient_detail(engine, recipients[i % 6]), args.runs),
            ("subject REF", lambda i: subject(engine, refs[i]), args.runs),
            ("drift (all time)", lambda i: drift(engine), min(args.runs, 20)),
            # --as-of T: the version in force at T (a second, back-dated one is declared below) and
            # the events before T, T drawn inside days so that the partial day and hour are recounted
            ("recipients --category --as-of T", lambda i: recipients_of(engine, categories[i % 6], as_of=as_of(i)), args.runs),
            ("recipient KEY --as-of T", lambda i: recipient_detail(engine, recipients[i % 6], as_of=as_of(i)), args.runs),
            ("subject REF --as-of T", lambda i: subject(engine, refs[i], as_of=as_of(i)), args.runs),
            ("subprocessors --as-of T", lambda i: subprocessor_chains(engine, as_of(i)), args.runs),
            ("drift --as-of T", lambda i: drift(engine, as_of=as_of(i)), min(args.runs, 20)),
            ("ropa --format json --as-of T", lambda i: ropa_document(engine, "json", as_of=as_of(i)), min(args.runs, 20)),
        ]
        for name, fn, runs in cases:
            p50, p95 = timed(runs, fn)
            print(f"{name:45s} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms   ({runs} runs)")


if __name__ == "__main__":
    main()
