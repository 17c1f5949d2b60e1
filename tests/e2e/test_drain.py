"""Drain: a stream a client opened on the old color before the switch is not cut when that color
scales down; it runs to its end if it ends within the grace period, and is cut at the grace period
if it does not. Engines are the test ground's simulators, which stop as a kubelet stops the engine
of a deleted pod (preStop sleep, then vLLM's --shutdown-timeout drain, killed at the grace period).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.e2e.harness import FAST_ROLLOUT, Backends, OperatorProcess, PodFate, vllm_spec, wait_seconds
from turnout.api.labels import BACKEND_LABEL, COLOR_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("simulated_engines")]

PACE = "sim.turnout.dev/tokens-per-second"
BEHAVIOUR = "sim.turnout.dev/behaviour"
TOKENS_PER_SECOND = 10
# Promoted by hand, so the stream is open on the old color before the switch; the old color then
# scales down at once (no bake, no delay), which is when its pods drain.
ROLLOUT = {**FAST_ROLLOUT, "autoPromote": False, "bakeSeconds": 0, "scaleDownDelaySeconds": 0}


def drained_spec(model: str, grace: int, pre_stop: int = 1) -> dict[str, Any]:
    template = {
        "podAnnotations": {PACE: str(TOKENS_PER_SECOND)},
        "drain": {"preStopSeconds": pre_stop, "gracePeriodSeconds": grace},
    }
    return vllm_spec(model=model, rollout=ROLLOUT, template=template)


@dataclass
class ChatStream:
    """One streamed chat completion of exactly `tokens` tokens, read in a thread, as an SSE client reads it."""

    url: str
    tokens: int
    words: int = 0
    done: bool = False
    error: str | None = None
    ended: float | None = None
    started: threading.Event = field(default_factory=threading.Event)

    def open(self) -> ChatStream:
        threading.Thread(target=self._read, daemon=True).start()
        assert self.started.wait(10), "the stream sent no token"
        return self

    def _read(self) -> None:
        body = {
            "model": "chat",
            "messages": [{"role": "user", "content": "tell me a long story"}],
            "stream": True,
            "max_tokens": self.tokens,
            "ignore_eos": True,
        }
        try:
            # trust_env=False: never through a proxy, only straight to the pod network.
            with (
                httpx.Client(trust_env=False, timeout=httpx.Timeout(5, read=60)) as http,
                http.stream("POST", self.url, json=body) as response,
            ):
                response.raise_for_status()
                for line in response.iter_lines():
                    if line == "data: [DONE]":
                        self.done = True
                    elif line.startswith("data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                        self.words += 1
                        self.started.set()
        except httpx.HTTPError as error:
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.ended = time.monotonic()


@pytest.fixture
def blue_stream(operator: OperatorProcess, backends: Backends) -> Any:
    """Open a stream on blue, the serving color, while green waits to be promoted; yields a function
    that opens it (of `tokens` tokens), promotes green, and returns the stream and blue's pods' fate."""

    def run(grace: int, tokens: int) -> tuple[ChatStream, PodFate]:
        backends.create("chat", drained_spec("org/model-a", grace))
        backends.wait_phase("chat", "Healthy", timeout=60)
        (blue,) = backends.pod_ips("chat", "blue")
        backends.replace_spec("chat", drained_spec("org/model-b", grace))
        preview = backends.wait_phase("chat", "Paused", timeout=60)["previewRevision"]
        stream = ChatStream(f"http://{blue}:8000/v1/chat/completions", tokens).open()
        with PodFate(backends, "chat", "blue") as fate:
            backends.annotate("chat", {"turnout.dev/promote": preview})
            wait_seconds(lambda: stream.ended is not None, timeout=tokens / TOKENS_PER_SECOND + 30, what="stream end")
            wait_seconds(lambda: fate.gone_at is not None, timeout=grace + 10, what="blue's pod gone")
        assert backends.status("chat")["activeColor"] == "green"
        return stream, fate

    return run


def test_a_stream_on_the_old_color_runs_to_its_end_while_that_color_scales_down(blue_stream: Any) -> None:
    # 8 s of stream, a 15 s grace period: blue is scaled down a moment after the switch.
    stream, fate = blue_stream(grace=15, tokens=80)
    assert (stream.done, stream.words, stream.error) == (True, 80, None)
    assert fate.deleted_at is not None
    assert stream.ended is not None
    assert fate.gone_at is not None
    assert fate.deleted_at < stream.ended - 2, "blue was deleted only after the stream ended: nothing drained"
    # The pod stayed until its last stream ended, and went then, long before its grace period.
    assert fate.gone_at >= stream.ended - 0.5
    assert fate.gone_at - fate.deleted_at < 15 - 2


def test_a_stream_longer_than_the_grace_period_is_cut_at_the_grace_period(blue_stream: Any) -> None:
    grace = 4
    stream, fate = blue_stream(grace=grace, tokens=300)  # 30 s of stream
    assert not stream.done
    assert fate.deleted_at is not None
    assert stream.ended is not None
    served = stream.ended - fate.deleted_at
    # Not before the grace period (deletionTimestamp's second precision aside), and at it.
    assert grace - 1 <= served < grace + 3, f"cut {served:.1f} s after the deletion"
    assert stream.words < 300


def test_a_rollback_after_the_switch_drains_the_failed_color_too(operator: OperatorProcess, backends: Backends) -> None:
    # Green is switched to, then fails its checks while a client streams from it: the Service goes back
    # to blue, and green (still Ready, so not failing outright) keeps its stream through the scale-down
    # delay and its pods' drain.
    rollout = {**FAST_ROLLOUT, "bakeSeconds": 60, "scaleDownDelaySeconds": 2}
    backends.create("chat", {**drained_spec("org/model-a", grace=15), "rollout": rollout})
    backends.wait_phase("chat", "Healthy", timeout=60)
    backends.replace_spec("chat", {**drained_spec("org/model-b", grace=15), "rollout": rollout})
    backends.wait_phase("chat", "Baking", timeout=60)
    (pod,) = backends.core.list_namespaced_pod(
        backends.namespace, label_selector=f"{BACKEND_LABEL}=chat,{COLOR_LABEL}=green"
    ).items
    stream = ChatStream(f"http://{pod.status.pod_ip}:8000/v1/chat/completions", tokens=80).open()  # 8 s
    with PodFate(backends, "chat", "green") as fate:
        # Its engine dies for every new request; the stream it is writing goes on.
        backends.core.patch_namespaced_pod(
            pod.metadata.name, backends.namespace, {"metadata": {"annotations": {BEHAVIOUR: "fail-after:0"}}}
        )
        status = backends.wait_failure("chat", timeout=30)
        assert status["lastFailureReason"] == "CheckFailed"
        assert status["activeColor"] == "blue"
        wait_seconds(lambda: stream.ended is not None, timeout=30, what="stream end")
        wait_seconds(lambda: fate.gone_at is not None, timeout=30, what="green's pod gone")
    assert (stream.done, stream.words, stream.error) == (True, 80, None)
    assert fate.deleted_at is not None
    assert stream.ended is not None
    assert fate.deleted_at < stream.ended, "green was deleted only after the stream ended: nothing drained"
