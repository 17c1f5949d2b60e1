"""Fixtures of the renderer tests: Kubernetes' own OpenAPI schema, loaded once."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
from kubernetes_validate import utils as kube_schemas

REPO = Path(__file__).resolve().parents[3]


def kubernetes_minor() -> str:
    """The Kubernetes version of the local control plane (hack/versions.env), as `1.N`."""
    pinned = (REPO / "hack" / "versions.env").read_text()
    found = re.search(r"^KUBERNETES_VERSION=v?(\d+\.\d+)", pinned, re.MULTILINE)
    assert found, "hack/versions.env names no KUBERNETES_VERSION"
    return found.group(1)


def schema_version() -> str:
    """The newest schema kubernetes-validate ships that is not newer than the control plane's."""
    wanted = tuple(int(part) for part in kubernetes_minor().split("."))
    shipped = [v for v in kube_schemas.all_versions() if tuple(int(p) for p in v.split(".")[:2]) <= wanted]
    return str(shipped[-1])


@functools.cache
def strict_validator(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    """A validator for one kind, from the strict (no unknown fields) schemas; built once per kind."""
    version = schema_version()
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = kube_schemas.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    definitions = kube_schemas.schema_contents(f"{folder}/_definitions.json", version)
    registry: referencing.Registry[Any] = referencing.Registry()
    registry = referencing.Resource.from_contents(schema) @ registry
    registry = referencing.Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_kube_object(obj: dict[str, Any]) -> None:
    """Raise when `obj` breaks the Kubernetes OpenAPI schema of its kind (unknown fields included)."""
    try:
        strict_validator(obj["kind"], obj["apiVersion"]).validate(obj)
    except jsonschema.ValidationError as error:
        where = ".".join(str(part) for part in error.absolute_path)
        raise AssertionError(f"{obj['kind']} {obj['metadata']['name']}: {where}: {error.message}") from None


@pytest.fixture(scope="session")
def kube_schema() -> Callable[[dict[str, Any]], None]:
    """Validate one object against Kubernetes' own schema, as kubernetes-validate ships it."""
    assert kubernetes_validate.latest_version()
    return validate_kube_object
