"""Install CustomResourceDefinitions and wait until the API server serves them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from testground.waiting import wait_for

GATEWAY_GROUP = "gateway.networking.k8s.io"


def install_crd(
    api_client: client.ApiClient, crd: dict[str, Any], timeout: float = 60.0, *, replace: bool = True
) -> None:
    """Create `crd`, or (with `replace`) replace the one of that name, then wait for it to be Established (seconds).

    Without `replace`, a CRD of that name that is there already is kept as it is.
    """
    extensions = client.ApiextensionsV1Api(api_client)
    name = crd["metadata"]["name"]
    try:
        extensions.create_custom_resource_definition(crd)
    except ApiException as error:
        if error.status != 409:
            raise
        if replace:
            current = extensions.read_custom_resource_definition(name)
            extensions.replace_custom_resource_definition(
                name, {**crd, "metadata": {**crd["metadata"], "resourceVersion": current.metadata.resource_version}}
            )

    def established() -> bool:
        conditions = extensions.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_for(established, timeout=timeout, what=f"CRD {name} to be established")


def install_gateway_api(
    api_client: client.ApiClient, directory: Path, plurals: tuple[str, ...], timeout: float
) -> None:
    """Install the Gateway API CRDs of `plurals` (e.g. "httproutes") from a release's `directory` of CRD
    files, and wait until each is served (seconds). A cluster that has one already keeps its own: a
    cluster's Gateway API is never replaced by the tests' version."""
    custom = client.CustomObjectsApi(api_client)
    for plural in plurals:
        crd = yaml.safe_load((directory / f"{GATEWAY_GROUP}_{plural}.yaml").read_text())
        install_crd(api_client, crd, timeout, replace=False)
        version = next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))
        wait_for(
            lambda version=version, plural=plural: custom.list_cluster_custom_object(
                GATEWAY_GROUP, version, plural, limit=1
            ),
            timeout=timeout,
            what=f"{plural}.{GATEWAY_GROUP}/{version} to be served",
        )
