"""Benchmark: file ingest of generated events into a fresh SQLite store.

    python bench/ingest_file.py [--events 100000] [--batch-size 5000] [--span-minutes M]

Prints events/s for the ingest alone (declare and generation excluded) and the peak RSS."""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.blausen.generate import generate  # noqa: E402
from registry.intake.ingest import Ingestor, lines_of  # noqa: E402
from registry.model.declarations import declare  # noqa: E402
from registry.model.manifest import load_manifest  # noqa: E402
from registry.model.store import open_store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--span-minutes", type=float, help="spread the events over this many minutes "
                        "(default: the generator's 180 days; a live stream is denser)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "stream.jsonl"
        with stream.open("wb") as fh:
            span = {"span": timedelta(minutes=args.span_minutes)} if args.span_minutes else {}
            for line, _ in generate(args.events, seed=1, **span):
                fh.write(line + b"\n")
        engine = open_store(args.db or f"sqlite:///{tmp}/bench.db")
        declare(engine, load_manifest(ROOT / "examples" / "blausen" / "manifest.yaml"))
        ingestor = Ingestor(engine)
        with stream.open("rb") as fh:
            start, cpu = time.perf_counter(), time.process_time()
            result = ingestor.ingest(lines_of(fh), batch_size=args.batch_size)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        with stream.open("rb") as fh:
            start = time.perf_counter()
            again = ingestor.ingest(lines_of(fh), batch_size=args.batch_size)
            elapsed_again = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"events            {args.events}")
    print(f"first ingest      {elapsed:.2f} s  {args.events / elapsed:,.0f} events/s  {result.model_dump()}")
    # CPU time is what a busy machine distorts least: events per CPU second
    print(f"  CPU             {cpu:.2f} s  {args.events / cpu:,.0f} events per CPU second")
    print(f"re-ingest (dupes) {elapsed_again:.2f} s  {args.events / elapsed_again:,.0f} events/s  {again.model_dump()}")
    print(f"peak RSS          {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
