"""The chart on a real API server: `helm install` with namespace-scoped values, then with the
defaults; each time the operator runs as the chart's ServiceAccount and runs a backend, and that
identity is refused what it does not need (Secrets, with the defaults, everywhere).

The operator authenticates with a token of the ServiceAccount itself (TokenRequest), which is the
identity it has in a pod; neither the Python client nor Kopf supports a kubeconfig's impersonation
(`as:`), and a real token is the stricter proof.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from testground.pytest_fixtures import KubeCluster
from testground.waiting import wait_for
from tests.chart.helm import CHART, pinned_helm, run_helm
from tests.e2e.harness import Backends, OperatorProcess, vllm_spec
from turnout.api.status import Color
from turnout.kube.cluster import GATEWAY_GROUP, GATEWAY_VERSION, HTTP_ROUTES, Cluster
from turnout.render.route import RouteChange, route_weights, route_with_weights

pytestmark = pytest.mark.e2e

API_KEY = "e2e-key"  # a test value for the simulator, not a secret


@dataclass(frozen=True)
class Release:
    """One `helm install` of the chart, watching one namespace."""

    name: str
    namespace: str  # the operator's own
    watched: str  # the one namespace it watches
    elsewhere: str  # a namespace it has no business in
    service_account: str
    kubeconfig: Path  # authenticates as the ServiceAccount
    operator_args: list[str]  # the container args of the Deployment helm created
    notes: str  # what `helm install` printed


def service_account_kubeconfig(admin_kubeconfig: str, token: str, path: Path) -> Path:
    """A kubeconfig for the same API server that authenticates with `token` only."""
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    context = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = dict(next(c["cluster"] for c in admin["clusters"] if c["name"] == context["cluster"]))
    authority = cluster.get("certificate-authority")
    if authority and not Path(authority).is_absolute():
        cluster["certificate-authority"] = str(Path(admin_kubeconfig).parent / authority)
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "e2e", "cluster": cluster}],
                "users": [{"name": "turnout", "user": {"token": token}}],
                "contexts": [{"name": "turnout", "context": {"cluster": "e2e", "user": "turnout"}}],
                "current-context": "turnout",
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def helm() -> Path:
    return pinned_helm()


@contextmanager
def installed_release(
    cluster: KubeCluster, api_client: client.ApiClient, helm: Path, workdir: Path, *values: str
) -> Iterator[Release]:
    """`helm install` of the chart with `values` (--set), a token of its ServiceAccount, then uninstall."""
    suffix = uuid.uuid4().hex[:6]
    name = f"turnout-{suffix}"
    operator_namespace, watched, elsewhere = f"turnout-{suffix}", f"ml-{suffix}", f"other-{suffix}"
    core = client.CoreV1Api(api_client)
    for namespace in (watched, elsewhere):
        core.create_namespace({"metadata": {"name": namespace}})
    kubeconfig = ["--kubeconfig", cluster.kubeconfig]
    settings = [word for value in values for word in ("--set", value.replace("WATCHED", watched))]
    notes = run_helm(helm, "install", name, str(CHART), "--namespace", operator_namespace, "--create-namespace",
             *kubeconfig, *settings)  # fmt: skip
    try:
        service_account = name  # the release name holds "turnout": it is every object's name
        token = core.create_namespaced_service_account_token(
            service_account, operator_namespace, {"spec": {"expirationSeconds": 3600}}
        ).status.token
        deployment = client.AppsV1Api(api_client).read_namespaced_deployment(name, operator_namespace)
        yield Release(
            name=name,
            namespace=operator_namespace,
            watched=watched,
            elsewhere=elsewhere,
            service_account=service_account,
            kubeconfig=service_account_kubeconfig(cluster.kubeconfig, token, workdir / f"{name}.kubeconfig"),
            operator_args=list(deployment.spec.template.spec.containers[0].args),
            notes=notes,
        )
    finally:
        run_helm(helm, "uninstall", name, "--namespace", operator_namespace, "--wait", *kubeconfig)
        for namespace in (watched, elsewhere, operator_namespace):
            core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def release(
    kube_cluster: KubeCluster, api_client: client.ApiClient, helm: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    """The chart installed to watch one namespace (its ml-... namespace) only."""
    workdir = tmp_path_factory.mktemp("chart")
    values = ("watch.scope=namespaces", "watch.namespaces[0]=WATCHED")
    with installed_release(kube_cluster, api_client, helm, workdir, *values) as installed:
        yield installed


class ChartOperator(OperatorProcess):
    """`turnout run` with the args of the Deployment the chart installed, as its ServiceAccount."""

    def __init__(self, release: Release, log_dir: Path) -> None:
        super().__init__(str(release.kubeconfig), log_dir)
        self.release = release

    def start(self) -> None:
        ports = {"--metrics-port": self.metrics_port, "--health-port": self.health_port}
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "POD_NAMESPACE": self.release.namespace}
        # As the kubelet runs it: the ports this test chose, and $(VAR) references expanded.
        args = [
            re.sub(
                r"\$\((\w+)\)",
                lambda m: environment[m[1]],
                re.sub(r"^(--[a-z-]+-port)=\d+$", lambda m: f"{m[1]}={ports[m[1]]}", a),
            )
            for a in self.release.operator_args
        ]
        environment.pop("KUBECONFIG", None)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "turnout", *args, "--kubeconfig", self.kubeconfig, "--bind", "127.0.0.1"],
                stdout=log, stderr=subprocess.STDOUT, env=environment,
            )  # fmt: skip
        wait_for(self._healthy, timeout=60, what=f"operator health endpoint (log: {self.log_path})")


@pytest.fixture(scope="module")
def chart_operator(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartOperator]:
    process = ChartOperator(release, tmp_path_factory.mktemp("chart-operator"))
    process.start()
    yield process
    process.stop()
    print(f"\noperator log tail ({process.log_path}):\n{process.log_tail(60)}")


@pytest.fixture(scope="module")
def as_operator(release: Release) -> Iterator[client.ApiClient]:
    """An API client with the operator's identity, for what it must be refused."""
    api = config.new_client_from_config(config_file=str(release.kubeconfig))
    yield api
    api.close()


def missing(call: Any) -> bool:
    try:
        call()
    except ApiException as error:
        return error.status == 404
    return False


def refused(call: Any) -> bool:
    try:
        call()
    except ApiException as error:
        return error.status == 403
    return False


def test_helm_install_creates_the_operator_with_roles_only_where_it_watches(
    release: Release, api_client: client.ApiClient
) -> None:
    rbac = client.RbacAuthorizationV1Api(api_client)
    assert f"--namespace={release.watched}" in release.operator_args
    assert f"watching InferenceBackends in: {release.watched}." in release.notes  # NOTES.txt: the next step
    assert "kubectl get ib -A -w" in release.notes
    assert [role.metadata.name for role in rbac.list_namespaced_role(release.watched).items] == [release.name]
    assert rbac.list_namespaced_role(release.elsewhere).items == []
    assert rbac.list_namespaced_role_binding(release.elsewhere).items == []
    crd = client.ApiextensionsV1Api(api_client).read_custom_resource_definition("inferencebackends.turnout.dev")
    assert any(c.type == "Established" and c.status == "True" for c in crd.status.conditions)
    apps = client.AppsV1Api(api_client)
    # The API server (and its admission) took the hardened pod; the kubelet stand-in runs it.
    # Two replicas by default: one holds the Lease, the other stands by.
    wait_for(
        lambda: (apps.read_namespaced_deployment(release.name, release.namespace).status.available_replicas or 0) == 2,
        timeout=60, what="the operator Deployment available",
    )  # fmt: skip


def test_operator_as_the_chart_service_account_runs_a_backend_from_create_to_delete(
    release: Release, chart_operator: ChartOperator, api_client: client.ApiClient
) -> None:
    """Every namespaced rule in use: the key Secret, the claim, both colors, the switch, Events, deletion."""
    backends = Backends(api_client, release.watched)
    backends.core.create_namespaced_secret(
        release.watched,
        {"metadata": {"name": "vllm-key"}, "data": {"token": base64.b64encode(API_KEY.encode()).decode()}},
    )

    def spec(model: str) -> dict[str, Any]:
        return vllm_spec(model=model, vllm={"apiKeySecretRef": {"name": "vllm-key", "key": "token"}})

    backends.create("chat", spec("meta-llama/Llama-3.1-8B-Instruct"))
    assert backends.wait_phase("chat", "Healthy", timeout=90)["activeColor"] == "blue"
    backends.replace_spec("chat", spec("meta-llama/Llama-3.2-3B-Instruct"))
    backends.wait(
        "chat", lambda s: s.get("activeColor") == "green" and s.get("phase") == "Healthy",
        timeout=90, what="green Healthy after the model change",
    )  # fmt: skip
    assert backends.service_selector("chat")["turnout.dev/color"] == "green"
    wait_for(lambda: backends.deployment_replicas("chat-blue") == 0, timeout=30, what="blue scaled to zero")
    assert "Switched" in [reason for _, reason, _ in backends.events("chat")]

    backends.delete("chat")  # the operator removes its finalizer; the garbage collector takes the rest
    wait_for(lambda: missing(lambda: backends.get("chat")), timeout=60, what="the backend gone")
    wait_for(lambda: backends.deployment_replicas("chat-green") is None, timeout=60, what="Deployments collected")

    # The model claim: looked up and created by the operator (the test ground binds no volumes, so
    # this backend's pods stay Pending; the claim is what is checked here).
    stored = spec("meta-llama/Llama-3.1-8B-Instruct")
    stored["model"]["storage"] = {"create": True, "size": "10Gi", "accessModes": ["ReadWriteOnce"]}
    backends.create("stored", stored)
    claim = wait_for(
        lambda: backends.core.read_namespaced_persistent_volume_claim("stored-models", release.watched),
        timeout=60, what="the model claim created by the operator",
    )  # fmt: skip
    assert claim.metadata.annotations["turnout.dev/created-by"] == "turnout"
    backends.delete("stored")
    wait_for(lambda: missing(lambda: backends.get("stored")), timeout=60, what="the second backend gone")
    log = chart_operator.log_path.read_text()
    assert "Forbidden" not in log, chart_operator.log_tail(80)
    assert "Not enough permissions" not in log, chart_operator.log_tail(80)  # Kopf's word for a 403


def test_operator_identity_cannot_read_secrets_elsewhere_nor_list_them_anywhere(
    release: Release, api_client: client.ApiClient, as_operator: client.ApiClient
) -> None:
    client.CoreV1Api(api_client).create_namespaced_secret(
        release.elsewhere, {"metadata": {"name": "not-yours"}, "stringData": {"token": "x"}}
    )
    core = client.CoreV1Api(as_operator)
    assert refused(lambda: core.read_namespaced_secret("not-yours", release.elsewhere))
    assert refused(lambda: core.list_namespaced_secret(release.watched))
    assert refused(lambda: core.list_secret_for_all_namespaces())


def test_operator_identity_cannot_modify_deployments_it_does_not_own_elsewhere(
    release: Release, api_client: client.ApiClient, as_operator: client.ApiClient
) -> None:
    deployment = {
        "metadata": {"name": "someone-elses", "labels": {"app": "other"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "other"}},
            "template": {
                "metadata": {"labels": {"app": "other"}},
                "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
            },
        },
    }
    client.AppsV1Api(api_client).create_namespaced_deployment(release.elsewhere, deployment)
    apps = client.AppsV1Api(as_operator)
    scale_to_zero = {"spec": {"replicas": 0}}
    assert refused(lambda: apps.patch_namespaced_deployment("someone-elses", release.elsewhere, scale_to_zero))
    assert refused(lambda: apps.patch_namespaced_deployment_scale("someone-elses", release.elsewhere, scale_to_zero))
    assert refused(lambda: apps.delete_namespaced_deployment("someone-elses", release.elsewhere))
    assert refused(
        lambda: apps.create_namespaced_deployment(release.elsewhere, {**deployment, "metadata": {"name": "x"}})
    )
    # Where it does work, it still deletes nothing: Deployments go with their backend, by garbage collection.
    assert refused(lambda: apps.delete_namespaced_deployment("chat-blue", release.watched))


def test_operator_identity_sets_route_weights_where_it_watches_and_nothing_else_of_routes(
    release: Release, api_client: client.ApiClient, as_operator: client.ApiClient, gateway_api_crds: str
) -> None:
    """A canary's HTTPRoute: listed (turnout's cache), read and replaced in the watched namespace; never
    created or deleted, and not even read elsewhere."""
    route = {
        "apiVersion": f"{GATEWAY_GROUP}/{GATEWAY_VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": "chat-route"},
        "spec": {
            "parentRefs": [{"name": "inference-gateway"}],
            "rules": [{"backendRefs": [{"name": "chat-blue", "port": 8000}, {"name": "chat-green", "port": 8000}]}],
        },
    }
    admin = client.CustomObjectsApi(api_client)
    for namespace in (release.watched, release.elsewhere):
        admin.create_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, namespace, HTTP_ROUTES, route)
    cluster = Cluster(as_operator)
    names = {Color.BLUE: "chat-blue", Color.GREEN: "chat-green"}
    read = cluster.get_http_route(release.watched, "chat-route")
    assert read is not None
    change = route_with_weights(read, names, {Color.BLUE: 80, Color.GREEN: 20})
    assert isinstance(change, RouteChange)
    stored = cluster.replace_http_route(release.watched, "chat-route", change.route)
    assert route_weights(stored, names) == {Color.BLUE: 80, Color.GREEN: 20}

    assert refused(lambda: cluster.get_http_route(release.elsewhere, "chat-route"))
    custom = client.CustomObjectsApi(as_operator)
    listed = custom.list_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, release.watched, HTTP_ROUTES)
    assert [r["metadata"]["name"] for r in listed["items"]] == ["chat-route"]
    assert refused(
        lambda: custom.list_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, release.elsewhere, HTTP_ROUTES)
    )
    assert refused(
        lambda: custom.create_namespaced_custom_object(
            GATEWAY_GROUP, GATEWAY_VERSION, release.watched, HTTP_ROUTES, {**route, "metadata": {"name": "mine"}}
        )
    )
    assert refused(
        lambda: custom.delete_namespaced_custom_object(
            GATEWAY_GROUP, GATEWAY_VERSION, release.watched, HTTP_ROUTES, "chat-route"
        )
    )


def test_cluster_scope_operator_runs_backends_anywhere_but_reads_secrets_only_where_listed(
    kube_cluster: KubeCluster,
    api_client: client.ApiClient,
    helm: Path,
    tmp_path_factory: pytest.TempPathFactory,
    chart_operator: ChartOperator,
) -> None:
    """The default values: a ClusterRole for all but Secrets (and no namespace read: Kopf does not look
    at namespaces cluster-wide); a vLLM backend's API key is readable once rbac.secretNamespaces lists it."""
    chart_operator.stop()  # one operator at a time: the namespaced one would not see this backend anyway
    workdir = tmp_path_factory.mktemp("cluster-scope")
    with installed_release(kube_cluster, api_client, helm, workdir) as installed:
        assert not [arg for arg in installed.operator_args if arg.startswith("--namespace")]
        assert "--set 'rbac.secretNamespaces={ml}'" in installed.notes  # NOTES.txt: how to grant it
        as_operator = config.new_client_from_config(config_file=str(installed.kubeconfig))
        secrets = client.CoreV1Api(as_operator)
        backends = Backends(api_client, installed.elsewhere)
        backends.core.create_namespaced_secret(
            installed.elsewhere,
            {"metadata": {"name": "vllm-key"}, "data": {"token": base64.b64encode(API_KEY.encode()).decode()}},
        )
        # RBAC answers before existence: a 403 for a name that is not there is a 403 for every name.
        for namespace in (installed.elsewhere, installed.watched, installed.namespace, "default", "kube-system"):
            assert refused(lambda where=namespace: secrets.read_namespaced_secret("vllm-key", where)), namespace
        forbidden = "cannot read Secret vllm-key (spec.vllm.apiKeySecretRef): forbidden: grant get on secrets in"
        process = ChartOperator(installed, workdir)
        try:
            process.start()
            backends.create("chat", vllm_spec(vllm={"apiKeySecretRef": {"name": "vllm-key", "key": "token"}}))
            degraded = backends.wait(
                "chat", lambda s: next((c for c in s.get("conditions", []) if c["type"] == "Degraded"
                                        and forbidden in c.get("message", "")), None),
                timeout=90, what="the Forbidden Secret read in the backend's Degraded condition",
            )  # fmt: skip
            assert degraded["reason"] == "CheckFailed"
            wait_for(lambda: [m for kind, _, m in backends.events("chat") if kind == "Warning" and forbidden in m],
                     timeout=30, what="a Warning Event with the same text")  # fmt: skip
            listed = f"rbac.secretNamespaces[0]={installed.elsewhere}"
            run_helm(helm, "upgrade", installed.name, str(CHART), "--namespace", installed.namespace,
                     "--kubeconfig", kube_cluster.kubeconfig, "--reuse-values", "--set", listed)  # fmt: skip
            # The first revision is checked again, now with its key.
            assert backends.wait_phase("chat", "Healthy", timeout=90)["activeColor"] == "blue"
            assert not refused(lambda: secrets.read_namespaced_secret("vllm-key", installed.elsewhere))
            assert refused(lambda: secrets.read_namespaced_secret("vllm-key", installed.watched))
            assert refused(lambda: secrets.list_namespaced_secret(installed.elsewhere))
            backends.delete("chat")
            wait_for(lambda: missing(lambda: backends.get("chat")), timeout=60, what="the backend gone")
        finally:
            process.stop()
            as_operator.close()
        log = process.log_path.read_text()
        # The Secret read was refused on purpose; nothing else may have been. A cluster-wide operator also
        # sees other tests' backends, whose namespaces may be deleted meanwhile: the API server refuses an
        # Event there with a 403 too (NamespaceTerminating), which says nothing about turnout's permissions.
        refusals = [line for line in log.splitlines() if "Forbidden" in line and forbidden not in line]
        assert not [line for line in refusals if "NamespaceTerminating" not in line], log
        assert "Not enough permissions" not in log, process.log_tail(80)  # Kopf's word for a 403
