"""Anchors: heads of the ledger kept outside the database, which find a deleted tail.

A deleted tail leaves a shorter chain that is still valid and signed; only a record of a longer
head, somewhere the database's attacker cannot also edit, shows it. Two kinds are checked by
``disclosures verify``: a head saved by hand (``--anchor FILE``, the JSON of ``disclosures
head``), and the anchor file named by ``REGISTRY_LEDGER_ANCHOR_FILE``, which receives one line
(the head's JSON) per new entry, appended after the entry's transaction committed."""

from __future__ import annotations

import fcntl
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection, Engine

from registry.exceptions import ConfigError, InputError
from registry.model.tables import LedgerEntry

from . import ANCHOR_ENV, anchor_path
from .heads import GENESIS, Head, entry_fits, head_message, signed_head
from .keys import signature_valid, signing_key

if TYPE_CHECKING:  # the key type only: cryptography loads when a key is used
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["ANCHOR_ENV", "anchor_path", "anchor_started", "anchor_new_heads", "Anchors", "load_anchors", "check_anchors"]

_HASH = re.compile(r"^[0-9a-f]{64}$")
_T = LedgerEntry
log = logging.getLogger(__name__)
_WARNED: set[Path] = set()


def anchor_started(path: Path) -> bool:
    """Whether the anchor file holds anything (a missing or empty one is started by ``head``)."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


@dataclass
class Anchors:
    heads: list[tuple[Head, str]] = field(default_factory=list)  # (head, where it came from)
    problem: str | None = None  # the configured anchor file is missing or unreadable
    sources: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"matches the {len(self.heads)} anchored head(s) of {' and '.join(self.sources)}"


def _parse_head(value: Any) -> Head:
    head = Head.model_validate(value)
    if head.entries < 0 or not _HASH.match(head.head):
        raise ValueError("not a head")
    return head


def _parse(text: str) -> list[Head]:
    """A saved ``disclosures head`` (possibly indented JSON, or a list) or JSON Lines of heads."""
    try:
        whole = orjson.loads(text)
        return [_parse_head(v) for v in (whole if isinstance(whole, list) else [whole])]
    except (orjson.JSONDecodeError, ValidationError, ValueError):
        pass
    heads = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                heads.append(_parse_head(orjson.loads(line)))
            except (orjson.JSONDecodeError, ValidationError, ValueError):
                raise ValueError(f"line {number} is not a ledger head") from None
    return heads


def load_anchors(anchor_file: str | None, configured_file: bool = True) -> Anchors:
    """The heads of ``anchor_file`` (a bad file there is bad input, exit 2) and of the configured
    anchor file (a bad or missing file there is evidence: verification fails)."""
    anchors = Anchors()
    if anchor_file:
        try:
            anchors.heads += [(h, anchor_file) for h in _parse(Path(anchor_file).read_text(encoding="utf-8"))]
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", anchor_file) from None
        except ValueError as exc:
            raise InputError(f"not a saved `disclosures head`: {exc}", anchor_file) from None
        anchors.sources.append(anchor_file)
    configured = anchor_path() if configured_file else None
    if configured is not None:
        anchors.sources.append(str(configured))
        try:
            heads = _parse(configured.read_text(encoding="utf-8"))
            anchors.heads += [(h, str(configured)) for h in heads]
            anchors.problem = None if heads else "empty"
        except FileNotFoundError:
            anchors.problem = "missing"
        except (OSError, ValueError) as exc:
            anchors.problem = f"unreadable ({getattr(exc, 'strerror', None) or exc})"
    return anchors


def check_anchors(anchors: Anchors, hashes: list[str], request_ids: list[str], key: Ed25519PublicKey | None,
                  chain_ok: bool) -> tuple[bool | None, str | None, str | None]:
    """(anchored, first_bad, problem) for the verified prefix ``hashes`` of the table."""
    if anchors.problem is not None:
        if anchors.problem in ("missing", "empty") and chain_ok and not hashes:
            return None, None, None  # nothing logged yet, nothing anchored yet
        # Never advise starting a new file here: a new anchor vouches for the table as it stands,
        # so the tail deleted along with the old file would pass from then on.
        return False, None, (f"the anchor file {anchor_path()} is {anchors.problem} while the table holds {len(hashes)} "
                             "entries: restore it from a backup (it is append-only evidence); a new anchor file would vouch "
                             "for the table as it is now and hide any entry deleted since the lost heads were written")
    if not anchors.heads:
        return None, None, None
    beyond: tuple[int, str] | None = None  # the largest anchored head past the table's end
    for anchored, where in sorted(anchors.heads, key=lambda item: item[0].entries):
        n = anchored.entries
        if key is not None and anchored.signature is not None and not signature_valid(key, anchored.signature,
                                                                                       head_message(n, anchored.head)):
            return False, None, f"the head of {n} entries in {where} has a signature the configured public key does not verify"
        if n == 0:
            if anchored.head != GENESIS:
                return False, None, f"the head of 0 entries in {where} is not the genesis hash"
        elif n <= len(hashes):
            if hashes[n - 1] != anchored.head:
                return False, request_ids[n - 1], (f"entry {n} ({request_ids[n - 1]}) is not the one {where} recorded: "
                                                   "the ledger was rewritten up to there")
        elif chain_ok:
            # the largest one says how many are missing; the smallest would understate it
            beyond = (n, where)
        else:
            return False, None, f"{where} records {n} entries, beyond the broken entry"
    if beyond is not None:
        n, where = beyond
        return False, None, f"{where} records {n} entries but the table holds {len(hashes)}: the newest {n - len(hashes)} were deleted"
    return True, None, None


def _last_line(handle: BinaryIO) -> bytes | None:
    handle.seek(0, os.SEEK_END)
    end = handle.tell()
    position, tail = end, b""
    while position > 0 and tail.count(b"\n") < 2:
        step = min(4096, position)
        position -= step
        handle.seek(position)
        tail = handle.read(step) + tail
    lines = [line for line in tail.splitlines() if line.strip()]
    return lines[-1] if lines else None


def anchor_new_heads(target: Connection | Engine, create: bool = False) -> int:
    """Append to the anchor file the head after each committed entry it does not hold yet;
    returns how many. Only entries that extend the last anchored head through a valid chain
    (and, with a key, a valid signature) are anchored: the key never vouches for rows written
    behind its back. A file whose last head the table no longer holds is left for ``verify``.

    A missing or empty file is started (with the empty ledger's head) only when ``create`` is
    true (an empty ledger's first append, or ``disclosures head``): a writer that re-created a
    deleted anchor file from the table would anchor whatever tail the table has left."""
    path = anchor_path()
    if path is None or (not create and not path.exists()):
        if path is not None and path not in _WARNED:  # once per process: the worker calls this every batch
            _WARNED.add(path)
            log.warning("ledger anchor file %s is missing; run `registry disclosures head` to start it", path)
        return 0
    if isinstance(target, Engine):
        with target.connect() as conn:
            return anchor_new_heads(conn, create)
    key = signing_key()
    try:
        handle = open(path, "a+b")
    except OSError as exc:
        raise ConfigError(f"{ANCHOR_ENV} {path}: cannot append: {exc.strerror}") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # two writers (worker and CLI) must not interleave lines
        last_line = _last_line(handle)
        try:
            last = _parse_head(orjson.loads(last_line)) if last_line else None
        except (orjson.JSONDecodeError, ValidationError, ValueError):
            log.warning("ledger anchor file %s: the last line is not a head; nothing appended", path)
            return 0
        if last is None and not create:
            # an emptied file is reported by verify, never silently refilled from the table
            log.warning("ledger anchor file %s holds no head; nothing appended", path)
            return 0
        start = last.entries if last else 0
        rows = target.execute(sa.select(_T).where(_T.c.seq >= start).order_by(_T.c.seq)).all()
        prev, previous_signed = (last.head, False) if last else (GENESIS, False)
        if start and (not rows or rows[0].seq != start or rows[0].hash != last.head):  # type: ignore[union-attr]
            log.warning("ledger anchor file %s: the table no longer holds its last head; nothing appended", path)
            return 0
        if start:
            previous_signed = rows[0].signature is not None
            rows = rows[1:]
        # a started file opens with the empty ledger's head: "started" and "emptied" then differ
        lines = [orjson.dumps(signed_head(0, GENESIS).model_dump()) + b"\n"] if last is None else []
        for n, row in enumerate(rows, start + 1):
            fits = entry_fits(row, prev, n)
            if key is not None and fits:
                fits = (signature_valid(key.public_key(), row.signature, row.hash.encode("ascii")) if row.signature is not None
                        else not previous_signed)
            if not fits:
                log.warning("ledger anchor file %s: entry %s does not verify; not anchored", path, n)
                break
            lines.append(orjson.dumps(signed_head(n, row.hash).model_dump()) + b"\n")
            prev, previous_signed = row.hash, row.signature is not None
        if lines:
            handle.write(b"".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
    return len(lines)
