"""The chart as a platform engineer reads it: lint, valid objects, a hardened operator, least-privilege RBAC."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart.conftest import Render
from tests.chart.helm import CHART, KUBERNETES_MINOR, KUBERNETES_VERSION, NAMESPACE, HelmFailed, find, one, run_helm

# Values sets a platform team would install with; None is the chart's defaults.
VALUE_SETS: dict[str, dict[str, Any] | None] = {
    "defaults": None,
    "two-namespaces": {"watch": {"scope": "namespaces", "namespaces": ["ml", "ml-staging"]}},
    "secrets-in-two-namespaces": {"rbac": {"secretNamespaces": ["ml", "ml-staging"]}},
    "secrets-everywhere": {"rbac": {"secretNamespaces": ["*"]}},
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}}},
    "placed-and-sized": {
        "image": {"repository": "example/turnout", "tag": "0.1.0-rc1", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "pull"}],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": 1, "memory": "512Mi"}},
        "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}
                    ]
                }
            }
        },
        "podAnnotations": {"example.com/team": "platform"},
        "priorityClassName": "system-cluster-critical",
        "metrics": {"port": 9090, "service": {"port": 80}},
        "health": {"port": 9091},
    },
}
GATEWAY_GROUP = "gateway.networking.k8s.io"
# Kinds kubernetes-validate has no schema for: the Prometheus Operator's CRD, not part of Kubernetes.
NOT_IN_KUBERNETES = {"ServiceMonitor"}


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objects, "Deployment")
    (operator,) = deployment["spec"]["template"]["spec"]["containers"]
    return operator


def workload_grants(objects: list[dict[str, Any]], kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """The Roles (or RoleBindings) over the backends' objects: all but leader election's own."""
    return [o for o in find(objects, kind, namespace) if not o["metadata"]["name"].endswith("-leader-election")]


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, frozenset[str]]]:
    """A role's rules as (apiGroup, resource, verbs), one per resource."""
    return {
        (group, resource, frozenset(rule["verbs"]))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def granted(rules: set[tuple[str, str, frozenset[str]]], group: str, resource: str) -> frozenset[str]:
    return frozenset().union(*(verbs for g, r, verbs in rules if (g, r) == (group, resource)))


def roles(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return find(objects, "ClusterRole") + find(objects, "Role")


def secret_readers(objects: list[dict[str, Any]]) -> dict[str, frozenset[str]]:
    """Where Secrets can be read: the namespace of each Role (or "*" for a ClusterRole) and its verbs on them."""
    found = {}
    for role in roles(objects):
        verbs = granted(rules_of(role), "", "secrets")
        if verbs:
            found[role["metadata"].get("namespace", "*")] = verbs
    return found


def bound_to_the_operator(objects: list[dict[str, Any]], role: dict[str, Any]) -> bool:
    """A binding of the role's kind, in its namespace, gives it to the chart's ServiceAccount."""
    account = {
        "kind": "ServiceAccount",
        "name": one(objects, "ServiceAccount")["metadata"]["name"],
        "namespace": NAMESPACE,
    }
    namespace = role["metadata"].get("namespace")
    return any(
        binding["roleRef"]
        == {"apiGroup": "rbac.authorization.k8s.io", "kind": role["kind"], "name": role["metadata"]["name"]}
        and binding["subjects"] == [account]
        for binding in find(objects, f"{role['kind']}Binding", namespace)
    )


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_lint_passes(helm: Path, tmp_path: Path, name: str) -> None:
    arguments = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBERNETES_VERSION]
    if VALUE_SETS[name] is not None:
        values = tmp_path / "values.yaml"
        values.write_text(yaml.safe_dump(VALUE_SETS[name]))
        arguments += ["--values", str(values)]
    assert "0 chart(s) failed" in run_helm(helm, *arguments)


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_rendered_object_passes_kubernetes_openapi_validation(render: Render, name: str) -> None:
    objects = render(VALUE_SETS[name])
    validated = []
    for obj in objects:
        if obj["kind"] in NOT_IN_KUBERNETES:
            continue
        kubernetes_validate.validate(obj, KUBERNETES_MINOR, strict=True)
        validated.append(obj["kind"])
    assert {"Deployment", "ServiceAccount", "Service"} <= set(validated)


def test_defaults_run_two_hardened_replicas_with_leader_election(render: Render) -> None:
    objects = render(None)
    deployment = one(objects, "Deployment")
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    operator = container(objects)
    assert operator["image"] == "turnout/turnout:0.1.0"  # the chart's appVersion
    assert operator["args"] == [
        "run",
        "--metrics-port=8080",
        "--health-port=8081",
        "--leader-election-namespace=$(POD_NAMESPACE)",
        f"--leader-election-id={deployment['metadata']['name']}",
    ]
    # The Lease in the release's namespace only: get, create, update; nothing else of coordination.
    lease_role = next(r for r in find(objects, "Role") if r["metadata"]["name"].endswith("-leader-election"))
    assert lease_role["metadata"]["namespace"] == NAMESPACE
    assert rules_of(lease_role) == {("coordination.k8s.io", "leases", frozenset({"get", "create", "update"}))}
    assert operator["env"] == [
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    ]
    security = operator["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    tmp = next(mount for mount in operator["volumeMounts"] if mount["mountPath"] == "/tmp")
    assert "emptyDir" in next(volume for volume in pod["volumes"] if volume["name"] == tmp["name"])
    # Above the ~240 MiB that 1000 backends take (bench/scale.py), so a large install is not OOM-killed.
    assert operator["resources"]["limits"]["memory"] == "512Mi"


def test_liveness_probes_kopf_health_endpoint_and_metrics_port_is_served(render: Render) -> None:
    objects = render(None)
    operator = container(objects)
    ports = {port["name"]: port["containerPort"] for port in operator["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    (service,) = [svc for svc in find(objects, "Service") if svc["spec"]["ports"][0]["name"] == "metrics"]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_custom_ports_resources_and_placement_reach_the_pod(render: Render) -> None:
    values = VALUE_SETS["placed-and-sized"]
    assert values is not None
    objects = render(values)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    operator = container(objects)
    assert operator["image"] == "example/turnout:0.1.0-rc1"
    assert operator["imagePullPolicy"] == "Always"
    assert operator["resources"] == values["resources"]
    assert "--metrics-port=9090" in operator["args"]
    assert "--health-port=9091" in operator["args"]
    assert {port["name"]: port["containerPort"] for port in operator["ports"]} == {"metrics": 9090, "health": 9091}
    for field in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName"):
        assert pod[field] == values[field]
    assert one(objects, "Service")["spec"]["ports"][0]["port"] == 80


def test_service_monitor_is_off_by_default_and_scrapes_the_metrics_port_when_on(render: Render) -> None:
    assert find(render(None), "ServiceMonitor") == []
    objects = render(VALUE_SETS["service-monitor"])
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= one(objects, "Service")["metadata"]["labels"].items()


def test_cluster_scope_binds_one_cluster_role_to_the_service_account(render: Render) -> None:
    objects = render(None)
    assert workload_grants(objects, "Role") == []
    assert workload_grants(objects, "RoleBinding") == []
    role = one(objects, "ClusterRole")
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    account = one(objects, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"], "namespace": NAMESPACE}]
    rules = rules_of(role)
    # Kopf lists namespaces only when it watches listed ones; cluster-wide it needs no namespace read.
    assert granted(rules, "", "namespaces") == frozenset()
    assert "--namespace" not in " ".join(container(objects)["args"])


def test_namespaces_scope_grants_only_in_the_listed_namespaces(render: Render) -> None:
    objects = render(VALUE_SETS["two-namespaces"])
    roles = workload_grants(objects, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["ml", "ml-staging"]
    for namespace in ("ml", "ml-staging"):
        (binding,) = workload_grants(objects, "RoleBinding", namespace)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "turnout"}
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    cluster_rules = rules_of(one(objects, "ClusterRole"))
    # Cluster-wide it may only read CRDs, namespace names and nodes (their GPU memory labels): nothing
    # that holds a workload or a secret.
    assert {(group, resource) for group, resource, _ in cluster_rules} == {
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("", "namespaces"),
        ("", "nodes"),
    }
    assert granted(cluster_rules, "", "nodes") == frozenset({"list"})
    assert all(verbs <= {"list", "watch"} for _, _, verbs in cluster_rules)
    assert one(objects, "ClusterRoleBinding")["roleRef"]["name"] == one(objects, "ClusterRole")["metadata"]["name"]
    args = container(objects)["args"]
    assert [arg for arg in args if arg.startswith("--namespace")] == ["--namespace=ml", "--namespace=ml-staging"]


def test_default_cluster_scope_reads_no_secret_anywhere(render: Render) -> None:
    assert secret_readers(render(None)) == {}


def test_secret_namespaces_get_a_secret_only_role_each_and_nothing_elsewhere(render: Render) -> None:
    objects = render(VALUE_SETS["secrets-in-two-namespaces"])
    assert secret_readers(objects) == {"ml": {"get"}, "ml-staging": {"get"}}
    for role in workload_grants(objects, "Role"):
        assert role["metadata"]["name"] == "turnout-secrets"
        assert rules_of(role) == {("", "secrets", frozenset({"get"}))}
        assert bound_to_the_operator(objects, role)
    # Everything else the operator does is still granted cluster-wide, by the one ClusterRole.
    assert rules_of(one(objects, "ClusterRole")) == rules_of(one(render(None), "ClusterRole"))


def test_secret_namespaces_star_is_the_explicit_cluster_wide_opt_in(render: Render) -> None:
    objects = render(VALUE_SETS["secrets-everywhere"])
    assert secret_readers(objects) == {"*": {"get"}}
    (secrets_role,) = [role for role in find(objects, "ClusterRole") if role["metadata"]["name"] == "turnout-secrets"]
    assert rules_of(secrets_role) == {("", "secrets", frozenset({"get"}))}
    assert bound_to_the_operator(objects, secrets_role)
    assert workload_grants(objects, "Role") == []


def test_namespaces_scope_reads_secrets_in_each_watched_namespace_only(render: Render) -> None:
    objects = render(VALUE_SETS["two-namespaces"])
    assert secret_readers(objects) == {"ml": {"get"}, "ml-staging": {"get"}}
    for role in workload_grants(objects, "Role"):
        assert bound_to_the_operator(objects, role)


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_http_routes_are_watched_and_replaced_wherever_backends_run_never_created(render: Render, name: str) -> None:
    """A canary's HTTPRoute is named in the spec: list and watch the routes (turnout's cache), get one after a
    write whose outcome is unknown, update (PUT) its weights; nothing more."""
    objects = render(VALUE_SETS[name])
    granting = {
        (role["kind"], role["metadata"].get("namespace")): granted(rules_of(role), GATEWAY_GROUP, "httproutes")
        for role in roles(objects)
        if granted(rules_of(role), GATEWAY_GROUP, "httproutes")
    }
    values = VALUE_SETS[name] or {}
    watched = values.get("watch", {}).get("namespaces")
    expected = [("Role", namespace) for namespace in watched] if watched else [("ClusterRole", None)]
    assert granting == dict.fromkeys(expected, frozenset({"get", "list", "watch", "update"}))
    for role in roles(objects):
        assert all(group != GATEWAY_GROUP or resource == "httproutes" for group, resource, _ in rules_of(role))


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_no_rule_lists_or_watches_secrets(render: Render, name: str) -> None:
    for role in roles(render(VALUE_SETS[name])):
        assert granted(rules_of(role), "", "secrets") <= {"get"}, role["metadata"]["name"]


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_no_wildcards_and_no_rbac_escalation(render: Render, name: str) -> None:
    for role in roles(render(VALUE_SETS[name])):
        for group, resource, verbs in rules_of(role):
            assert "*" not in {group, resource, *verbs}
            assert group != "rbac.authorization.k8s.io"
            assert not verbs & {"escalate", "bind", "impersonate", "deletecollection"}


README_RULE = re.compile(r"^\|\s*`(?P<group>[^`]*)`\s*\|\s*`(?P<resource>[^`]+)`\s*\|\s*(?P<verbs>[a-z, ]+?)\s*\|")


def test_readme_lists_exactly_the_rules_the_chart_grants(render: Render) -> None:
    listed = set()
    rbac_section = (CHART / "README.md").read_text().partition("\n## RBAC")[2]
    assert rbac_section, "the chart's README has no RBAC section"
    for line in rbac_section.splitlines():
        match = README_RULE.match(line)
        if match:
            verbs = frozenset(verb.strip() for verb in match["verbs"].split(","))
            group = "" if match["group"] == '""' else match["group"]  # the core group is written ""
            listed.add((group, match["resource"], verbs))
    granted_anywhere: set[tuple[str, str, frozenset[str]]] = set()
    for values in VALUE_SETS.values():
        for role in roles(render(values)):
            granted_anywhere |= rules_of(role)
    assert listed == granted_anywhere


# Invalid values and the words helm's error must contain to tell the user which field is wrong.
INVALID_VALUES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "unknown scope": ({"watch": {"scope": "everywhere"}}, ["watch/scope", "cluster", "namespaces"]),
    "namespaces scope without namespaces": ({"watch": {"scope": "namespaces"}}, ["watch", "namespaces"]),
    "namespace that is no DNS label": (
        {"watch": {"scope": "namespaces", "namespaces": ["ML_Team"]}},
        ["watch/namespaces/0"],
    ),
    "namespaces listed with cluster scope": ({"watch": {"namespaces": ["ml"]}}, ["watch/namespaces"]),
    "port as a string": ({"metrics": {"port": "8080"}}, ["metrics/port"]),
    "privileged port": ({"health": {"port": 80}}, ["health/port"]),
    "resource that is no quantity": ({"resources": {"limits": {"memory": "lots"}}}, ["resources/limits/memory"]),
    "unknown pull policy": ({"image": {"pullPolicy": "Sometimes"}}, ["image/pullPolicy"]),
    "misspelt top-level key": ({"nodeselector": {"disk": "ssd"}}, ["nodeselector"]),
    "service monitor interval": (
        {"metrics": {"serviceMonitor": {"enabled": True, "interval": "often"}}},
        ["metrics/serviceMonitor/interval"],
    ),
    "same port twice": ({"metrics": {"port": 8081}}, ["metrics.port and health.port"]),
    "secret namespace that is no DNS label": (
        {"rbac": {"secretNamespaces": ["ml", "ML"]}},
        ["rbac/secretNamespaces/1"],
    ),
    "every namespace and one more": (
        {"rbac": {"secretNamespaces": ["*", "ml"]}},
        ["rbac.secretNamespaces", "stands alone"],
    ),
    "secret namespaces with namespaces scope": (
        {"watch": {"scope": "namespaces", "namespaces": ["ml"]}, "rbac": {"secretNamespaces": ["ml"]}},
        ["rbac.secretNamespaces", "watch.scope cluster"],
    ),
}


@pytest.mark.parametrize("case", list(INVALID_VALUES))
def test_invalid_values_are_rejected_with_the_field_named(render: Render, case: str) -> None:
    values, words = INVALID_VALUES[case]
    with pytest.raises(HelmFailed) as failure:
        render(values)
    message = str(failure.value)
    for word in words:
        assert word in message, message


def test_without_leader_election_one_replica_replaced_by_recreate(render: Render) -> None:
    objects = render({"leaderElection": {"enabled": False}, "replicas": 1})
    deployment = one(objects, "Deployment")
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]) == (1, {"type": "Recreate"})
    assert not any(arg.startswith("--leader-election") for arg in container(objects)["args"])
    assert not [r for r in find(objects, "Role") if r["metadata"]["name"].endswith("-leader-election")]
