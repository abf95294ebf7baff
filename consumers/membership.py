"""The worker's place in its consumer group: the rebalance listener that forgets cached offsets
and logs joins, and the wait for a join in flight before the clients close."""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.structs import MemberState

from consumers.offsets import AppliedOffsets

__all__ = ["Membership", "stable", "settle"]

log = logging.getLogger("registry.consumer")


class Membership(ConsumerRebalanceListener):
    """On any rebalance, forget the cached store offsets: another member may have moved them; and
    log how long each join took (``joined``, ``join_s``) and, every 10 s, a join still waiting.
    (Callbacks run on kafka-python's network thread, so they only touch memory and the log.)"""

    def __init__(self, offsets: AppliedOffsets) -> None:
        self.offsets = offsets
        self._since: float | None = None
        self._told = 0.0

    def began(self) -> None:
        self._since = self._told = time.monotonic()

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.offsets.forget()
        self.began()

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.offsets.forget()
        waited = round(time.monotonic() - self._since, 1) if self._since is not None else None
        self._since = None
        log.info("joined", extra={"fields": {"partitions": len(assigned), "join_s": waited}})

    def note_wait(self, consumer: KafkaConsumer) -> None:
        if self._since is not None and time.monotonic() - self._told >= 10 and not stable(consumer):
            self._told = time.monotonic()
            log.info("joining", extra={"fields": {"waited_s": round(self._told - self._since, 1)}})


def settle(consumer: KafkaConsumer, until: float) -> None:
    """Before closing: let a join in flight finish (until ``until``), so that the member leaves the
    group instead of vanishing mid-join (the test broker then kept the group waiting for it: the
    next member received nothing for minutes). Records polled meanwhile are not applied (nor
    committed): the next holder of their partitions reads them."""
    if _mid_join(consumer):
        consumer.pause(*consumer.assignment())
    while _mid_join(consumer) and time.monotonic() < until:
        consumer.poll(timeout_ms=200)
        consumer.pause(*consumer.assignment())


def _coordinator_state(consumer: KafkaConsumer) -> str | None:
    return getattr(getattr(consumer, "_coordinator", None), "state", None)


def stable(consumer: KafkaConsumer) -> bool:
    """The member holds its assignment (kafka-python's coordinator state; unknown counts as yes)."""
    state = _coordinator_state(consumer)
    return state is None or state == MemberState.STABLE


def _mid_join(consumer: KafkaConsumer) -> bool:
    return _coordinator_state(consumer) == MemberState.REBALANCING
