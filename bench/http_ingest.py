"""Benchmark: POST /api/events with a batch of generated events to the live service.

    python bench/http_ingest.py [--events 10000] [--repeat 3]

Starts ``registry serve`` (its own process) on a loopback port with a fresh SQLite store, posts
the batch ``--repeat`` times (fresh event ids each time) and prints events/s per request, then
the server's memory. Each batch holds ten minutes of events, as a service posting what it just
sent would."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.blausen.generate import generate  # noqa: E402
from registry.model.declarations import declare  # noqa: E402
from registry.model.manifest import load_manifest  # noqa: E402
from registry.model.store import open_store  # noqa: E402
from registry.stream.devbroker import free_port  # noqa: E402
from registry.web.tokens import create_token  # noqa: E402


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
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "registry", "--db", url, "serve", "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait(base)
            _post(base, token, args)
            print(f"server memory after {args.repeat} requests: {_memory(server.pid)}")
        finally:
            server.terminate()
            server.wait(10)


def _wait(base: str) -> None:
    for _ in range(200):
        try:
            httpx.get(f"{base}/openapi.json", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the service did not start")


def _memory(pid: int) -> str:
    """The server's resident memory now and at its peak (Linux)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
    except OSError:
        return "unknown (no /proc)"
    return f"RSS {int(fields['VmRSS'].split()[0]) // 1024} MB, peak {int(fields['VmHWM'].split()[0]) // 1024} MB"


def _post(base: str, token: str, args: argparse.Namespace) -> None:
    with httpx.Client(timeout=120) as client:
        for run in range(args.repeat):
            # a batch a service posts holds recent events: here ten minutes' worth, one batch after the other
            start = datetime(2026, 3, 1, tzinfo=timezone.utc) + timedelta(minutes=10 * run)
            batch = [orjson.loads(line) for line, _ in generate(args.events, seed=100 + run, poison_per_reason=0,
                                                                 span=timedelta(minutes=10), start=start)]
            body = orjson.dumps(batch)
            began = time.perf_counter()
            response = client.post(f"{base}/api/events", content=body,
                                   headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            elapsed = time.perf_counter() - began
            print(f"run {run + 1}: {response.status_code} {response.json()}  {args.events / elapsed:,.0f} events/s "
                  f"({len(body) / 1e6:.1f} MB in {elapsed:.2f} s)")


if __name__ == "__main__":
    main()
