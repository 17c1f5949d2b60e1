"""Status writes carry the resourceVersion they were planned from: a backend changed meanwhile is
read again and planned afresh, never given a status planned from its old spec."""

from __future__ import annotations

from collections.abc import Sequence

from tests.unit.fakes.operator import NAME, NAMESPACE, InProcessOperator
from tests.unit.rollout.world import backend, spec
from turnout.api.backend import Backend
from turnout.api.status import Color
from turnout.kube.cluster import ClusterApi, KubeObject
from turnout.reconcile import CONFLICT_RETRY_SECONDS
from turnout.rollout.observed import CheckOutcome

NEW_MODEL = {"name": "meta-llama/Llama-3.2-3B-Instruct", "servedName": "chat"}
OTHER_MODEL = {"name": "meta-llama/Llama-3.2-1B-Instruct", "servedName": "chat"}


def test_a_spec_edited_while_a_reconcile_plans_is_planned_again_from_the_new_spec(
    operator: InProcessOperator,
) -> None:
    operator.start_healthy(spec())
    operator.start_verifying(spec(model=NEW_MODEL))
    before = operator.status()

    async def edit_during_the_round(
        cluster: ClusterApi, desired: Backend, pods: Sequence[KubeObject], color: Color
    ) -> CheckOutcome:
        operator.cluster.edit_backend_spec(NAMESPACE, NAME, spec(model=OTHER_MODEL))
        return CheckOutcome(passed=True)

    operator.checker = edit_during_the_round
    operator.advance(5)
    assert operator.reconcile() == CONFLICT_RETRY_SECONDS
    assert operator.status() == before  # nothing recorded from the plan made for the old spec
    operator.checker = operator.checks
    operator.reconcile()
    status = operator.status()
    assert status.preview_revision == backend(model=OTHER_MODEL).revision
    assert status.observed_generation == 3


def test_a_change_that_does_not_matter_to_the_plan_does_not_replan_it(operator: InProcessOperator) -> None:
    operator.create(spec())

    async def add_a_finalizer(
        cluster: ClusterApi, desired: Backend, pods: Sequence[KubeObject], color: Color
    ) -> CheckOutcome:
        body = operator.cluster.objects["InferenceBackend", NAMESPACE, NAME]
        body["metadata"]["finalizers"] = ["turnout.dev/daemon"]  # as Kopf does, racing the first reconcile
        body["metadata"]["resourceVersion"] = "999"
        return CheckOutcome(passed=True)

    operator.reconcile()
    operator.pods_ready(Color.BLUE)
    operator.reconcile()
    operator.checker = add_a_finalizer
    operator.advance(5)
    assert operator.reconcile() != CONFLICT_RETRY_SECONDS
    assert operator.status().check_passes == 1  # the round was recorded, on the new resourceVersion
