"""dataflow-registry: who receives which personal data, from declarations and observed events."""

from .exceptions import RegistryError
from .ingest import IngestResult, Ingestor, ingest_records
from .manifest import Manifest, load_manifest
from .store import open_store
from .subjects import subject_ref

__all__ = ["RegistryError", "Manifest", "load_manifest", "open_store", "Ingestor", "IngestResult", "ingest_records", "subject_ref"]
__version__ = "0.1.0"
