"""The store's tables (SQLAlchemy Core: the worker pays for no ORM at start-up).

Questions never scan ``event``: ``flow_day`` aggregates per day and flow key, ``subject_flow``
indexes subject refs. ``event`` keeps each accepted event once (unique ``(source, id)``) as
evidence; ``dead_letter`` keeps refused bytes, redacted, with the reason. The schema itself is
made by the Alembic migrations; a test compares these tables with it."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

__all__ = [
    "BIG", "UTCDateTime", "metadata", "monday", "ManifestVersion", "RecipientRow", "ActivityRow", "EventRow", "FlowDay", "FlowHour",
    "SubjectFlow", "DeadLetter", "RetentionMark", "LedgerEntry", "ConsumerOffset", "ApiToken", "WebSession",
]

# Counts, sums, offsets and row ids are 64-bit everywhere: a sum of record_count (up to 10^12 an
# event) passes 2^31 at once, and Kafka offsets are 64-bit. SQLite's INTEGER already is; its
# autoincrement keys stay INTEGER so that they remain the rowid.
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware time, stored in UTC (``timestamptz`` on PostgreSQL; SQLite keeps UTC without an
    offset) and read back aware in UTC. A naive time is refused: which zone it meant is unknown."""

    impl = sa.DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def __repr__(self) -> str:  # what Alembic's autogenerate writes into a migration
        return "UTCDateTime()"

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        return sa.Interval() if isinstance(value, timedelta) else self  # time arithmetic stays arithmetic

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("a time without a UTC offset cannot be stored")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.utcoffset() is None else value.astimezone(timezone.utc)


def _key(name: str, type_: Any = sa.String, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, primary_key=True, nullable=False, **kw)


def _text(name: str, nullable: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.String, nullable=nullable, **kw)


def _time(name: str, nullable: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(), nullable=nullable, **kw)


def _big(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, BIG, nullable=nullable)


def _json(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.JSON, nullable=False)


ManifestVersion = sa.Table(
    "manifest_version", metadata,
    _key("version", sa.Integer),
    _time("declared_at"),
    # when the declaration takes effect: earlier than declared_at for a change made on paper
    # before it was declared, later for one announced ahead (contract §4)
    _time("effective_from"),
    _text("controller"),
    _text("body"),  # the validated manifest as JSON
)

RecipientRow = sa.Table(
    "recipient", metadata,
    sa.Column("version", sa.Integer, sa.ForeignKey("manifest_version.version"), primary_key=True, nullable=False),
    _key("key"),
    _text("name"), _text("service"), _text("role"), _text("country"),
    _text("transfer_mechanism", True), _text("processor_of", True), _text("contract", True),
)

ActivityRow = sa.Table(
    "activity", metadata,
    sa.Column("version", sa.Integer, sa.ForeignKey("manifest_version.version"), primary_key=True, nullable=False),
    _key("key"),
    _text("name"), _text("legal_basis"),
    _json("purposes"), _json("data_subjects"), _json("data_categories"), _json("recipients"), _json("sources"),
    _text("retention", True), _text("security_measures", True),
)

# On PostgreSQL partitioned by month of ``time`` (``registry.model.partitions``), so that
# retention drops whole months. The key is ``(event_id, source, time)`` because a partitioned
# table's unique keys must hold its partition column: the idempotency key ``(source, id)`` is
# checked by the writer across all partitions (a redelivery has the original's time, so it also
# meets the original in this key). event_id first: the dedupe lookup is by id. (recipient, time)
# serves the exact edges of windows inside a day; ``time`` (BRIN on PostgreSQL: a few pages for a
# month) the retention deletes and the newest event time.
EventRow = sa.Table(
    "event", metadata,
    _key("event_id"), _key("source"), _key("time", UTCDateTime()),
    _text("type"), _text("recipient", True), _text("payload_hash"), _text("body"),
    sa.Index("ix_event_recipient_time", "recipient", "time"),
    # BRIN on PostgreSQL (the migrations make it so); not said here, where it would load the
    # PostgreSQL dialect into every SQLite process
    sa.Index("ix_event_time", "time"),
)


def _flows(name: str, bucket: sa.Column[Any]) -> sa.Table:
    """The flow aggregates: one row per bucket and event signature -- source, recipient, the set
    of categories (sorted, comma-joined), purpose, legal basis, activity, country, mechanism
    ('' when the event named none: the recipient's declared values then apply) and shard."""
    return sa.Table(
        name, metadata, bucket,
        _key("source"), _key("recipient"), _key("categories"), _key("purpose"), _key("legal_basis"),
        _key("activity", default=""), _key("country", default=""), _key("mechanism", default=""),
        _key("shard", sa.Integer, default=0),  # the Kafka partition (see the note above SubjectFlow)
        _big("events"), _big("records"), _time("first_seen"), _time("last_seen"),
        sqlite_with_rowid=False,  # the key is the row: half the pages on SQLite
    )


# The events of one UTC day per event signature. Each event adds to exactly one row, so a sum over
# rows counts an event once however many categories it carries (contract §1); a category's flow
# sums the rows whose set holds it.
FlowDay = _flows("flow_day", _key("day", sa.Date))
# The same flows per UTC hour: a window bound inside a day is then exact from whole hours plus the
# events of one hour, not of a whole day.
FlowHour = _flows("flow_hour", _key("hour", UTCDateTime()))

# ``shard`` in the aggregate keys: the Kafka partition the events came from (0 for files, HTTP
# and replays). A partition has one owner in a consumer group, so two workers never update the
# same aggregate row and never wait on each other's row locks, even when both see the same flow
# in the same hour (transfers are keyed by event, so every flow is on every partition).
# Questions sum over shards; a row still holds events of one signature.
#
# The subject index: one row per (week, subject, recipient, source, purpose, set of categories),
# so each event that names a subject adds to exactly one row. Week first: subject refs are
# random, so a batch's inserts land in one week's pages instead of all over the tree (ingest
# ~30 % faster, measured); a lookup costs one index seek per week.
SubjectFlow = sa.Table(
    "subject_flow", metadata,
    _key("week", sa.Date),  # the Monday of the events' week
    _key("subject_ref"), _key("recipient"), _key("source"), _key("purpose"), _key("categories"),
    _key("shard", sa.Integer, default=0),
    _big("events"), _time("first_seen"), _time("last_seen"),
    sqlite_with_rowid=False,
)

# What retention removed: everything of ``kind`` (events | subject_refs | dead_letters) before
# ``purged_before``. Queries use the events mark to refuse a sub-hour bound there.
RetentionMark = sa.Table(
    "retention_mark", metadata,
    _key("kind"), _time("purged_before"), _time("applied_at"),
)

DeadLetter = sa.Table(
    "dead_letter", metadata,
    sa.Column("id", BIG, primary_key=True, autoincrement=True),
    _text("raw_hash", unique=True),  # sha256 of the original bytes and headers: the same record is one row
    _text("reason", index=True),
    _text("detail"),
    _text("payload"),  # redacted: never raw identifiers
    _text("headers", True), _text("topic", True),
    sa.Column("partition", sa.Integer, nullable=True),
    _big("offset", nullable=True),
    _time("received_at"),
    _text("status", default="dead"),  # dead | replayed
    _time("replayed_at", True),
)

# Append-only; ``hash = sha256(prev_hash || body)``. No code path updates or deletes a row.
# ``signature``: Ed25519 over ``hash`` by the ledger key (base64); null for entries logged without
# a key (before signing existed, or on a first run without set-up).
LedgerEntry = sa.Table(
    "ledger_entry", metadata,
    sa.Column("seq", BIG, primary_key=True, autoincrement=True),
    _text("request_id", index=True),
    _time("snapshot_time"), _time("recorded_at"),
    _text("content_hash", index=True),  # sha256 of the snapshot data: a re-sent identical snapshot is no new version
    _text("body"), _text("prev_hash"), _text("hash"), _text("signature", True),
)

# Bearer tokens of the web service, stored as sha256 hashes; the token is shown once.
ApiToken = sa.Table(
    "api_token", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    _text("token_hash", unique=True), _text("role"), _text("name"), _time("created_at"),
    _time("last_used_at", True),  # to the minute: an API call does not write each time
    _time("revoked_at", True),  # a revoked token is kept (who held it, until when) but opens nothing
)

# A signed-in browser. Only the sha256 of the random session id is kept: a copy of this table does
# not let anyone resume a session. ``csrf_token`` is the per-session form token.
WebSession = sa.Table(
    "web_session", metadata,
    _key("id_hash"), _text("role"), _text("name"), _text("csrf_token"), _time("created_at"),
    _time("expires_at", index=True),
    sa.Column("token_id", sa.Integer, nullable=True, index=True),  # the token signed in with: revoking it ends the session
)

# The next offset per partition, written in the transaction that applied the batch.
ConsumerOffset = sa.Table(
    "consumer_offset", metadata,
    _key("group_id"), _key("topic"), _key("partition", sa.Integer),
    _big("next_offset"),
    # the broker's id of the topic these offsets belong to (null: not known yet, or a broker
    # without topic ids): a topic deleted and re-created under its name gets a new one
    _text("topic_id", True),
    # the last applied record's fingerprint (stream.lag.fingerprint): where no topic id can be
    # compared, the record now at next_offset - 1 tells whether the topic was re-created
    _text("last_record", True),
)


def monday(day: date) -> date:
    """The week bucket of the subject index."""
    return day - timedelta(days=day.weekday())
