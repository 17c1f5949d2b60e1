"""Install a CustomResourceDefinition and wait until the API server serves it."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from testground.waiting import wait_for


def install_crd(api_client: client.ApiClient, crd: dict[str, Any], timeout: float = 60.0) -> None:
    """Create `crd`, or replace the one of that name, then wait for it to be Established (seconds)."""
    extensions = client.ApiextensionsV1Api(api_client)
    name = crd["metadata"]["name"]
    try:
        extensions.create_custom_resource_definition(crd)
    except ApiException as error:
        if error.status != 409:
            raise
        current = extensions.read_custom_resource_definition(name)
        extensions.replace_custom_resource_definition(
            name, {**crd, "metadata": {**crd["metadata"], "resourceVersion": current.metadata.resource_version}}
        )

    def established() -> bool:
        conditions = extensions.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_for(established, timeout=timeout, what=f"CRD {name} to be established")
