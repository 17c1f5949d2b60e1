"""What `kubectl get ib` shows in its ENGINE and MODEL columns: what the Service's revision serves."""

from __future__ import annotations

from tests.unit.fakes.operator import InProcessOperator
from tests.unit.rollout.world import spec
from turnout.api.crd import PRINTER_COLUMNS
from turnout.api.status import Color
from turnout.rollout.observed import CheckOutcome

OLLAMA = {"engine": "ollama", "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": "chat"}}


def test_the_columns_read_what_is_served() -> None:
    columns = {column["name"]: column["jsonPath"] for column in PRINTER_COLUMNS}
    assert (columns["Engine"], columns["Model"]) == (".status.activeEngine", ".status.activeModel")
    assert columns["Reason"] == ".status.lastFailureReason"


def test_an_engine_override_of_the_model_is_what_shows(operator: InProcessOperator) -> None:
    operator.start_healthy(spec(**OLLAMA, ollama={"model": "llama3.1:8b"}, resources={"gpus": 0}))
    status = operator.status()
    assert (status.active_engine, status.active_model) == ("ollama", "llama3.1:8b")


def test_after_a_rollback_the_old_model_shows_not_the_specs(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.start_verifying(spec(model={"name": "meta-llama/Llama-3.2-3B-Instruct", "servedName": "chat"}))
    operator.checks.answer = CheckOutcome(passed=False, message="/v1/models lacks chat")
    while operator.status().phase != "Degraded":
        operator.advance(5)
        operator.reconcile()
    status = operator.status()
    assert (status.active_color, status.active_model) == (Color.BLUE, "meta-llama/Llama-3.1-8B-Instruct")
    assert [found.revision for found in status.served_models] == [status.active_revision]
