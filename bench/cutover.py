"""Cutover timings on the local test ground: prints numbers, asserts nothing.

  hack/bench-cutover        (or: PYTHONPATH=hack:. .venv/bin/python bench/cutover.py [--rounds N])

Per round: a model change promoted (switch latency = last passing check -> Service patched, from
the operator's own histogram; cutover = spec change -> Healthy, wall clock), then a bake failure
(green's pods start failing on command -> the Service is back on blue, watched from outside).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from kubernetes import client, config

from testground.crds import install_crd
from testground.ground import TestGround
from testground.waiting import wait_for
from tests.e2e.harness import FAST_ROLLOUT, Backends, OperatorProcess, vllm_spec
from turnout.api.crd import build_crd

BEHAVIOUR = "sim.turnout.dev/behaviour"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    ground = TestGround()
    ground.start()
    try:
        api = config.new_client_from_config(config_file=ground.kubeconfig)
        install_crd(api, build_crd())
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
        operator = OperatorProcess(ground.kubeconfig, Path(tempfile.mkdtemp(prefix="turnout-bench-")))
        operator.start()
        try:
            run(Backends(api, namespace), operator, rounds)
        finally:
            operator.stop()
    finally:
        ground.stop()


def run(backends: Backends, operator: OperatorProcess, rounds: int) -> None:
    rollout = {**FAST_ROLLOUT, "bakeSeconds": 30}
    models = ["meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-3B-Instruct"]
    backends.create("chat", vllm_spec(model=models[0], rollout=rollout))
    backends.wait_phase("chat", "Healthy", timeout=120)
    cutovers, rollbacks = [], []
    for number in range(rounds):
        model = models[(number + 1) % 2]
        started = time.monotonic()
        backends.replace_spec("chat", vllm_spec(model=model, rollout={**rollout, "bakeSeconds": 2}))
        target = backends.wait_status("chat", timeout=120, phase="Baking")["activeColor"]
        backends.wait_status("chat", timeout=120, phase="Healthy", activeColor=target)
        cutovers.append(time.monotonic() - started)

        failing = vllm_spec(model=models[number % 2], rollout=rollout)
        failing["template"] = {"podAnnotations": {"bench": str(number)}}
        backends.replace_spec("chat", failing)
        green = backends.wait_status("chat", timeout=120, phase="Baking")["activeColor"]
        pods = backends.core.list_namespaced_pod(backends.namespace, label_selector=f"turnout.dev/color={green}")
        started = time.monotonic()
        for pod in pods.items:
            patch = {"metadata": {"annotations": {BEHAVIOUR: "fail-after:0"}}}
            backends.core.patch_namespaced_pod(pod.metadata.name, backends.namespace, patch)
        wait_for(lambda old=green: backends.service_selector("chat")["turnout.dev/color"] != old, timeout=60,
                 what="rollback", interval=0.05)  # fmt: skip
        rollbacks.append(time.monotonic() - started)
        backends.wait_status("chat", timeout=60, phase="Degraded")

    count = operator.metric("turnout_switch_latency_seconds_count")
    total = operator.metric("turnout_switch_latency_seconds_sum")
    checks = rollout["checks"]
    print(f"rounds: {rounds} (checks every {checks['intervalSeconds']} s, "
          f"{checks['successThreshold']} passes / {checks['failureThreshold']} failures)")  # fmt: skip
    print(f"switch latency (proven -> Service patched, operator histogram): mean {total / count * 1000:.1f} ms "
          f"over {count:.0f} switches")  # fmt: skip
    print(f"cutover (spec change -> Healthy, bake 2 s): median {statistics.median(cutovers):.1f} s, "
          f"max {max(cutovers):.1f} s")  # fmt: skip
    print(f"rollback (green starts failing -> Service on blue): median {statistics.median(rollbacks):.1f} s, "
          f"max {max(rollbacks):.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
