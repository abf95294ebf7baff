"""Benchmark at scale: a dense live stream through ``registry consume`` workers into PostgreSQL.

    python bench/scale.py [--events 10000000] [--span-minutes 1440] [--workers 2] [--partitions 8]
                          [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--runs 100] [--keep]

Publishes the generated stream (the example controller's flows, keyed by ``source/id``) to a
fresh topic, then times the workers from their JSON batch log lines and prints:
- the sustained rate per tenth of the events (per million at 10M): first vs last;
- the workers' CPU an event and each worker's share of the records;
- what the store holds an event: bytes (relations and indexes, per table), WAL bytes and rows
  written (inserted + updated) an event, from ``pg_current_wal_lsn`` and ``pg_stat_user_tables``;
- query p95 at this size (the questions of ``bench/queries.py``);
- ``retention apply`` dropping the month that holds the events (a manifest declaring 30 days,
  applied as of 30 days after that month), its time, and that whole-hour answers stay the same.

PostgreSQL: ``--postgres`` (a server URL; a fresh database is created, and dropped unless
``--keep``), else TEST_DATABASE_URL. Kafka: KAFKA_BOOTSTRAP_SERVERS, else the embedded tansu."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from examples.blausen.generate import DEMO_SUBJECT_KEY, START, generate  # noqa: E402
from registry.model.declarations import declare  # noqa: E402
from registry.model.manifest import RegistryRetention, load_manifest  # noqa: E402
from registry.model.store import open_store  # noqa: E402
from registry.model.subjects import subject_ref  # noqa: E402
from registry.stream.kafka import send_lines  # noqa: E402
from bench.consume import broker_and_topics  # noqa: E402
from bench.queries import timed  # noqa: E402

MANIFEST = ROOT / "examples" / "blausen" / "manifest.yaml"


def batches_of(stderr: str) -> list[tuple[float, float, int]]:
    """(start, end, records) of each batch a worker logged."""
    out = []
    for line in stderr.splitlines():
        if '"event": "batch"' not in line:
            continue
        fields = json.loads(line)
        end = datetime.fromisoformat(fields["time"].replace("Z", "+00:00")).timestamp()
        out.append((end - fields["ms"] / 1000, end, int(fields["records"])))
    return out


def rates(batches: list[tuple[float, float, int]], window: int) -> list[float]:
    """Events/s over each consecutive ``window`` of records, by batch end time over all workers."""
    ordered = sorted(batches, key=lambda b: b[1])
    out, done, mark_time, mark_count = [], 0, min(b[0] for b in ordered), 0
    for _start, end, records in ordered:
        done += records
        if done - mark_count >= window:
            out.append((done - mark_count) / (end - mark_time))
            mark_time, mark_count = end, done
    return out


def stats(conn: sa.Connection) -> tuple[int, int]:
    """(WAL position in bytes, rows inserted + updated + deleted over all tables)."""
    lsn = conn.exec_driver_sql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").scalar_one()
    rows = conn.exec_driver_sql("SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables").scalar_one()
    return int(lsn), int(rows)


def sizes(conn: sa.Connection) -> dict[str, int]:
    """Bytes per table (relation, indexes, TOAST), the event partitions summed as ``event``."""
    rows = conn.exec_driver_sql(
        "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r'").all()
    out: dict[str, int] = {}
    for name, size in rows:
        key = "event" if name.startswith("event_p") else name
        out[key] = out.get(key, 0) + int(size)
    return out


def queries(url: str, span: timedelta, runs: int) -> None:
    from registry.answers.drift import drift
    from registry.answers.questions import recipient_detail, recipients_of, subject

    engine = open_store(url)
    categories = ["user", "user.device", "user.contact", "user.device.cookie_id", "user.behavior", "user.workplace"]
    recipients = ["google-analytics", "mailchimp", "stripe", "aws-hosting", "sharethis", "sift"]
    refs = [subject_ref(f"customer-{i * 97 % 20000}", os.environ["REGISTRY_SUBJECT_KEY"]) for i in range(runs)]
    hours = max(int(span / timedelta(hours=1)), 2)
    whole = lambda i: (START + timedelta(hours=i % (hours // 2)), START + timedelta(hours=hours // 2 + i % (hours // 2)))  # noqa: E731
    inside = lambda i: (START + timedelta(hours=i % (hours // 2), minutes=17), START + span - timedelta(minutes=23))  # noqa: E731
    cases: list[tuple[str, Callable[[int], object], int]] = [
        ("recipients --category (all time)", lambda i: recipients_of(engine, categories[i % 6], include_subprocessors=True), runs),
        ("recipients --category (whole hours)", lambda i: recipients_of(engine, categories[i % 6], *whole(i)), runs),
        # an hour cut by a bound is recounted from its events: at a dense stream's rate that is many
        ("recipients --category (bounds inside hours)", lambda i: recipients_of(engine, categories[i % 6], *inside(i)), min(runs, 10)),
        ("recipient KEY (all time)", lambda i: recipient_detail(engine, recipients[i % 6]), runs),
        ("subject REF", lambda i: subject(engine, refs[i]), runs),
        ("drift (all time)", lambda i: drift(engine), min(runs, 20)),
    ]
    for name, fn, n in cases:
        p50, p95 = timed(n, fn)
        print(f"  {name:45s} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms   ({n} runs)")


def retention(url: str) -> None:
    """Declare 30 days for everything and apply it as of 30 days after the month of the events:
    that month's partition goes; whole-hour answers over it stay."""
    from registry.answers.questions import recipients_of
    from registry.intake.retention import apply_retention

    engine = open_store(url)
    manifest = load_manifest(MANIFEST)
    declare(engine, manifest.model_copy(update={"registry_retention": RegistryRetention(
        events="30 days", subject_refs="30 days", dead_letters="30 days")}))
    month_end = START.replace(month=START.month % 12 + 1, year=START.year + START.month // 12)
    before = [(r.recipient, r.events) for r in recipients_of(engine, "user")]
    dry_start = time.perf_counter()
    dry = apply_retention(engine, now=month_end + timedelta(days=30, hours=1), dry_run=True)
    dry_seconds = time.perf_counter() - dry_start
    start = time.perf_counter()
    result = apply_retention(engine, now=month_end + timedelta(days=30, hours=1))
    seconds = time.perf_counter() - start
    after = [(r.recipient, r.events) for r in recipients_of(engine, "user")]
    print(f"retention apply          {seconds:.2f} s (dry run {dry_seconds:.2f} s): {result.model_dump_json()}")
    print(f"  answers over the dropped month unchanged: {before == after}; dry run counted the same: "
          f"{dry.events_removed == result.events_removed}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--span-minutes", type=float, default=1440)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    args = parser.parse_args()
    if not args.postgres:
        sys.exit("set --postgres URL or TEST_DATABASE_URL")
    os.environ.setdefault("REGISTRY_SUBJECT_KEY", DEMO_SUBJECT_KEY)
    span = timedelta(minutes=args.span_minutes)
    base = "postgresql+psycopg://" + args.postgres.split("://", 1)[1]
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"scale_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + f"/{name}"
    print(f"events {args.events:,} over {args.span_minutes:g} minutes, {args.workers} workers, {args.partitions} partitions; {url}")
    try:
        with ExitStack() as stack:
            bootstrap, topics = broker_and_topics(stack, "scale")
            started = time.perf_counter()
            sent = send_lines((line for line, _ in generate(args.events, seed=1, span=span)), bootstrap=bootstrap, topics=topics,
                              mode="structured", partitions=args.partitions)
            print(f"published {sent:,} in {time.perf_counter() - started:.0f} s (generation included; not part of the figures)")

            engine = open_store(url)
            declare(engine, load_manifest(MANIFEST))
            with engine.connect() as conn:
                wal0, rows0 = stats(conn)
            command = [sys.executable, "-m", "registry", "--db", url, "--json", "consume", "--group", "scale",
                       "--bootstrap-servers", bootstrap, "--transfers-topic", topics.transfers, "--disclosures-topic",
                       topics.disclosures, "--dead-letter-topic", topics.dead_letter, "--stop-when-idle", "10"]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(args.workers)]
            batches, shares = [], []
            for proc in procs:
                out, err = proc.communicate()
                assert proc.returncode == 0, err[-3000:]
                batches += batches_of(err)
                totals = json.loads(out)
                shares.append(totals["ingested"] + totals["duplicates"] + totals["dead_lettered"])
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            time.sleep(1.5)  # the statistics collector's last flush
            with engine.connect() as conn:
                wal1, rows1 = stats(conn)
                stored = conn.exec_driver_sql("SELECT count(*) FROM event").scalar_one()
                conn.exec_driver_sql("ANALYZE")
                table_sizes = sizes(conn)
            total = sum(shares)
            window = 1_000_000 if args.events >= 5_000_000 else max(args.events // 10, 1)
            per = rates(batches, window)
            elapsed = max(b[1] for b in batches) - min(b[0] for b in batches)
            print(f"consumed {total:,} records ({stored:,} events stored) in {elapsed:.0f} s: {total / elapsed:,.0f} events/s; "
                  f"shares {[round(100 * s / total, 1) for s in shares]} %")
            print(f"  rate per {window:,} events: {[round(r) for r in per]}")
            if len(per) >= 2:
                print(f"  first {per[0]:,.0f} / last {per[-1]:,.0f} events/s: last/first {per[-1] / per[0]:.2f}")
            print(f"  workers' CPU {cpu:.0f} s: {1e6 * cpu / total:.0f} µs an event")
            store_bytes = sum(table_sizes.values())
            print(f"store {store_bytes / 1e6:,.0f} MB: {store_bytes / stored:,.0f} bytes an event "
                  f"({', '.join(f'{k} {v / stored:,.0f}' for k, v in sorted(table_sizes.items(), key=lambda kv: -kv[1]) if v > 65536)})")
            print(f"  WAL {(wal1 - wal0) / stored:,.0f} bytes an event; rows written {(rows1 - rows0) / stored:.2f} an event")
            print(f"queries at {stored:,} events:")
            queries(url, span, args.runs)
            retention(url)
    finally:
        open_store.cache_clear()
        if not args.keep:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
