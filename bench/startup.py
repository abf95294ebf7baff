"""Benchmark: CPU a process spends before its first piece of work.

    python bench/startup.py [--runs 5]

(1) ``registry --help``: the whole process. (2) ``registry consume`` on a declared SQLite store:
the CPU (user + system, from /proc) the worker has used when it logs ``subscribed``, i.e. after
imports, opening the store, creating the topics and connecting, just before its first poll.
Broker: KAFKA_BOOTSTRAP_SERVERS, else the embedded tansu. Target (issue 20): under 0.5 s each."""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.consume import broker_and_topics  # noqa: E402
from registry.stream.kafka import Topics  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def help_cpu() -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "registry", "--help"], cwd=ROOT, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def consume_cpu(db: str, bootstrap: str, topics: Topics) -> float:
    worker = subprocess.Popen(
        [sys.executable, "-m", "registry", "--db", db, "--json", "consume", "--group", f"g-{topics.transfers}",
         "--bootstrap-servers", bootstrap, "--transfers-topic", topics.transfers, "--disclosures-topic",
         topics.disclosures, "--dead-letter-topic", topics.dead_letter],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stderr is not None
        for line in worker.stderr:
            if '"event": "subscribed"' in line:
                return _cpu_of(worker.pid)
        raise RuntimeError("the worker ended before it subscribed")
    finally:
        worker.kill()
        worker.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        bootstrap, topics = broker_and_topics(stack, "startup")
        db = f"sqlite:///{Path(tmp) / 'startup.db'}"
        subprocess.run([sys.executable, "-m", "registry", "--db", db, "declare", str(ROOT / "examples/blausen/manifest.yaml")],
                       cwd=ROOT, check=True, capture_output=True)
        helps = sorted(help_cpu() for _ in range(args.runs))
        consumes = sorted(consume_cpu(db, bootstrap, topics) for _ in range(args.runs))
    print(f"registry --help        CPU s: min {helps[0]:.2f}  median {helps[len(helps) // 2]:.2f}  max {helps[-1]:.2f}")
    print(f"consume until subscribed CPU s: min {consumes[0]:.2f}  median {consumes[len(consumes) // 2]:.2f}  max {consumes[-1]:.2f}")


if __name__ == "__main__":
    main()
