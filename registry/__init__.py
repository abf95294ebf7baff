"""dataflow-registry: who receives which personal data, from declarations and observed events."""

from typing import Any

from .exceptions import RegistryError
from .ingest import IngestResult, Ingestor, ingest_records
from .manifest import Manifest, load_manifest
from .store import open_store
from .subjects import subject_ref

__all__ = ["Emitter", "RegistryError", "Manifest", "load_manifest", "open_store", "Ingestor", "IngestResult",
           "ingest_records", "subject_ref"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The emitter pulls in the Kafka client: only services that send events pay for that import.
    if name == "Emitter":
        from .emitter import Emitter

        return Emitter
    raise AttributeError(name)
