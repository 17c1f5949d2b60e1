"""Specs a user can get wrong, and what the user reads for each.

Shared by `test_invalid_specs.py` (the models, always) and `tests/e2e/test_crd_validation.py`
(the CRD on a real API server). `model` is a distinctive part of the InvalidSpec message;
`server` are parts of the API server's rejection. Every case is refused by both: the CRD's schema
and CEL rules refuse all that the models do (spec_variants.py walks the edges of each rule).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

NAME = "chat"
VALID_SPEC: dict[str, Any] = {"engine": "vllm", "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"}}
VALID_OLLAMA_SPEC: dict[str, Any] = {"engine": "ollama", "model": {"name": "llama3:8b"}}


@dataclass(frozen=True)
class Case:
    """One invalid spec and its messages."""

    spec: dict[str, Any]
    model: str
    server: tuple[str, ...]
    name: str = NAME


def vllm(**sections: Any) -> dict[str, Any]:
    """The valid vLLM spec with `sections` merged in (one level deep)."""
    return _merged(VALID_SPEC, sections)


def ollama(**sections: Any) -> dict[str, Any]:
    """The valid Ollama spec with `sections` merged in (one level deep)."""
    return _merged(VALID_OLLAMA_SPEC, sections)


def _analysed(*metrics: dict[str, Any]) -> dict[str, Any]:
    """A vLLM spec whose one-step canary is judged by `metrics`."""
    return vllm(rollout={"canary": {"steps": [{"setWeight": 50}], "analysis": {"metrics": list(metrics)}}})


def _metric(
    *,
    range: dict[str, float] | None = None,
    query: str = 'sum(rate(http_requests_total{status="5xx"}[{{ interval }}]))',
    address: str = "http://prometheus.monitoring:9090",
) -> dict[str, Any]:
    """One analysis metric, valid unless told otherwise."""
    bounds = {"max": 0.05} if range is None else range
    return {"name": "error-rate", "prometheus": {"address": address, "query": query}, "thresholdRange": bounds}


def _merged(base: dict[str, Any], sections: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


INVALID_SPECS = [
    pytest.param(
        Case(
            vllm(resources={"gpus": 3}, vllm={"tensorParallelSize": 2}),
            "spec.vllm.tensorParallelSize: tensorParallelSize must divide resources.gpus",
            (
                "spec.vllm.tensorParallelSize: Invalid value: tensorParallelSize must divide resources.gpus",
                "(got tensorParallelSize 2, gpus 3)",
            ),
        ),
        id="tensor-parallel-does-not-divide-gpus",
    ),
    pytest.param(
        Case(
            vllm(vllm={"tensorParallelSize": 2}),
            "(got tensorParallelSize 2, gpus 1)",
            (
                "spec.vllm.tensorParallelSize",
                "(the GPUs per replica, 1 when unset)",
                "(got tensorParallelSize 2, gpus 1)",
            ),
        ),
        id="tensor-parallel-above-the-default-one-gpu",
    ),
    pytest.param(
        Case(
            vllm(resources={"gpus": 0}),
            "spec.resources.gpus: vLLM needs at least 1 GPU per replica",
            ("spec.resources.gpus", "vLLM needs at least 1 GPU per replica", "(got gpus 0)"),
        ),
        id="vllm-without-gpus",
    ),
    pytest.param(
        Case(
            vllm(vllm={"gpuMemoryUtilization": 0}),
            "spec.vllm.gpuMemoryUtilization: should be greater than 0 (got 0)",
            ("spec.vllm.gpuMemoryUtilization", "should be greater than 0"),
        ),
        id="gpu-memory-utilization-zero",
    ),
    pytest.param(
        Case(
            vllm(vllm={"gpuMemoryUtilization": 1.5}),
            "spec.vllm.gpuMemoryUtilization: should be less than or equal to 1 (got 1.5)",
            ("spec.vllm.gpuMemoryUtilization", "should be less than or equal to 1"),
        ),
        id="gpu-memory-utilization-above-one",
    ),
    pytest.param(
        Case(
            vllm(engine="vlm"),
            "spec.engine: should be 'vllm' or 'ollama' (got 'vlm')",
            ("spec.engine", 'supported values: "vllm", "ollama"'),
        ),
        id="unknown-engine",
    ),
    pytest.param(
        Case({"engine": "vllm"}, "spec.model: Required value", ("spec.model: Required value",)),
        id="model-missing",
    ),
    pytest.param(
        Case(
            vllm(resources={"memory": "64GB"}),
            "spec.resources.memory: must be a Kubernetes quantity such as 8, 500m or 64Gi (got '64GB')",
            ("spec.resources.memory", "must be a Kubernetes quantity such as 8, 500m or 64Gi"),
        ),
        id="memory-not-a-quantity",
    ),
    pytest.param(
        Case(
            vllm(vllm={"extraArgs": ["--enable-prefix-caching", "--max-model-len=4096"]}),
            "spec.vllm.extraArgs[1]: turnout owns vLLM's --max-model-len: set vllm.maxModelLen instead",
            (
                'spec.vllm.extraArgs[1]: Invalid value: "--max-model-len=4096": '
                "turnout owns vLLM's --max-model-len: set vllm.maxModelLen instead",
            ),
        ),
        id="extra-args-set-an-owned-flag",
    ),
    pytest.param(
        Case(
            vllm(vllm={"extraArgs": ["--tensor_parallel_size", "2"]}),
            "spec.vllm.extraArgs[0]: turnout owns vLLM's --tensor-parallel-size: set vllm.tensorParallelSize",
            ("spec.vllm.extraArgs[0]", "turnout owns vLLM's --tensor-parallel-size: set vllm.tensorParallelSize"),
        ),
        id="extra-args-set-an-owned-flag-with-underscores",
    ),
    pytest.param(
        Case(
            vllm(vllm={"extraArgs": ["--max-model", "4096"]}),
            "spec.vllm.extraArgs[0]: vLLM reads --max-model as --max-model-len, which turnout owns",
            ("spec.vllm.extraArgs[0]", "vLLM reads --max-model as --max-model-len, which turnout owns"),
        ),
        id="extra-args-abbreviate-an-owned-flag",
    ),
    pytest.param(
        Case(
            vllm(vllm={"extraArgs": ["--api-ke=secret"]}),
            "spec.vllm.extraArgs[0]: vLLM reads --api-ke as --api-key, which turnout owns: set vllm.apiKeySecretRef",
            (
                "spec.vllm.extraArgs[0]",
                "vLLM reads --api-ke as --api-key, which turnout owns: set vllm.apiKeySecretRef",
            ),
        ),
        id="extra-args-abbreviate-an-owned-flag-with-a-value",
    ),
    pytest.param(
        Case(
            vllm(vllm={"extraArgs": ["--serv=chat"]}),
            "vLLM reads --serv as --served-model-name, which turnout owns: set model.servedName instead",
            ("spec.vllm.extraArgs[0]", "vLLM reads --serv as --served-model-name, which turnout owns"),
        ),
        id="extra-args-abbreviate-the-served-name",
    ),
    pytest.param(
        Case(
            vllm(vllm={"extraArgs": ["--config", "/data/models/vllm.yaml"]}),
            "spec.vllm.extraArgs[0]: turnout owns vLLM's --config: a config file could set the flags turnout owns",
            ("spec.vllm.extraArgs[0]", "turnout owns vLLM's --config: a config file could set the flags turnout owns"),
        ),
        id="extra-args-read-a-config-file",
    ),
    pytest.param(
        Case(
            vllm(vllm={"extraArgs": ["--uds=/tmp/vllm.sock"]}),
            "spec.vllm.extraArgs[0]: turnout owns vLLM's --uds: turnout's Service and checks reach vLLM over plain",
            ("spec.vllm.extraArgs[0]", "turnout owns vLLM's --uds: turnout's Service and checks reach vLLM"),
        ),
        id="extra-args-listen-on-a-unix-socket",
    ),
    pytest.param(
        Case(
            vllm(vllm={"extraArgs": ["--headless"]}),
            "spec.vllm.extraArgs[0]: turnout owns vLLM's --headless",
            ("spec.vllm.extraArgs[0]", "turnout owns vLLM's --headless"),
        ),
        id="extra-args-run-without-a-server",
    ),
    pytest.param(
        Case(
            vllm(vllm={"extraArgs": ["--ssl_certfile=/certs/tls.crt"]}),
            "spec.vllm.extraArgs[0]: turnout owns vLLM's --ssl-certfile",
            ("spec.vllm.extraArgs[0]", "turnout owns vLLM's --ssl-certfile"),
        ),
        id="extra-args-serve-tls",
    ),
    pytest.param(
        Case(
            vllm(vllm={"extraArgs": ["--max-num-seqs 64"]}),
            "spec.vllm.extraArgs[0]: each item is one argv word",
            ("spec.vllm.extraArgs[0]", "each item is one argv word"),
        ),
        id="extra-args-flag-and-value-in-one-item",
    ),
    pytest.param(
        Case(
            vllm(vllm={"extraArgs": ["--max-num-seqs\u00a064"]}),
            "spec.vllm.extraArgs[0]: each item is one argv word",
            ("spec.vllm.extraArgs[0]", "each item is one argv word"),
        ),
        id="extra-args-flag-and-value-in-one-item-with-a-no-break-space",
    ),
    pytest.param(
        Case(
            vllm(vllm={"extraArgs": ["--max-num-seqs=64", "--seed=1", "--max_num_seqs=128"]}),
            "spec.vllm.extraArgs: vLLM silently keeps only the last value of a flag given more than once; keep one "
            "of each (got --max-num-seqs more than once)",
            (
                "spec.vllm.extraArgs: Invalid value: vLLM silently keeps only the last value of a flag given more "
                "than once; keep one of each (got --max-num-seqs more than once)",
            ),
        ),
        id="extra-args-flag-given-twice",
    ),
    pytest.param(
        Case(
            ollama(vllm={"extraArgs": ["--port=8001"]}),
            "spec.vllm.extraArgs[0]: turnout owns vLLM's --port",
            ("spec.vllm.extraArgs[0]", "turnout owns vLLM's --port"),
        ),
        id="extra-args-set-an-owned-flag-while-ollama-runs",
    ),
    pytest.param(
        Case(
            ollama(model={"name": "llama3::8b"}),
            "spec.model.name: with engine ollama, ollama.model (or model.name) must be an Ollama model",
            (
                "spec.model.name: Invalid value: with engine ollama, ollama.model (or model.name) must be an Ollama "
                "model such as llama3:8b",
                "(got 'llama3::8b')",
            ),
        ),
        id="ollama-model-not-a-tag",
    ),
    pytest.param(
        Case(
            vllm(model={"name": "Llama 3.1 8B"}),
            "spec.model.name: must be a model such as org/model",
            ("spec.model.name", "no whitespace, not starting with '-'"),
        ),
        id="model-name-with-spaces",
    ),
    pytest.param(
        Case(
            vllm(model={"name": "Llama\u20033.1"}),
            "spec.model.name: must be a model such as org/model",
            ("spec.model.name", "no whitespace, not starting with '-'"),
        ),
        id="model-name-with-an-em-space",
    ),
    pytest.param(
        Case(
            ollama(template={"drain": {"preStopSeconds": 120, "gracePeriodSeconds": 60}}),
            "spec.template.drain.gracePeriodSeconds: gracePeriodSeconds must exceed preStopSeconds",
            (
                "spec.template.drain.gracePeriodSeconds",
                "gracePeriodSeconds must exceed preStopSeconds: the grace period counts from the pod's deletion",
                "(got gracePeriodSeconds 60, preStopSeconds 120)",
            ),
        ),
        id="drain-grace-shorter-than-the-pause",
    ),
    pytest.param(
        Case(
            vllm(template={"image": "vllm/vllm-openai:v0.32.0\u3000"}),
            "spec.template.image: must not be empty or contain whitespace",
            ("spec.template.image", "must not be empty or contain whitespace"),
        ),
        id="image-with-an-ideographic-space",
    ),
    pytest.param(
        Case(
            vllm(model={"name": "--trust-remote-code"}),
            "spec.model.name: must be a model such as org/model",
            ("spec.model.name", "not starting with '-'"),
        ),
        id="model-name-that-vllm-would-read-as-a-flag",
    ),
    pytest.param(
        Case(
            ollama(ollama={"model": "qwen2.5::7b"}),
            "spec.ollama.model: with engine ollama, ollama.model (or model.name) must be an Ollama model",
            (
                "spec.ollama.model: Invalid value: with engine ollama, ollama.model (or model.name)",
                "(got 'qwen2.5::7b')",
            ),
        ),
        id="ollama-override-not-a-tag",
    ),
    pytest.param(
        Case(
            vllm(template={"affinity": {"nodeAfinity": {}}}),
            "spec.template.affinity.nodeAfinity: unknown field",
            ('unknown field "spec.template.affinity.nodeAfinity"',),
        ),
        id="affinity-misspelt",
    ),
    pytest.param(
        Case(
            vllm(template={"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{}]}}}),
            "spec.template.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: "
            "Required value",
            ("podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Required value",),
        ),
        id="affinity-term-without-weight",
    ),
    pytest.param(
        Case(
            vllm(template={"affinity": {"nodeAffinity": {"k" * 300: {}}}}),
            "spec.template.affinity.nodeAffinity.kkkk",
            ('unknown field "spec.template.affinity.nodeAffinity.kkkk',),
        ),
        id="affinity-key-of-300-characters",
    ),
    pytest.param(
        Case(
            vllm(service={"name": "1chat"}),
            "spec.service.name: must be a Service name such as chat-v2",
            ("spec.service.name", "must be a Service name such as chat-v2"),
        ),
        id="service-name-starts-with-a-digit",
    ),
    pytest.param(
        Case(
            vllm(),
            "metadata.name: a backend's name is also its Service's name unless spec.service.name is set",
            (
                "metadata.name: Invalid value: a backend's name is also its Service's name unless spec.service.name "
                "is set",
                "(got 'chat.v2')",
            ),
            name="chat.v2",
        ),
        id="backend-name-is-no-service-name",
    ),
    pytest.param(
        Case(
            vllm(),
            "metadata.name: must be at most 57 characters: turnout names the Deployments <name>-blue and "
            "<name>-green (got 58 characters)",
            (
                "metadata.name: Invalid value: must be at most 57 characters: turnout names the Deployments "
                "<name>-blue and <name>-green (got 58 characters)",
            ),
            name="a" * 58,
        ),
        id="backend-name-too-long",
    ),
    pytest.param(
        Case(
            vllm(template={"env": [{"name": "VLLM_API_KEY", "value": "secret"}]}),
            "spec.template.env[0].name: turnout sets this variable itself",
            ("spec.template.env[0].name", "turnout sets this variable itself", "(got VLLM_API_KEY)"),
        ),
        id="env-sets-the-api-key",
    ),
    pytest.param(
        Case(
            vllm(template={"env": ["LOG_LEVEL=debug"]}),
            "spec.template.env[0]: should be an object of fields, not str",
            ("spec.template.env[0]", "must be of type object"),
        ),
        id="env-entry-written-as-a-shell-assignment",
    ),
    pytest.param(
        Case(
            vllm(template={"env": [{"name": "LOG", "value": "1"}, {"name": "LOG", "value": "2"}]}),
            "spec.template.env[1].name: LOG is already set by env[0]; keep one",
            ("spec.template.env[1]", "Duplicate value"),
        ),
        id="env-name-twice",
    ),
    pytest.param(
        Case(
            vllm(template={"env": [{"name": "TOKEN", "value": "x", "valueFrom": {"secretKeyRef": {}}}]}),
            "spec.template.env[0]: set either value or valueFrom, not both",
            ("spec.template.env[0]", "set either value or valueFrom, not both"),
        ),
        id="env-value-and-value-from",
    ),
    pytest.param(
        Case(
            vllm(template={"podLabels": {"app.kubernetes.io/instance": "mine"}}),
            "spec.template.podLabels: turnout sets app.kubernetes.io/name",
            ("spec.template.podLabels", "turnout sets app.kubernetes.io/name", "(got app.kubernetes.io/instance)"),
        ),
        id="pod-label-overrides-turnouts-own",
    ),
    pytest.param(
        Case(
            vllm(template={"podLabels": {"team": "ml platform"}}),
            "spec.template.podLabels[team]: must be a label value",
            ("spec.template.podLabels[team]", "must be a label value"),
        ),
        id="pod-label-value-with-a-space",
    ),
    pytest.param(
        Case(
            vllm(template={"tolerations": [{"key": "gpu", "operator": "Exists", "value": "a100"}]}),
            "spec.template.tolerations[0].value: a toleration with operator Exists matches any value",
            (
                "spec.template.tolerations[0].value",
                "a toleration with operator Exists matches any value",
                "(got 'a100')",
            ),
        ),
        id="toleration-exists-with-a-value",
    ),
    pytest.param(
        Case(
            vllm(template={"tolerations": [{"effect": "NoSchedule"}]}),
            "spec.template.tolerations[0]: a toleration without a key matches every taint and needs operator Exists",
            ("spec.template.tolerations[0]", "a toleration without a key matches every taint"),
        ),
        id="toleration-without-key-or-exists",
    ),
    pytest.param(
        Case(
            vllm(template={"tolerations": [{"key": "gpu", "efect": "NoSchedule"}]}),
            "spec.template.tolerations[0].efect: unknown field",
            ('unknown field "spec.template.tolerations[0].efect"',),
        ),
        id="toleration-field-misspelt",
    ),
    pytest.param(
        Case(
            vllm(template={"tolerations": [{"key": "gpu", "value": "a" * 64}]}),
            "spec.template.tolerations[0].value: String should have at most 63 characters",
            ("spec.template.tolerations[0].value: Too long",),
        ),
        id="toleration-value-too-long",
    ),
    pytest.param(
        Case(
            vllm(template={"imagePullSecrets": ["registry", "registry"]}),
            "spec.template.imagePullSecrets[1]: registry is already listed as imagePullSecrets[0]; keep one",
            ('spec.template.imagePullSecrets[1]: Duplicate value: "registry"',),
        ),
        id="image-pull-secret-twice",
    ),
    pytest.param(
        Case(
            vllm(replicas="2"),
            "spec.replicas: should be a valid integer",
            ('spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer',),
        ),
        id="replicas-as-text",
    ),
    pytest.param(
        Case(
            vllm(vllm={"max_model_len": 4096}),
            "spec.vllm.max_model_len: unknown field",
            ('unknown field "spec.vllm.max_model_len"',),
        ),
        id="field-in-snake-case",
    ),
    pytest.param(
        Case(
            vllm(vllm={"gpuMemoryUtilisation": 0.8}),
            "spec.vllm.gpuMemoryUtilisation: unknown field; check its spelling",
            ('unknown field "spec.vllm.gpuMemoryUtilisation"',),
        ),
        id="spec-field-misspelt",
    ),
    pytest.param(
        Case(
            vllm(model={"name": "m", "storage": {"create": True, "accessModes": ["ReadWriteOncePod"]}}),
            "spec.model.storage.accessModes: a ReadWriteOncePod claim can be mounted by one pod only",
            (
                "spec.model.storage.accessModes",
                "a ReadWriteOncePod claim can be mounted by one pod only",
                "(got strategy BlueGreen, replicas 1)",
            ),
        ),
        id="read-write-once-pod-claim-with-blue-green",
    ),
    pytest.param(
        Case(
            vllm(rollout={"strategy": "Recreate", "benchmark": {"minThroughputRatio": 3.0}}),
            "spec.rollout.benchmark: strategy Recreate scales the serving revision down before the new one starts",
            ("spec.rollout.benchmark", "strategy Recreate scales the serving revision down before the new one starts"),
        ),
        id="recreate-benchmark-ratio",
    ),
    pytest.param(
        Case(
            vllm(model={"name": "nomic-ai/nomic-embed-text-v1.5", "task": "embedding"}, rollout={"benchmark": {}}),
            "spec.rollout.benchmark: rollout.benchmark measures streamed chat completions",
            ("spec.rollout.benchmark", "rollout.benchmark measures streamed chat completions"),
        ),
        id="embedding-with-benchmark",
    ),
    pytest.param(
        Case(
            ollama(model={"name": "llava:7b", "task": "vision"}),
            "spec.model.task: should be 'chat' or 'embedding'",
            ("spec.model.task", 'supported values: "chat", "embedding"'),
        ),
        id="task-vision",
    ),
    pytest.param(
        Case(
            vllm(rollout={"strategy": "Canary"}),
            "spec.rollout.strategy: strategy Canary needs rollout.canary.steps",
            ("spec.rollout.strategy", "strategy Canary needs rollout.canary.steps"),
        ),
        id="canary-without-steps",
    ),
    pytest.param(
        Case(
            vllm(rollout={"strategy": "Canary", "canary": {"steps": [{"setWeight": 50}], "maxSurge": 0}}),
            "spec.rollout.canary: a canary runs both revisions at once: with replicas 1",
            ("spec.rollout.canary", "a canary runs both revisions at once: with replicas 1"),
        ),
        id="canary-of-one-replica-without-surge",
    ),
    pytest.param(
        Case(
            vllm(
                service={"name": "s" * 58},
                rollout={"canary": {"steps": [{"setWeight": 50}], "traffic": {"httpRoute": {"name": "chat"}}}},
            ),
            "spec.service.name: with canary.traffic.httpRoute, turnout names the colors' Services",
            (
                "spec.service.name",
                "with canary.traffic.httpRoute, turnout names the colors' Services",
                "service.name must be at most 57 characters (got 58 characters)",
            ),
        ),
        id="routed-service-name-too-long",
    ),
    pytest.param(
        Case(
            vllm(rollout={"canary": {"steps": [{"setWeight": 10, "pause": {}}]}}),
            "spec.rollout.canary.steps[0]: each canary step is either setWeight or pause",
            ("spec.rollout.canary.steps[0]", "each canary step is either setWeight or pause: set exactly one"),
        ),
        id="canary-step-of-two-kinds",
    ),
    pytest.param(
        Case(
            vllm(rollout={"canary": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 20}]}}),
            "spec.rollout.canary.steps: the setWeight steps must increase from one to the next (got 50, 20)",
            ("spec.rollout.canary.steps", "the setWeight steps must increase from one to the next (got 50, 20)"),
        ),
        id="canary-weights-decreasing",
    ),
    pytest.param(
        Case(
            _analysed(_metric(range={})),
            "spec.rollout.canary.analysis.metrics[0].thresholdRange: a metric's thresholdRange needs min, max or both",
            (
                "spec.rollout.canary.analysis.metrics[0].thresholdRange",
                "a metric's thresholdRange needs min, max or both",
            ),
        ),
        id="metric-without-range",
    ),
    pytest.param(
        Case(
            _analysed(_metric(range={"min": 0.5, "max": 0.1})),
            "spec.rollout.canary.analysis.metrics[0].thresholdRange.min: a metric's thresholdRange.min must not be",
            (
                "spec.rollout.canary.analysis.metrics[0].thresholdRange.min",
                "a metric's thresholdRange.min must not be above",
            ),
        ),
        id="metric-range-inverted",
    ),
    pytest.param(
        Case(
            _analysed(_metric(), _metric()),
            "spec.rollout.canary.analysis.metrics[1].name: error-rate is already the name of metrics[0]; keep one",
            ("spec.rollout.canary.analysis.metrics[1]", "Duplicate value"),
        ),
        id="metric-name-twice",
    ),
    pytest.param(
        Case(
            _analysed(_metric(query='up{pod="{{ pod }}"}')),
            "spec.rollout.canary.analysis.metrics[0].prometheus.query: must be a PromQL query whose only {{ }} are",
            ("spec.rollout.canary.analysis.metrics[0].prometheus.query", "whose only {{ }} are turnout's variables"),
        ),
        id="metric-query-unknown-variable",
    ),
    pytest.param(
        Case(
            _analysed(_metric(address="prometheus:9090")),
            "spec.rollout.canary.analysis.metrics[0].prometheus.address: must be a Prometheus server's URL",
            ("spec.rollout.canary.analysis.metrics[0].prometheus.address", "must be a Prometheus server's URL"),
        ),
        id="metric-address-not-a-url",
    ),
    pytest.param(
        Case(
            vllm(model={"name": "m", "storage": {"mountPath": "models"}}),
            "spec.model.storage.mountPath: must be an absolute directory path such as /data/models",
            ("spec.model.storage.mountPath", "must be an absolute directory path such as /data/models"),
        ),
        id="mount-path-relative",
    ),
    pytest.param(
        Case(
            vllm(rollout={"readyTimeoutSeconds": 10}),
            "spec.rollout.readyTimeoutSeconds: should be greater than or equal to 30 (got 10)",
            ("spec.rollout.readyTimeoutSeconds", "should be greater than or equal to 30"),
        ),
        id="ready-timeout-too-short-for-weights",
    ),
    pytest.param(
        Case(
            vllm(rollout={"benchmark": {"requests": 5000}}),
            "spec.rollout.benchmark.requests: should be less than or equal to 1000 (got 5000)",
            ("spec.rollout.benchmark.requests", "should be less than or equal to 1000"),
        ),
        id="benchmark-more-requests-than-the-old-revision-may-get",
    ),
    pytest.param(
        Case(
            vllm(rollout={"benchmark": {"minThroughputRatio": 0}}),
            "spec.rollout.benchmark.minThroughputRatio: should be greater than 0 (got 0)",
            ("spec.rollout.benchmark.minThroughputRatio", "should be greater than 0"),
        ),
        id="benchmark-throughput-ratio-zero",
    ),
    pytest.param(
        Case(
            vllm(rollout={"benchmark": {"prompts": {"configMapKeyRef": {"name": "prompts", "key": "chat/1.jsonl"}}}}),
            "spec.rollout.benchmark.prompts.configMapKeyRef.key: must be a data key such as token or prompts.jsonl",
            ("spec.rollout.benchmark.prompts.configMapKeyRef.key", "must be a data key such as token or prompts.jsonl"),
        ),
        id="benchmark-prompts-key-with-a-slash",
    ),
    pytest.param(
        Case(
            ollama(ollama={"keepAlive": "forever"}),
            "spec.ollama.keepAlive: must be a duration such as 30m or 24h",
            ("spec.ollama.keepAlive", "must be a duration such as 30m or 24h"),
        ),
        id="ollama-keep-alive-not-a-duration",
    ),
    pytest.param(
        Case(
            vllm(vllm={"dtype": "fp8"}),
            "spec.vllm.dtype: should be 'auto', 'half', 'float16', 'bfloat16', 'float' or 'float32'",
            ("spec.vllm.dtype", 'supported values: "auto", "half"'),
        ),
        id="dtype-unknown",
    ),
    pytest.param(
        Case(
            vllm(vllm={"apiKeySecretRef": {"name": "vllm-key"}}),
            "spec.vllm.apiKeySecretRef.key: Required value",
            ("spec.vllm.apiKeySecretRef.key: Required value",),
        ),
        id="api-key-secret-without-key",
    ),
]
