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
TOLERATION_WITHOUT_KEY = "a toleration without a key matches every taint and needs operator Exists"
# Through an HTTPRoute, turnout adds one Service per color, `<service name>-green`: the service name
# needs the same room for the suffix as a backend's own name.
COLOR_SERVICE_NAME_TOO_LONG = (
    f"must be at most {MAX_NAME_LENGTH} characters when an HTTPRoute carries the traffic: turnout adds "
    "a Service per color, <name>-blue and <name>-green, and a Service name has at most 63"
)
COLOR_SERVICE_NAME_TOO_LONG_GOT = COLOR_SERVICE_NAME_TOO_LONG + " (got {} characters)"

_STORAGE = "self.model.storage"
_STRATEGY = "(has(self.rollout) && has(self.rollout.strategy) ? self.rollout.strategy : 'BlueGreen')"
_REPLICAS = "(has(self.replicas) ? self.replicas : 1)"
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
        ("spec", "template", "tolerations", "*"),
        "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
        TOLERATION_WITHOUT_KEY,
    ),
)


def color_service_name_problem(service_name: str) -> str | None:
    """Why `service_name` cannot name the color Services `<service_name>-blue` and `-green` (the
    sentence for InvalidSpec, field path first), or None when it can.

    Only `spec.service.name` can be too long: the default, the backend's name, has the room already.
    """
    if len(service_name) <= MAX_NAME_LENGTH:
        return None
    return f"spec.service.name: {COLOR_SERVICE_NAME_TOO_LONG_GOT.format(len(service_name))}"
