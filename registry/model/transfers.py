"""The third-country rule of contract §4: which destinations need a transfer mechanism."""

from __future__ import annotations

__all__ = ["EEA", "ADEQUATE", "safeguard_problem"]

EEA = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO".split()
)
# Adequacy decisions (Art. 45); the US only for Data Privacy Framework participants, which a
# manifest or event states as transfer_mechanism "adequacy".
ADEQUATE = frozenset("AD AR CA CH FO GB GG IL IM JE JP KR NZ UY".split())
_MECHANISMS = frozenset({"scc", "bcr", "derogation"})


def safeguard_problem(country: str | None, mechanism: str | None) -> str | None:
    """Why a transfer to ``country`` under ``mechanism`` lacks a safeguard, or None if it is fine."""
    if not country or country in EEA or country in ADEQUATE:
        return None
    if mechanism in _MECHANISMS or (country == "US" and mechanism == "adequacy"):
        return None
    if mechanism == "adequacy":
        return f"{country} has no adequacy decision: needs scc, bcr or a derogation"
    return f"transfer to {country} without a safeguard (mechanism: {mechanism or 'none given'})"
