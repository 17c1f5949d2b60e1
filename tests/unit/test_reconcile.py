"""One reconcile after another, the real one (observe -> plan -> execute -> write status), on the fake cluster.

The stories of a backend's life as the operator lives them, with the checks and the clock in the test's hands.
"""

from __future__ import annotations

from tests.unit.fakes.operator import NAME, NAMESPACE, PASS, InProcessOperator
from tests.unit.rollout.world import backend, spec
from turnout.api.status import Color, InferenceBackendStatus, Phase
from turnout.rollout.actions import EventType
from turnout.rollout.observed import CheckOutcome
from turnout.rollout.plan import IDLE_RESYNC_SECONDS

BLUE, GREEN = Color.BLUE, Color.GREEN
NEW_MODEL = {"name": "meta-llama/Llama-3.2-3B-Instruct", "servedName": "chat"}
THIRD_MODEL = {"name": "meta-llama/Llama-3.2-1B-Instruct", "servedName": "chat"}
LACKS_CHAT = CheckOutcome(passed=False, message='pod chat-green-x (10.244.0.9): /v1/models lacks "chat"')


def condition(status: InferenceBackendStatus, type_: str) -> tuple[str, str, str]:
    found = next(c for c in status.conditions if c.type == type_)
    return found.status, found.reason, found.message


def verbs(operator: InProcessOperator) -> list[tuple[str, str, str]]:
    return [(w.verb, w.kind, w.name) for w in operator.last_writes]


def test_a_new_backend_becomes_healthy_once_its_first_pods_are_proven(operator: InProcessOperator) -> None:
    operator.create(spec())
    operator.reconcile()
    assert verbs(operator) == [
        ("apply", "Deployment", "chat-blue"),
        ("create", "ControllerRevision", f"chat-{backend().revision}"),
        ("patch-status", "InferenceBackend", "chat"),
    ]
    assert operator.status().phase == "Progressing"
    assert operator.service_color() is None
    operator.pods_ready(BLUE)
    operator.reconcile()
    assert operator.status().phase == "Verifying"
    for _ in range(3):
        operator.advance(5)
        operator.reconcile()
    status = operator.status()
    assert status.phase == "Healthy"
    assert (status.active_color, status.active_revision) == (BLUE, backend().revision)
    assert operator.service_color() == "blue"
    assert condition(status, "Ready")[:2] == ("True", "Serving")
    assert [round.color for round in operator.checks.rounds] == [BLUE] * 3
    assert [e.reason for e in operator.events] == ["Progressing", "Verifying", "Switched", "Healthy"]


def test_model_change_switches_the_service_once_after_green_is_proven(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.edit(spec(model=NEW_MODEL))
    operator.reconcile()
    green = operator.cluster.deployment(NAMESPACE, "chat-green")
    assert green is not None
    new_revision = backend(model=NEW_MODEL).revision
    assert green["spec"]["template"]["metadata"]["labels"]["turnout.dev/revision"] == new_revision
    assert operator.service_color() == "blue"
    operator.pods_ready(GREEN)
    operator.reconcile()
    assert operator.status().phase == "Verifying"
    for _ in range(2):
        operator.advance(5)
        operator.reconcile()
        assert operator.service_color() == "blue"
    operator.advance(5)
    operator.reconcile()
    assert ("apply", "Service", "chat") in verbs(operator)
    assert operator.service_color() == "green"
    assert operator.status().phase == "Baking"

    operator.advance(120)
    operator.reconcile()
    assert operator.status().phase == "Healthy"
    blue = operator.cluster.deployment(NAMESPACE, "chat-blue")
    assert blue is not None
    assert blue["spec"]["replicas"] == 1  # warm through the scale-down delay
    operator.advance(30)
    operator.reconcile()
    assert ("scale", "Deployment", "chat-blue") in verbs(operator)
    blue = operator.cluster.deployment(NAMESPACE, "chat-blue")
    assert blue is not None
    assert blue["spec"]["replicas"] == 0
    assert [s["turnout.dev/color"] for s in operator.cluster.service_selectors] == ["blue", "green"]
    assert {round.revision for round in operator.checks.rounds[3:]} == {new_revision}


def test_a_failing_check_rolls_back_with_a_warning_event(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.start_verifying(spec(model=NEW_MODEL))
    operator.checks.answer = LACKS_CHAT
    for _ in range(3):
        operator.advance(5)
        operator.reconcile()
    status = operator.status()
    assert status.phase == "Degraded"
    assert status.last_failed_revision == backend(model=NEW_MODEL).revision
    rolled_back, reason, message = condition(status, "RolledBack")
    assert (rolled_back, reason) == ("True", "CheckFailed")
    assert '/v1/models lacks "chat"' in message
    assert ("scale", "Deployment", "chat-green") in verbs(operator)
    assert [s["turnout.dev/color"] for s in operator.cluster.service_selectors] == ["blue"]
    warning = operator.last_events[-1]
    assert (warning.type, warning.reason) == (EventType.WARNING, "RolledBack")
    assert '/v1/models lacks "chat"' in warning.message


def test_a_crash_looping_green_is_rolled_back_without_waiting_for_the_timeout(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.edit(spec(model=NEW_MODEL))
    operator.reconcile()
    operator.pods_fail(GREEN, "CrashLoopBackOff", "back-off 10s restarting failed container")
    operator.advance(5)
    operator.reconcile()
    status = operator.status()
    assert status.last_failure_reason == "CrashLoopBackOff"
    assert "container vllm: CrashLoopBackOff: back-off 10s" in (status.last_failure_message or "")
    assert operator.service_color() == "blue"


def test_an_idle_backend_makes_no_writes(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    for _ in range(5):
        operator.advance(60)
        assert operator.reconcile() == IDLE_RESYNC_SECONDS
        assert operator.last_writes == []
        assert operator.last_events == []


def test_status_is_written_only_when_it_changes(operator: InProcessOperator) -> None:
    operator.create(spec())
    operator.reconcile()
    operator.reconcile()
    assert operator.last_writes == []  # Progressing, nothing new to say
    operator.pods_ready(BLUE)
    operator.reconcile()
    assert verbs(operator) == [("patch-status", "InferenceBackend", "chat")]


def test_an_invalid_spec_is_reported_and_nothing_is_applied(operator: InProcessOperator) -> None:
    operator.create(spec(vllm={"tensorParallelSize": 3}))
    operator.reconcile()
    assert verbs(operator) == [("patch-status", "InferenceBackend", "chat")]
    status = operator.status()
    assert status.phase == "InvalidSpec"
    invalid, reason, message = condition(status, "InvalidSpec")
    assert (invalid, reason) == ("True", "InvalidSpec")
    assert "tensorParallelSize" in message
    assert [(e.type, e.reason) for e in operator.events] == [(EventType.WARNING, "InvalidSpec")]
    operator.reconcile()
    assert operator.last_writes == []
    assert operator.last_events == []


def test_a_deleted_backend_is_left_alone(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.edit(spec(model=NEW_MODEL))
    operator.cluster.delete_backend(NAMESPACE, NAME)
    assert operator.reconcile() == IDLE_RESYNC_SECONDS
    assert operator.last_writes == []
    assert operator.last_events == []


def test_a_backend_that_is_gone_is_left_alone(operator: InProcessOperator) -> None:
    assert operator.reconcile() == IDLE_RESYNC_SECONDS
    assert operator.cluster.writes == []


def test_a_switch_whose_status_was_lost_is_not_made_twice(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.start_verifying(spec(model=NEW_MODEL))
    operator.checks.answer = PASS
    for _ in range(2):
        operator.advance(5)
        operator.reconcile()
    operator.cluster.lose_status_writes = 1
    operator.advance(5)
    operator.reconcile()
    assert operator.service_color() == "green"
    assert operator.status().phase == "Verifying"  # the switch happened, its record did not
    operator.reconcile()
    assert ("apply", "Service", "chat") not in verbs(operator)
    assert operator.status().phase == "Baking"
    assert len(operator.cluster.service_selectors) == 2


def test_every_phase_is_reached_through_the_real_reconcile(operator: InProcessOperator) -> None:
    manual = {"autoPromote": False}
    seen: list[str] = []

    def reconcile(times: int = 1) -> None:
        for _ in range(times):
            operator.advance(5)
            operator.reconcile()
            seen.append(operator.status().phase)

    operator.create(spec(vllm={"tensorParallelSize": 3}))
    reconcile()  # InvalidSpec: nothing valid to run
    operator.edit(spec(rollout=manual, replicas=0))
    reconcile()  # Pending: nothing can be proven at zero replicas
    operator.edit(spec(rollout=manual))
    reconcile()  # Progressing
    operator.pods_ready(BLUE)
    reconcile(4)  # Verifying, then Healthy: the first revision is promoted without a pause
    operator.edit(spec(rollout=manual, model=NEW_MODEL))
    reconcile()
    operator.pods_ready(GREEN)
    reconcile(5)  # Verifying, then Paused
    operator.cluster.annotate_backend(NAMESPACE, NAME, "turnout.dev/promote", backend(model=NEW_MODEL).revision)
    reconcile()  # Baking
    operator.checks.answer = LACKS_CHAT
    reconcile(3)  # Degraded: rolled back to blue
    assert operator.service_color() == "blue"
    operator.checks.answer = PASS
    operator.edit(spec(rollout={"strategy": "Canary", "canary": {"steps": [{"setWeight": 50}]}}, model=THIRD_MODEL))
    reconcile()
    operator.pods_ready(GREEN)
    reconcile(5)  # Verifying, then Canary: half the Ready pods behind the Service are green's
    operator.edit(spec(rollout={"benchmark": {}}, model={"name": "Qwen/Qwen2.5-7B-Instruct", "servedName": "chat"}))
    reconcile()
    operator.pods_ready(GREEN)
    reconcile(5)  # Verifying, then Benchmarking
    assert set(seen) == {phase.value for phase in Phase}, seen


LLAMA_8B_FACTS = {"parameters": 8_030_261_248, "layers": 32, "kvHeads": 8, "headDim": 128}


def test_a_revision_too_large_for_the_labelled_gpu_nodes_gets_no_deployment(operator: InProcessOperator) -> None:
    operator.cluster.put_node("l4-0", {"nvidia.com/gpu.memory": "23034", "pool": "l4"})
    operator.cluster.put_node("h100-0", {"nvidia.com/gpu.memory": "81559", "pool": "h100"})
    operator.cluster.put_node("cpu-0", {}, gpus=0)
    facts = {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": "chat", "architecture": LLAMA_8B_FACTS}
    operator.create(spec(model=facts, vllm={"maxModelLen": 32768}, template={"nodeSelector": {}}))
    operator.reconcile()
    # The H100 node can take it: the largest GPU the pods may land on is the one judged against.
    assert verbs(operator)[0] == ("apply", "Deployment", "chat-blue")
    operator.edit(spec(model=facts, vllm={"maxModelLen": 65536}, template={"nodeSelector": {"pool": "l4"}}))
    operator.reconcile()
    # Only the L4 node is left to land on, and 64k tokens fit nowhere there: the first revision's
    # preview is scaled down, nothing new is applied.
    assert verbs(operator) == [("scale", "Deployment", "chat-blue"), ("patch-status", "InferenceBackend", "chat")]
    assert condition(operator.status(), "Degraded")[1] == "InsufficientGPUMemory"
    operator.edit(spec(model=facts, vllm={"maxModelLen": 32768}, template={"nodeSelector": {"pool": "none"}}))
    operator.reconcile()
    status = operator.status()
    assert status.gpu_memory is not None
    assert status.gpu_memory.fits is None  # no GPU node matches: not judged
    assert "no node with nvidia.com/gpu matches template.nodeSelector" in status.gpu_memory.message


def test_labelled_l4_nodes_refuse_a_32k_context_with_the_longest_that_fits(operator: InProcessOperator) -> None:
    for name in ("l4-0", "l4-1"):
        operator.cluster.put_node(name, {"nvidia.com/gpu.memory": "23034", "nvidia.com/gpu.product": "NVIDIA-L4"})
    facts = {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": "chat", "architecture": LLAMA_8B_FACTS}
    operator.create(spec(model=facts, vllm={"maxModelLen": 32768}))
    operator.reconcile()
    assert verbs(operator) == [("patch-status", "InferenceBackend", "chat")]
    status = operator.status()
    assert status.phase == "Degraded"
    assert condition(status, "Degraded")[1] == "InsufficientGPUMemory"
    assert "use maxModelLen ≤ 26624" in condition(status, "Degraded")[2]
    assert [e.reason for e in operator.events] == ["InsufficientGPUMemory"]
    operator.edit(spec(model=facts, vllm={"maxModelLen": 26624}))
    operator.reconcile()
    assert ("apply", "Deployment", "chat-blue") in verbs(operator)
