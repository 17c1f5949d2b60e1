"""The API key the engine's pods read is part of what they run: rotating it is a checked cutover,
and a Secret turnout cannot read is reported, never guessed at."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from kubernetes.client.exceptions import ApiException

from tests.unit.fakes.cluster import FakeCluster
from tests.unit.fakes.operator import NAMESPACE, InProcessOperator
from tests.unit.rollout.world import spec
from turnout.api.status import Color

KEYED = spec(vllm={"apiKeySecretRef": {"name": "vllm-key", "key": "token"}})


def put_key(cluster: FakeCluster, value: str) -> None:
    cluster.put_secret(NAMESPACE, "vllm-key", {"token": base64.b64encode(value.encode()).decode()})


@pytest.fixture
def operator() -> Iterator[InProcessOperator]:
    with InProcessOperator() as running:
        put_key(running.cluster, "key-one")
        yield running


def test_a_rotated_key_starts_a_cutover_without_a_spec_change(operator: InProcessOperator) -> None:
    operator.start_healthy(KEYED)
    before = operator.status().active_revision
    operator.advance(60)
    operator.reconcile()
    assert operator.last_writes == []  # the same key: nothing to do
    put_key(operator.cluster, "key-two")
    operator.advance(60)
    operator.reconcile()
    status = operator.status()
    assert status.preview_revision not in (None, before)
    assert ("apply", "Deployment", "chat-green") in [(w.verb, w.kind, w.name) for w in operator.last_writes]
    assert operator.service_color() == Color.BLUE.value  # only after green is proven


def test_a_transient_error_reading_the_key_changes_no_revision(operator: InProcessOperator) -> None:
    operator.start_healthy(KEYED)

    def overloaded(namespace: str, name: str, key: str) -> str | None:
        raise ApiException(status=429, reason="Too Many Requests")

    operator.cluster.read_secret_key = overloaded  # type: ignore[method-assign]
    operator.advance(60)
    with pytest.raises(ApiException):
        operator.reconcile()  # retried by the handler with backoff
    assert operator.status().phase == "Healthy"
    assert operator.status().preview_revision is None
