"""Subject references (keyed hashes) and the guard that keeps raw identifiers out of the store."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterator

from registry.exceptions import ConfigError

__all__ = ["subject_ref", "is_subject_ref", "looks_like_raw_identifier", "identifier_in", "mask_text", "mask_unparsed", "normalised", "Finding", "scrub"]

SUBJECT_KEY_ENV = "REGISTRY_SUBJECT_KEY"
_REF = re.compile(r"^[0-9a-f]{64}$")
# A whole value that is a phone number: optional +, 7-15 digits, common separators.
_PHONE_VALUE = re.compile(r"^\+?[\d][\d ().-]{5,20}\d$")
_PHONE_IN_TEXT = re.compile(r"\+\d[\d ()./+-]{6,18}\d")  # + too: a form-encoded +44+20+7946+0958
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
    if identifier_in(value) == "email":
        return "email"
    if identifier_in(value) == "ip":
        return "ip"
    digits = sum(c.isdigit() for c in value)
    if _PHONE_VALUE.match(value) and 7 <= digits <= 15:
        return "phone"
    if _NAME_VALUE.match(value):
        return "name"
    return None


# Characters that end an address's local part or domain in free text (RFC 5322 allows more
# inside quotes; a quoted local part is handled on its own).
_LOCAL_STOP = frozenset(" \t\r\n\f\v@\"(),:;<>[]\\'`")
_DOMAIN_STOP = _LOCAL_STOP | frozenset("/?#!&=*{}|")
_DOMAIN = re.compile(r"[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|0{0,2}[1-9]?\d)"  # leading zeros too: 192.168.001.010
# Not inside a longer run of digits and dots (1.2.3.4.5 is a version, not an address); letters
# and underscores may touch it (ip_10.0.0.1).
_DOTTED = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_IPV4 = re.compile(rf"(?<![\d.]){_DOTTED}(?!\.?\d)")
_H = "[0-9A-Fa-f]{1,4}"
# IPv6 in any of its forms (the longer forms first), wherever it starts: a letter or a colon may
# touch it (peer:2001:db8::1). Matches are confirmed by ``ipaddress``.
# Alternatives are tried in order and the first wins, so the forms with the most groups after
# "::" come first: fe80::1ff:fe23:4567:890a is one match, not fe80::1ff and a remainder.
_IPV6 = re.compile("|".join([
    rf"(?:{_H}:){{1,4}}:{_DOTTED}", rf"::(?:ffff(?::0{{1,4}})?:)?{_DOTTED}", rf"(?:{_H}:){{7}}{_H}",
    rf"{_H}:(?::{_H}){{1,6}}", rf"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}", rf"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}",
    rf"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}", rf"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}", rf"(?:{_H}:){{1,6}}:{_H}",
    rf"(?:{_H}:){{1,7}}:", rf":(?::{_H}){{1,7}}"]))
# Whole strings that need no look: no @ (email), no . (IPv4), no : (IPv6), no + (phone).
_GATE = frozenset("@.:+")


def _emails(text: str) -> Iterator[tuple[int, int]]:
    """Spans of email addresses, found from each ``@`` outwards (linear in the text; any
    script: josé@example.com, user@bücher.de, "john doe"@example.com, user@[IPv6:…])."""
    at = text.find("@")
    while at != -1:
        if at == 0 or (text[at - 1] in _LOCAL_STOP and text[at - 1] != '"'):
            at = text.find("@", at + 1)  # nothing before it: "@handle", "a @ b", "@@@"
            continue
        left = at
        if at > 0 and text[at - 1] == '"':
            opening = text.rfind('"', max(0, at - 66), at - 1)
            left = opening if opening != -1 else at
        else:
            while left > max(0, at - 64) and text[left - 1] not in _LOCAL_STOP:
                left -= 1
        right = at + 1
        if text[right:right + 1] == "[":
            close = text.find("]", right, right + 64)
            right = close + 1 if close != -1 else right
        else:
            while right < min(len(text), at + 256) and text[right] not in _DOMAIN_STOP:
                right += 1
            domain = _DOMAIN.match(text, at + 1, right)
            right = domain.end() if domain else at + 1
        if left < at and right > at + 1:
            yield left, right
        at = text.find("@", at + 1)


def _ipv6s(text: str) -> Iterator[tuple[int, int]]:
    for match in _IPV6.finditer(text):
        token = match.group(0)
        if sum(1 for g in re.split(r"[:.]", token) if g) < 2:
            continue  # "::1", "d::" (std::vector), "::Ba" (Foo::Bar): no subject's address
        try:
            ipaddress.IPv6Address(token)
        except ValueError:
            continue
        yield match.span()


def _spans(text: str) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    if "@" in text:
        found += [(a, b, "email") for a, b in _emails(text)]
    if text.count(".") >= 3:  # a dotted quad has three dots (a time's fraction has one)
        found += [(*m.span(), "ip") for m in _IPV4.finditer(text)]
    if "::" in text or text.count(":") >= 7:  # every form of _IPV6 has one or the other (not a time's 09:00:00)
        found += [(a, b, "ip") for a, b in _ipv6s(text)]
    if "+" in text:
        found += [(*m.span(), "phone") for m in _PHONE_IN_TEXT.finditer(text) if 7 <= sum(c.isdigit() for c in m.group(0)) <= 15]
    return sorted(found)


# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt) beyond the format characters
# (Cf): invisible, so an identifier may hide behind them (variation selectors, the Hangul fillers,
# the combining grapheme joiner, Mongolian free variation selectors).
_IGNORABLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
                        "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]")
# Full stops of other scripts read as dots (NFKC keeps the ideographic one), dashes as hyphens.
_LOOKALIKES = str.maketrans({"\u3002": ".", "\uff61": ".", "\uff0e": ".", "\u2010": "-", "\u2011": "-",
                             "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-"})


def normalised(text: str) -> str:
    """The view of ``text`` an identifier may hide behind (contract §1): Unicode NFKC (fullwidth
    ``＠``, ``＋``), format and other default-ignorable characters removed (zero-width space, soft
    hyphen, variation selectors), other scripts' full stops as dots, and percent-decoding until
    nothing changes (``erin%40example.com``, ``%2540``, ``%25252540``: each round shortens the
    text, so it ends). Plain ASCII without ``%`` is its own view."""
    if text.isascii() and "%" not in text:
        return text
    view = text
    while True:
        view = _IGNORABLE.sub("", "".join(c for c in unicodedata.normalize("NFKC", view).translate(_LOOKALIKES)
                                          if unicodedata.category(c) != "Cf"))
        if "%" not in view:
            break
        decoded = urllib.parse.unquote(view, errors="replace")
        if decoded == view:
            break
        view = decoded
    return view


def _kind_in(text: str) -> str | None:
    if _GATE.isdisjoint(text):
        return None
    spans = _spans(text)
    return spans[0][2] if spans else None


def identifier_in(text: str) -> str | None:
    """The kind of the first raw identifier inside ``text`` or its normalised view (``email``,
    ``ip``, ``phone``), or None. Applied to every string of an event, keys included. Phones count
    only in their international form (``+`` and 7–15 digits): bare digit runs are ids, counts and
    dates."""
    kind = _kind_in(text)
    if kind is None and not (text.isascii() and "%" not in text):
        kind = _kind_in(normalised(text))
    return kind


def mask_text(text: str) -> str:
    """``text`` with every raw identifier inside it replaced by ``[redacted:KIND]``; a text whose
    identifier shows only in its normalised view is masked whole (its spans in the original are
    not known)."""
    masked = _mask_spans(text)
    if not (masked.isascii() and "%" not in masked):
        kind = _kind_in(normalised(masked))
        if kind is not None:
            return f"[redacted:{kind}]"
    return masked


def _mask_spans(text: str) -> str:
    if _GATE.isdisjoint(text):
        return text
    out, end = [], 0
    for start, stop, kind in _spans(text):
        if start < end:  # overlapping finds (an IPv4 inside an IPv6): one mask
            end = max(end, stop)
            continue
        out += [text[end:start], f"[redacted:{kind}]"]
        end = stop
    return "".join(out) + text[end:]


def mask_unparsed(text: str) -> str:
    """For bytes that are not JSON (or were cut short): JSON escapes undone first (``\u0040`` is
    an @), then every word holding an @ masked whole (a cut may leave ``alice@exam``), then
    :func:`mask_text`."""
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text).replace("\\/", "/")
    text = re.sub(r"[^\s\"',;<>()\[\]{}]*@[^\s\"',;<>()\[\]{}]*", "[redacted:email]", text)
    return mask_text(text).replace("\x00", "\\u0000")


@dataclass(frozen=True)
class Finding:
    """Where a raw identifier sits (a JSON path whose own keys are masked) and its kind."""

    path: str
    kind: str


def scrub(value: Any, path: str = "", refs: bool = False) -> tuple[Any, list[Finding]]:
    """(``value`` with only its raw identifiers masked, where they were). Walks every string,
    object keys included; inside a ``subject_refs`` list anything but a subject ref is a raw
    subject id, masked whole. Values
    that hold no identifier (ids, dates, numbers) come back unchanged."""
    findings: list[Finding] = []
    return _scrub(value, path, refs, findings), findings


def _scrub(value: Any, path: str, refs: bool, findings: list[Finding]) -> Any:
    if isinstance(value, str):
        if refs:
            if _REF.match(value):
                return value  # anything else in subject_refs may be a raw subject id (a numeric customer id is all hex)
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


