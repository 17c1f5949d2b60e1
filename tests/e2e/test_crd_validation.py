"""`kubectl apply` of a bad InferenceBackend is refused by the API server with the CRD's message.

The CRD is installed as generated, then every spec of the invalid-spec table is created with a
server-side dry run and strict field validation (what `kubectl apply` does by default). Then the
same table and the generated variants (tests/unit/api/spec_variants.py) are sent in one batch:
the API server must refuse exactly the specs the models refuse.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.unit.api.invalid_specs import INVALID_SPECS, NAME, VALID_OLLAMA_SPEC, VALID_SPEC, Case
from tests.unit.api.spec_variants import VARIANTS, Variant
from tests.unit.api.test_spec_variants import models_refusal
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


def server_refusal(api: client.CustomObjectsApi, name: str, spec: dict[str, Any]) -> str | None:
    """The API server's message refusing the spec, or None when it accepts it."""
    try:
        dry_run_create(api, name, spec)
    except ApiException as refused:
        if refused.status not in (400, 422):
            raise
        message: str = json.loads(refused.body)["message"]
        return message
    return None


def test_the_api_server_refuses_exactly_what_the_models_refuse(custom_objects: client.CustomObjectsApi) -> None:
    """One rule set: the same verdict from both layers on every spec of the table and every variant."""
    table = [Variant(str(param.id), case.spec, True, case.name) for param in INVALID_SPECS for case in param.values]
    variants = table + VARIANTS
    started = time.monotonic()
    verdicts = [(variant, server_refusal(custom_objects, variant.name, variant.spec)) for variant in variants]
    elapsed = time.monotonic() - started
    refused = sum(message is not None for _, message in verdicts)
    print(f"\n{len(variants)} specs ({len(table)} of the table), {refused} refused, in {elapsed:.1f} s")
    disagreements = [
        f"{variant.what}:\n  models: {models_refusal(variant)}\n  server: {message}"
        for variant, message in verdicts
        if (models_refusal(variant) is None) != (message is None)
    ]
    assert disagreements == [], "\n".join(disagreements)
    # The API server's own note that schema errors kept it from running the rules has no field.
    note = re.compile(r'<nil>: Invalid value: "?null"?: some validation rules were not checked')
    nameless = [message for _, message in verdicts if message and "<nil>" in note.sub("", message)]
    assert nameless == [], "every refusal names the field it is about:\n" + "\n".join(nameless[:3])
