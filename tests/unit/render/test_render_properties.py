"""Properties of the renderer over random valid specs, hostile strings in every free-text field.

For each spec, a twin is made with every user string replaced by a placeholder token. Both are
rendered; putting the user's strings back in place of the tokens in the twin's output must give
exactly the output of the original, as the container sees it after the kubelet's `$(VAR)`
expansion. So a user string changes no key, adds no key and no object, and lands verbatim where
it belongs, also in argv and the environment. Every object also passes Kubernetes' own OpenAPI schema,
and `turnout render`'s YAML stream reads back to the same objects.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.render.kubelet import as_the_container_sees_it
from turnout.api.backend import Backend
from turnout.api.status import Color
from turnout.cli import render_stream
from turnout.engines.container import kubelet_literal
from turnout.engines.ollama import SERVED_NAME_PATTERN
from turnout.render import render_backend

# Pieces that break naive YAML or shell templating, glued together and mixed with random text.
# fmt: off
HOSTILE_PIECES = [
    '"', "'", ":", ": ", "- ", "#", " #", "{{", "}}", "{%", "%}", "{#", "\n", "\r\n", "\t",
    "&anchor ", "*anchor", "<<: *anchor", "!!python/object/apply:os.system", "--- ", "...",
    "\u2028", "\u2029", "\x85", "\ufeff", "\x7f", "\x1b[31m", "😀", "é", "\\", "\\n", "\\u0022",
    "${HOME}", "$(id)", "`id`", "[", "]", "{", "}", ",", "|", ">", "%", "@", "?", "null", "true",
    "~", "0x1F", "1e3", "</script>", '"}, "injected": {"x": "', "\nkind: Secret\n",
]
# fmt: on
TOKEN = re.compile(r"zq(\d+)zq")
random_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
hostile_text = (
    st.lists(st.one_of(st.sampled_from(HOSTILE_PIECES), random_text), min_size=1, max_size=8)
    .map("".join)
    .filter(lambda text: text and "zq" not in text)
)
# template.image allows anything but whitespace; model.name also no leading '-' (vLLM reads a flag).
hostile_word = hostile_text.map(lambda text: re.sub(r"\s", "", text)).filter(bool)
hostile_model = hostile_word.filter(lambda text: not text.startswith("-"))
dns_label = st.from_regex(r"[a-z]([-a-z0-9]{0,14}[a-z0-9])?", fullmatch=True)
dns_subdomain = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?(\.[a-z0-9]{1,6}){0,2}", fullmatch=True)
qualified_name = st.from_regex(
    r"([a-z0-9]{1,8}\.[a-z]{2,4}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?", fullmatch=True
)
label_value = st.from_regex(r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,20})?[A-Za-z0-9])?", fullmatch=True)
quantity = st.sampled_from(["1", "500m", "8", "64Gi", "1.5", "200M", "2e3", ".5"])


@dataclass(frozen=True)
class UserText:
    """A free-text string a user wrote, somewhere in a drawn spec, after a fixed `prefix`."""

    text: str
    prefix: str = ""


@dataclass
class Twins:
    """A spec with the user's strings, its twin with placeholder tokens, and token -> string."""

    original: dict[str, Any]
    placeholder: dict[str, Any]
    strings: dict[str, str] = field(default_factory=dict)


def split_twins(drawn: dict[str, Any]) -> Twins:
    """The two specs of a drawn one: UserText as written, and as numbered tokens."""
    strings: dict[str, str] = {}

    def token(text: str) -> str:
        strings[f"zq{len(strings)}zq"] = text
        return f"zq{len(strings) - 1}zq"

    def side(value: Any, placeholder: bool) -> Any:
        if isinstance(value, UserText):
            return value.prefix + (token(value.text) if placeholder else value.text)
        if isinstance(value, dict):
            return {side(key, placeholder): side(item, placeholder) for key, item in value.items()}
        if isinstance(value, list):
            return [side(item, placeholder) for item in value]
        return value

    return Twins(original=side(drawn, placeholder=False), placeholder=side(drawn, placeholder=True), strings=strings)


def user_texts(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[UserText]:
    return strategy.map(UserText)


@st.composite
def twin_specs(draw: st.DrawFn) -> Twins:
    """A valid spec, with hostile strings in every free-text field, and its placeholder twin."""
    engine = draw(st.sampled_from(["vllm", "ollama"]))
    gpus = draw(st.integers(1 if engine == "vllm" else 0, 8))
    spec: dict[str, Any] = {
        "engine": engine,
        "model": {
            "name": draw(user_texts(hostile_model)) if engine == "vllm" else draw(ollama_model),
        },
        "replicas": draw(st.integers(0, 5)),
        "resources": {"gpus": gpus},
        "service": {
            "name": draw(dns_label),
            "port": draw(st.integers(1, 65535)),
            "type": draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"])),
        },
        "rollout": {"readyTimeoutSeconds": draw(st.integers(30, 86_400))},
        "template": draw(pod_templates()),
    }
    if draw(st.booleans()):
        served = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,20}", fullmatch=True)
        if engine == "ollama":  # only names Ollama can alias are valid there ("0:" is not)
            served = served.filter(lambda name: re.fullmatch(SERVED_NAME_PATTERN, name) is not None)
        spec["model"]["servedName"] = draw(served)
    if draw(st.booleans()):
        spec["model"]["storage"] = draw(storages())
    if draw(st.booleans()):
        spec["model"]["task"] = draw(st.sampled_from(["chat", "embedding"]))
    for resource in ("cpu", "memory"):
        if draw(st.booleans()):
            spec["resources"][resource] = draw(quantity)
    if engine == "vllm":
        spec["vllm"] = draw(vllm_options(gpus))
    else:
        spec["ollama"] = {
            "keepAlive": draw(st.sampled_from(["24h", "-1", "0", "5m", "300", "1h30m"])),
            "numParallel": draw(st.integers(1, 16)),
        }
        if draw(st.booleans()):
            spec["ollama"]["contextLength"] = draw(st.integers(256, 131072))
    return split_twins(spec)


ollama_model = st.from_regex(r"[a-z0-9]{1,10}(/[a-z0-9.]{1,8})?(:[a-z0-9][a-z0-9.]{0,5})?", fullmatch=True)


@st.composite
def storages(draw: st.DrawFn) -> dict[str, Any]:
    storage: dict[str, Any] = {
        "create": draw(st.booleans()),
        "size": draw(quantity),
        "mountPath": draw(st.from_regex(r"(/[A-Za-z0-9._-]{1,8}){1,3}/?", fullmatch=True)),
        "accessModes": draw(
            st.lists(
                st.sampled_from(["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"]), min_size=1, max_size=3, unique=True
            )
        ),
    }
    for name in ("claimName", "storageClassName"):
        if draw(st.booleans()):
            storage[name] = draw(dns_subdomain)
    return storage


@st.composite
def vllm_options(draw: st.DrawFn, gpus: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "tensorParallelSize": draw(st.sampled_from([d for d in range(1, gpus + 1) if gpus % d == 0])),
        "gpuMemoryUtilization": draw(st.floats(0.01, 1.0)),
        "maxModelLen": draw(st.integers(16, 1_000_000)),
        "dtype": draw(st.sampled_from(["auto", "half", "float16", "bfloat16", "float", "float32"])),
        # Values of the user's flags (not starting with '-') and flags of the user's own with a
        # hostile value, e.g. a chat template.
        "extraArgs": [
            *draw(st.lists(user_texts(hostile_text.filter(lambda text: not text.startswith("-"))), max_size=3)),
            *[
                UserText(value, prefix=f"--x-flag-{index}=")
                for index, value in enumerate(draw(st.lists(hostile_text, max_size=2)))
            ],
        ],
    }
    if draw(st.booleans()):
        options["apiKeySecretRef"] = {
            "name": draw(dns_subdomain),
            "key": draw(st.from_regex(r"[-._a-zA-Z0-9]{1,12}", fullmatch=True)),
        }
    return options


@st.composite
def pod_templates(draw: st.DrawFn) -> dict[str, Any]:
    """template.*: hostile strings wherever the API takes free text (values, env, tolerations...)."""
    labels = qualified_name.filter(lambda key: not key.startswith(("app.kubernetes.io/", "turnout.dev/")))
    template: dict[str, Any] = {
        "podAnnotations": draw(st.dictionaries(qualified_name, user_texts(hostile_text), max_size=3)),
        "podLabels": draw(st.dictionaries(labels, label_value, max_size=3)),
        "nodeSelector": draw(st.dictionaries(qualified_name, label_value, max_size=2)),
        "env": [
            {"name": f"USER_VAR_{index}", "value": value}
            for index, value in enumerate(draw(st.lists(user_texts(hostile_text), max_size=3)))
        ],
        "tolerations": [
            {"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"}
            for key, value in draw(
                st.lists(
                    st.tuples(user_texts(hostile_text), user_texts(hostile_text.filter(lambda t: len(t) <= 63))),
                    max_size=2,
                )
            )
        ],
        "imagePullSecrets": draw(st.lists(dns_subdomain, max_size=2, unique=True)),
    }
    if draw(st.booleans()):
        template["image"] = draw(user_texts(hostile_word))
    if draw(st.booleans()):
        expression = {
            "key": draw(user_texts(hostile_text)),
            "operator": "In",
            "values": draw(st.lists(user_texts(hostile_text), min_size=1, max_size=2)),
        }
        terms = [{"matchExpressions": [expression]}]
        template["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
        }
    for name in ("serviceAccountName", "priorityClassName"):
        if draw(st.booleans()):
            template[name] = draw(dns_subdomain)
    return template


def put_strings_back(value: Any, strings: dict[str, str], revisions: dict[str, str]) -> Any:
    """`value` with every placeholder token, in keys and in strings, replaced by its user string,
    and the twin's revision by the original's."""
    if isinstance(value, dict):
        return {
            put_strings_back(key, strings, revisions): put_strings_back(item, strings, revisions)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [put_strings_back(item, strings, revisions) for item in value]
    if isinstance(value, str):
        return revisions.get(value) or TOKEN.sub(lambda match: strings[match.group()], value)
    return value


def tokens_in(value: Any) -> set[str]:
    """The placeholder tokens found anywhere in `value`, keys included."""
    return {match.group() for match in TOKEN.finditer(repr(value))}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(twins=twin_specs(), color=st.sampled_from(list(Color)), active=st.sampled_from(list(Color)))
def test_user_strings_change_no_key_and_land_verbatim(
    twins: Twins, color: Color, active: Color, kube_schema: Callable[[dict[str, Any]], None]
) -> None:
    original = Backend.parse("backend", "ns", twins.original)
    placeholder = Backend.parse("backend", "ns", twins.placeholder)
    rendered = render_backend(original, color, active)
    twin_rendered = render_backend(placeholder, color, active)

    # The revision hashes the spec, so it differs between the twins by design.
    revisions = {placeholder.revision: original.revision}
    # Tokens hold no `$`: the twin expands as turnout's own text does, and the user's strings go back after.
    seen = as_the_container_sees_it
    assert seen(rendered) == put_strings_back(seen(twin_rendered), twins.strings, revisions)
    if all(kubelet_literal(text) == text for text in twins.strings.values()):
        # Strings without `$(` or `$$` are not even escaped.
        assert rendered == put_strings_back(twin_rendered, twins.strings, revisions)
    assert tokens_in(twin_rendered) == set(twins.strings), "every user string reaches the output"

    for obj in rendered:
        kube_schema(obj)
    stream = io.StringIO()
    render_stream(original, color, active, stream)
    assert list(yaml.safe_load_all(stream.getvalue())) == rendered
