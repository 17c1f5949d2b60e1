"""turnout's own pods on the real node: the Deployments it renders run unchanged in real containers
(kubelet, containerd, kube-proxy), with a real vLLM (the CPU build, on the test ground's tiny Llama)
or the simulator as the engine, and clients that reach the stable Service's ClusterIP as any client
in the cluster does.

- A model change cuts over from one real vLLM to another while a client streams chat completions
  through the ClusterIP: none fails. So does the move from Ollama to a real vLLM. The API key
  reaches vLLM through the kubelet (`secretKeyRef`): without it vLLM answers 401, turnout's checks
  pass with it.
- A revision whose vLLM serves another name than clients ask for is rolled back before the switch.
- An engine that loads for 20 s is Ready only once its probe passes, and turnout checks it only
  after that (the simulator keeps each client's first request, by User-Agent).
- A stream opened through the ClusterIP on the old color runs to its end while that color scales
  down (the rendered preStop pause, then the engine's drain within the grace period).
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from testground.nodes import REAL_NODE, REAL_NODE_TAINT
from testground.real_vllm import BAKED_NAME, BAKED_NAME_IMAGE, tiny_model, vllm_images
from testground.realnode import RealNode
from testground.switching import VLLM_IMAGE as SIMULATOR_IMAGE
from testground.switching import ClusterIpStreams, Completion, netns_connection, stream_chat
from testground.waiting import wait_for
from tests.e2e.harness import FAST_ROLLOUT, Backends, OperatorProcess, PodFate, ollama_spec, vllm_spec
from tests.preparation import needed_vllm_python
from turnout.api.labels import BACKEND_LABEL, COLOR_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]

API_KEY = "real-node-key"
SECRET = {"name": "vllm-key", "key": "token"}
# A real vLLM loads in 40 s on an idle 2-core machine, slower beside another: room, not a wait.
LOADS = 600
CHECKS = {"intervalSeconds": 1, "timeoutSeconds": 10, "successThreshold": 2, "failureThreshold": 2}
ROLLOUT = {**FAST_ROLLOUT, "readyTimeoutSeconds": LOADS, "bakeSeconds": 4, "scaleDownDelaySeconds": 0,
           "checks": CHECKS}  # fmt: skip
# The tiny Llama on vLLM's CPU build: 4096 positions at most, bfloat16 weights; eager, 4 sequences.
REAL_VLLM = {"apiKeySecretRef": SECRET, "maxModelLen": 2048, "dtype": "bfloat16",
             "extraArgs": ["--enforce-eager", "--max-num-seqs=4"]}  # fmt: skip


@pytest.fixture(scope="module")
def real_vllm(real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The real node has the vLLM images (turnout's pinned name, and one that bakes in its own served name)."""
    python = needed_vllm_python()
    real_node.import_images(vllm_images(tmp_path_factory.mktemp("vllm-images"), python, tiny_model(python)))


@pytest.fixture
def keyed(backends: Backends) -> Backends:
    """The namespace holds the vLLM API key's Secret."""
    token = base64.b64encode(API_KEY.encode()).decode()
    backends.core.create_namespaced_secret(backends.namespace, {"metadata": {"name": SECRET["name"]},
                                                                "data": {SECRET["key"]: token}})  # fmt: skip
    return backends


def on_real_node(spec: dict[str, Any], **template: Any) -> dict[str, Any]:
    """`spec` with its pods on the real node (node selector and toleration, as a team pins a node pool)."""
    pinned = {"nodeSelector": {"kubernetes.io/hostname": REAL_NODE}, "tolerations": [REAL_NODE_TAINT], **template}
    return {**spec, "template": {**spec.get("template", {}), **pinned}}


def real_vllm_spec(model: str, **template: Any) -> dict[str, Any]:
    return on_real_node(vllm_spec(model, vllm=REAL_VLLM, rollout=ROLLOUT), **template)


def simulated_spec(model: str, env: dict[str, str], rollout: dict[str, Any], **template: Any) -> dict[str, Any]:
    """The simulator's image as the engine (its `SIM_*` env as the pod annotations are to kwok's pods)."""
    variables = [{"name": name, "value": value} for name, value in env.items()]
    spec = vllm_spec(model, vllm={"apiKeySecretRef": SECRET}, rollout=rollout)
    return on_real_node(spec, image=SIMULATOR_IMAGE, env=variables, **template)


def cluster_ip(backends: Backends, netns: str) -> str:
    """The stable Service's ClusterIP, once kube-proxy routes it to a pod that knows the key."""
    ip = str(backends.core.read_namespaced_service("chat", backends.namespace).spec.cluster_ip)
    wait_for(lambda: _status(netns, ip, "/v1/models", API_KEY) == 200, timeout=60,
             what="the Service's ClusterIP answering (kube-proxy)")  # fmt: skip
    return ip


def test_a_model_change_cuts_over_between_real_vllms_while_a_client_streams_through_the_cluster_ip(
    real_vllm: None, real_node: RealNode, operator: OperatorProcess, keyed: Backends
) -> None:
    backends = keyed
    started = time.monotonic()
    backends.create("chat", real_vllm_spec("org/tiny-a"))
    first = backends.wait_phase("chat", "Healthy", timeout=LOADS)
    print(f"\nreal vLLM backend Healthy {time.monotonic() - started:.1f} s after create")
    ip = cluster_ip(backends, real_node.netns)
    # The key came from the Secret through the kubelet: vLLM refuses without it.
    assert _status(real_node.netns, ip, "/v1/models", None) == 401
    assert _status(real_node.netns, ip, "/v1/models", "wrong-key") == 401
    assert str(stream_chat(real_node.netns, ip, api_key=None).error).startswith("HTTP 401")

    cutover = cut_over_while_streaming(backends, real_node, ip, real_vllm_spec("org/tiny-b"), max_tokens=32)
    print(f"cutover: {cutover}; the node's processes held {cutover.memory_mib:.0f} MiB with both colors' vLLM")
    assert cutover.failures == []
    assert cutover.healthy["activeRevision"] != first["activeRevision"]
    assert {c.tokens for c in cutover.completions} == {32}


def test_moving_from_ollama_to_a_real_vllm_keeps_every_stream_through_the_cluster_ip(
    real_vllm: None, real_node: RealNode, operator: OperatorProcess, keyed: Backends
) -> None:
    """The migration turnout is for: Ollama (the simulator, running turnout's rendered script with the
    image's Ollama CLI) to a real vLLM, one setting, while clients stream through the same Service."""
    backends = keyed
    drain = {"preStopSeconds": 2, "gracePeriodSeconds": 10}
    backends.create("chat", on_real_node(ollama_spec("llama3:8b", rollout=ROLLOUT), drain=drain))
    backends.wait_phase("chat", "Healthy", timeout=120)
    ip = cluster_ip(backends, real_node.netns)
    # Clients send the key from the start: Ollama ignores it, vLLM will need it.
    cutover = cut_over_while_streaming(backends, real_node, ip, real_vllm_spec("org/tiny"), max_tokens=16)
    print(f"\nOllama to vLLM: {cutover}")
    assert cutover.failures == []
    # vLLM answers exactly max_tokens with ignore_eos; Ollama ignores it and may end sooner.
    assert {c.tokens for c in cutover.completions if c.started > cutover.old_gone} == {16}


@dataclass(frozen=True)
class Cutover:
    """A cutover as a client of the ClusterIP saw it (monotonic times)."""

    changed: float
    healthy_after: float  # seconds from the change to Healthy on green
    old_gone: float
    healthy: dict[str, Any]
    completions: list[Completion]
    failures: list[str]
    memory_mib: float  # the node's processes with both colors running

    def __str__(self) -> str:
        return (f"Healthy on green {self.healthy_after:.1f} s after the change; {len(self.completions)} streams "
                f"through the ClusterIP, {len(self.failures)} failed")  # fmt: skip


def cut_over_while_streaming(
    backends: Backends, node: RealNode, ip: str, spec: dict[str, Any], max_tokens: int
) -> Cutover:
    """Replace the spec of `chat` while a client streams chat completions (with the key) through its
    ClusterIP, until green is Healthy, blue's pods are gone and a stream was served after that.
    Asserts that streams ran before the change and after blue was gone."""
    streams = ClusterIpStreams(node.netns, ip, api_key=API_KEY, max_tokens=max_tokens, timeout=60)
    streams.start()
    try:
        wait_for(lambda: len(streams.completions) >= 3, timeout=60, what="three streams through the ClusterIP")
        changed = time.monotonic()
        backends.replace_spec("chat", spec)
        healthy = backends.wait(
            "chat", lambda s: s if s.get("phase") == "Healthy" and s.get("activeColor") == "green" else None,
            timeout=LOADS, what="Healthy on green",
        )  # fmt: skip
        healthy_after = time.monotonic() - changed
        memory = node.resident_mib()  # both colors, until blue is gone
        wait_for(lambda: not _pods(backends, "blue"), timeout=60, what="blue's pods gone")
        old_gone = time.monotonic()
        wait_for(lambda: [c for c in streams.completions if c.started > old_gone], timeout=60,
                 what="a stream after blue is gone")  # fmt: skip
    finally:
        streams.stop()
    completions = list(streams.completions)
    assert [c for c in completions if c.ended < changed], "no stream before the change"
    assert [c for c in completions if c.started > old_gone], "no stream served by green alone"
    return Cutover(changed, healthy_after, old_gone, healthy, completions, streams.failures(), memory)


def test_a_real_vllm_serving_another_name_is_rolled_back_before_the_switch(
    real_vllm: None, real_node: RealNode, operator: OperatorProcess, keyed: Backends
) -> None:
    backends = keyed
    serving = simulated_spec("org/tiny-a", {}, ROLLOUT)
    backends.create("chat", serving)
    backends.wait_phase("chat", "Healthy", timeout=120)
    ip = cluster_ip(backends, real_node.netns)
    # The new image appends its own --served-model-name, as images that bake their arguments in do.
    backends.replace_spec("chat", real_vllm_spec("org/tiny-b", image=BAKED_NAME_IMAGE))
    status = backends.wait_failure("chat", timeout=LOADS)
    assert status["lastFailureReason"] == "CheckFailed"
    # turnout read the real vLLM's own /v1/models: it lists the baked name, not the one clients use.
    assert '/v1/models lacks "chat"' in status["lastFailureMessage"]
    assert BAKED_NAME in status["lastFailureMessage"]
    assert status["activeColor"] == "blue"
    assert backends.service_selector("chat")[COLOR_LABEL] == "blue"
    assert stream_chat(real_node.netns, ip, api_key=API_KEY).error is None
    wait_for(lambda: not _pods(backends, "green"), timeout=60, what="green's pods gone")


def test_an_engine_loading_for_20_s_is_ready_after_its_probe_and_checked_only_then(
    real_node: RealNode, operator: OperatorProcess, keyed: Backends
) -> None:
    backends = keyed
    loads = 20
    backends.create("chat", simulated_spec("org/slow", {"SIM_BEHAVIOUR": f"slow-start:{loads}"}, ROLLOUT))
    backends.wait_phase("chat", "Healthy", timeout=120)
    (pod,) = _pods(backends, "blue")
    started = pod.status.container_statuses[0].state.running.started_at
    ready = next(c for c in pod.status.conditions if c.type == "Ready").last_transition_time
    seen = _sim_requests(real_node.netns, pod.status.pod_ip)
    first_ok_probe = _utc(seen["firstAnswered"]["kube-probe"])
    first_check = _utc(seen["firstRequest"]["turnout"])
    print(f"\nengine loading {loads} s: container started {started}, first probe passed {first_ok_probe}, "
          f"Ready {ready}, turnout's first check {first_check}")  # fmt: skip
    # The engine listened only after loading; the kubelet found it ready then, and the pod became Ready.
    assert first_ok_probe - started >= datetime.timedelta(seconds=loads - 1)
    assert ready - started >= datetime.timedelta(seconds=loads - 1)  # condition times have whole seconds
    # turnout's first request to the pod came after the probe's first success: it never checked a loading engine.
    assert first_check > first_ok_probe


def test_a_stream_through_the_cluster_ip_runs_to_its_end_while_the_old_color_scales_down(
    real_node: RealNode, operator: OperatorProcess, keyed: Backends
) -> None:
    backends = keyed
    # 40 tokens at 4 a second: a 10 s stream. The rendered preStop pause (2 s), then vLLM's own drain
    # (--shutdown-timeout, the rest of the 30 s grace period).
    paced, drain = {"SIM_TOKENS_PER_SECOND": "4"}, {"preStopSeconds": 2, "gracePeriodSeconds": 30}
    rollout = {**ROLLOUT, "autoPromote": False, "bakeSeconds": 0}
    backends.create("chat", simulated_spec("org/model-a", paced, rollout, drain=drain))
    backends.wait_phase("chat", "Healthy", timeout=120)
    ip = cluster_ip(backends, real_node.netns)
    backends.replace_spec("chat", simulated_spec("org/model-b", paced, rollout, drain=drain))
    preview = backends.wait_phase("chat", "Paused", timeout=120)["previewRevision"]
    opened = threading.Event()
    result: list[Any] = []
    stream = threading.Thread(target=lambda: result.append(
        stream_chat(real_node.netns, ip, api_key=API_KEY, max_tokens=40, timeout=60, opened=opened)))  # fmt: skip
    stream.start()
    assert opened.wait(30), "no first token through the ClusterIP"
    with PodFate(backends, "chat", "blue") as fate:
        backends.annotate("chat", {"turnout.dev/promote": preview})
        stream.join(timeout=60)
        wait_for(lambda: fate.gone_at is not None, timeout=60, what="blue's pod gone")
    (completion,) = result
    assert completion.error is None, completion.error
    assert completion.tokens == 40
    assert fate.deleted_at is not None
    assert fate.deleted_at < completion.ended - 2, "blue was deleted only after the stream ended: nothing drained"
    assert backends.status("chat")["activeColor"] == "green"


def _pods(backends: Backends, color: str) -> list[Any]:
    selector = f"{BACKEND_LABEL}=chat,{COLOR_LABEL}={color}"
    return list(backends.core.list_namespaced_pod(backends.namespace, label_selector=selector).items)


def _status(netns: str, ip: str, path: str, key: str | None) -> int:
    """The HTTP status of GET `path` at ip:8000 from `netns`; 0 when there is no answer."""
    try:
        connection = netns_connection(netns, ip, 8000, timeout=5)
    except OSError:
        return 0
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        connection.close()


def _sim_requests(netns: str, ip: str) -> dict[str, Any]:
    connection = netns_connection(netns, ip, 8000, timeout=5)
    try:
        connection.request("GET", "/sim/requests")
        answer: dict[str, Any] = json.loads(connection.getresponse().read())
        return answer
    finally:
        connection.close()


def _utc(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
