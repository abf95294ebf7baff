"""The fideslang default taxonomy (data categories, data uses, data subjects) plus manifest
extensions, as plain data keyed by dotted keys.

Everything that compares a category, purpose or subject-category key goes through ``covers``
so that ``user.contact`` covers ``user.contact.email`` everywhere in the registry.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Literal, Mapping

__all__ = ["Kind", "Term", "Taxonomy", "covers", "valid_key", "default_taxonomy", "fideslang_taxonomy"]

Kind = Literal["data_categories", "data_uses", "data_subjects"]
KINDS: tuple[Kind, ...] = ("data_categories", "data_uses", "data_subjects")


@dataclass(frozen=True)
class Term:
    key: str
    parent: str | None
    name: str
    description: str = ""


_KEY = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")


def valid_key(value: str) -> bool:
    """A dotted taxonomy key (``user.contact.email``)."""
    return bool(_KEY.match(value))


def covers(ancestor: str, key: str) -> bool:
    """True when ``key`` is ``ancestor`` or lies under it (``user`` covers ``user.contact.email``)."""
    return key == ancestor or key.startswith(ancestor + ".")


@dataclass(frozen=True)
class Taxonomy:
    """Three key → term tables. Immutable; ``extend`` returns a new taxonomy."""

    terms: Mapping[Kind, Mapping[str, Term]] = field(default_factory=dict)

    def has(self, kind: Kind, key: str) -> bool:
        return key in self.terms[kind]

    def name(self, kind: Kind, key: str) -> str:
        term = self.terms[kind].get(key)
        return term.name if term else key

    def keys(self, kind: Kind) -> frozenset[str]:
        return frozenset(self.terms[kind])

    def descendants(self, kind: Kind, key: str) -> list[str]:
        """``key`` and every known key under it, sorted."""
        return sorted(k for k in self.terms[kind] if covers(key, k))

    def extend(self, extensions: Mapping[Kind, Iterable[Term]]) -> "Taxonomy":
        """Add manifest extensions. Raises ValueError naming the bad key."""
        tables = {kind: dict(self.terms[kind]) for kind in KINDS}
        for kind, terms in extensions.items():
            table = tables[kind]
            for term in terms:
                if term.key in table:
                    continue  # re-declaring a known key is harmless; keep the first name
                if term.parent is not None and term.parent not in table:
                    raise ValueError(f"parent {term.parent!r} of {term.key!r} is not a known key")
                if term.parent is not None and not term.key.startswith(term.parent + "."):
                    raise ValueError(f"{term.key!r} must start with its parent {term.parent!r}")
                table[term.key] = term
        return Taxonomy(terms=tables)


# fideslang's default taxonomy as data: building it from fideslang's pydantic models costs every
# worker ~75 ms of start-up. ``python -m registry.model.taxonomy`` rewrites the file from the
# installed fideslang; a test keeps the two equal.
DEFAULT_TAXONOMY_FILE = Path(__file__).with_name("default_taxonomy.json")


@lru_cache(maxsize=1)
def default_taxonomy() -> Taxonomy:
    """The fideslang default taxonomy (read once per process)."""
    data = json.loads(DEFAULT_TAXONOMY_FILE.read_text(encoding="utf-8"))
    return Taxonomy(terms={kind: {t["key"]: Term(**t) for t in data[kind]} for kind in KINDS})


def fideslang_taxonomy() -> dict[str, list[dict[str, str | None]]]:
    """The default taxonomy as the installed fideslang has it, in the data file's shape."""
    from fideslang.default_taxonomy import DEFAULT_TAXONOMY

    def terms(items: Iterable[object]) -> list[dict[str, str | None]]:
        return [{"key": getattr(item, "fides_key"), "parent": getattr(item, "parent_key", None),
                 "name": getattr(item, "name", None) or getattr(item, "fides_key"),
                 "description": getattr(item, "description", None) or ""} for item in items]

    return {"data_categories": terms(DEFAULT_TAXONOMY.data_category), "data_uses": terms(DEFAULT_TAXONOMY.data_use),
            "data_subjects": terms(DEFAULT_TAXONOMY.data_subject)}


if __name__ == "__main__":
    DEFAULT_TAXONOMY_FILE.write_text(json.dumps(fideslang_taxonomy(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
