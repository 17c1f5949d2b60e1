"""Specs made from the valid ones by systematic mutations, each with the verdict both layers must give.

Where the invalid-spec table (invalid_specs.py) holds one spec per mistake with its messages, this
corpus walks each rule's edges: every owned vLLM flag in every spelling (and near misses that are
not one), flags given twice, every Unicode whitespace character in every field that refuses
whitespace (and characters that only look like it), affinities, names, and the bounds of every
range. Then random combinations of those mutations, whose verdict is not written down: the models
and the API server only have to agree on it.

Shared by test_spec_variants.py (the models: the verdict written here) and
tests/e2e/test_crd_validation.py (the API server: the models' verdict, in one batch).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any

from tests.unit.api.invalid_specs import NAME, VALID_OLLAMA_SPEC, VALID_SPEC
from turnout.api.rules import OWNED_ENV, RESERVED_LABELS
from turnout.api.spec import WHITESPACE
from turnout.engines.vllm import REFUSED_FLAGS

# Characters that are no whitespace, though Python's str.isspace() or a reader may take them for it.
NOT_WHITESPACE = ("\x1c", "\u200b", "\ufeff", "\u180e")
AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": ["A100"]}]}
            ]
        },
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": []}]}}
        ],
    },
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "chat"}},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }
        ]
    },
}


@dataclass(frozen=True)
class Variant:
    """One spec, what was done to it, and whether it must be refused (None: whatever, but alike)."""

    what: str
    spec: dict[str, Any]
    refused: bool | None
    name: str = NAME


def with_values(base: dict[str, Any], **values: Any) -> dict[str, Any]:
    """`base` with each dotted path (`vllm__extraArgs` for `vllm.extraArgs`) set to its value."""
    spec = copy.deepcopy(base)
    for path, value in values.items():
        node = spec
        *parents, leaf = path.split("__")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return spec


def extra_args(*words: str, base: dict[str, Any] = VALID_SPEC) -> dict[str, Any]:
    return with_values(base, vllm__extraArgs=list(words))


def underscored(flag: str) -> str:
    return "--" + flag[2:].replace("-", "_")


def owned_flag_variants() -> list[Variant]:
    """Each flag turnout owns, in each spelling vLLM reads as it; and words that only look like one."""
    found = []
    for flag, (shortest, _) in REFUSED_FLAGS.items():
        words = [flag, f"{flag}=1", f"{flag}.key=1", shortest, f"{shortest}=1"]
        if flag.startswith("--"):
            words += [f"{underscored(flag)}=1", underscored(shortest)]
        found += [Variant(f"extraArgs {word}", extra_args(word), True) for word in dict.fromkeys(words)]
        found.append(Variant(f"extraArgs {flag}x (no such flag)", extra_args(f"{flag}x=1"), False))
    not_owned = [
        *("--max-", "--api-", "--ss", "--ssl-", "--ssl-cert", "--gr", "--dev", "--he", "--mode", "--conf"),
        *("--config-format=auto", "--model-impl=auto", "--hostname", "--Port=1", "-T", "---port", "--", "-", "port"),
        *("--max-num-seqs=64", "--api-server-count=2", "--enable-prefix-caching", "--seed=-1", "--hf-overrides.a=1"),
    ]
    found += [Variant(f"extraArgs {word} (owns nothing)", extra_args(word), False) for word in not_owned]
    found.append(
        Variant("ollama, with an owned flag in vllm.extraArgs", extra_args("--port=1", base=VALID_OLLAMA_SPEC), True)
    )
    found.append(Variant("an owned flag's name as a value", extra_args("--chat-template", "port"), False))
    return found


def repeated_flag_variants() -> list[Variant]:
    cases: list[tuple[tuple[str, ...], bool]] = [
        (("--max-num-seqs=1", "--max-num-seqs=2"), True),
        (("--max_num_seqs=1", "--max-num-seqs=2"), True),
        (("--seed", "1", "--seed", "2"), True),
        (("--enforce-eager", "--enforce_eager"), True),
        (("-q", "awq", "-q", "fp8"), True),
        (("--seed=1", "--seed=2", "--seed=3", "--max-num-seqs=1", "--max-num-seqs=2"), True),
        (("--hf-overrides.a=1", "--hf-overrides.a=2"), True),
        (("--hf-overrides.a=1", "--hf-overrides.b=2"), False),
        (("--hf-overrides.a_b=1", "--hf-overrides.a-b=2"), False),
        (("--middleware", "a.b", "--middleware=c.d"), False),
        (("--seed", "-1", "--max-logprobs", "-1"), False),
        (("--max-num-seqs=1", "--max-num-batched-tokens=8192"), False),
        (("--max-num-seqs=1", "--max-num-se=2"), False),  # abbreviations are not compared
    ]
    return [Variant(f"extraArgs {' '.join(words)}", extra_args(*words), refused) for words, refused in cases]


def whitespace_variants() -> list[Variant]:
    """Each whitespace character (and a few that are not) where names and flags refuse whitespace."""
    found = []
    for character in sorted(WHITESPACE) + list(NOT_WHITESPACE):
        space = character in WHITESPACE
        shown = f"U+{ord(character):04X}"
        found += [
            Variant(f"extraArgs flag with {shown}", extra_args(f"--max-num-seqs{character}64"), space),
            Variant(f"extraArgs value with {shown}", extra_args(f"--chat-template=a{character}b"), False),
            Variant(f"model.name with {shown}", with_values(VALID_SPEC, model__name=f"org/m{character}x"), space),
            Variant(f"vllm.model with {shown}", with_values(VALID_SPEC, vllm__model=f"org/m{character}x"), space),
            Variant(
                f"template.image with {shown}", with_values(VALID_SPEC, template__image=f"img{character}:1"), space
            ),
            Variant(
                f"model.servedName with {shown}", with_values(VALID_SPEC, model__servedName=f"c{character}x"), True
            ),
        ]
    return found


def affinity_variants() -> list[Variant]:
    def affinity(value: Any) -> dict[str, Any]:
        return with_values(VALID_SPEC, template__affinity=value)

    node = AFFINITY["nodeAffinity"]
    long_key = "k" * 300
    return [
        Variant("a full affinity", affinity(AFFINITY), False),
        Variant("an empty affinity", affinity({}), False),
        Variant("affinity: a misspelt top-level key", affinity({"nodeAfinity": node}), True),
        Variant("affinity: a top-level key in snake_case", affinity({"node_affinity": node}), True),
        Variant("affinity: a key of 300 characters", affinity({long_key: {}}), True),
        Variant("affinity: a key of 300 characters, deeper", affinity({"nodeAffinity": {long_key: 1}}), True),
        Variant("affinity: a misspelt key, deeper", affinity({"podAffinity": {"requiredDuringScheduling": []}}), True),
        Variant("affinity: a node selector without terms", affinity({"nodeAffinity": {node_required(): {}}}), True),
        Variant("affinity: an operator of no such kind", affinity(node_expression(operator="in")), True),
        Variant("affinity: an expression without a key", affinity(node_expression(key=None)), True),
        Variant("affinity: a value that is no string", affinity(node_expression(values=[1])), True),
        Variant("affinity: weight 0", affinity(pod_term(weight=0)), True),
        Variant("affinity: weight 1", affinity(pod_term(weight=1)), False),
        Variant("affinity: weight 100", affinity(pod_term(weight=100)), False),
        Variant("affinity: weight 101", affinity(pod_term(weight=101)), True),
        Variant("affinity: a term without topologyKey", affinity(pod_term(topology_key=None)), True),
        Variant("affinity: a label key of 317 characters", affinity(pod_term(label=label_key(317))), False),
        Variant("affinity: a label key of 318 characters", affinity(pod_term(label=label_key(318))), True),
        Variant("affinity: a label key that is no label key", affinity(pod_term(label="a b")), True),
    ]


def label_key(length: int) -> str:
    """A label key of `length` characters: a DNS prefix, '/' and a name of 63 characters."""
    return "a" * (length - 64) + "/" + "k" * 63


def node_required() -> str:
    return "requiredDuringSchedulingIgnoredDuringExecution"


def node_expression(**fields: Any) -> dict[str, Any]:
    expression = {"key": "zone", "operator": "In", "values": ["a"], **fields}
    expression = {key: value for key, value in expression.items() if value is not None}
    return {"nodeAffinity": {node_required(): {"nodeSelectorTerms": [{"matchExpressions": [expression]}]}}}


def pod_term(weight: int = 1, topology_key: str | None = "zone", label: str = "app") -> dict[str, Any]:
    term: dict[str, Any] = {"labelSelector": {"matchLabels": {label: "chat"}}}
    if topology_key is not None:
        term["topologyKey"] = topology_key
    return {
        "podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": weight, "podAffinityTerm": term}]
        }
    }


def name_variants() -> list[Variant]:
    named = with_values(VALID_SPEC, service__name="chat")
    return [
        Variant("name of 57 characters", VALID_SPEC, False, name="a" * 57),
        Variant("name of 58 characters", VALID_SPEC, True, name="a" * 58),
        Variant("name of 58 characters, Service named", named, True, name="a" * 58),
        Variant("name with a dot", VALID_SPEC, True, name="chat.v2"),
        Variant("name with a dot, Service named", named, False, name="chat.v2"),
        Variant("name starting with a digit", VALID_SPEC, True, name="1chat"),
        Variant("name starting with a digit, Service named", named, False, name="1chat"),
        Variant("name with a capital letter, Service named", named, True, name="Chat"),
    ]


# (what, the values set on the vLLM spec by their paths, refused).
BOUNDS: list[tuple[str, dict[str, Any], bool]] = [
    ("gpus 0", {"resources__gpus": 0}, True),
    ("gpus 64", {"resources__gpus": 64}, False),
    ("gpus 65", {"resources__gpus": 65}, True),
    ("ollama, gpus 0", {"engine": "ollama", "model__name": "llama3", "resources__gpus": 0}, False),
    ("gpus 8, tensorParallelSize 8", {"resources__gpus": 8, "vllm__tensorParallelSize": 8}, False),
    ("gpus 8, tensorParallelSize 3", {"resources__gpus": 8, "vllm__tensorParallelSize": 3}, True),
    ("gpus 6, tensorParallelSize 4", {"resources__gpus": 6, "vllm__tensorParallelSize": 4}, True),
    ("gpus unset, tensorParallelSize 1", {"vllm__tensorParallelSize": 1}, False),
    ("gpus unset, tensorParallelSize 2", {"vllm__tensorParallelSize": 2}, True),
    (
        "ollama, gpus 1, tensorParallelSize 2",
        {"engine": "ollama", "model__name": "llama3", "vllm__tensorParallelSize": 2},
        False,
    ),
    ("tensorParallelSize 0", {"vllm__tensorParallelSize": 0}, True),
    ("tensorParallelSize 65", {"resources__gpus": 64, "vllm__tensorParallelSize": 65}, True),
    ("gpuMemoryUtilization 0", {"vllm__gpuMemoryUtilization": 0}, True),
    ("gpuMemoryUtilization 0.01", {"vllm__gpuMemoryUtilization": 0.01}, False),
    ("gpuMemoryUtilization 1", {"vllm__gpuMemoryUtilization": 1}, False),
    ("gpuMemoryUtilization 1.0001", {"vllm__gpuMemoryUtilization": 1.0001}, True),
    ("maxModelLen 15", {"vllm__maxModelLen": 15}, True),
    ("maxModelLen 16", {"vllm__maxModelLen": 16}, False),
    ("maxModelLen 10485760", {"vllm__maxModelLen": 10_485_760}, False),
    ("maxModelLen 10485761", {"vllm__maxModelLen": 10_485_761}, True),
    ("replicas 0", {"replicas": 0}, False),
    ("replicas 1000", {"replicas": 1000}, False),
    ("replicas 1001", {"replicas": 1001}, True),
    ("replicas -1", {"replicas": -1}, True),
    ("service.port 0", {"service__port": 0}, True),
    ("service.port 65535", {"service__port": 65535}, False),
    ("service.port 65536", {"service__port": 65536}, True),
    ("readyTimeoutSeconds 29", {"rollout__readyTimeoutSeconds": 29}, True),
    ("readyTimeoutSeconds 86400", {"rollout__readyTimeoutSeconds": 86_400}, False),
    ("readyTimeoutSeconds 86401", {"rollout__readyTimeoutSeconds": 86_401}, True),
    ("checks.intervalSeconds 0", {"rollout__checks__intervalSeconds": 0}, True),
    ("checks.intervalSeconds 300", {"rollout__checks__intervalSeconds": 300}, False),
    ("checks.healthyIntervalSeconds 4", {"rollout__checks__healthyIntervalSeconds": 4}, True),
    ("bakeSeconds 0", {"rollout__bakeSeconds": 0}, False),
    ("ollama.numParallel 0", {"ollama__numParallel": 0}, True),
    ("ollama.numParallel 512", {"ollama__numParallel": 512}, False),
    ("ollama.numParallel 513", {"ollama__numParallel": 513}, True),
    ("ollama.contextLength 255", {"ollama__contextLength": 255}, True),
    ("ollama.contextLength 256", {"ollama__contextLength": 256}, False),
    ("ollama.keepAlive -1", {"ollama__keepAlive": "-1"}, False),
    ("ollama.keepAlive 1h30m", {"ollama__keepAlive": "1h30m"}, False),
    ("ollama.keepAlive -2", {"ollama__keepAlive": "-2"}, True),
    ("ollama.keepAlive 30 m", {"ollama__keepAlive": "30 m"}, True),
    ("extraArgs of 128 items", {"vllm__extraArgs": [f"--x{index}" for index in range(128)]}, False),
    ("extraArgs of 129 items", {"vllm__extraArgs": [f"--x{index}" for index in range(129)]}, True),
    ("an extra argument of 4096 characters", {"vllm__extraArgs": ["--chat-template=" + "x" * 4080]}, False),
    ("an extra argument of 4097 characters", {"vllm__extraArgs": ["--chat-template=" + "x" * 4081]}, True),
    ("an empty extra argument", {"vllm__extraArgs": [""]}, True),
    ("a field in snake_case", {"vllm__max_model_len": 4096}, True),
    ("a memory quantity 64Gi", {"resources__memory": "64Gi"}, False),
    ("a memory quantity 64 Gi", {"resources__memory": "64 Gi"}, True),
    (
        "storage RWOP, created, BlueGreen",
        {"model__storage": {"create": True, "accessModes": ["ReadWriteOncePod"]}},
        True,
    ),
    (
        "storage RWOP, created, Recreate, replicas 1",
        {"model__storage": {"create": True, "accessModes": ["ReadWriteOncePod"]}, "rollout__strategy": "Recreate"},
        False,
    ),
    (
        "storage RWOP, created, Recreate, replicas 2",
        {
            "model__storage": {"create": True, "accessModes": ["ReadWriteOncePod"]},
            "rollout__strategy": "Recreate",
            "replicas": 2,
        },
        True,
    ),
    ("canary steps 10, 10", {"rollout__canary": {"steps": [{"setWeight": 10}, {"setWeight": 10}]}}, True),
    ("canary steps 10, 11", {"rollout__canary": {"steps": [{"setWeight": 10}, {"setWeight": 11}]}}, False),
    (
        "canary steps 0, pause, 100",
        {"rollout__canary": {"steps": [{"setWeight": 0}, {"pause": {}}, {"setWeight": 100}]}},
        False,
    ),
    ("canary step setWeight 101", {"rollout__canary": {"steps": [{"setWeight": 101}]}}, True),
    ("canary step of neither kind", {"rollout__canary": {"steps": [{}]}}, True),
    ("canary of no steps", {"rollout__canary": {"steps": []}}, True),
    ("canary of 33 steps", {"rollout__canary": {"steps": [{"pause": {"seconds": 1}}] * 33}}, True),
    ("canary pause 0 s", {"rollout__canary": {"steps": [{"pause": {"seconds": 0}}]}}, True),
    *(
        (
            f"canary metric {label}",
            {
                "rollout__canary": {
                    "steps": [{"setWeight": 5}],
                    "analysis": {
                        "metrics": [
                            {
                                "name": "errors",
                                "prometheus": {"address": "http://prometheus:9090", "query": query},
                                "thresholdRange": bounds,
                            }
                        ]
                    },
                }
            },
            invalid,
        )
        for label, query, bounds, invalid in (
            (
                "using every variable",
                'x{ns="{{namespace}}",b="{{ backend }}",s="{{ service }}",c="{{ canaryColor }}",'
                'r="{{canaryRevision}}",o="{{ stableColor }}",v="{{ stableRevision }}"}[{{ interval }}] '
                "offset {{ window }}",
                {"max": 1},
                False,
            ),
            ("with a PromQL selector in braces", 'sum(up{job="x"}) > bool 0', {"min": 1, "max": 1}, False),
            ("with an unknown variable", "x[{{ duration }}]", {"max": 1}, True),
            ("with an unclosed variable", "x[{{ interval ]", {"max": 1}, True),
            ("min only", "x", {"min": 0}, False),
            ("min above max", "x", {"min": 2, "max": 1}, True),
            ("with no bound", "x", {}, True),
        )
    ),
    (
        "canary maxErrorRatio 1.5",
        {"rollout__canary": {"steps": [{"setWeight": 5}], "analysis": {"maxErrorRatio": 1.5}}},
        True,
    ),
    (
        "canary maxLatencyRatio 0.5",
        {"rollout__canary": {"steps": [{"setWeight": 5}], "analysis": {"maxLatencyRatio": 0.5}}},
        True,
    ),
    (
        "strategy Canary, replicas 1, maxSurge 0",
        {"rollout__strategy": "Canary", "rollout__canary": {"steps": [{"setWeight": 50}], "maxSurge": 0}},
        True,
    ),
    (
        "strategy Canary, replicas 2, maxSurge 0",
        {
            "rollout__strategy": "Canary",
            "replicas": 2,
            "rollout__canary": {"steps": [{"setWeight": 50}], "maxSurge": 0},
        },
        False,
    ),
    (
        "strategy Canary, replicas 1, default maxSurge",
        {"rollout__strategy": "Canary", "rollout__canary": {"steps": [{"setWeight": 50}]}},
        False,
    ),
    ("strategy Canary without canary", {"rollout__strategy": "Canary"}, True),
    (
        "Recreate, maxLatencyRatio",
        {"rollout__strategy": "Recreate", "rollout__benchmark": {"maxLatencyRatio": 0.7}},
        True,
    ),
    (
        "Recreate, minOutputTokensPerSecond",
        {"rollout__strategy": "Recreate", "rollout__benchmark": {"minOutputTokensPerSecond": 10}},
        False,
    ),
    ("BlueGreen, minThroughputRatio", {"rollout__benchmark": {"minThroughputRatio": 3}}, False),
    ("task embedding", {"model__task": "embedding"}, False),
    (
        "task embedding, allowDimensionChange",
        {"model__task": "embedding", "rollout__allowDimensionChange": True},
        False,
    ),
    ("task chat, benchmark", {"model__task": "chat", "rollout__benchmark": {"requests": 10}}, False),
    ("task embedding, benchmark", {"model__task": "embedding", "rollout__benchmark": {"requests": 10}}, True),
    ("task embedding, empty benchmark", {"model__task": "embedding", "rollout__benchmark": {}}, True),
    ("task vision", {"model__task": "vision"}, True),
    (
        "httpRoute with a service name of 57 characters",
        {
            "service__name": "s" * 57,
            "rollout__canary": {"steps": [{"setWeight": 5}], "traffic": {"httpRoute": {"name": "r"}}},
        },
        False,
    ),
    (
        "httpRoute with a service name of 58 characters",
        {
            "service__name": "s" * 58,
            "rollout__canary": {"steps": [{"setWeight": 5}], "traffic": {"httpRoute": {"name": "r"}}},
        },
        True,
    ),
    ("storage RWOP, not created", {"model__storage": {"accessModes": ["ReadWriteOncePod"]}}, False),
    ("drain: grace above the pause", {"template__drain": {"preStopSeconds": 5, "gracePeriodSeconds": 6}}, False),
    ("drain: grace equal to the pause", {"template__drain": {"preStopSeconds": 5, "gracePeriodSeconds": 5}}, True),
    ("drain: grace below the pause", {"template__drain": {"preStopSeconds": 60, "gracePeriodSeconds": 30}}, True),
    ("drain: no pause", {"template__drain": {"preStopSeconds": 0, "gracePeriodSeconds": 1}}, False),
    ("drain: a pause alone, longer than the default grace", {"template__drain": {"preStopSeconds": 600}}, False),
    ("drain: a grace period alone, below the default pause", {"template__drain": {"gracePeriodSeconds": 2}}, False),
    ("drain: grace 0", {"template__drain": {"gracePeriodSeconds": 0}}, True),
    ("drain: grace of a day", {"template__drain": {"gracePeriodSeconds": 86_400}}, False),
    ("drain: grace above a day", {"template__drain": {"gracePeriodSeconds": 86_401}}, True),
    ("drain: a negative pause", {"template__drain": {"preStopSeconds": -1}}, True),
    ("drain: a pause of an hour and one second", {"template__drain": {"preStopSeconds": 3601}}, True),
    ("a toleration value of 63 characters", {"template__tolerations": [{"key": "k", "value": "v" * 63}]}, False),
    ("a toleration value of 64 characters", {"template__tolerations": [{"key": "k", "value": "v" * 64}]}, True),
    ("a toleration with an empty effect", {"template__tolerations": [{"key": "k", "effect": ""}]}, False),
    ("a toleration with an empty operator", {"template__tolerations": [{"key": "k", "operator": ""}]}, True),
    ("a toleration with seconds as text", {"template__tolerations": [{"key": "k", "tolerationSeconds": "5"}]}, True),
    ("a toleration with no key and Exists", {"template__tolerations": [{"operator": "Exists"}]}, False),
    ("an env name of 256 characters", {"template__env": [{"name": "V" * 256, "value": "1"}]}, False),
    ("an env name of 257 characters", {"template__env": [{"name": "V" * 257, "value": "1"}]}, True),
    ("an env value that is a number", {"template__env": [{"name": "V", "value": 1}]}, True),
    ("an env value and an empty valueFrom", {"template__env": [{"name": "V", "value": "", "valueFrom": {}}]}, False),
    ("an env variable named TURNOUT", {"template__env": [{"name": "TURNOUT", "value": "1"}]}, False),
    ("an env variable named TURNOUT_X", {"template__env": [{"name": "TURNOUT_X", "value": "1"}]}, True),
    ("an image pull secret twice", {"template__imagePullSecrets": ["a", "a"]}, True),
    ("two image pull secrets", {"template__imagePullSecrets": ["a", "b"]}, False),
    ("a pod label key of 317 characters", {"template__podLabels": {label_key(317): "x"}}, False),
    ("a pod label key of 318 characters", {"template__podLabels": {label_key(318): "x"}}, True),
    ("a node selector key of 318 characters", {"template__nodeSelector": {label_key(318): "x"}}, True),
    ("a pod annotation key of 318 characters", {"template__podAnnotations": {label_key(318): "x"}}, True),
    ("pod label app.kubernetes.io/part-of", {"template__podLabels": {"app.kubernetes.io/part-of": "x"}}, False),
    ("pod label turnout.dev/x", {"template__podLabels": {"turnout.dev/x": "x"}}, True),
    ("an ollama model with a registry and a port", {"ollama__model": "host:5000/m:q4"}, False),
    ("benchmark of 1000 requests", {"rollout__benchmark": {"requests": 1000}}, False),
    ("benchmark of 1001 requests", {"rollout__benchmark": {"requests": 1001}}, True),
    ("benchmark of 0 requests", {"rollout__benchmark": {"requests": 0}}, True),
    ("benchmark concurrency 64", {"rollout__benchmark": {"concurrency": 64}}, False),
    ("benchmark concurrency 65", {"rollout__benchmark": {"concurrency": 65}}, True),
    ("benchmark maxTokens 4097", {"rollout__benchmark": {"maxTokens": 4097}}, True),
    ("benchmark timeout 9 s", {"rollout__benchmark": {"timeoutSeconds": 9}}, True),
    ("benchmark timeout 3600 s", {"rollout__benchmark": {"timeoutSeconds": 3600}}, False),
    ("benchmark maxErrorRatio 0", {"rollout__benchmark": {"maxErrorRatio": 0}}, False),
    ("benchmark maxErrorRatio 1.5", {"rollout__benchmark": {"maxErrorRatio": 1.5}}, True),
    ("benchmark maxLatencyRatio 0.7", {"rollout__benchmark": {"maxLatencyRatio": 0.7}}, False),
    ("benchmark maxLatencyRatio 0", {"rollout__benchmark": {"maxLatencyRatio": 0}}, True),
    ("benchmark minThroughputRatio 2.5", {"rollout__benchmark": {"minThroughputRatio": 2.5}}, False),
    ("benchmark minThroughputRatio as text", {"rollout__benchmark": {"minThroughputRatio": "3"}}, True),
    ("benchmark maxP95TtftSeconds 0", {"rollout__benchmark": {"maxP95TtftSeconds": 0}}, True),
    ("benchmark minOutputTokensPerSecond 0.5", {"rollout__benchmark": {"minOutputTokensPerSecond": 0.5}}, False),
    (
        "benchmark prompts from a ConfigMap without a key",
        {"rollout__benchmark": {"prompts": {"configMapKeyRef": {"name": "prompts"}}}},
        True,
    ),
    (
        "benchmark prompts from a ConfigMap key",
        {"rollout__benchmark": {"prompts": {"configMapKeyRef": {"name": "prompts", "key": "chat.jsonl"}}}},
        False,
    ),
]


def bound_variants() -> list[Variant]:
    found = [Variant(what, with_values(VALID_SPEC, **values), refused) for what, values, refused in BOUNDS]
    found += [
        Variant(f"env {name}", with_values(VALID_SPEC, template__env=[{"name": name, "value": "1"}]), True)
        for name in OWNED_ENV
    ]
    found += [
        Variant(f"pod label {key}", with_values(VALID_SPEC, template__podLabels={key: "x"}), True)
        for key in RESERVED_LABELS
    ]
    return found


def systematic_variants() -> list[Variant]:
    return [
        *owned_flag_variants(),
        *repeated_flag_variants(),
        *whitespace_variants(),
        *affinity_variants(),
        *name_variants(),
        *bound_variants(),
    ]


def combined_variants(count: int, seed: int = 10) -> list[Variant]:
    """`count` specs, each with 2 to 5 mutations of the systematic ones on either engine's spec."""
    rng = random.Random(seed)
    pool = [variant for variant in systematic_variants() if variant.name == NAME]
    found = []
    for index in range(count):
        picked = rng.sample(pool, rng.randint(2, 5))
        spec = copy.deepcopy(rng.choice([VALID_SPEC, VALID_OLLAMA_SPEC]))
        for variant in picked:
            _merge(spec, variant.spec)
        found.append(Variant(f"combination {index}: " + "; ".join(variant.what for variant in picked), spec, None))
    return found


def _merge(into: dict[str, Any], spec: dict[str, Any], base: dict[str, Any] = VALID_SPEC) -> None:
    """What `spec` changed of `base`, merged into `into`; the later mutation wins where two meet."""
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, base[key])
        elif key not in base or value != base[key]:
            into[key] = copy.deepcopy(value)


VARIANTS = systematic_variants() + combined_variants(80)
