"""Bulk writes for the ingest path: plain parameterised SQL and ``executemany`` on the DB-API
cursor (the ORM's per-row parameter processing cost more than the database itself here), and on
PostgreSQL a COPY into a temporary table followed by one set-based ``INSERT … SELECT … ON
CONFLICT`` with the same semantics.

Every multi-row write goes in key order (the conflict keys, else the columns in order), so that
concurrent writers take row and index locks in the same order and do not deadlock."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["Bulk", "bulk_for", "InsertSQL", "COPY_MIN_ROWS"]

# Row sets at least this large go through COPY on PostgreSQL; smaller ones through executemany.
# Measured here (50k-event file ingest, batches of 5000): COPY made PostgreSQL ingest ~1.6x as fast;
# below ~50 rows its extra statements (temp table, truncate) cost more than they save.
COPY_MIN_ROWS = 50


@dataclass(frozen=True)
class InsertSpec:
    table: str
    columns: tuple[str, ...]
    keys: tuple[str, ...]
    sets: tuple[str, ...]  # the DO UPDATE SET clauses ("" when none)
    ignore: bool


class InsertSQL(str):
    """The SQL text of ``Bulk.insert_sql``, carrying what it means so that ``Bulk.run`` can load
    the same rows another way (COPY) with the same semantics."""

    spec: InsertSpec


class Bulk:
    """SQL for one dialect. SQLite stores times as SQLAlchemy does ('YYYY-MM-DD HH:MM:SS.ffffff',
    UTC), so rows written here read back through the models unchanged."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.mark = "?" if self.sqlite else "%s"

    def time(self, moment: datetime) -> Any:
        if not self.sqlite:
            return moment
        # = strftime("%Y-%m-%d %H:%M:%S.%f") of the UTC time, at a third of its cost
        return f"{moment.isoformat(' ')[:19]}.{moment.microsecond:06d}"

    def hour(self, moment: datetime, stamp: Any) -> Any:
        """The start of ``moment``'s hour, in the store's form (``stamp`` is ``time(moment)``)."""
        return stamp[:14] + "00:00.000000" if self.sqlite else moment.replace(minute=0, second=0, microsecond=0)

    def day(self, day: date) -> Any:
        return day.isoformat() if self.sqlite else day

    @lru_cache(maxsize=32)
    def insert_sql(self, table: str, columns: tuple[str, ...], keys: tuple[str, ...] = (), add: tuple[str, ...] = (),
                   replace: tuple[str, ...] = (), widen: bool = False, ignore: bool = False,
                   highest: tuple[str, ...] = (), follow: tuple[str, ...] = ()) -> str:
        """INSERT; with ``keys``, on conflict add counters, replace columns, keep the highest
        value of columns (offsets never go back), widen first/last seen (or do nothing when
        ``ignore``); ``follow`` columns take the new value only when the first ``highest`` one grows."""
        quoted = ", ".join(f'"{c}"' for c in columns)
        sql = f'INSERT INTO {table} ({quoted}) VALUES ({", ".join([self.mark] * len(columns))})'
        sets = [f"{c} = {table}.{c} + excluded.{c}" for c in add] + [f"{c} = excluded.{c}" for c in replace]
        sets += [f"{c} = CASE WHEN excluded.{h} > {table}.{h} THEN excluded.{c} ELSE {table}.{c} END"
                 for h in highest[:1] for c in follow]  # before highest's own: SET reads the old row either way
        sets += [f"{c} = CASE WHEN excluded.{c} > {table}.{c} THEN excluded.{c} ELSE {table}.{c} END" for c in highest]
        if widen:
            sets += [
                f"first_seen = CASE WHEN excluded.first_seen < {table}.first_seen THEN excluded.first_seen ELSE {table}.first_seen END",
                f"last_seen = CASE WHEN excluded.last_seen > {table}.last_seen THEN excluded.last_seen ELSE {table}.last_seen END",
            ]
        conflict = ""
        if keys:
            conflict = f' ON CONFLICT ({", ".join(keys)}) DO ' + ("NOTHING" if ignore else "UPDATE SET " + ", ".join(sets))
        text = InsertSQL(sql + conflict)
        text.spec = InsertSpec(table, columns, keys, tuple(sets), ignore)
        return text

    def run(self, conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Write ``rows`` in key order: COPY + INSERT … SELECT on PostgreSQL for large row sets
        of an ``insert_sql`` statement, else executemany."""
        if not rows:
            return
        spec = getattr(sql, "spec", None)
        if spec is None:
            conn.exec_driver_sql(sql, list(rows))
            return
        positions = [spec.columns.index(k) for k in spec.keys] or list(range(len(spec.columns)))
        if not self.sqlite and len(rows) >= COPY_MIN_ROWS and (not spec.keys or spec.ignore or _unique(rows, positions)):
            _copy_insert(conn, spec, rows)
            return
        conn.exec_driver_sql(sql, _in_key_order(rows, positions) if len(rows) > 1 else list(rows))


def _in_key_order(rows: Sequence[tuple[Any, ...]], positions: list[int]) -> list[tuple[Any, ...]]:
    """``rows`` sorted by the columns at ``positions``. The plain key first (py-spy: the NULL-safe
    key function was ~10 % of a SQLite batch's write time); keys holding NULLs, which cannot be
    compared, sort NULLs first."""
    try:
        return sorted(rows, key=itemgetter(*positions))
    except TypeError:
        return sorted(rows, key=lambda row: tuple((row[i] is not None, row[i]) for i in positions))


def _unique(rows: Sequence[tuple[Any, ...]], positions: list[int]) -> bool:
    """A set-based ON CONFLICT DO UPDATE may not touch one row twice; executemany applies
    repeated keys one after the other, so those row sets keep that path. (itemgetter: the
    sort key's NULL wrapping cost 0.5 s per 50k rows here.)"""
    return len(set(map(itemgetter(*positions), rows))) == len(rows)


_COLUMN_TYPES: dict[str, list[str]] = {}  # per temp table name (a hash of the target's name and columns)


def _copy_insert(conn: Connection, spec: InsertSpec, rows: Sequence[tuple[Any, ...]]) -> None:
    """COPY ``rows`` into a session temp table shaped like the target's columns, then one
    INSERT … SELECT … ORDER BY key with the same ON CONFLICT clause (``excluded`` means the
    same in both forms)."""
    quoted = ", ".join(f'"{c}"' for c in spec.columns)
    temp = f"_bulk_{spec.table}_{zlib.crc32(quoted.encode()):08x}"
    order = ", ".join(f'"{c}"' for c in (spec.keys or spec.columns))
    # created once per session (again after a rolled-back transaction), emptied at each commit
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {temp} ON COMMIT DELETE ROWS AS "
                         f"SELECT {quoted} FROM {spec.table} WITH NO DATA")
    conn.exec_driver_sql(f"TRUNCATE {temp}")  # an earlier load into it in this same transaction
    types = _COLUMN_TYPES.get(temp)
    if types is None:  # the temp table's column types, for a binary COPY (measured faster than text)
        types = _COLUMN_TYPES[temp] = [t for (t,) in conn.exec_driver_sql(
            f"SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '{temp}'::regclass "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]
    statement = f"COPY {temp} ({quoted}) FROM STDIN (FORMAT BINARY)"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
    except Exception as exc:  # the driver's own error: raise it as SQLAlchemy would (IntegrityError, ...)
        import psycopg

        if isinstance(exc, psycopg.Error):
            raise sa.exc.DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
        raise
    finally:
        cursor.close()
    sql = f"INSERT INTO {spec.table} ({quoted}) SELECT {quoted} FROM {temp} ORDER BY {order}"
    if spec.keys:
        sql += f' ON CONFLICT ({", ".join(spec.keys)}) DO ' + ("NOTHING" if spec.ignore else "UPDATE SET " + ", ".join(spec.sets))
    conn.exec_driver_sql(sql)


_SQLITE = Bulk("sqlite")
_POSTGRES = Bulk("postgresql")


def bulk_for(conn: Connection) -> Bulk:
    return _SQLITE if conn.dialect.name == "sqlite" else _POSTGRES
