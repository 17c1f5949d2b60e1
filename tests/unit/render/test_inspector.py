"""The inspector pod: a valid Kubernetes Pod for any valid vLLM spec on a claim, which serves exactly the
model's directory, read-only, asks for no GPU and is never taken for an engine pod."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.unit.render.kubelet import EXPANDED, expand
from tests.unit.render.test_render_properties import Twins, twin_specs
from turnout.api.backend import Backend
from turnout.api.labels import BACKEND_LABEL, COLOR_LABEL, INSPECTS_LABEL
from turnout.engines.model_files import model_directory
from turnout.render.inspector import render_inspector_pod


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(twins=twin_specs())
def test_the_inspector_pod_is_valid_and_serves_the_models_directory_read_only(
    twins: Twins, kube_schema: Callable[[dict[str, Any]], None]
) -> None:
    spec = twins.original
    if spec["engine"] != "vllm" or "storage" not in spec["model"]:
        return
    # The drawn (hostile) name as a path on the claim, so that there is a directory to serve.
    mount = spec["model"]["storage"].get("mountPath", "/data/models").rstrip("/")
    spec["model"]["name"] = f"{mount}/m{spec['model']['name']}"
    spec["vllm"].pop("model", None)
    backend = Backend.parse("chat", "ml", spec)
    directory = model_directory(backend.model_name, backend.model_mount_path)
    if isinstance(directory, str):
        return
    pod = render_inspector_pod(backend, directory)
    kube_schema(pod)
    labels = pod["metadata"]["labels"]
    assert labels[BACKEND_LABEL] == "chat"
    assert labels[INSPECTS_LABEL] == "model-config"
    assert COLOR_LABEL not in labels  # no Service selects it, no check or count takes it for an engine pod
    (container,) = pod["spec"]["containers"]
    served = expand(container["command"][-1], lambda _: EXPANDED)
    assert served == directory.path  # as written: the kubelet expands nothing in it
    assert "nvidia.com/gpu" not in str(container["resources"])
    (volume,) = pod["spec"]["volumes"]
    assert volume["persistentVolumeClaim"] == {"claimName": backend.claim_name, "readOnly": True}
    (mount,) = container["volumeMounts"]
    assert (mount["mountPath"], mount["readOnly"]) == (backend.model_mount_path, True)
    assert pod["spec"]["nodeSelector" if backend.spec.template.node_selector else "restartPolicy"]


def test_a_path_that_looks_like_a_kubelet_variable_is_served_as_written(
    kube_schema: Callable[[dict[str, Any]], None],
) -> None:
    spec = {
        "engine": "vllm",
        "model": {"name": "/data/models/$(VLLM_API_KEY)/m", "storage": {"claimName": "models"}},
        "template": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}}},
    }
    backend = Backend.parse("chat", "ml", spec)
    directory = model_directory(backend.model_name, backend.model_mount_path)
    assert not isinstance(directory, str)
    pod = render_inspector_pod(backend, directory)
    kube_schema(pod)
    assert expand(pod["spec"]["containers"][0]["command"][-1], lambda _: EXPANDED) == "/data/models/$(VLLM_API_KEY)/m"
    preferred = pod["spec"]["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["podAffinityTerm"]["labelSelector"] == {"matchLabels": {BACKEND_LABEL: "chat"}}
    assert backend.spec.template.affinity == {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}}
