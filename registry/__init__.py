"""dataflow-registry: who receives which personal data, from declarations and observed events.

The public API (``from registry import Emitter, subject_ref, ...``) is loaded on first use: a
service that only emits events, and ``registry --help``, do not pay for the store's or the
taxonomy's imports.

Packages, bottom layer first (each may import only the ones before it; ``tests/test_layers.py``
enforces it)::

    exceptions        the RegistryError tree (imports nothing of the registry)
    model/            what is declared and how it is stored: taxonomy, manifest, events, store
    ledger/           the disclosure ledger and its proofs: keys, heads, anchors, chain
    intake/           one path from bytes to rows: ingest, bulk writes, dead letters
    stream/           Kafka and operators: topics, emitter, lag, status, metrics, retries
    consumers/        the worker (top level, beside registry/)
    answers/          every question, computed from the store: flows, graph, drift
    reports/          documents: RoPA, data map, notice, transparency report
    interchange/      Fides resource files in and out
    web/              HTTP API and pages
    cli/              the ``registry`` command
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .exceptions import RegistryError

if TYPE_CHECKING:
    from .intake.ingest import Ingestor, IngestResult, ingest_records
    from .model.manifest import Manifest, load_manifest
    from .model.store import open_store
    from .model.subjects import subject_ref
    from .stream.emitter import Emitter

__all__ = ["Emitter", "RegistryError", "Manifest", "load_manifest", "open_store", "Ingestor", "IngestResult",
           "ingest_records", "subject_ref"]
__version__ = "0.1.0"

_HOMES = {"Emitter": "stream.emitter", "Manifest": "model.manifest", "load_manifest": "model.manifest",
          "open_store": "model.store", "Ingestor": "intake.ingest", "IngestResult": "intake.ingest",
          "ingest_records": "intake.ingest", "subject_ref": "model.subjects"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
