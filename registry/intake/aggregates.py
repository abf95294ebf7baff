"""The aggregates of one batch, computed without the database: its flows per hour and day and its
subject index, as rows in key order for ``write_plan``."""

from __future__ import annotations

from typing import Any

from registry.model.events import Event
from registry.model.tables import monday

from .writes import Bulk

Rows = list[tuple[Any, ...]]

__all__ = ["aggregate"]


def aggregate(bulk: Bulk, transfers: list[tuple[Event, Any, int]]) -> tuple[Rows, Rows, Rows]:
    """The batch's flows per hour and day and its subject index, as rows in key order (so that
    concurrent writers take row locks in the same order). A flow row is keyed by the event's whole
    signature, its category set included, so each event adds to exactly one row (contract §1:
    a row listing several categories counts the event once). ``stamp`` is the event time in the
    store's form, which orders like the time itself; ``shard`` the Kafka partition, last in every
    aggregate key (one owner per partition: no two workers update one row). Day rows are summed
    from the hour rows. Returns (day rows, hour rows, subject rows)."""
    hours: dict[tuple[Any, ...], list[Any]] = {}
    subjects: dict[tuple[str, ...], list[Any]] = {}
    for e, stamp, shard in transfers:
        d = e.data
        categories = ",".join(sorted(set(d["data_categories"])))
        recipient, purpose = d["recipient"], d["purpose"]
        _tally(hours, (bulk.hour(e.time, stamp), e.source, recipient, categories, purpose, d["legal_basis"],
                       d.get("activity", ""), d.get("destination_country", ""), d.get("transfer_mechanism", ""), shard),
               d.get("record_count", 1), stamp)
        refs = d.get("subject_refs")
        if refs:
            week = bulk.day(monday(e.time.date()))
            for ref in set(refs):
                _tally(subjects, (week, ref, recipient, e.source, purpose, categories, shard), 0, stamp)
    days: dict[tuple[Any, ...], list[Any]] = {}
    for key, counts in hours.items():
        _merge(days, (key[0][:10] if bulk.sqlite else key[0].date(), *key[1:]), counts)
    return ([(*k, *v) for k, v in sorted(days.items())], [(*k, *v) for k, v in sorted(hours.items())],
            [(*k, v[0], v[2], v[3]) for k, v in sorted(subjects.items())])


def _tally(table: dict[Any, list[Any]], key: Any, records: int, moment: Any) -> None:
    row = table.get(key)
    if row is None:
        table[key] = [1, records, moment, moment]
    else:
        row[0] += 1
        row[1] += records
        if moment < row[2]:
            row[2] = moment
        if moment > row[3]:
            row[3] = moment


def _merge(table: dict[Any, list[Any]], key: Any, counts: list[Any]) -> None:
    row = table.get(key)
    if row is None:
        table[key] = list(counts)
    else:
        row[0] += counts[0]
        row[1] += counts[1]
        row[2], row[3] = min(row[2], counts[2]), max(row[3], counts[3])
