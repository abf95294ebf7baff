"""The fideslang default taxonomy (data categories, data uses, data subjects) plus manifest
extensions, as plain data keyed by dotted keys.

Everything that compares a category, purpose or subject-category key goes through ``covers``
so that ``user.contact`` covers ``user.contact.email`` everywhere in the registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Literal, Mapping

__all__ = ["Kind", "Term", "Taxonomy", "covers", "valid_key", "default_taxonomy"]

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


@lru_cache(maxsize=1)
def default_taxonomy() -> Taxonomy:
    """The fideslang default taxonomy (built once per process)."""
    from fideslang.default_taxonomy import DEFAULT_TAXONOMY

    def table(items: Iterable[object]) -> dict[str, Term]:
        out: dict[str, Term] = {}
        for item in items:
            key = getattr(item, "fides_key")
            out[key] = Term(
                key=key,
                parent=getattr(item, "parent_key", None),
                name=getattr(item, "name", None) or key,
                description=getattr(item, "description", None) or "",
            )
        return out

    return Taxonomy(
        terms={
            "data_categories": table(DEFAULT_TAXONOMY.data_category),
            "data_uses": table(DEFAULT_TAXONOMY.data_use),
            "data_subjects": table(DEFAULT_TAXONOMY.data_subject),
        }
    )
