"""Log lines as JSON objects, one per line, on stderr: ``{"event": ..., <fields>, "level", "time"}``.
Call sites log a short event name and pass their values as ``extra={"fields": {...}}``."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

__all__ = ["JsonFormatter", "setup"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"event": record.getMessage(), **getattr(record, "fields", {}), "level": record.levelname.lower(),
                "logger": record.name, "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")}
        if record.exc_info and record.exc_info[1] is not None:
            line["error"] = f"{record.exc_info[0].__name__ if record.exc_info[0] else ''}: {record.exc_info[1]}"
        return json.dumps(line, default=str)


def setup(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the ``registry`` loggers (idempotent)."""
    root = logging.getLogger("registry")
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
