"""Benchmark, in one run: file ingest into SQLite and into PostgreSQL, then one vs two
``registry consume`` workers into PostgreSQL, for each partition count asked for.

    python bench/postgres.py [--events 50000] [--partitions 4,7,8] [--span-minutes M] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Records carry the contract's keys (v3: ``source/id`` for transfers, so the partitions get even
loads whatever the recipients; v2 keyed by recipient, and the demo's skew made them uneven): the
run prints each partition's records, each worker's share of them, and the most two workers could
gain over one with that split (all records / the larger share).

PostgreSQL: ``--postgres`` (a server URL; fresh databases are created and dropped on it), else
TEST_DATABASE_URL. Kafka: KAFKA_BOOTSTRAP_SERVERS, else the embedded tansu. Ingest is timed
without declare and generation; decode (validation, no database) is timed apart to show where
the time goes. Workers are timed from the first batch's start to the last batch's end over all
of them (from their JSON log lines)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from examples.blausen.generate import SPAN, generate  # noqa: E402
from registry.intake.ingest import Ingestor, lines_of  # noqa: E402
from registry.model.declarations import declare  # noqa: E402
from registry.model.manifest import load_manifest  # noqa: E402
from registry.model.store import open_store  # noqa: E402
from registry.stream.kafka import Topics, send_lines  # noqa: E402
from registry.stream.status import broker_offsets  # noqa: E402

MANIFEST = ROOT / "examples" / "blausen" / "manifest.yaml"


class Databases:
    def __init__(self, server: str) -> None:
        self.base = "postgresql+psycopg://" + server.split("://", 1)[1]
        self.admin = sa.create_engine(self.base, isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def fresh(self) -> str:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return self.base.rsplit("/", 1)[0] + f"/{name}"

    def drop(self) -> None:
        open_store.cache_clear()
        with self.admin.connect() as conn:
            for name in self.names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def file_ingest(url: str, lines: list[bytes], batch_size: int) -> tuple[float, float]:
    """(events/s of the ingest, seconds of it spent decoding)."""
    engine = open_store(url)
    declare(engine, load_manifest(MANIFEST))
    ingestor = Ingestor(engine)
    start = time.perf_counter()
    result = ingestor.ingest(lines_of(lines), batch_size=batch_size)
    elapsed = time.perf_counter() - start
    assert result.ingested + result.dead_lettered == len(lines), result
    start = time.perf_counter()
    records = list(lines_of(lines))
    for i in range(0, len(records), batch_size):
        ingestor.decode(records[i:i + batch_size])
    return len(lines) / elapsed, time.perf_counter() - start


@dataclass
class Run:
    rate: float  # events/s from the first batch's start to the last batch's end
    shares: list[int]  # records each worker applied
    cpu: float  # CPU seconds of the workers


def consume(url: str, bootstrap: str, topics: Topics, workers: int, total: int) -> Run:
    declare(open_store(url), load_manifest(MANIFEST))
    group = f"bench-{uuid.uuid4().hex[:6]}"
    args = [sys.executable, "-m", "registry", "--db", url, "--json", "consume", "--group", group, "--bootstrap-servers", bootstrap,
            "--transfers-topic", topics.transfers, "--disclosures-topic", topics.disclosures, "--dead-letter-topic",
            topics.dead_letter, "--session-timeout-ms", "6000", "--heartbeat-interval-ms", "1000", "--stop-when-idle", "4"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(workers)]
    starts, ends, shares = [], [], []
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-2000:]
        for line in err.splitlines():
            if '"event": "batch"' in line:
                fields = json.loads(line)
                moment = time.mktime(time.strptime(fields["time"][:19], "%Y-%m-%dT%H:%M:%S")) + float("0." + fields["time"][20:23])
                ends.append(moment)
                starts.append(moment - fields["ms"] / 1000)
        totals = json.loads(out)
        shares.append(totals["ingested"] + totals["dead_lettered"] + totals["duplicates"])
    assert sum(shares) >= total, (shares, total)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Run(total / (max(ends) - min(starts)), sorted(shares, reverse=True), cpu)


_SPIN = "import time\nt = time.perf_counter()\ns = 0\nfor i in range(5_000_000):\n    s += i\nprint(time.perf_counter() - t)"


def two_process_ceiling(rounds: int = 3) -> float:
    """What two CPU-bound Python processes get from this machine, as a multiple of one: a pure
    loop alone, then two copies at once (median of ``rounds``). Two workers cannot beat this,
    less what the database and the broker take; a cloud VM's two vCPUs may give well under 2."""
    def run(copies: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE, text=True) for _ in range(copies)]
        return max(float(p.communicate()[0]) for p in procs)

    alone = sorted(run(1) for _ in range(rounds))[rounds // 2]
    together = sorted(run(2) for _ in range(rounds))[rounds // 2]
    return 2 * alone / together


def partition_loads(bootstrap: str, topics: Topics) -> list[int]:
    offsets = broker_offsets(bootstrap, [topics.transfers, topics.disclosures])
    assert offsets is not None, "the broker did not answer"
    ends = offsets.ends
    return [ends[(topic, p)] for topic in (topics.transfers, topics.disclosures)
            for p in sorted(p for t, p in ends if t == topic)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--partitions", default="4,7,8", help="partition counts to run the workers on, comma-separated")
    parser.add_argument("--span-minutes", type=float, help="spread the events over this many minutes (default: the "
                        "generator's 180 days, a backfill's shape; a live stream is denser and aggregates more)")
    parser.add_argument("--skip-kafka", action="store_true")
    args = parser.parse_args()
    if not args.postgres:
        sys.exit("set --postgres URL or TEST_DATABASE_URL")
    os.environ.setdefault("REGISTRY_SUBJECT_KEY", "bench")
    span = timedelta(minutes=args.span_minutes) if args.span_minutes else SPAN
    lines = [line for line, _ in generate(args.events, seed=1, span=span)]
    dbs = Databases(args.postgres)
    try:
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
            sqlite_rate, sqlite_decode = file_ingest(f"sqlite:///{tmp}/bench.db", lines, args.batch_size)
            pg_rate, pg_decode = file_ingest(dbs.fresh(), lines, args.batch_size)
            total_sqlite, total_pg = args.events / sqlite_rate, args.events / pg_rate
            print(f"events                 {args.events}")
            print(f"file ingest SQLite     {sqlite_rate:>9,.0f} events/s  ({total_sqlite:.2f} s: decode {sqlite_decode:.2f} s, "
                  f"database {total_sqlite - sqlite_decode:.2f} s)")
            print(f"file ingest PostgreSQL {pg_rate:>9,.0f} events/s  ({total_pg:.2f} s: decode {pg_decode:.2f} s, "
                  f"database {total_pg - pg_decode:.2f} s)")
            print(f"PostgreSQL / SQLite    {pg_rate / sqlite_rate:.2f}")
            if args.skip_kafka:
                return
            bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
            if not bootstrap:
                from registry.stream.devbroker import embedded_broker

                bootstrap = stack.enter_context(embedded_broker())
            print(f"two CPU-bound processes {two_process_ceiling():.2f}x one on this machine (pure Python loops)")
            for partitions in [int(p) for p in args.partitions.split(",")]:
                tag = uuid.uuid4().hex[:6]
                topics = Topics(f"bench{tag}.transfers", f"bench{tag}.disclosures", f"bench{tag}.dead-letter")
                sent = send_lines(lines, bootstrap=bootstrap, topics=topics, mode="structured", partitions=partitions)
                loads = partition_loads(bootstrap, topics)
                one = consume(dbs.fresh(), bootstrap, topics, 1, sent)
                two = consume(dbs.fresh(), bootstrap, topics, 2, sent)
                bound = sum(two.shares) / two.shares[0]
                print(f"{partitions} partitions (records per partition, transfers then disclosures: {loads})")
                print(f"  consume, 1 worker      {one.rate:>9,.0f} events/s into PostgreSQL  (worker CPU {one.cpu:.1f} s)")
                print(f"  consume, 2 workers     {two.rate:>9,.0f} events/s into PostgreSQL  (workers' CPU {two.cpu:.1f} s; "
                      f"records per worker {two.shares})")
                print(f"  two / one              {two.rate / one.rate:.2f}   (at most {bound:.2f} with that split)")
    finally:
        dbs.drop()


if __name__ == "__main__":
    main()
