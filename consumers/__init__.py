"""The worker (``registry consume``): the loop that polls Kafka, ingests each batch and stores the
offsets in the same transaction (worker), the applied-offsets bookkeeping and stop conditions
(offsets), and forwarding dead letters to their topic before the offsets that pass them commit
(forwarder).

May import :mod:`registry.stream`, :mod:`registry.intake`, :mod:`registry.ledger` and
:mod:`registry.model`; nothing of :mod:`registry.answers` or above."""
