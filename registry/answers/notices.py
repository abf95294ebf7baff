"""Published recipients and change notices (contract §8, GDPR Art. 13(1)(e), Art. 28(2)/(4)).

Everything here is computed from the stored manifest versions in the order they take effect
(``effective_from``, then version), the way :mod:`registry.model.history` orders them:

- the **published list** at T: the recipients of the version in force at T among the versions
  declared by T (what a reader could have seen then), plus those announced by T by a version
  that takes effect later (status ``announced``);
- the **change notices**: each version's recipient changes against the version in force before
  it (added, removed, changed in country, transfer mechanism, role or the categories it
  receives), announced at its ``declared_at``, in force from its ``effective_from``, with the
  objection deadline ``declared_at + notice_period_days``. The first version is the baseline
  (the list as first recorded), not a change: otherwise every store would open with every
  recipient "added" and every past event flagged;
- **before notice**: events to a recipient that a notice announced (added, or a changed country
  or set of categories), before that notice ran out: before ``max(effective_from,
  objection_deadline)``, from the moment the previous publication stopped covering them.

Pure over the store: no state of its own, every number a count over stored events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection, Engine

from registry.exceptions import InputError
from registry.model.declarations import versions
from registry.model.manifest import Manifest
from registry.model.taxonomy import covers
from registry.model.times import format_time, parse_time

from .flows import Observation, observations

__all__ = ["nothing_published_message", "Version", "NOTICE_FIELDS", "ChangeNotice", "Notice", "ListedRecipient", "LateFlow", "effect_order",
           "recipient_state", "notices_of", "changes", "change_notices", "published_list", "published_list_of",
           "late_flows"]

# the fields whose change is announced (contract §8); a new name or contract reference is not
NOTICE_FIELDS = ("country", "transfer_mechanism", "role", "categories")
# the changes that make earlier events "before notice": a new place or new kinds of data
_FLOW_FIELDS = ("country", "categories")


@dataclass(frozen=True)
class Version:
    number: int
    declared_at: datetime
    effective_from: datetime
    manifest: Manifest


def effect_order(bind: Engine | Connection) -> list[Version]:
    """Every stored version, in the order the versions take effect (ties: declaration order)."""
    out = [Version(info.version, parse_time(info.declared_at), parse_time(info.effective_from), m) for info, m in versions(bind)]
    return sorted(out, key=lambda v: (v.effective_from, v.number))


def _received(m: Manifest, key: str, attr: str) -> list[str]:
    """Categories (or purposes) of the activities with ``key`` or a processor it works for: a
    sub-processor receives what its processor receives under those activities."""
    chain = set(m.processor_chain(key))
    return sorted({k for a in m.activities if chain & set(a.recipients) for k in getattr(a, attr)})


def recipient_state(m: Manifest, key: str) -> dict[str, Any] | None:
    """The announced fields of one recipient in one manifest (None: not in it)."""
    r = m.recipient(key)
    if r is None:
        return None
    return {"country": r.country, "transfer_mechanism": r.transfer_mechanism, "role": r.role,
            "categories": _received(m, key, "data_categories")}


class ChangeNotice(BaseModel):
    recipient: str
    change: Literal["added", "removed", "changed"]
    fields: dict[str, list[Any]] = Field(description="field: [old, new] (country, transfer_mechanism, role, categories)")
    announced_at: str = Field(description="the declared_at of the manifest version that made the change")
    effective_from: str = Field(description="when the change takes effect")
    objection_deadline: str = Field(description="announced_at + notice_period_days")
    short_notice: bool = Field(description="in force on a day before the objection deadline's (back-dated or announced late)")


@dataclass(frozen=True)
class Notice:
    """One change notice with what the feed and the drift check need beside its row."""

    version: int
    recipient: str
    name: str
    change: str
    fields: dict[str, list[Any]]
    announced_at: datetime
    effective_from: datetime
    objection_deadline: datetime

    @property
    def short_notice(self) -> bool:
        """In force on a day (UTC) before the objection deadline's day: notice periods are counted
        in days, so a change declared at 14:00 and in force at midnight 30 days later is not short
        notice by 14 hours (its events in those hours still count as before notice). A removal is
        never short notice: nobody objects to data no longer flowing somewhere."""
        if self.change == "removed":
            return False
        return self.effective_from.astimezone(timezone.utc).date() < self.objection_deadline.astimezone(timezone.utc).date()

    @property
    def clear_at(self) -> datetime:
        """From when data may flow under this notice: in force and past the objection deadline."""
        return max(self.effective_from, self.objection_deadline)

    def row(self) -> ChangeNotice:
        return ChangeNotice(recipient=self.recipient, change=self.change, fields=self.fields,  # type: ignore[arg-type]
                            announced_at=format_time(self.announced_at), effective_from=format_time(self.effective_from),
                            objection_deadline=format_time(self.objection_deadline), short_notice=self.short_notice)


def _in_force_at(known: list[Version], moment: datetime) -> Version | None:
    """The version in force at ``moment`` among ``known``: the latest effective_from <= moment
    (ties: the later declaration)."""
    live = [v for v in known if v.effective_from <= moment]
    return max(live, key=lambda v: (v.effective_from, v.number)) if live else None


def notices_of(ordered: list[Version]) -> list[Notice]:
    """Pure: the change notices of the versions given (any order), sorted by announcement.

    Each version is compared once, with what was published when it was declared: the version in
    force at its ``effective_from`` among the versions declared before it. A later declaration
    (even a back-dated one) never rewrites a notice already published. The first declared version
    is the baseline; a version that takes effect before anything declared earlier was in force
    announces each of its recipients as added."""
    by_number = sorted(ordered, key=lambda v: v.number)
    out: list[Notice] = []
    for i, now in enumerate(by_number):
        if i == 0:
            continue
        previous = _in_force_at(by_number[:i], now.effective_from)
        before = previous.manifest if previous is not None else None
        deadline = now.declared_at + timedelta(days=now.manifest.notice_period_days)
        old_keys = {r.key for r in before.recipients} if before is not None else set()
        for key in sorted(old_keys | {r.key for r in now.manifest.recipients}):
            old = recipient_state(before, key) if before is not None else None
            new = recipient_state(now.manifest, key)
            if old is None and new is not None:
                change, fields = "added", {f: [None, new[f]] for f in NOTICE_FIELDS}
            elif new is None and old is not None:
                change, fields = "removed", {f: [old[f], None] for f in NOTICE_FIELDS}
            else:
                assert old is not None and new is not None
                change, fields = "changed", {f: [old[f], new[f]] for f in NOTICE_FIELDS if old[f] != new[f]}
                if not fields:
                    continue
            named = now.manifest.recipient(key) or (before.recipient(key) if before is not None else None)
            assert named is not None
            out.append(Notice(version=now.number, recipient=key, name=named.name, change=change, fields=fields,
                              announced_at=now.declared_at, effective_from=now.effective_from, objection_deadline=deadline))
    return sorted(out, key=lambda n: (n.announced_at, n.effective_from, n.recipient, n.version))


def change_notices(engine: Engine, since: datetime | None = None) -> list[Notice]:
    """The notices announced at or after ``since`` (all for None)."""
    return [n for n in notices_of(effect_order(engine)) if since is None or n.announced_at >= since]


def changes(engine: Engine, since: datetime | None = None) -> list[ChangeNotice]:
    """``subprocessors changes``: one row per change notice, oldest announcement first."""
    return [n.row() for n in change_notices(engine, since)]


class ListedRecipient(BaseModel):
    recipient: str
    name: str
    service: str
    role: str
    processor_of: str | None
    country: str
    transfer_mechanism: str | None
    purposes: list[str] = Field(description="purposes of the activities it serves (with its processors)")
    categories: list[str] = Field(description="data categories it receives under those activities")
    in_force_since: str = Field(description="listed without a break since (announced: when it takes effect)")
    status: Literal["in_force", "announced"]
    first_seen: str | None = Field(description="first observed event to it (before --as-of)")
    last_seen: str | None


def published_list(engine: Engine, as_of: datetime | None = None) -> list[ListedRecipient]:
    """``subprocessors list``: the published recipients at ``as_of`` (default now)."""
    moment = as_of or datetime.now(timezone.utc)
    with engine.connect() as conn:
        ordered = effect_order(conn)
        found = observations(conn, None, as_of)
    # before any version was declared nothing was published: not an empty list. Once one is
    # declared, even before it takes effect, the list holds its recipients as announced (§8).
    if as_of is not None and not any(v.declared_at <= moment for v in ordered):
        raise InputError(nothing_published_message(moment), "--as-of")
    return published_list_of(ordered, found, moment)


def nothing_published_message(moment: datetime) -> str:
    return f"no manifest declared by {format_time(moment)}: nothing was published then"


def published_list_of(ordered: list[Version], found: list[Observation], moment: datetime) -> list[ListedRecipient]:
    """Pure: the list at ``moment`` from the versions declared by then (in effect order)."""
    known = [v for v in ordered if v.declared_at <= moment]
    in_force = [v for v in known if v.effective_from <= moment]
    seen: dict[str, tuple[datetime, datetime]] = {}
    for o in found:
        first, last = seen.get(o.recipient, (o.first_seen, o.last_seen))
        seen[o.recipient] = (min(first, o.first_seen), max(last, o.last_seen))
    rows: dict[str, ListedRecipient] = {}

    def listed(m: Manifest, key: str, since: datetime, status: str) -> ListedRecipient:
        r = m.recipient(key)
        assert r is not None
        first, last = seen.get(key, (None, None))
        return ListedRecipient(recipient=key, name=r.name, service=r.service, role=r.role, processor_of=r.processor_of,
                               country=r.country, transfer_mechanism=r.transfer_mechanism,
                               purposes=_received(m, key, "purposes"), categories=_received(m, key, "data_categories"),
                               in_force_since=format_time(since), status=status,  # type: ignore[arg-type]
                               first_seen=format_time(first) if first else None, last_seen=format_time(last) if last else None)

    if in_force:
        current = in_force[-1].manifest
        for r in current.recipients:
            start = len(in_force) - 1
            while start > 0 and in_force[start - 1].manifest.recipient(r.key) is not None:
                start -= 1
            rows[r.key] = listed(current, r.key, in_force[start].effective_from, "in_force")
    for v in known:
        if v.effective_from > moment:
            for r in v.manifest.recipients:
                if r.key not in rows:
                    rows[r.key] = listed(v.manifest, r.key, v.effective_from, "announced")
    return [rows[k] for k in sorted(rows)]


@dataclass(frozen=True)
class LateFlow:
    """The events that went to a notice's recipient before the notice ran out."""

    notice: Notice
    events: int
    first_seen: datetime
    last_seen: datetime


def _position(ordered: list[Version], n: Notice) -> int:
    return next(i for i, v in enumerate(ordered) if v.number == n.version)


def _stopped(ordered: list[Version], i: int, listed: Any) -> datetime | None:
    """When the last version before position ``i`` (effect order) for which ``listed(version)``
    holds stopped being in force (None: no such version, no bound)."""
    last = max((j for j in range(i) if listed(ordered[j].manifest)), default=None)
    return None if last is None else ordered[last + 1].effective_from


def _listing_start(ordered: list[Version], n: Notice, i: int) -> datetime | None:
    """When the recipient's unbroken listing up to position ``i`` began (the first version: no
    bound); events before it belong to the notice that added it."""
    k = i - 1
    while k > 0 and ordered[k - 1].manifest.recipient(n.recipient) is not None:
        k -= 1
    return None if k <= 0 else ordered[k].effective_from


def _starts(conn: Connection, ordered: list[Version], n: Notice) -> list[tuple[datetime | None, Any]]:
    """The windows' starts with what they match: from when the previous publication stopped
    covering what ``n`` announces. An added recipient: when the last version that listed it
    stopped being in force. A new country: when the last version that listed the recipient in
    that country stopped being in force. A newly received category (each category the recipient's events
    carry): when the last version under which it received a category covering it stopped being
    in force. A change never
    reaches back before the recipient's unbroken listing began (those events belong to the
    notice that added it). Each start comes with a predicate on an observation."""
    i = _position(ordered, n)
    key = n.recipient
    if n.change == "added":
        return [(_stopped(ordered, i, lambda m: m.recipient(key) is not None), lambda o: True)]
    floor = _listing_start(ordered, n, i)
    out: list[tuple[datetime | None, Any]] = []
    if "country" in n.fields:
        new_country = n.fields["country"][1]
        begin = _later(floor, _stopped(ordered, i, lambda m: (recipient_state(m, key) or {}).get("country") == new_country))
        out.append((begin, lambda o, c=new_country: bool(o.country) and o.country == c))
    if "categories" in n.fields:
        old, new = n.fields["categories"]
        # per category an event carries that the notice newly covers: from when the last version
        # under which the recipient received a category covering it stopped being in force
        carried = {k for o in observations(conn, floor, n.clear_at, recipient=key) for k in o.categories}
        for k in sorted(carried):
            if not any(covers(c, k) for c in new) or any(covers(c, k) for c in old):
                continue
            def received(m: Manifest, k: str = k) -> bool:
                return any(covers(x, k) for x in (recipient_state(m, key) or {}).get("categories") or [])
            out.append((_later(floor, _stopped(ordered, i, received)), lambda o, k=k: k in o.categories))
    return out


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def late_flows(conn: Connection, since: datetime | None = None, until: datetime | None = None,
               as_of: datetime | None = None) -> list[LateFlow]:
    """Per change notice (of the versions declared by ``as_of``), the events in [since, until)
    and before ``as_of`` that went to its recipient before it ran out (contract §8)."""
    ordered = effect_order(conn)
    if as_of is not None:
        ordered = [v for v in ordered if v.declared_at <= as_of]
    end = _earlier(until, as_of)
    out = []
    for n in notices_of(ordered):
        if n.change == "removed" or (n.change == "changed" and not set(n.fields) & set(_FLOW_FIELDS)):
            continue
        high = _earlier(n.clear_at, end)
        parts = _starts(conn, ordered, n)
        if "country" in n.fields and n.change == "changed":
            # an event naming no destination goes where the recipient is declared: the new country
            # only once this version is in force
            country_start = next(s for s, _ in parts)
            parts.append((_later(country_start, n.effective_from), lambda o: not o.country))
        # cut [earliest start, high) at every start so each event is looked at once, in the
        # segment holding its time, against the predicates whose window has begun by then
        cuts = sorted({s for s, _ in parts if s is not None})
        bounds: list[datetime | None] = ([None] if any(s is None for s, _ in parts) else []) + list(cuts)
        matched = []
        for j, begin in enumerate(bounds):
            stop = bounds[j + 1] if j + 1 < len(bounds) else high
            low, top = _later(begin, since), _earlier(stop, high)
            if low is not None and top is not None and low >= top:
                continue
            active = [match for s, match in parts if s is None or (begin is not None and s <= begin)]
            matched += [o for o in observations(conn, low, top, recipient=n.recipient) if any(m(o) for m in active)]
        if matched:
            out.append(LateFlow(n, sum(o.events for o in matched), min(o.first_seen for o in matched),
                                max(o.last_seen for o in matched)))
    return out
