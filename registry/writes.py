"""Bulk writes for the ingest path: plain parameterised SQL and ``executemany`` on the DB-API
cursor. The ORM's per-row parameter processing cost more than the database itself here."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any, Sequence

from sqlalchemy.engine import Connection

__all__ = ["Bulk", "bulk_for"]


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
                   replace: tuple[str, ...] = (), widen: bool = False, ignore: bool = False) -> str:
        """INSERT; with ``keys``, on conflict add counters, replace columns, widen first/last seen
        (or do nothing when ``ignore``)."""
        quoted = ", ".join(f'"{c}"' for c in columns)
        sql = f'INSERT INTO {table} ({quoted}) VALUES ({", ".join([self.mark] * len(columns))})'
        if not keys:
            return sql
        sql += f' ON CONFLICT ({", ".join(keys)}) DO '
        if ignore:
            return sql + "NOTHING"
        sets = [f"{c} = {table}.{c} + excluded.{c}" for c in add] + [f"{c} = excluded.{c}" for c in replace]
        if widen:
            sets += [
                f"first_seen = CASE WHEN excluded.first_seen < {table}.first_seen THEN excluded.first_seen ELSE {table}.first_seen END",
                f"last_seen = CASE WHEN excluded.last_seen > {table}.last_seen THEN excluded.last_seen ELSE {table}.last_seen END",
            ]
        return sql + "UPDATE SET " + ", ".join(sets)

    def run(self, conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            conn.exec_driver_sql(sql, list(rows))


_SQLITE = Bulk("sqlite")
_POSTGRES = Bulk("postgresql")


def bulk_for(conn: Connection) -> Bulk:
    return _SQLITE if conn.dialect.name == "sqlite" else _POSTGRES
