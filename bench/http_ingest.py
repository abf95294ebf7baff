"""Benchmark: POST /api/events with a batch of generated events to the live service.

    python bench/http_ingest.py [--events 10000] [--repeat 3]

Starts the web service (uvicorn) on a loopback port with a fresh SQLite store, posts the batch
``--repeat`` times (fresh event ids each time) and prints events/s per request."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.blausen.generate import generate  # noqa: E402
from registry.declarations import declare  # noqa: E402
from registry.manifest import load_manifest  # noqa: E402
from registry.store import open_store  # noqa: E402
from registry.tokens import create_token  # noqa: E402
from tests.helpers import live_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("REGISTRY_SUBJECT_KEY", "bench")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/http.db"
        engine = open_store(url)
        declare(engine, load_manifest(ROOT / "examples/blausen/manifest.yaml"))
        token = create_token(engine, "service", "bench").token
        with live_server(url) as base, httpx.Client(timeout=120) as client:
            for run in range(args.repeat):
                batch = [orjson.loads(line) for line, _ in generate(args.events, seed=100 + run, poison_per_reason=0)]
                body = orjson.dumps(batch)
                start = time.perf_counter()
                response = client.post(f"{base}/api/events", content=body,
                                       headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                elapsed = time.perf_counter() - start
                print(f"run {run + 1}: {response.status_code} {response.json()}  {args.events / elapsed:,.0f} events/s "
                      f"({len(body) / 1e6:.1f} MB in {elapsed:.2f} s)")


if __name__ == "__main__":
    main()
