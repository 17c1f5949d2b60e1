"""A validated InferenceBackend: the spec with every default resolved, and its revision.

`Backend.parse()` is the one door from the cluster's raw object into the rest of turnout:
whatever it lets through can be rendered and rolled out; whatever it refuses is an
`InvalidSpec` whose message the user reads in `status.conditions`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from turnout.api import rules
from turnout.api.rules import MAX_NAME_LENGTH
from turnout.api.spec import (
    DNS_SUBDOMAIN_PATTERN,
    PATTERN_HINTS,
    AccessMode,
    Engine,
    InferenceBackendSpec,
    Strategy,
    Task,
)
from turnout.engines import EngineProfile, owned_env, profile_of
from turnout.engines.profile import TEARDOWN_SECONDS, DrainTimes

GROUP = "turnout.dev"
VERSION = "v1alpha1"
KIND = "InferenceBackend"
PLURAL = "inferencebackends"


class InvalidSpec(ValueError):
    """A spec the user must change; the message says what to change and is shown in status."""


@dataclass(frozen=True)
class Backend:
    """One InferenceBackend with its spec validated and its defaults resolved."""

    name: str
    namespace: str
    spec: InferenceBackendSpec
    api_key_digest: str | None = None
    """A digest of the API key the engine's pods read from their Secret (never the key), when the
    engine takes one: a rotated key is a new revision, so every pod of a color has the same key."""

    @classmethod
    def parse(cls, name: str, namespace: str, spec: Mapping[str, Any]) -> Backend:
        """Validate a raw `spec` (camelCase, as stored in the cluster); raise InvalidSpec."""
        try:
            # As the API server reads it: JSON types as they are ("5" is no integer; a YAML date is
            # text, as kubectl sends it), fields by their camelCase names only (never `max_model_len`).
            model = InferenceBackendSpec.model_validate_json(
                json.dumps(dict(spec), default=str), strict=True, by_alias=True, by_name=False
            )
        except ValidationError as error:
            raise InvalidSpec(describe_validation_error(error)) from None
        backend = cls(name=name, namespace=namespace, spec=model)
        backend.check()
        return backend

    def check(self) -> None:
        """Raise InvalidSpec for what the schema alone cannot express."""
        problems = list(self._problems())
        if problems:
            raise InvalidSpec("; ".join(problems))

    def _problems(self) -> list[str]:
        return [
            *_name_problems(self.name, self.spec),
            *self.profile.problems(self),
            *_storage_problems(self.spec),
            *_canary_problems(self.spec),
            *_benchmark_problems(self.spec),
            *_template_problems(self.spec),
            *_drain_problems(self.spec),
        ]

    @property
    def engine(self) -> Engine:
        return self.spec.engine

    @property
    def profile(self) -> EngineProfile:
        """What turnout knows about the engine this backend runs."""
        return profile_of(self.spec.engine)

    @property
    def model_name(self) -> str:
        """The model the active engine serves: its own `model` if set, else `model.name`."""
        return self.profile.options(self.spec).model or self.spec.model.name

    @property
    def task(self) -> Task:
        """What clients ask the model for."""
        return self.spec.model.task

    @property
    def served_name(self) -> str:
        """The model name clients send."""
        return self.spec.model.served_name or self.name

    @property
    def gpus(self) -> int:
        """GPUs per replica."""
        if self.spec.resources.gpus is not None:
            return self.spec.resources.gpus
        return self.profile.default_gpus

    @property
    def claim_name(self) -> str | None:
        """The model volume's claim, or None for a scratch volume."""
        storage = self.spec.model.storage
        if storage is None:
            return None
        return storage.claim_name or f"{self.name}-models"

    @property
    def model_mount_path(self) -> str:
        storage = self.spec.model.storage
        return storage.mount_path if storage else "/data/models"

    @property
    def service_name(self) -> str:
        return self.spec.service.name or self.name

    @property
    def http_route(self) -> str | None:
        """The HTTPRoute whose weights move a canary's traffic (`rollout.canary.traffic.httpRoute`);
        None unless the strategy is Canary and one is named."""
        canary = self.spec.rollout.canary
        if self.spec.rollout.strategy is not Strategy.CANARY or canary is None or canary.traffic.http_route is None:
            return None
        return canary.traffic.http_route.name

    @property
    def drain(self) -> DrainTimes:
        """How the engine's pods stop: `template.drain` with the engine's defaults for what is unset.

        A default never contradicts what is given: a pause alone is followed by as much time as the
        engine's defaults leave after theirs (vLLM: never less than its default grace in all); a grace
        period alone gets a shorter pause (for an engine that cuts streams at SIGTERM, all of the grace
        but TEARDOWN_SECONDS, or half of it when shorter).
        """
        engine = self.profile.drain
        given = self.spec.template.drain
        pre_stop = given.pre_stop_seconds if given else None
        grace = given.grace_period_seconds if given else None
        if pre_stop is None and grace is None:
            return engine
        if grace is None:
            assert pre_stop is not None
            room = engine.grace_period - engine.pre_stop
            grace = pre_stop + room if not engine.drains_on_sigterm else max(engine.grace_period, pre_stop + room)
        if pre_stop is None:
            pause = engine.pre_stop if engine.drains_on_sigterm else grace - min(TEARDOWN_SECONDS, grace // 2)
            pre_stop = min(pause, grace - 1)
        return DrainTimes(pre_stop=pre_stop, grace_period=grace, drains_on_sigterm=engine.drains_on_sigterm)

    @property
    def image(self) -> str:
        if self.spec.template.image:
            return self.spec.template.image
        return self.profile.image

    @property
    def engine_port(self) -> int:
        return self.profile.port

    @cached_property
    def revision(self) -> str:
        """Stable 10-hex-digit hash of what shapes the pods.

        Excluded, so changing them never starts a cutover: rollout, replicas, service, the inactive
        engine's options, and the claim's creation settings (size, class, access modes, deletion).
        Included besides the spec: the API key's digest, when there is one.
        """
        spec = self.spec
        profile = self.profile
        pod_affecting = {
            "engine": spec.engine.value,
            "model": self.model_name,
            "servedName": self.served_name,
            "claimName": self.claim_name,
            "mountPath": self.model_mount_path,
            "image": self.image,
            "resources": {"gpus": self.gpus, "cpu": spec.resources.cpu, "memory": spec.resources.memory},
            # The engine's own `model` is in "model" already.
            "engineOptions": profile.options(spec).model_dump(mode="json", by_alias=True, exclude={"model"}),
            "tensorParallelSize": profile.tensor_parallel_size(self),
            "template": spec.template.model_dump(mode="json", by_alias=True, exclude={"drain"}),
        }
        if spec.template.drain is not None:
            # Only when set, so the revisions of backends written before `drain` stay as they were.
            pod_affecting["drain"] = spec.template.drain.model_dump(mode="json", by_alias=True, exclude_none=True)
        if spec.model.task is not Task.CHAT:
            # Only when not chat, so the revisions of backends written before `task` stay as they were.
            pod_affecting["task"] = spec.model.task.value
        if self.api_key_digest is not None:
            # Only for engines with a key, so the revisions of all other backends stay as they were.
            pod_affecting["apiKeyDigest"] = self.api_key_digest
        canonical = json.dumps(pod_affecting, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, each naming the field as the user wrote it (`spec.vllm.dtype: ...`)."""
    return "; ".join(_describe(item) for item in error.errors())


def _describe(item: ErrorDetails) -> str:
    loc = list(item["loc"])
    key_error = loc[-1:] == ["[key]"]
    if key_error:
        loc = loc[:-2]  # pydantic names the bad key, then "[key]"; the map is what the user looks for
    where = _field_path(loc)
    kind = item["type"]
    if kind == "missing":
        return f"{where}: Required value"
    if kind == "extra_forbidden":
        return f"{where}: unknown field; check its spelling against `kubectl explain inferencebackend.spec`"
    if kind == "string_pattern_mismatch":
        hint = PATTERN_HINTS.get(str(item.get("ctx", {}).get("pattern")), "has an unexpected form")
        if key_error:
            return f"{where}: keys {hint} (got {_shortened(repr(item['input']))})"
        return f"{where}: {hint} (got {_shortened(repr(item['input']))})"
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return f"{where}: should be an object of fields, not {type(item.get('input')).__name__}"
    if kind == "string_type":
        return f"{where}: should be a string; quote numbers and booleans (got {_shortened(repr(item['input']))})"
    # Reads like the API server's own "should be less than or equal to 1", with the value.
    message = item["msg"].removeprefix("Input ")
    value = item.get("input")
    if isinstance(value, str | int | float | bool):
        return f"{where}: {message} (got {_shortened(repr(value))})"
    return f"{where}: {message}"


def _shortened(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Fields that are maps: the part after them in an error's location is a key, not a field.
MAP_FIELDS = frozenset({"nodeSelector", "podAnnotations", "podLabels", "matchLabels"})


def _field_path(loc: list[int | str]) -> str:
    """`spec.vllm.extraArgs[2]`, `spec.template.podLabels[team]`: as the API server prints paths."""
    path = "spec"
    previous: int | str = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) or previous in MAP_FIELDS else f".{part}"
        previous = part
    return path


def _name_problems(name: str, spec: InferenceBackendSpec) -> list[str]:
    found = []
    if not re.fullmatch(DNS_SUBDOMAIN_PATTERN, name) or len(name) > 253:
        # The API server refuses such a name before any rule of turnout's; here for completeness.
        found.append(f"metadata.name: {PATTERN_HINTS[DNS_SUBDOMAIN_PATTERN]} (got {_shortened(repr(name))})")
    if len(name) > MAX_NAME_LENGTH:
        found.append(f"metadata.name: {rules.NAME_TOO_LONG_GOT.format(len(name))}")
    if spec.service.name is None and not re.fullmatch(rules.SERVICE_NAME_PATTERN, name):
        found.append(f"metadata.name: {rules.NAME_NOT_SERVICE_NAME_GOT.format(name)}")
    return found


def _storage_problems(spec: InferenceBackendSpec) -> list[str]:
    storage = spec.model.storage
    if storage is None or not storage.create or AccessMode.READ_WRITE_ONCE_POD not in storage.access_modes:
        return []
    if spec.rollout.strategy is Strategy.RECREATE and spec.replicas <= 1:
        return []
    got = rules.RWOP_NEEDS_ONE_POD_GOT.format(spec.rollout.strategy.value, spec.replicas)
    return [f"spec.model.storage.accessModes: {got}"]


def _benchmark_problems(spec: InferenceBackendSpec) -> list[str]:
    """The rules of `turnout.api.rules` on `rollout.benchmark`: chat models only, and ratios need a serving
    revision to compare with."""
    benchmark = spec.rollout.benchmark
    if benchmark is not None and spec.model.task is Task.EMBEDDING:
        return [f"spec.rollout.benchmark: {rules.EMBEDDING_HAS_NO_BENCHMARK}"]
    if spec.rollout.strategy is not Strategy.RECREATE or benchmark is None:
        return []
    if benchmark.min_throughput_ratio is None and benchmark.max_latency_ratio is None:
        return []
    return [f"spec.rollout.benchmark: {rules.RECREATE_HAS_NOTHING_TO_COMPARE}"]


def _canary_problems(spec: InferenceBackendSpec) -> list[str]:
    """The rules of `turnout.api.rules` on strategy Canary and its steps."""
    found = []
    canary = spec.rollout.canary
    if spec.rollout.strategy is Strategy.CANARY:
        if canary is None:
            found.append(f"spec.rollout.strategy: {rules.CANARY_NEEDS_STEPS}")
        elif spec.replicas == 1 and canary.max_surge == 0:
            found.append(f"spec.rollout.canary: {rules.CANARY_NEEDS_TWO_PODS}")
    if canary is None:
        return found
    service = spec.service.name or ""
    if canary.traffic.http_route is not None and len(service) > rules.MAX_ROUTED_SERVICE_NAME_LENGTH:
        found.append(f"spec.service.name: {rules.ROUTED_SERVICE_NAME_TOO_LONG_GOT.format(len(service))}")
    for index, step in enumerate(canary.steps):
        if (step.set_weight is None) == (step.pause is None):
            found.append(f"spec.rollout.canary.steps[{index}]: {rules.CANARY_STEP_ONE_KIND}")
    names: dict[str, int] = {}
    for index, metric in enumerate(canary.analysis.metrics):
        where = f"spec.rollout.canary.analysis.metrics[{index}]"
        bounds = metric.threshold_range
        if bounds.min is None and bounds.max is None:
            found.append(f"{where}.thresholdRange: {rules.THRESHOLD_RANGE_EMPTY}")
        elif bounds.min is not None and bounds.max is not None and bounds.min > bounds.max:
            found.append(f"{where}.thresholdRange.min: {rules.THRESHOLD_RANGE_INVERTED}")
        if metric.name in names:
            found.append(f"{where}.name: {metric.name} is already the name of metrics[{names[metric.name]}]; keep one")
        names.setdefault(metric.name, index)
    weights = [step.set_weight for step in canary.steps if step.set_weight is not None]
    if any(later <= earlier for earlier, later in itertools.pairwise(weights)):
        got = ", ".join(map(str, weights))
        found.append(f"spec.rollout.canary.steps: {rules.CANARY_WEIGHTS_INCREASING_GOT.format(got)}")
    return found


def _template_problems(spec: InferenceBackendSpec) -> list[str]:
    """The rules of `turnout.api.rules` on `spec.template`, and what the schema's list types refuse."""
    template = spec.template
    found = []
    reserved = sorted(
        key
        for key in template.pod_labels
        if key in rules.RESERVED_LABELS or key.startswith(rules.RESERVED_LABEL_PREFIX)
    )
    if reserved:
        found.append(f"spec.template.podLabels: {rules.RESERVED_LABEL_GOT.format(', '.join(reserved))}")
    for index, toleration in enumerate(template.tolerations):
        found.extend(_toleration_problems(f"spec.template.tolerations[{index}]", toleration))
    names: dict[str, int] = {}
    for index, entry in enumerate(template.env):
        where = f"spec.template.env[{index}]"
        found.extend(_env_var_problems(where, entry))
        name = entry["name"]
        if name in names:
            found.append(f"{where}.name: {name} is already set by env[{names[name]}]; keep one")
        names.setdefault(name, index)
    secrets: dict[str, int] = {}
    for index, secret in enumerate(template.image_pull_secrets):
        if secret in secrets:
            found.append(
                f"spec.template.imagePullSecrets[{index}]: {secret} is already listed "
                f"as imagePullSecrets[{secrets[secret]}]; keep one"
            )
        secrets.setdefault(secret, index)
    return found


def _drain_problems(spec: InferenceBackendSpec) -> list[str]:
    """The rule of `turnout.api.rules` on `template.drain`; a default never breaks it (see `Backend.drain`)."""
    drain = spec.template.drain
    if drain is None or drain.pre_stop_seconds is None or drain.grace_period_seconds is None:
        return []
    if drain.grace_period_seconds > drain.pre_stop_seconds:
        return []
    got = rules.GRACE_AFTER_PAUSE_GOT.format(drain.grace_period_seconds, drain.pre_stop_seconds)
    return [f"spec.template.drain.gracePeriodSeconds: {got}"]


def _toleration_problems(where: str, toleration: Mapping[str, Any]) -> list[str]:
    """The toleration's fields are checked by the schema (`TolerationFields`); these span two of them."""
    found = []
    operator = toleration.get("operator", "Equal")
    if operator == "Exists" and toleration.get("value"):
        found.append(f"{where}.value: {rules.TOLERATION_EXISTS_WITH_VALUE_GOT.format(toleration['value'])}")
    if not toleration.get("key") and operator != "Exists":
        found.append(f"{where}: {rules.TOLERATION_WITHOUT_KEY}")
    return found


def _env_var_problems(where: str, entry: Mapping[str, Any]) -> list[str]:
    """The variable's fields are checked by the schema (`EnvVarFields`); these are turnout's own rules."""
    found = []
    name = entry["name"]
    if name in owned_env() or name.startswith(rules.OWNED_ENV_PREFIX):
        found.append(f"{where}.name: {rules.OWNED_ENV_VAR_GOT.format(name)}")
    if entry.get("value") and "valueFrom" in entry:
        found.append(f"{where}: {rules.ENV_VALUE_AND_VALUE_FROM}")
    return found
