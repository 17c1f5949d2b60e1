"""A third engine needs its profile and nothing else: validation, rendering, revision and checks follow.

The engine here, "tgi", is made up for the test (TGI-like: `text-generation-launcher`, port 80,
`GET /info` naming the model, `tgi_request_*` metrics); it is not TGI's real contract. It is defined only in this file.

How the test introduces a third value of `Engine`: a real engine would be a member of `Engine` and
a section of `InferenceBackendSpec` (both feed the generated CRD), its module in `turnout.engines`
and its case in the registry. An enum cannot gain a member, and pydantic has built the spec's
validator already, so the test stands in for those two API changes with an enum of its own
(Engine's members plus "tgi") and a spec model with that enum and a `tgi` section, validated as
`Backend.parse` does (the spec model, then `Backend.check()`). `StrEnum` members hash and compare
as their values, so the registry, keyed by `Engine`, finds vLLM and Ollama under either enum. The
test then registers its profile in `turnout.engines.ENGINES`, the one mapping the rest of turnout
reads; monkeypatch removes it afterwards. Everything after that is turnout's own code, unchanged:
`Backend.check()`, the revision, `render_backend`, `check_round`, `scrape_color`. Apply-time CEL rules are out of
reach: the CRD is generated from the `Engine` enum, so the test's engine brings none.
"""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import Field

from tests.unit.render.conftest import validate_kube_object
from turnout.api.backend import Backend, InvalidSpec
from turnout.api.spec import Engine, EngineOptions, InferenceBackendSpec, SecretKeyRef
from turnout.api.status import Color
from turnout.api.traffic import TrafficCounters
from turnout.checks import CheckRound, CheckTarget, TrafficScrape, check_round, scrape_color
from turnout.engines import ENGINES
from turnout.engines.container import EngineContainer, KubeObject, env_value, http_probe
from turnout.engines.probe import CheckFailed, PodProbe
from turnout.engines.profile import DrainTimes, EngineMetrics
from turnout.engines.prometheus import counter_total, histogram, samples
from turnout.render import render_backend

EngineWithTgi = StrEnum("EngineWithTgi", [(engine.name, engine.value) for engine in Engine] + [("TGI", "tgi")])
TGI_ENGINE = EngineWithTgi["TGI"]
GPUS_NEEDED = "this engine needs at least 1 GPU per replica; set resources.gpus"


class Tgi(EngineOptions):
    """The made-up engine's options: the engine's own `model`, and how many requests it takes at once."""

    max_concurrent_requests: int = Field(default=128, ge=1)


class SpecWithTgi(InferenceBackendSpec):
    """The spec as it would be with the engine added to the API."""

    engine: EngineWithTgi
    tgi: Tgi = Field(default_factory=Tgi)


def tgi_traffic(metrics_text: str) -> TrafficCounters:
    """What a TGI-like pod served, from its own metric names."""
    found = samples(metrics_text)
    return TrafficCounters(
        requests=counter_total(found, "tgi_request_count_total"),
        errors=counter_total(found, "tgi_request_failure_total", lambda labels: labels.get("err") == "internal"),
        latency=histogram(found, "tgi_request_duration"),
        ttft=histogram(found, "tgi_request_first_token_duration"),
    )


class TgiProfile:
    """The made-up engine's EngineProfile."""

    image = "example.com/tgi-like:1.0"
    port = 80
    default_gpus = 1
    drain = DrainTimes(pre_stop=5, grace_period=60, drains_on_sigterm=True)
    metrics = EngineMetrics("/metrics", tgi_traffic)
    owned_env = ("HF_HUB_CACHE",)
    crd_rules = ()
    api_key_field = None

    def options(self, spec: InferenceBackendSpec) -> Tgi:
        assert isinstance(spec, SpecWithTgi)
        return spec.tgi

    def tensor_parallel_size(self, backend: Backend) -> int:
        return max(backend.gpus, 1)

    def problems(self, backend: Backend) -> list[str]:
        return [] if backend.gpus >= 1 else [f"spec.resources.gpus: {GPUS_NEEDED}"]

    def container(self, backend: Backend, color: Color) -> EngineContainer:
        return EngineContainer(
            command=["text-generation-launcher"],
            args=[
                f"--model-id={backend.model_name}",
                f"--port={self.port}",
                f"--num-shard={self.tensor_parallel_size(backend)}",
                f"--max-concurrent-requests={self.options(backend.spec).max_concurrent_requests}",
            ],
            env=[env_value("HF_HUB_CACHE", f"{backend.model_mount_path}/hub")],
            startup_probe=http_probe("/health", period_seconds=10, timeout_seconds=5, failure_threshold=360),
            readiness_probe=http_probe("/health", period_seconds=5, timeout_seconds=5, failure_threshold=3),
            liveness_probe=http_probe("/health", period_seconds=10, timeout_seconds=5, failure_threshold=6),
        )

    def api_key_ref(self, spec: InferenceBackendSpec) -> SecretKeyRef | None:
        return None

    async def check(self, probe: PodProbe, served_name: str) -> None:
        await probe.request("GET", "/health")
        model = (await probe.json_object("GET", "/info")).get("model_id")
        if model != served_name:
            raise CheckFailed(f'/info names model {model!r}, not "{served_name}"')

    async def embed(self, probe: PodProbe, served_name: str) -> int:
        return await probe.embedding_length("/embed", {"inputs": "ping"}, 0)


TGI = TgiProfile()


@pytest.fixture(autouse=True)
def tgi_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The profile in the registry for one test; monkeypatch takes it out again."""
    monkeypatch.setitem(ENGINES, TGI_ENGINE, TGI)


def tgi_backend(**sections: Any) -> Backend:
    """`Backend.parse` as it would be with the engine in the API: validate the spec, then `check()`."""
    raw = {"engine": "tgi", "model": {"name": "org/model", "servedName": "chat"}, **sections}
    backend = Backend(name="chat", namespace="ml", spec=SpecWithTgi.model_validate(raw))
    backend.check()
    return backend


def deployment(backend: Backend) -> dict[str, Any]:
    objects = render_backend(backend, Color.GREEN, Color.BLUE)
    found: dict[str, Any] = next(obj for obj in objects if obj["kind"] == "Deployment")
    return found


def test_the_third_engine_is_registered_beside_the_others() -> None:
    assert ENGINES[TGI_ENGINE] is TGI
    assert len(ENGINES) == len(Engine) + 1


def test_a_valid_spec_gets_the_engines_defaults() -> None:
    backend = tgi_backend()
    assert backend.profile is TGI
    assert (backend.image, backend.engine_port, backend.gpus) == (TGI.image, 80, 1)
    assert backend.model_name == "org/model"
    assert tgi_backend(tgi={"model": "org/other"}).model_name == "org/other"


def test_the_engines_problems_and_owned_env_are_refused() -> None:
    with pytest.raises(InvalidSpec, match=f"spec.resources.gpus: {GPUS_NEEDED}"):
        tgi_backend(resources={"gpus": 0})
    with pytest.raises(InvalidSpec, match=r"spec.template.env\[0\].name: turnout sets this variable itself"):
        tgi_backend(template={"env": [{"name": "HF_HUB_CACHE", "value": "/tmp"}]})


def test_the_other_engines_still_validate_as_before() -> None:
    with pytest.raises(InvalidSpec, match="vLLM needs at least 1 GPU"):
        tgi_backend(engine="vllm", resources={"gpus": 0})
    assert tgi_backend(engine="ollama", model={"name": "llama3:8b"}).gpus == 0


def test_the_deployment_runs_the_engines_container_and_is_a_valid_kubernetes_object() -> None:
    backend = tgi_backend(resources={"gpus": 2}, tgi={"maxConcurrentRequests": 64})
    rendered = deployment(backend)
    validate_kube_object(rendered)
    pod = rendered["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "tgi"
    assert container["image"] == TGI.image
    assert container["ports"] == [{"name": "http", "containerPort": 80, "protocol": "TCP"}]
    assert container["command"] == ["text-generation-launcher"]
    assert container["args"] == ["--model-id=org/model", "--port=80", "--num-shard=2", "--max-concurrent-requests=64"]
    assert {"name": "HF_HUB_CACHE", "value": "/data/models/hub"} in container["env"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert rendered["metadata"]["labels"]["app.kubernetes.io/name"] == "tgi"


def test_the_revision_follows_the_engines_own_section_only() -> None:
    revision = tgi_backend().revision
    assert len(revision) == 10
    assert tgi_backend(tgi={"maxConcurrentRequests": 64}).revision != revision
    assert tgi_backend(vllm={"maxModelLen": 4096}, ollama={"numParallel": 8}).revision == revision


def mock_engine(model_id: str) -> httpx.MockTransport:
    """The engine's endpoints, answering as a pod that serves `model_id`."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(200)
        if request.url.path == "/info":
            return httpx.Response(200, json={"model_id": model_id})
        if request.url.path == "/v1/chat/completions":
            assert json.loads(request.content)["model"] == "chat"
            return httpx.Response(200, json={"choices": [{"message": {"content": "pong"}}]})
        return httpx.Response(404)

    return httpx.MockTransport(answer)


def check_with(transport: httpx.MockTransport) -> CheckRound:
    async def scenario() -> CheckRound:
        async with httpx.AsyncClient(transport=transport) as client:
            target = CheckTarget(pod="chat-green-1", ip="10.0.0.7", port=TGI.port)
            return await check_round(
                TGI_ENGINE,
                "chat",
                [target],
                api_key=None,
                timeout_seconds=2,
                smoke_request=True,
                client=client,
            )

    return asyncio.run(scenario())


def test_the_check_round_asks_the_engines_own_endpoints() -> None:
    def latency_count() -> float:
        return REGISTRY.get_sample_value("turnout_check_latency_seconds_count", {"engine": "tgi"}) or 0.0

    before = latency_count()
    passed = check_with(mock_engine("chat"))
    assert passed.passed, passed.message
    assert latency_count() == before + 1

    failed = check_with(mock_engine("org/model"))
    assert not failed.passed
    assert failed.message == "pod chat-green-1 (10.0.0.7): /info names model 'org/model', not \"chat\""


def test_the_pod_gets_nothing_of_the_other_engines() -> None:
    container: KubeObject = deployment(tgi_backend())["spec"]["template"]["spec"]["containers"][0]
    names = {entry["name"] for entry in container["env"]}
    assert names == {"HF_HUB_CACHE"}
    assert not any(mount["mountPath"] == "/dev/shm" for mount in container["volumeMounts"])


TGI_METRICS = """\
# TYPE tgi_request_count counter
tgi_request_count_total 10
# TYPE tgi_request_failure counter
tgi_request_failure_total{err="internal"} 2
tgi_request_failure_total{err="validation"} 3
# TYPE tgi_request_duration histogram
tgi_request_duration_bucket{le="0.5"} 4
tgi_request_duration_bucket{le="1.0"} 6
tgi_request_duration_bucket{le="+Inf"} 7
tgi_request_duration_sum 5.5
tgi_request_duration_count 7
"""


def scrape_with(transport: httpx.MockTransport) -> TrafficScrape:
    async def scenario() -> TrafficScrape:
        async with httpx.AsyncClient(transport=transport) as client:
            targets = [CheckTarget(pod=f"chat-green-{i}", ip=f"10.0.0.{i}", port=TGI.port) for i in (1, 2)]
            return await scrape_color(ENGINES[TGI_ENGINE], targets, timeout_seconds=2, client=client)

    return asyncio.run(scenario())


def test_a_colors_traffic_is_scraped_from_the_engines_own_metrics() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/metrics"
        return httpx.Response(200, text=TGI_METRICS)

    counters = scrape_with(httpx.MockTransport(answer)).counters
    assert counters is not None
    assert (counters.requests, counters.errors) == (20, 4)
    assert (counters.latency.le, counters.latency.counts) == ((0.5, 1.0), (8, 12, 14))
    assert counters.ttft.count == 0
