"""The checks that span several fields, written once for both layers that enforce them.

Each rule's CEL expression goes into the CRD (`kubectl apply` refuses the object) and its message
is reused word for word by `Backend.check()` (the InvalidSpec condition), so a user reads the same
sentence whichever layer caught the mistake. Where a rule echoes the values given, its message is a
template: `cel_format` fills it in the CRD's `messageExpression` and `str.format` in the models,
each from the same fields. Each engine's own rules live in its module in `turnout.engines`, written
the same way, and join `RULES` here.
"""

from __future__ import annotations

from turnout.api.cel import Rule, cel_format, cel_join, cel_list
from turnout.engines import ENGINES, owned_env

# A backend's objects are named `<name>-green` and it labels pods with its name, so names must
# leave room for the longest suffix within a 63-character label value.
MAX_NAME_LENGTH = 63 - len("-green")

# Environment variables the engines set from fields of their own, and turnout's own prefix.
OWNED_ENV = owned_env()
OWNED_ENV_PREFIX = "TURNOUT_"
# Pod labels turnout's selectors and tooling rely on.
RESERVED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
)
RESERVED_LABEL_PREFIX = "turnout.dev/"
SERVICE_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

NAME_TOO_LONG = (
    f"must be at most {MAX_NAME_LENGTH} characters: turnout names the Deployments <name>-blue and <name>-green"
)
NAME_TOO_LONG_GOT = NAME_TOO_LONG + " (got {} characters)"
NAME_NOT_SERVICE_NAME = (
    "a backend's name is also its Service's name unless spec.service.name is set, and a Service name "
    "needs lowercase letters, digits and '-', starting with a letter; set spec.service.name"
)
NAME_NOT_SERVICE_NAME_GOT = NAME_NOT_SERVICE_NAME + " (got '{}')"
RWOP_NEEDS_ONE_POD = (
    "a ReadWriteOncePod claim can be mounted by one pod only; use ReadWriteMany (or ReadOnlyMany for "
    "pre-loaded weights), or rollout.strategy Recreate with replicas 1"
)
RWOP_NEEDS_ONE_POD_GOT = RWOP_NEEDS_ONE_POD + " (got strategy {}, replicas {})"
OWNED_ENV_VAR = (
    "turnout sets this variable itself (" + ", ".join(OWNED_ENV) + f", {OWNED_ENV_PREFIX}*); "
    "use the matching spec field instead (the vLLM API key goes in vllm.apiKeySecretRef)"
)
OWNED_ENV_VAR_GOT = OWNED_ENV_VAR + " (got {})"
ENV_VALUE_AND_VALUE_FROM = "set either value or valueFrom, not both"
RESERVED_LABEL = (
    "turnout sets " + ", ".join(RESERVED_LABELS) + f" and {RESERVED_LABEL_PREFIX}* itself; remove them from podLabels"
)
RESERVED_LABEL_GOT = RESERVED_LABEL + " (got {})"
TOLERATION_EXISTS_WITH_VALUE = "a toleration with operator Exists matches any value; leave value empty"
TOLERATION_EXISTS_WITH_VALUE_GOT = TOLERATION_EXISTS_WITH_VALUE + " (got '{}')"
GRACE_AFTER_PAUSE = (
    "gracePeriodSeconds must exceed preStopSeconds: the grace period counts from the pod's deletion, "
    "the pause included, and the engine needs time after it to finish and stop"
)
GRACE_AFTER_PAUSE_GOT = GRACE_AFTER_PAUSE + " (got gracePeriodSeconds {}, preStopSeconds {})"
TOLERATION_WITHOUT_KEY = "a toleration without a key matches every taint and needs operator Exists"
CANARY_NEEDS_STEPS = "strategy Canary needs rollout.canary.steps, e.g. [{setWeight: 10}, {pause: {}}, {setWeight: 50}]"
CANARY_STEP_ONE_KIND = "each canary step is either setWeight or pause: set exactly one"
CANARY_WEIGHTS_INCREASING = "the setWeight steps must increase from one to the next"
CANARY_WEIGHTS_INCREASING_GOT = CANARY_WEIGHTS_INCREASING + " (got {})"
THRESHOLD_RANGE_EMPTY = "a metric's thresholdRange needs min, max or both: with neither, nothing is checked"
THRESHOLD_RANGE_INVERTED = "a metric's thresholdRange.min must not be above its max: no value would pass"
CANARY_NEEDS_TWO_PODS = (
    "a canary runs both revisions at once: with replicas 1 it needs canary.maxSurge 1 or more; "
    "use strategy Recreate to replace a single replica without a spare GPU"
)
RECREATE_HAS_NOTHING_TO_COMPARE = (
    "strategy Recreate scales the serving revision down before the new one starts, so a benchmark has "
    "nothing to compare with: use the absolute gates (minOutputTokensPerSecond, maxP95TtftSeconds), "
    "or strategy BlueGreen or Canary for minThroughputRatio and maxLatencyRatio"
)
EMBEDDING_HAS_NO_BENCHMARK = (
    "rollout.benchmark measures streamed chat completions (output tokens/s, time to first token), which an "
    "embedding model (model.task embedding) does not produce: remove rollout.benchmark; the checks still "
    "prove each pod answers with vectors of the serving revision's dimension"
)
# The HTTPRoute refers to one Service per color, `<service>-blue` and `<service>-green`.
MAX_ROUTED_SERVICE_NAME_LENGTH = 63 - len("-green")
ROUTED_SERVICE_NAME_TOO_LONG = (
    f"with canary.traffic.httpRoute, turnout names the colors' Services <service>-blue and <service>-green: "
    f"service.name must be at most {MAX_ROUTED_SERVICE_NAME_LENGTH} characters"
)
ROUTED_SERVICE_NAME_TOO_LONG_GOT = ROUTED_SERVICE_NAME_TOO_LONG + " (got {} characters)"

_STORAGE = "self.model.storage"
_STRATEGY = "(has(self.rollout) && has(self.rollout.strategy) ? self.rollout.strategy : 'BlueGreen')"
_REPLICAS = "(has(self.replicas) ? self.replicas : 1)"
_CANARY = "self.rollout.canary"
_HAS_CANARY = f"(has(self.rollout) && has({_CANARY}))"
_MAX_SURGE = f"({_HAS_CANARY} && has({_CANARY}.maxSurge) ? {_CANARY}.maxSurge : 1)"
_HAS_ROUTE = f"({_HAS_CANARY} && has({_CANARY}.traffic) && has({_CANARY}.traffic.httpRoute))"
_WEIGHTS = "self.filter(s, has(s.setWeight)).map(s, s.setWeight)"
_BENCHMARK = "self.rollout.benchmark"
_HAS_RATIO_GATE = (
    f"(has(self.rollout) && has({_BENCHMARK}) "
    f"&& (has({_BENCHMARK}.minThroughputRatio) || has({_BENCHMARK}.maxLatencyRatio)))"
)
_RESERVED = f"k in {cel_list(RESERVED_LABELS)} || k.startsWith('{RESERVED_LABEL_PREFIX}')"

RULES: tuple[Rule, ...] = (
    Rule(
        (),
        f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
        NAME_TOO_LONG,
        ".metadata.name",
        cel_format(NAME_TOO_LONG_GOT, "self.metadata.name.size()"),
    ),
    Rule(
        (),
        "(has(self.spec.service) && has(self.spec.service.name)) "
        f"|| self.metadata.name.matches(r'{SERVICE_NAME_PATTERN}')",
        NAME_NOT_SERVICE_NAME,
        ".metadata.name",
        cel_format(NAME_NOT_SERVICE_NAME_GOT, "self.metadata.name"),
    ),
    # Before the storage rule, so each node of the schema lists its checks in the order they always had.
    *(rule for profile in ENGINES.values() for rule in profile.crd_rules),
    Rule(
        ("spec",),
        f"!has({_STORAGE}) || !has({_STORAGE}.create) || !{_STORAGE}.create "
        f"|| !has({_STORAGE}.accessModes) || !('ReadWriteOncePod' in {_STORAGE}.accessModes) "
        f"|| ({_STRATEGY} == 'Recreate' && {_REPLICAS} <= 1)",
        RWOP_NEEDS_ONE_POD,
        ".model.storage.accessModes",
        cel_format(RWOP_NEEDS_ONE_POD_GOT, _STRATEGY, _REPLICAS),
    ),
    Rule(("spec",), f"{_STRATEGY} != 'Canary' || {_HAS_CANARY}", CANARY_NEEDS_STEPS, ".rollout.strategy"),
    Rule(
        ("spec",),
        f"{_STRATEGY} != 'Recreate' || !{_HAS_RATIO_GATE}",
        RECREATE_HAS_NOTHING_TO_COMPARE,
        ".rollout.benchmark",
    ),
    Rule(
        ("spec",),
        "!has(self.model.task) || self.model.task != 'embedding' || !has(self.rollout) || !has(self.rollout.benchmark)",
        EMBEDDING_HAS_NO_BENCHMARK,
        ".rollout.benchmark",
    ),
    Rule(
        ("spec",),
        f"{_STRATEGY} != 'Canary' || {_REPLICAS} != 1 || {_MAX_SURGE} > 0",
        CANARY_NEEDS_TWO_PODS,
        ".rollout.canary",
    ),
    Rule(
        ("spec",),
        f"!{_HAS_ROUTE} || !has(self.service) || !has(self.service.name) "
        f"|| self.service.name.size() <= {MAX_ROUTED_SERVICE_NAME_LENGTH}",
        ROUTED_SERVICE_NAME_TOO_LONG,
        ".service.name",
        cel_format(ROUTED_SERVICE_NAME_TOO_LONG_GOT, "self.service.name.size()"),
    ),
    Rule(("spec", "rollout", "canary", "steps", "*"), "has(self.setWeight) != has(self.pause)", CANARY_STEP_ONE_KIND),
    Rule(
        ("spec", "rollout", "canary", "steps"),
        f"{_WEIGHTS}.isSorted() && {_WEIGHTS}.all(w, {_WEIGHTS}.indexOf(w) == {_WEIGHTS}.lastIndexOf(w))",
        CANARY_WEIGHTS_INCREASING,
        message_expression=cel_format(
            CANARY_WEIGHTS_INCREASING_GOT, cel_join("self.filter(s, has(s.setWeight)).map(s, string(s.setWeight))")
        ),
    ),
    Rule(
        ("spec", "rollout", "canary", "analysis", "metrics", "*", "thresholdRange"),
        "has(self.min) || has(self.max)",
        THRESHOLD_RANGE_EMPTY,
    ),
    Rule(
        ("spec", "rollout", "canary", "analysis", "metrics", "*", "thresholdRange"),
        "!has(self.min) || !has(self.max) || self.min <= self.max",
        THRESHOLD_RANGE_INVERTED,
        ".min",
    ),
    Rule(
        ("spec", "template", "env", "*"),
        f"!(self.name in {cel_list(OWNED_ENV)}) && !self.name.startsWith('{OWNED_ENV_PREFIX}')",
        OWNED_ENV_VAR,
        ".name",
        cel_format(OWNED_ENV_VAR_GOT, "self.name"),
    ),
    Rule(
        ("spec", "template", "env", "*"),
        "!has(self.value) || self.value == '' || !has(self.valueFrom)",
        ENV_VALUE_AND_VALUE_FROM,
    ),
    Rule(
        ("spec", "template", "podLabels"),
        f"!self.exists(k, {_RESERVED})",
        RESERVED_LABEL,
        message_expression=cel_format(RESERVED_LABEL_GOT, cel_join(f"self.filter(k, {_RESERVED}).sort()")),
    ),
    Rule(
        ("spec", "template", "tolerations", "*"),
        "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
        TOLERATION_EXISTS_WITH_VALUE,
        ".value",
        cel_format(TOLERATION_EXISTS_WITH_VALUE_GOT, "self.value"),
    ),
    Rule(
        ("spec", "template", "drain"),
        "!has(self.gracePeriodSeconds) || !has(self.preStopSeconds) || self.gracePeriodSeconds > self.preStopSeconds",
        GRACE_AFTER_PAUSE,
        ".gracePeriodSeconds",
        cel_format(GRACE_AFTER_PAUSE_GOT, "self.gracePeriodSeconds", "self.preStopSeconds"),
    ),
    Rule(
        ("spec", "template", "tolerations", "*"),
        "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
        TOLERATION_WITHOUT_KEY,
    ),
)
