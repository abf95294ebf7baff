"""Subject references (keyed hashes) and the guard that keeps raw identifiers out of the store."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any

from .exceptions import ConfigError

__all__ = ["subject_ref", "is_subject_ref", "looks_like_raw_identifier", "identifier_in", "mask_text", "Finding", "scrub"]

SUBJECT_KEY_ENV = "REGISTRY_SUBJECT_KEY"
_REF = re.compile(r"^[0-9a-f]{64}$")
# The look-behind makes a match start only at the beginning of a run, so long runs of word
# characters without an @ cost linear time, not quadratic.
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
# A whole value that is a phone number: optional +, 7-15 digits, common separators.
_PHONE_VALUE = re.compile(r"^\+?[\d][\d ().-]{5,20}\d$")
_PHONE_IN_TEXT = re.compile(r"\+\d[\d ().-]{6,18}\d")
# A value with two or more capitalised words and nothing else reads as a person's name.
_NAME_VALUE = re.compile(r"^[A-Z][a-z'-]+(?: [A-Z][a-z'-]+)+$")


def subject_ref(stable_id: str, key: str | bytes | None = None) -> str:
    """``hex(HMAC-SHA256(REGISTRY_SUBJECT_KEY, utf8(stable_id)))``: the only form in which a
    data subject reaches the registry."""
    if key is None:
        key = os.environ.get(SUBJECT_KEY_ENV)
        if not key:
            raise ConfigError(f"{SUBJECT_KEY_ENV} is not set: subject refs need the registry's subject key")
    raw_key = key.encode() if isinstance(key, str) else key
    return hmac.new(raw_key, stable_id.encode("utf-8"), hashlib.sha256).hexdigest()


def is_subject_ref(value: object) -> bool:
    return isinstance(value, str) and bool(_REF.match(value))


def looks_like_raw_identifier(value: str) -> str | None:
    """The kind of raw identifier ``value`` looks like (``email``, ``phone``, ``ip``, ``name``), or None."""
    if _EMAIL.search(value):
        return "email"
    if identifier_in(value) == "ip":
        return "ip"
    digits = sum(c.isdigit() for c in value)
    if _PHONE_VALUE.match(value) and 7 <= digits <= 15:
        return "phone"
    if _NAME_VALUE.match(value):
        return "name"
    return None


def _ipv6(match: re.Match[str]) -> bool:
    token = match.group(0).strip(".")
    if not any(c.isalnum() and c != ":" for c in token):
        return False
    try:
        ipaddress.IPv6Address(token.split("%", 1)[0])
    except ValueError:
        return False
    return True


# Candidate IPv6 tokens (checked by ``ipaddress``, so times like 10:30:00 never count).
_IPV6_TOKEN = re.compile(r"(?<![0-9A-Za-z:.])[0-9A-Fa-f:][0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[0-9A-Za-z]+)?")
# Whole strings that need no look: no @ (email), no . (IPv4), no : (IPv6), no + (phone).
_GATE = frozenset("@.:+")


def identifier_in(text: str) -> str | None:
    """The kind of the first raw identifier inside ``text`` (``email``, ``ip``, ``phone``), or
    None. Applied to every string of an event, keys included. Phones count only in their
    international form (``+`` and 7–15 digits): bare digit runs are ids, counts and dates."""
    if _GATE.isdisjoint(text):
        return None
    if "@" in text and _EMAIL.search(text):
        return "email"
    if "." in text and _IPV4.search(text):
        return "ip"
    if ":" in text and any(_ipv6(m) for m in _IPV6_TOKEN.finditer(text)):
        return "ip"
    if "+" in text and any(7 <= sum(c.isdigit() for c in m.group(0)) <= 15 for m in _PHONE_IN_TEXT.finditer(text)):
        return "phone"
    return None


def mask_text(text: str) -> str:
    """``text`` with every raw identifier inside it replaced by ``[redacted:KIND]``."""
    if _GATE.isdisjoint(text):
        return text
    if "@" in text:
        text = _EMAIL.sub("[redacted:email]", text)
    text = _IPV4.sub("[redacted:ip]", text)
    text = _IPV6_TOKEN.sub(lambda m: "[redacted:ip]" if _ipv6(m) else m.group(0), text)
    return _PHONE_IN_TEXT.sub(lambda m: "[redacted:phone]" if 7 <= sum(c.isdigit() for c in m.group(0)) <= 15 else m.group(0), text)


@dataclass(frozen=True)
class Finding:
    """Where a raw identifier sits (a JSON path whose own keys are masked) and its kind."""

    path: str
    kind: str


def scrub(value: Any, path: str = "", refs: bool = False) -> tuple[Any, list[Finding]]:
    """(``value`` with only its raw identifiers masked, where they were). Walks every string,
    object keys included; inside a ``subject_refs`` list anything but a subject ref (or a
    malformed all-hex ref, an error of another kind) is a raw subject id, masked whole. Values
    that hold no identifier (ids, dates, numbers) come back unchanged."""
    findings: list[Finding] = []
    return _scrub(value, path, refs, findings), findings


def _scrub(value: Any, path: str, refs: bool, findings: list[Finding]) -> Any:
    if isinstance(value, str):
        if refs:
            if _HEX_ONLY.match(value):
                return value
            findings.append(Finding(path, looks_like_raw_identifier(value) or "subject id"))
            return "[redacted:subject_id]"
        kind = identifier_in(value)
        if kind is None:
            return value
        findings.append(Finding(path, kind))
        return mask_text(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            kind = identifier_in(key)
            shown = mask_text(key) if kind else key
            if kind:
                findings.append(Finding(_join(path, shown) + " (key)", kind))
            out[shown] = _scrub(item, _join(path, shown), key == "subject_refs" and isinstance(item, list), findings)
        return out
    if isinstance(value, list):
        return [_scrub(item, f"{path}[{i}]", refs, findings) for i, item in enumerate(value)]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


_HEX_ONLY = re.compile(r"^[0-9a-fA-F]+$")
