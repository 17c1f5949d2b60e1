"""`kubectl apply` of a bad InferenceBackend is refused by the API server with the CRD's message.

The CRD is installed as generated, then every spec of the invalid-spec table is created with a
server-side dry run and strict field validation (what `kubectl apply` does by default).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.unit.api.invalid_specs import INVALID_SPECS, NAME, VALID_OLLAMA_SPEC, VALID_SPEC, Case
from turnout.api.backend import GROUP, KIND, PLURAL, VERSION

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def custom_objects(api_client: client.ApiClient, crd_installed: None) -> client.CustomObjectsApi:
    """The API, once the generated CRD is installed (tests/e2e/conftest.py)."""
    return client.CustomObjectsApi(api_client)


def dry_run_create(api: client.CustomObjectsApi, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": name}, "spec": spec}
    api.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, body, dry_run="All", field_validation="Strict"
    )


def refusal(api: client.CustomObjectsApi, name: str, spec: dict[str, Any]) -> str:
    """The message `kubectl apply` would print, or a failure if the server accepts the object."""
    with pytest.raises(ApiException) as refused:
        dry_run_create(api, name, spec)
    assert refused.value.status in (400, 422), refused.value
    message: str = json.loads(refused.value.body)["message"]
    return message


def example_backends() -> list[Any]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == KIND:
                found.append(pytest.param(document, id=f"{path.stem}/{document['metadata']['name']}"))
    return found


@pytest.mark.parametrize("spec", [VALID_SPEC, VALID_OLLAMA_SPEC], ids=["vllm", "ollama"])
def test_the_specs_the_table_starts_from_are_accepted(
    custom_objects: client.CustomObjectsApi, spec: dict[str, Any]
) -> None:
    dry_run_create(custom_objects, NAME, spec)


@pytest.mark.parametrize("backend", example_backends())
def test_every_example_is_accepted(custom_objects: client.CustomObjectsApi, backend: dict[str, Any]) -> None:
    dry_run_create(custom_objects, backend["metadata"]["name"], backend["spec"])


@pytest.mark.parametrize("case", INVALID_SPECS)
def test_invalid_spec_is_refused_at_apply_time(custom_objects: client.CustomObjectsApi, case: Case) -> None:
    message = refusal(custom_objects, case.name, case.spec)
    for part in case.server:
        assert part in message
