"""Subject references (keyed hashes) and the guard that keeps raw identifiers out of the store."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from typing import Any

from .exceptions import ConfigError

__all__ = ["subject_ref", "is_subject_ref", "looks_like_raw_identifier", "redact", "redact_text"]

SUBJECT_KEY_ENV = "REGISTRY_SUBJECT_KEY"
_REF = re.compile(r"^[0-9a-f]{64}$")
# The look-behind makes a match start only at the beginning of a run, so long runs of word
# characters without an @ cost linear time, not quadratic.
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
_IPV6 = re.compile(r"\b(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}\b")
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
    if _IPV4.fullmatch(value) or (":" in value and _IPV6.fullmatch(value)):
        return "ip"
    digits = sum(c.isdigit() for c in value)
    if _PHONE_VALUE.match(value) and 7 <= digits <= 15:
        return "phone"
    if _NAME_VALUE.match(value):
        return "name"
    return None


def redact_text(text: str) -> str:
    """Mask emails, IP addresses and +-prefixed phone numbers inside free text."""
    if "@" in text:
        text = _EMAIL.sub("[redacted:email]", text)
    text = _IPV4.sub("[redacted:ip]", text)
    return _PHONE_IN_TEXT.sub("[redacted:phone]", text)


def redact(value: Any, _opaque: bool = False) -> Any:
    """A copy of a parsed JSON value with raw identifiers masked. Anything inside a
    ``subject_refs`` list that is not a subject ref is masked whole, whatever it looks like."""
    if isinstance(value, dict):
        return {k: redact(v, k == "subject_refs") for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, _opaque) for v in value]
    if isinstance(value, str):
        if is_subject_ref(value):
            return value
        if _opaque:
            return "[redacted]"
        kind = looks_like_raw_identifier(value)
        return f"[redacted:{kind}]" if kind in ("phone", "ip") else redact_text(value)
    return value
