"""Benchmark: the record of processing in every format for a manifest of 200 activities over a
store of 1M events.

    python bench/ropa.py [--events 1000000] [--activities 200]

The manifest repeats the example controller's activities (200 in all, under new keys); the store
is loaded first (not timed), then each format is built and timed, and all of them together."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.blausen.generate import DEMO_SUBJECT_KEY, generate  # noqa: E402
from registry.intake.ingest import Ingestor  # noqa: E402
from registry.model.declarations import declare  # noqa: E402
from registry.model.events import RawRecord  # noqa: E402
from registry.model.manifest import parse_manifest  # noqa: E402
from registry.model.store import open_store  # noqa: E402
from registry.reports import FORMATS, ropa_document  # noqa: E402


def big_manifest(activities: int) -> str:
    document = yaml.safe_load((ROOT / "examples/blausen/manifest.yaml").read_text())
    base = document["activities"]
    document["activities"] = [{**base[i % len(base)], "key": f"{base[i % len(base)]['key']}-{i}",
                               "name": f"{base[i % len(base)]['name']} (unit {i})"} for i in range(activities)]
    return yaml.safe_dump(document)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("REGISTRY_SUBJECT_KEY", DEMO_SUBJECT_KEY)
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_store(f"sqlite:///{tmp}/ropa.db")
        declare(engine, parse_manifest(big_manifest(args.activities)))
        start = time.perf_counter()
        Ingestor(engine).ingest(RawRecord(value=line) for line, _ in generate(args.events, seed=6))
        print(f"store loaded: {args.events:,} events in {time.perf_counter() - start:.0f} s")
        total = time.perf_counter()
        for fmt in FORMATS:
            start = time.perf_counter()
            size = len(ropa_document(engine, fmt))
            print(f"ropa --format {fmt:5s} {time.perf_counter() - start:6.2f} s  {size / 1024:8.0f} KiB")
        print(f"all formats       {time.perf_counter() - total:6.2f} s")


if __name__ == "__main__":
    main()
