"""Benchmark: a bare kafka-python consume loop vs ``registry consume`` into SQLite, same topic.

    python bench/consume.py [--events 100000] [--batch-size N]

Publishes generated events to a fresh topic on the broker (KAFKA_BOOTSTRAP_SERVERS, else the
embedded tansu), then times (1) a bare consumer group reading every record, with the worker's
own client settings, (2) the registry worker in a child process writing them to a fresh SQLite
store, whose peak RSS is measured. Both are timed from their first records to their last."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.blausen.generate import generate  # noqa: E402
from registry.stream.kafka import Topics, send_lines  # noqa: E402


def broker_and_topics(stack: ExitStack, prefix: str) -> tuple[str, Topics]:
    """KAFKA_BOOTSTRAP_SERVERS, else the embedded tansu (stopped with ``stack``), and fresh topic names."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        from registry.stream.devbroker import embedded_broker

        bootstrap = stack.enter_context(embedded_broker())
    tag = uuid.uuid4().hex[:6]
    return bootstrap, Topics(f"{prefix}{tag}.transfers", f"{prefix}{tag}.disclosures", f"{prefix}{tag}.dead-letter")


def bare_loop(bootstrap: str, topics: Topics, total: int, batch_size: int | None) -> float:
    from kafka import KafkaConsumer

    from consumers.worker import CONSUMER_SETTINGS, WorkerConfig

    config = WorkerConfig()  # the worker's own client settings and batch size: like for like
    consumer = KafkaConsumer(topics.transfers, topics.disclosures, bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4().hex[:6]}",
                             max_poll_records=batch_size or config.batch_size, fetch_max_wait_ms=config.fetch_max_wait_ms,
                             session_timeout_ms=6000, heartbeat_interval_ms=1000, **CONSUMER_SETTINGS)
    seen, start = 0, None
    while seen < total:
        polled = consumer.poll(timeout_ms=1000)
        if polled and start is None:
            start = time.perf_counter()
        seen += sum(len(v) for v in polled.values())
    elapsed = time.perf_counter() - (start or time.perf_counter())
    consumer.close()
    return total / elapsed


def registry_consume(bootstrap: str, topics: Topics, total: int, tmp: str, extra: list[str]) -> tuple[float, int]:
    db = f"sqlite:///{tmp}/bench.db"
    subprocess.run([sys.executable, "-m", "registry", "--db", db, "declare", str(ROOT / "examples/blausen/manifest.yaml")],
                   check=True, capture_output=True)
    args = [sys.executable, "-m", "registry", "--db", db, "--json", "consume", "--group", f"reg-{uuid.uuid4().hex[:6]}",
            "--bootstrap-servers", bootstrap, "--transfers-topic", topics.transfers, "--disclosures-topic", topics.disclosures,
            "--dead-letter-topic", topics.dead_letter, "--session-timeout-ms", "6000", "--heartbeat-interval-ms", "1000",
            "--max-events", str(total), *extra]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_batch = last_batch = 0.0
    peak_mb = 0
    assert proc.stderr is not None
    for line in proc.stderr:  # the worker logs one JSON line per batch: timed from the first's start to the last's end
        if '"event": "batch"' in line:
            last_batch = time.perf_counter()
            if not first_batch:
                first_batch = last_batch - json.loads(line)["ms"] / 1000
        elif '"event": "stopped"' in line:
            # its own figure: getrusage here would count this process's size at the fork
            peak_mb = json.loads(line)["peak_rss_mb"]
    proc.wait()
    elapsed = last_batch - first_batch
    return total / elapsed, peak_mb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, help="the worker's batch size (default: its own)")
    args = parser.parse_args()
    os.environ.setdefault("REGISTRY_SUBJECT_KEY", "bench")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        bootstrap, topics = broker_and_topics(stack, "bench")
        start = time.perf_counter()
        sent = send_lines((line for line, _ in generate(args.events, seed=2, poison_per_reason=0)), bootstrap=bootstrap,
                          topics=topics, mode="structured")
        print(f"published         {sent} events in {time.perf_counter() - start:.1f} s")
        bare = bare_loop(bootstrap, topics, sent, args.batch_size)
        print(f"bare kafka-python {bare:,.0f} events/s")
        rate, peak = registry_consume(bootstrap, topics, sent, tmp, ["--batch-size", str(args.batch_size)] if args.batch_size else [])
        print(f"registry consume  {rate:,.0f} events/s into SQLite, peak RSS {peak:.0f} MB")
        print(f"ratio             {rate / bare:.2f}")


if __name__ == "__main__":
    main()
