"""Talking to Kafka and to operators: topics and producing (kafka), the services' SDK (emitter), the
embedded test broker (devbroker), the group's lag as stored against the broker's ends (lag,
status), Prometheus metrics, and JSON log lines (jsonlog).

May import :mod:`registry.intake`, :mod:`registry.ledger` and :mod:`registry.model`; the worker
that runs the stream is :mod:`consumers`, one layer up."""
