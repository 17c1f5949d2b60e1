"""plan() as the operator runs it, under whatever a cluster and its users do, in any order.

A hypothesis state machine drives the real reconcile on the fake cluster: spec edits (model,
replicas including 0, rollout settings and strategies, engine, a revert to an older spec, an invalid
spec), pods becoming Ready or failing, check rounds passing or failing, time passing, operator
restarts (also in the middle of carrying out a plan), and lost status writes. After every step it
checks what blue/green and canary promise: the Service only ever reaches proven revisions (a
canary's Service, the Ready pods of both colors), moves at most once per promotion, never goes back
to a revision that failed until the spec changes, and an idle backend costs no writes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import Phase as Stage
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.unit.fakes.cluster import OperatorCrashed
from tests.unit.fakes.operator import NAME, NAMESPACE, PASS, InProcessOperator
from tests.unit.rollout.world import spec
from turnout.api.backend import Backend, InvalidSpec
from turnout.api.labels import BACKEND_LABEL, REVISION_LABEL
from turnout.api.status import Color, InferenceBackendStatus, Phase
from turnout.kube.observe import ABORT_ANNOTATION, PROMOTE_ANNOTATION, is_pod_ready
from turnout.reconcile import parse_backend
from turnout.rollout.observed import CheckOutcome
from turnout.rollout.plan import IDLE_RESYNC_SECONDS

MODELS = {
    "vllm": ["meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-3B-Instruct", "Qwen/Qwen2.5-7B-Instruct"],
    "ollama": ["llama3:8b", "llama3.2:3b", "qwen2.5:7b"],
}
ROLLOUTS: dict[str, dict[str, Any]] = {
    "default": {},
    "manual promotion": {"autoPromote": False},
    "recreate": {"strategy": "Recreate"},
    "hasty": {"checks": {"successThreshold": 1, "failureThreshold": 1}, "bakeSeconds": 0, "scaleDownDelaySeconds": 0},
    "no rollback": {"autoRollback": False},
    "canary": {"strategy": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
    "canary without surge": {
        "strategy": "Canary",
        "canary": {"steps": [{"setWeight": 25}, {"pause": {"seconds": 30}}, {"setWeight": 60}], "maxSurge": 0},
    },
}
WRONG = CheckOutcome(passed=False, message='/v1/models lacks "chat"')


@dataclass(frozen=True)
class Wish:
    """What the user asks for, in the few dimensions the machine varies."""

    model: int = 0
    engine: str = "vllm"
    replicas: int = 1
    rollout: str = "default"
    invalid: bool = False

    def spec(self) -> dict[str, Any]:
        rollout = spec()["rollout"] | ROLLOUTS[self.rollout]
        if "checks" in ROLLOUTS[self.rollout]:
            rollout["checks"] = spec()["rollout"]["checks"] | ROLLOUTS[self.rollout]["checks"]
        model = {"name": MODELS[self.engine][self.model], "servedName": "chat"}
        wanted = spec(engine=self.engine, model=model, replicas=self.replicas, rollout=rollout)
        if self.invalid:
            # tensorParallelSize 3 does not divide 1 GPU: refused by Backend.parse, not by the schema.
            wanted |= {"engine": "vllm", "vllm": {"tensorParallelSize": 3}}
        return wanted


@dataclass(frozen=True)
class Edit:
    """One change of the spec: `field` of `Wish` set to `value`, or "revert" `value` edits back."""

    field: str
    value: Any


EDITS = st.one_of(
    st.builds(Edit, st.just("model"), st.sampled_from([0, 1, 2])),
    st.builds(Edit, st.just("replicas"), st.sampled_from([0, 1, 2])),
    st.builds(Edit, st.just("rollout"), st.sampled_from(sorted(ROLLOUTS))),
    st.builds(Edit, st.just("engine"), st.sampled_from(sorted(MODELS))),
    st.builds(Edit, st.just("revert"), st.integers(min_value=1, max_value=6)),
    st.builds(Edit, st.just("invalid"), st.just(True)),
)


STARTS = [Phase.PROGRESSING, Phase.HEALTHY, Phase.VERIFYING, Phase.PAUSED, Phase.BAKING, Phase.DEGRADED, Phase.CANARY]


class BackendLife(RuleBasedStateMachine):
    """One InferenceBackend, the real reconcile, the fake cluster; the test plays users, kubelets and time."""

    def __init__(self) -> None:
        super().__init__()
        self.operator = InProcessOperator()
        self.cluster = self.operator.cluster
        self.wish = Wish()
        self.history: list[Wish] = []
        self.proven: set[str] = set()
        """Revisions that passed as many check rounds in a row as the spec asked (successThreshold)."""
        self._streaks: dict[str, int] = {}
        self._rounds_seen = 0
        self.epoch = 0
        """Counts the edits that changed the spec's revision: "until the spec changes" is "while epoch stays"."""
        self.failed: dict[str, int] = {}
        """Revisions the status recorded as failed, with the epoch they failed in."""
        self.moves_onto_spec_revision = 0
        """Service moves onto the spec's revision in this epoch: one promotion, at most one move."""

    def teardown(self) -> None:
        self.operator.close()

    # -- the user -------------------------------------------------------------------------------

    @initialize(
        wish=st.builds(
            Wish,
            model=st.sampled_from([0, 1]),
            rollout=st.sampled_from(sorted(ROLLOUTS)),
            invalid=st.sampled_from([False, False, False, False, True]),
        ),
        start=st.sampled_from(STARTS),
    )
    def create(self, wish: Wish, start: Phase) -> None:
        """The user creates the backend, and all goes well until it reaches `start` (if it can): random
        steps then begin in every phase, not only where short random walks get to."""
        if start == "Paused":
            wish = replace(wish, rollout="manual promotion", invalid=False)
        elif start == "Canary":
            wish = replace(wish, rollout="canary", invalid=False)
        elif start != "Progressing":
            wish = replace(wish, rollout="default", invalid=False)
        self.wish = wish
        self.history.append(wish)
        self.operator.create(wish.spec())
        self.reconcile_once()
        if start == "Progressing":
            return
        self.reconcile_for_a_while(reconciles=4, seconds=5, answer=PASS, kubelet="pods become Ready")
        if start == "Healthy":
            return
        self.edit(replace(wish, model=2))
        self.reconcile_for_a_while(reconciles=2, seconds=5, answer=PASS, kubelet="pods become Ready")
        if start == "Verifying":
            return
        answer = WRONG if start == "Degraded" else PASS
        self.reconcile_for_a_while(reconciles=3, seconds=5, answer=answer, kubelet="pods become Ready")
        assert self.status().phase == start, self.status()

    @rule(edit=EDITS)
    def user_edits_the_spec(self, edit: Edit) -> None:
        """A new model, replicas (0 too), rollout settings, engine, a revert to an older spec, or an invalid spec."""
        if edit.field == "revert":
            self.edit(self.history[-min(int(edit.value), len(self.history))])
        else:
            self.edit(replace(self.wish, **{edit.field: edit.value, "invalid": edit.field == "invalid"}))

    @rule(key=st.sampled_from([PROMOTE_ANNOTATION, ABORT_ANNOTATION]))
    def user_promotes_or_aborts(self, key: str) -> None:
        desired = self.desired()
        if not isinstance(desired, Backend):
            return
        self.cluster.annotate_backend(NAMESPACE, NAME, key, desired.revision)

    # -- the cluster and time ------------------------------------------------------------------

    @rule(colors=st.sampled_from([(Color.BLUE,), (Color.GREEN,), (Color.BLUE, Color.GREEN)]))
    def pods_become_ready(self, colors: tuple[Color, ...]) -> None:
        for color in colors:
            self.operator.pods_ready(color)

    @rule(
        color=st.sampled_from([Color.BLUE, Color.GREEN]), reason=st.sampled_from(["CrashLoopBackOff", "ErrImagePull"])
    )
    def pods_fail(self, color: Color, reason: str) -> None:
        self.operator.pods_fail(color, reason, "back-off")

    @rule(seconds=st.sampled_from([1, 5, 30, 130, 700]))
    def time_passes(self, seconds: int) -> None:
        """Time passes, and the Deployment controller takes its turn."""
        self.operator.advance(seconds)
        self.cluster.run_controllers()

    # -- the operator ----------------------------------------------------------------------------

    @rule(answer=st.sampled_from([PASS, PASS, PASS, WRONG]), wait=st.sampled_from([0, 1, 5, 30]))
    def reconcile(self, answer: CheckOutcome, wait: int) -> None:
        """One reconcile, `wait` seconds on; a check round, if one is due, answers `answer`."""
        self.operator.advance(wait)
        self.operator.checks.answer = answer
        self.reconcile_once()

    @rule(
        reconciles=st.integers(min_value=1, max_value=12),
        seconds=st.sampled_from([5, 5, 30]),
        answer=st.sampled_from([PASS, PASS, WRONG]),
        kubelet=st.sampled_from(["pods become Ready", "pods become Ready", "pods as they are"]),
    )
    def reconcile_for_a_while(self, reconciles: int, seconds: int, answer: CheckOutcome, kubelet: str) -> None:
        """Reconciles `seconds` apart, check rounds answering `answer`; before each, the controllers act and,
        with "pods become Ready", every pod of the current templates becomes Ready."""
        self.operator.checks.answer = answer
        for _ in range(reconciles):
            if kubelet == "pods become Ready":
                for color in Color:
                    self.operator.pods_ready(color)
            else:
                self.cluster.run_controllers()
            self.operator.advance(seconds)
            self.reconcile_once()

    @rule(trouble=st.sampled_from(["restart", "status write lost", *(f"crash after {n} writes" for n in range(4))]))
    def operator_in_trouble(self, trouble: str) -> None:
        """A restart between two steps; or one reconcile whose status write is lost, or that dies after
        carrying out only the first few writes of its plan (then the operator restarts)."""
        if trouble == "status write lost":
            self.reconcile_once(lose_status=True)
        elif trouble.startswith("crash after"):
            self.reconcile_once(crash_after=int(trouble.split()[2]))
        self.operator.restart()

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def the_service_selects_only_proven_revisions(self) -> None:
        selector = self.service_selector()
        if not selector:
            return
        served = self.served_revision()
        # A canary's Service selects both colors: then every Ready pod it reaches must be proven.
        assert served is None or served in self.proven, (
            f"the Service selects revision {served}, never proven; proven: {self.proven}"
        )
        for pod in self.cluster.list_pods(NAMESPACE, f"{BACKEND_LABEL}={NAME}"):
            labels = pod["metadata"]["labels"]
            if is_pod_ready(pod) and all(labels.get(k) == v for k, v in selector.items()):
                assert labels[REVISION_LABEL] in self.proven, f"Ready pod {pod['metadata']['name']} is unproven"

    @invariant()
    def a_failed_revision_is_not_served_until_the_spec_changes(self) -> None:
        served = self.served_revision()
        assert served is None or self.failed.get(served) != self.epoch, (
            f"the Service selects revision {served}, which failed, and the spec has not changed since"
        )

    # -- inside ----------------------------------------------------------------------------------

    def edit(self, wish: Wish) -> None:
        """The user applies `wish`; an edit that changes the revision opens a new epoch."""
        before = self.desired()
        self.wish = wish
        self.history.append(wish)
        self.operator.edit(wish.spec())
        after = self.desired()
        if revision_of(after) != revision_of(before):
            self.epoch += 1
            self.moves_onto_spec_revision = 0

    def reconcile_once(self, *, crash_after: int | None = None, lose_status: bool = False) -> None:
        """One reconcile, which may die after `crash_after` writes or lose its status write; then what it
        wrote is checked, and a backend it left idle is reconciled again to prove it idle."""
        selectors, served = len(self.cluster.service_selectors), self.served_revision()
        self.cluster.crash_after(crash_after)
        self.cluster.lose_status_writes = int(lose_status)
        try:
            self.operator.reconcile()
            completed = not lose_status
        except OperatorCrashed:
            completed = False
        finally:
            self.cluster.crash_after(None)
            self.cluster.lose_status_writes = 0
        self.learn_from_check_rounds()
        # After every single reconcile, not only after each rule: a rule may run many reconciles.
        self.the_service_selects_only_proven_revisions()
        self.the_service_was_written_only_to_move_it(selectors, served)
        status = self.status()
        event(f"phase {status.phase}")
        rolled_back = any(e.reason == "RolledBack" for e in self.operator.last_events)
        if completed and rolled_back and status.last_failed_revision == revision_of(self.desired()):
            self.failed[status.last_failed_revision] = self.epoch
        if completed and self.settled(status):
            self.an_idle_backend_makes_no_writes()

    def the_service_was_written_only_to_move_it(self, selectors_before: int, served_before: str | None) -> None:
        """Each Service write moves it, at most one per reconcile, and onto the spec's revision once per epoch."""
        service_writes = [w for w in self.operator.last_writes if w.kind == "Service"]
        moves = self.cluster.service_selectors[selectors_before:]
        assert len(service_writes) == len(moves), f"{len(service_writes)} Service writes for {len(moves)} moves"
        assert len(moves) <= 1, f"the Service moved {len(moves)} times in one reconcile"
        served = self.served_revision()
        if moves and served != served_before and served == revision_of(self.desired()):
            self.moves_onto_spec_revision += 1
            assert self.moves_onto_spec_revision == 1, f"the Service moved onto revision {served} twice for one edit"

    def an_idle_backend_makes_no_writes(self) -> None:
        # Idle means nothing changes, its engine included: the serving color keeps passing its checks.
        self.operator.checks.answer = PASS
        self.operator.advance(IDLE_RESYNC_SECONDS)
        self.operator.reconcile()
        writes = [(w.verb, w.kind, w.name) for w in self.operator.last_writes]
        events = [e.reason for e in self.operator.last_events]
        assert (writes, events) == ([], []), f"a settled backend wrote {writes} and emitted {events}"

    def settled(self, status: InferenceBackendStatus) -> bool:
        """Nothing in flight, nothing due, and the last reconcile changed nothing the next one would see
        differently: Healthy (or an invalid spec) after at most a status write; Degraded after no write."""
        writes = {w.verb for w in self.operator.last_writes}
        if isinstance(self.desired(), InvalidSpec) or status.phase is Phase.HEALTHY:
            steady = writes <= {"patch-status"}
        else:
            # After a rollback the next reconcile rewrites the Degraded message once, from "rolled back" to
            # "not retried until the spec changes": Degraded is a fixed point only from a reconcile without writes.
            steady = status.phase is Phase.DEGRADED and not writes
        return (
            steady
            and status.preview_color is None
            and status.switched_at is None
            and status.previous_color is None
            and status.check_failures == 0  # a failing serving color is being judged, not idle
        )

    def learn_from_check_rounds(self) -> None:
        """Count passing rounds in a row per revision; a revision whose count reaches the spec's
        successThreshold is proven (also when the user lowers the threshold to its count)."""
        for round_ in self.operator.checks.rounds[self._rounds_seen :]:
            self._streaks[round_.revision] = self._streaks.get(round_.revision, 0) + 1 if round_.outcome.passed else 0
        self._rounds_seen = len(self.operator.checks.rounds)
        desired = self.desired()
        if isinstance(desired, Backend):
            threshold = desired.spec.rollout.checks.success_threshold
            self.proven |= {revision for revision, streak in self._streaks.items() if streak >= threshold}

    def desired(self) -> Backend | InvalidSpec:
        return parse_backend(self.cluster.backend(NAMESPACE, NAME))

    def status(self) -> InferenceBackendStatus:
        return self.operator.status()

    def service_selector(self) -> dict[str, str]:
        service = self.cluster.service(NAMESPACE, NAME)
        return {} if service is None else dict(service["spec"]["selector"])

    def served_revision(self) -> str | None:
        """The revision of the pod template of the Deployment the Service selects."""
        color = self.service_selector().get("turnout.dev/color")
        deployment = self.cluster.deployment(NAMESPACE, f"{NAME}-{color}") if color else None
        if deployment is None:
            return None
        revision: str = deployment["spec"]["template"]["metadata"]["labels"][REVISION_LABEL]
        return revision


def parse_spec(wish: Wish) -> Backend | InvalidSpec:
    return parse_backend({"metadata": {"name": NAME, "namespace": NAMESPACE}, "spec": wish.spec()})


def revision_of(desired: Backend | InvalidSpec) -> str | None:
    return desired.revision if isinstance(desired, Backend) else None


BackendLife.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Stage.explicit, Stage.generate, Stage.shrink],  # no explain stage: minutes for a failure
)
test_backend_life = BackendLife.TestCase
