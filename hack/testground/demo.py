"""The README's first command: an Ollama backend becomes Healthy, then is cut over to vLLM.

Without KUBECONFIG it starts the local test ground (control plane, fake GPU nodes, simulated
engines on the pods' IPs). It installs the CRD, runs the operator, creates the backend, then
switches `engine` to vllm with the same served name, printing each phase as it passes and a
chat completion answered through the Service's endpoints before and after.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from testground.crds import install_crd

GROUP, VERSION, PLURAL = "turnout.dev", "v1alpha1", "inferencebackends"
NAMESPACE = "demo"
NAME = "chat"
ROLLOUT = {
    "readyTimeoutSeconds": 120,
    "bakeSeconds": 10,
    "scaleDownDelaySeconds": 5,
    "checks": {"intervalSeconds": 2, "successThreshold": 3, "failureThreshold": 3},
}
OLLAMA = {"engine": "ollama", "model": {"name": "llama3.1:8b", "servedName": NAME}, "rollout": ROLLOUT}
# vLLM names the model by its hub id; ollama.model keeps the Ollama tag, so going back is one setting.
VLLM = {
    "engine": "vllm",
    "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": NAME},
    "resources": {"gpus": 1},
    "ollama": {"model": "llama3.1:8b"},
    "rollout": ROLLOUT,
}


def say(text: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {text}", flush=True)


@contextmanager
def local_ground() -> Iterator[str]:
    from testground.ground import TestGround

    ground = TestGround()
    say("starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
    ground.start()
    say(f"control plane up in {ground.timings['total']} s")
    try:
        yield ground.kubeconfig
    finally:
        say("stopping the local control plane")
        ground.stop()


@contextmanager
def running_operator(kubeconfig: str) -> Iterator[None]:
    log = Path(tempfile.mkdtemp(prefix="turnout-demo-")) / "operator.log"
    say(f"starting the operator (log: {log})")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "turnout", "run", "--kubeconfig", kubeconfig, "--bind", "127.0.0.1",
             "--metrics-port", "0", "--health-port", "0"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def follow_phases(custom: client.CustomObjectsApi, until: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Print each phase change until the status has every key/value of `until`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        status = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, NAME).get("status") or {}
        seen = (status.get("phase"), status.get("activeColor"), status.get("previewColor"))
        if seen != last:
            say(f"phase={seen[0]} active={seen[1]} preview={seen[2]}")
            last = seen
        if all(status.get(k) == v for k, v in until.items()):
            return status
        time.sleep(0.5)
    raise TimeoutError(f"the backend did not reach {until} in {timeout:.0f} s")


def ask(api: client.ApiClient) -> None:
    """One chat completion through a ready endpoint of the Service, as kube-proxy would route it."""
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        NAMESPACE, label_selector=f"kubernetes.io/service-name={NAME}"
    )
    for endpoint_slice in slices.items:
        port = endpoint_slice.ports[0].port
        for endpoint in endpoint_slice.endpoints or []:
            if endpoint.conditions.ready:
                address = endpoint.addresses[0]
                body = {"model": NAME, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
                answer = httpx.post(f"http://{address}:{port}/v1/chat/completions", json=body, timeout=5)
                answer.raise_for_status()
                say(f"POST {address}:{port}/v1/chat/completions model={NAME} -> {answer.json()['model']!r}, 200")
                return
    say("no ready endpoint to ask")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="hack/demo", description=__doc__).parse_args(argv)
    given = os.environ.get("KUBECONFIG")
    ground = nullcontext(given) if given else local_ground()
    with ground as kubeconfig:
        assert kubeconfig is not None
        api = config.new_client_from_config(config_file=kubeconfig)
        from turnout.api.crd import build_crd

        install_crd(api, build_crd())
        say("CRD inferencebackends.turnout.dev installed")
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        try:
            core.create_namespace({"metadata": {"name": NAMESPACE}})
        except ApiException as error:
            if error.status != 409:
                raise
        with running_operator(kubeconfig):
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceBackend", "metadata": {"name": NAME}}
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, {**body, "spec": OLLAMA})
            say(f"created InferenceBackend {NAMESPACE}/{NAME}: engine ollama, served name {NAME!r}")
            follow_phases(custom, {"phase": "Healthy"}, timeout=180)
            if not given:
                ask(api)
            current = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, NAME)
            current["spec"] = VLLM
            custom.replace_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, NAME, current)
            say("switched spec.engine to vllm (same served name); the Service moves only once it is proven")
            status = follow_phases(custom, {"phase": "Healthy", "activeColor": "green"}, timeout=300)
            if not given:
                ask(api)
            say(f"revision {status['activeRevision']} serves on {status['activeColor']}")
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, NAME, {"spec": {"engine": "ollama"}}
            )
            say("the way back is one setting: patched spec.engine to ollama")
            status = follow_phases(custom, {"phase": "Healthy", "activeColor": "blue"}, timeout=300)
            if not given:
                ask(api)
            say(f"done: revision {status['activeRevision']} serves on {status['activeColor']} again")
            custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
