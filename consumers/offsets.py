"""The worker's bookkeeping, kept apart from its loop so that it can be tested without a broker:

- ``AppliedOffsets``: per partition, the next offset the store has applied (the floor below which
  a redelivered record is skipped), read from the store once per assignment, advanced by each
  batch, forgotten on a rebalance; it never goes back.
- the group's lag and the rewinding of offsets past a log's end are in :mod:`registry.stream.lag`
  (``status`` and the dashboard read them too).
- ``StopConditions``: when ``consume`` may stop (contract §3): ``--max-events`` reached, or no
  record for ``--stop-when-idle`` seconds **and** the group has no lag; an unknown lag (broker or
  database unreachable) is never idle."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from registry.model.tables import ConsumerOffset
from registry.stream.lag import Partition

__all__ = ["AppliedOffsets", "StopConditions"]



class AppliedOffsets:
    """Next applied offset per partition of one group, as the store holds it."""

    def __init__(self, read: Callable[[Partition], int]) -> None:
        self._read = read  # the store's next offset of one partition (0 when none)
        self._next: dict[Partition, int] = {}

    @classmethod
    def of_store(cls, engine: Engine, group: str) -> "AppliedOffsets":
        t = ConsumerOffset

        def read(p: Partition) -> int:
            with engine.connect() as conn:
                value = conn.execute(sa.select(t.c.next_offset).where(
                    t.c.group_id == group, t.c.topic == p[0], t.c.partition == p[1])).scalar()
            return int(value or 0)

        return cls(read)

    def floor(self, p: Partition) -> int:
        """Records of ``p`` below this are already applied (read once per assignment)."""
        if p not in self._next:
            self._next[p] = self._read(p)
        return self._next[p]

    def fresh(self, p: Partition, records: Iterable[Any]) -> list[Any]:
        """The records (with ``.offset``) the store does not hold yet."""
        floor = self.floor(p)
        return [r for r in records if r.offset >= floor]

    @staticmethod
    def nexts(records: Iterable[Any]) -> dict[Partition, int]:
        """The next offsets a batch of records (``.topic``, ``.partition``, ``.offset``) reaches."""
        out: dict[Partition, int] = {}
        for r in records:
            p = (r.topic, r.partition)
            if r.offset + 1 > out.get(p, 0):
                out[p] = r.offset + 1
        return out

    def advance(self, nexts: Mapping[Partition, int]) -> None:
        """After the batch committed: the floors move forward, never back (a batch read before a
        rebalance may end below what another member has stored since)."""
        for p, n in nexts.items():
            if n > self._next.get(p, -1):
                self._next[p] = n

    def forget(self, p: Partition | None = None) -> None:
        """On a rebalance (every partition: another member may have moved the store's offsets),
        or when ``p`` was rewound."""
        if p is None:
            self._next.clear()
        else:
            self._next.pop(p, None)

    def known(self) -> dict[Partition, int]:
        return dict(self._next)


@dataclass
class StopConditions:
    idle_seconds: float | None = None
    max_events: int | None = None
    clock: Callable[[], float] = time.monotonic
    seen: int = 0
    _last_record: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._last_record = self.clock()

    def records(self, count: int) -> None:
        """``count`` records arrived (and were applied)."""
        if count:
            self.seen += count
            self._last_record = self.clock()

    def room(self, batch_size: int) -> int:
        """How many records the next batch may take."""
        return batch_size if self.max_events is None else max(0, min(batch_size, self.max_events - self.seen))

    def reached_max(self) -> bool:
        return self.max_events is not None and self.seen >= self.max_events

    def idle(self, longer: float = 0.0) -> bool:
        """No record for the idle time (plus ``longer``; the lag still decides)."""
        return self.idle_seconds is not None and self.clock() - self._last_record >= self.idle_seconds + longer

    def should_stop(self, lag: int | None) -> bool:
        """Idle, and the group's total lag known to be 0."""
        return self.reached_max() or (self.idle() and lag == 0)
