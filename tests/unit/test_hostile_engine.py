"""An engine that answers too much, through the real reconcile and the real checks over HTTP: the
operator's memory stays small, the failure is recorded, and no status patch passes a few KiB."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from tests.unit.fakes.engine import cut_over_checked_for_real, vllm_listing
from tests.unit.fakes.operator import InProcessOperator
from tests.unit.rollout.world import spec

MiB = 1024 * 1024
NEW_MODEL = {"name": "meta-llama/Llama-3.2-3B-Instruct", "servedName": "chat"}


def status_patch_sizes(operator: InProcessOperator) -> list[int]:
    """Every status patch turnout sent, in bytes as the API client writes it (ASCII JSON)."""
    return [len(json.dumps({"status": w.body})) for w in operator.cluster.writes if w.verb == "patch-status"]


@pytest.mark.parametrize(
    ("model_id_bytes", "said"),
    [
        (400 * MiB, "/v1/models answered with more than 1024 KiB, more than a check reads"),
        (2_000_000, "/v1/models answered with more than 1024 KiB, more than a check reads"),
        (900_000, '/v1/models lacks "chat" (serves "' + "m" * 80 + '…")'),
    ],
    ids=["400MiB-answer", "2MB-model-id", "900KB-model-id"],
)
def test_an_engine_answering_too_much_is_rolled_back_in_small_memory_and_a_small_status(
    operator: InProcessOperator, model_id_bytes: int, said: str
) -> None:
    tracemalloc.start()
    try:
        cut_over_checked_for_real(operator, vllm_listing(model_id_bytes), spec(), spec(model=NEW_MODEL))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    status = operator.status()
    assert status.last_failure_reason == "CheckFailed"
    assert said in (status.last_failure_message or "")
    assert operator.service_color() == "blue"
    assert peak < 50 * MiB, f"peak {peak / MiB:.1f} MiB"
    largest = max(status_patch_sizes(operator))
    assert largest < 8 * 1024, f"a status patch of {largest} bytes"
