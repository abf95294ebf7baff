"""Benchmark: a bare kafka-python consume loop vs ``registry consume`` into SQLite, same topic.

    python bench/consume.py [--events 100000]

Publishes generated events to a fresh topic on the broker (KAFKA_BOOTSTRAP_SERVERS, else the
embedded tansu), then times (1) a bare consumer group reading every record, (2) the registry
worker in a child process writing them to a fresh SQLite store, whose peak RSS is measured."""

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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.blausen.generate import generate  # noqa: E402
from registry.kafka import Topics, send_lines  # noqa: E402


def bare_loop(bootstrap: str, topics: Topics, total: int) -> float:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topics.transfers, topics.disclosures, bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4().hex[:6]}",
                             auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=5000,
                             session_timeout_ms=6000, heartbeat_interval_ms=1000, max_partition_fetch_bytes=8 * 1024 * 1024)
    seen, start = 0, None
    while seen < total:
        polled = consumer.poll(timeout_ms=1000)
        if polled and start is None:
            start = time.perf_counter()
        seen += sum(len(v) for v in polled.values())
    elapsed = time.perf_counter() - (start or time.perf_counter())
    consumer.close()
    return total / elapsed


def registry_consume(bootstrap: str, topics: Topics, total: int, tmp: str) -> tuple[float, float]:
    db = f"sqlite:///{tmp}/bench.db"
    subprocess.run([sys.executable, "-m", "registry", "--db", db, "declare", str(ROOT / "examples/blausen/manifest.yaml")],
                   check=True, capture_output=True)
    args = [sys.executable, "-m", "registry", "--db", db, "--json", "consume", "--group", f"reg-{uuid.uuid4().hex[:6]}",
            "--bootstrap-servers", bootstrap, "--transfers-topic", topics.transfers, "--disclosures-topic", topics.disclosures,
            "--dead-letter-topic", topics.dead_letter, "--session-timeout-ms", "6000", "--heartbeat-interval-ms", "1000",
            "--max-events", str(total)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_batch = None
    assert proc.stderr is not None
    for line in proc.stderr:  # the worker logs one JSON line per batch
        if '"event": "batch"' in line and first_batch is None:
            first = json.loads(line)
            first_batch = time.perf_counter() - first["ms"] / 1000
    proc.wait()
    elapsed = time.perf_counter() - (first_batch or time.perf_counter())
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return total / elapsed, peak_mb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("REGISTRY_SUBJECT_KEY", "bench")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from registry.devbroker import embedded_broker

            bootstrap = stack.enter_context(embedded_broker())
        tag = uuid.uuid4().hex[:6]
        topics = Topics(f"bench{tag}.transfers", f"bench{tag}.disclosures", f"bench{tag}.dead-letter")
        start = time.perf_counter()
        sent = send_lines((line for line, _ in generate(args.events, seed=2, poison_per_reason=0)), bootstrap=bootstrap,
                          topics=topics, mode="structured")
        print(f"published         {sent} events in {time.perf_counter() - start:.1f} s")
        bare = bare_loop(bootstrap, topics, sent)
        print(f"bare kafka-python {bare:,.0f} events/s")
        rate, peak = registry_consume(bootstrap, topics, sent, tmp)
        print(f"registry consume  {rate:,.0f} events/s into SQLite, peak RSS {peak:.0f} MB")
        print(f"ratio             {rate / bare:.2f}")


if __name__ == "__main__":
    main()
