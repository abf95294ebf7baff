"""The registry's exceptions: one base, so callers can catch everything the library raises.

    RegistryError
    ├── InputError             bad input from a user or a file; the CLI exits 2
    │   ├── ManifestError      a manifest field is wrong (``path`` names it)
    │   ├── EventError         an event cannot be accepted (``reason`` is a dead-letter code)
    │   └── DisclosureError    a disclosure snapshot is wrong (``path`` names it)
    ├── ConfigError            missing or wrong configuration (subject key, database URL); exit 2
    ├── StoreError             the database cannot be opened or migrated
    ├── LedgerError            the disclosure ledger does not verify (``disclosures head``); exit 1
    └── BrokerError            Kafka cannot be reached or refuses a request
        └── UndecodableBatchError  a fetched record batch cannot be read (a codec missing, a
                                   corrupt batch): retrying never helps, the worker stops

Library code raises these and never calls ``sys.exit``; the CLI maps them to exit codes.
"""

from __future__ import annotations

__all__ = [
    "RegistryError",
    "InputError",
    "ManifestError",
    "EventError",
    "DisclosureError",
    "ConfigError",
    "StoreError",
    "LedgerError",
    "BrokerError",
    "UndecodableBatchError",
]


class RegistryError(Exception):
    """Base of every error raised by the registry."""


class InputError(RegistryError, ValueError):
    """Input that cannot be accepted. ``path`` is the dotted/indexed path of the bad field."""

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class ManifestError(InputError):
    """A manifest that fails validation; nothing is stored."""


class DisclosureError(InputError):
    """A disclosure snapshot that fails validation; nothing is stored. ``problems``: every wrong
    field as (path, message), in the document's order (``path`` and ``message`` are the first)."""

    def __init__(self, message: str, path: str | None = None, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message, path)
        self.problems = problems or [(path or "", message)]
        if len(self.problems) > 1:  # one line that names them all, for the CLI's stderr
            self.args = ("; ".join(f"{p}: {m}" if p else m for p, m in self.problems),)

    @classmethod
    def of(cls, problems: list[tuple[str, str]]) -> "DisclosureError":
        path, message = problems[0]
        return cls(message, path, problems)


class EventError(InputError):
    """An event that fails validation. ``reason`` is one of the contract's dead-letter codes."""

    def __init__(self, reason: str, message: str, path: str | None = None) -> None:
        self.reason = reason
        super().__init__(message, path)


class ConfigError(RegistryError):
    """Missing or wrong configuration."""


class StoreError(RegistryError):
    """The store cannot be opened, migrated or written."""


class LedgerError(RegistryError):
    """The disclosure ledger does not verify, so no head is signed over it."""


class BrokerError(RegistryError):
    """Kafka cannot be reached or refuses a request."""


class UndecodableBatchError(BrokerError):
    """A record batch the Kafka client cannot decode (compression codec not installed, corrupt
    batch): not an outage, so the worker names it and stops instead of retrying."""
