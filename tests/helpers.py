"""Small builders for hand-written events in tests."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import orjson

from registry.model.events import RawRecord
from registry.model.subjects import subject_ref


def transfer(event_id: str, time: str = "2026-03-01T10:00:00Z", source: str = "//services/web", **data: Any) -> dict[str, Any]:
    body = {"recipient": "google-analytics", "data_categories": ["user.device.cookie_id"],
            "purpose": "analytics.reporting", "legal_basis": "consent"}
    body.update(data)
    return {"specversion": "1.0", "id": event_id, "source": source, "type": "registry.transfer.v1", "time": time, "data": body}


def record(event: dict[str, Any] | bytes) -> RawRecord:
    return RawRecord(value=event if isinstance(event, bytes) else orjson.dumps(event))


def ref(stable_id: str) -> str:
    return subject_ref(stable_id, "test-subject-key")


@contextmanager
def live_server(db_url: str, **options: Any) -> Iterator[str]:
    """The web app (``create_app`` options, e.g. public=True) on a free loopback port in a
    thread; yields its base URL."""
    import uvicorn

    from registry.stream.devbroker import free_port
    from registry.web import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(db_url, **options), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:  # a server that cannot bind (the port taken meanwhile) fails, not hangs
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the web app did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def store_at(db_url: str, revision: str) -> Any:
    """An engine on a store migrated only up to ``revision`` (to test later migrations on old data)."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from registry.model.store import _MIGRATIONS, _normalise

    engine = sa.create_engine(_normalise(db_url))
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return engine
