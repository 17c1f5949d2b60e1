"""The generated CRD: current, a valid CustomResourceDefinition, structural, and what `kubectl` shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from turnout.api import crd
from turnout.api.spec import InferenceBackendSpec

CRD_PATH = Path(__file__).resolve().parents[3] / crd.CRD_FILE
# The pinned control plane's version (hack/versions.env).
KUBERNETES_VERSION = "1.36"


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return crd.build_crd()


@pytest.fixture(scope="module")
def root(generated: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = generated["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path: `.spec.vllm.extraArgs[*]`, `.spec.template.podLabels{*}`."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    if "items" in schema:
        yield from nodes(schema["items"], f"{path}[*]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{*}}")


def test_committed_crd_is_what_the_models_generate() -> None:
    assert CRD_PATH.exists(), f"{crd.CRD_FILE} is missing: run `{crd.REGENERATE}`"
    assert CRD_PATH.read_text() == crd.render_crd(), f"{crd.CRD_FILE} is stale: run `{crd.REGENERATE}`"


def test_check_command_fails_on_a_stale_file_and_passes_after_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "crd.yaml"
    output.write_text("kind: Stale\n")
    assert crd.main(["--check", "--output", str(output)]) == 1
    assert "is stale: run `hack/gen-manifests`" in capsys.readouterr().err
    assert crd.main(["--output", str(output)]) == 0
    assert crd.main(["--check", "--output", str(output)]) == 0


def test_crd_is_a_valid_custom_resource_definition(generated: dict[str, Any]) -> None:
    kubernetes_validate.validate(generated, KUBERNETES_VERSION, strict=True)


def test_an_invalid_crd_is_caught_by_the_same_validation(generated: dict[str, Any]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(generated))
    broken["spec"]["versions"][0]["subresources"]["scale"]["specReplicasPath"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_names_and_version(generated: dict[str, Any]) -> None:
    spec = generated["spec"]
    assert generated["metadata"]["name"] == "inferencebackends.turnout.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "InferenceBackend"
    assert spec["names"]["shortNames"] == ["ib"]
    assert "turnout" in spec["names"]["categories"]
    assert [(v["name"], v["served"], v["storage"]) for v in spec["versions"]] == [("v1alpha1", True, True)]


def test_schema_is_structural(root: dict[str, Any]) -> None:
    """What the API server demands of a structural schema, and what pydantic would put there instead."""
    for path, node in nodes(root):
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"
        for keyword in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "pattern", "propertyNames"):
            assert keyword not in node, f"{path} has {keyword}"
        assert node.get("additionalProperties") is not False, f"{path}: additionalProperties false"
        assert not ("properties" in node and "additionalProperties" in node), f"{path}: both kinds of keys"
        assert not isinstance(node.get("exclusiveMinimum"), int | float) or node["exclusiveMinimum"] is True


def test_only_free_form_fields_keep_unknown_fields(root: dict[str, Any]) -> None:
    free_form = {path for path, node in nodes(root) if node.get("x-kubernetes-preserve-unknown-fields")}
    assert free_form == {".spec.template.env[*].valueFrom", ".status.kopf"}


def test_every_field_is_documented_for_kubectl_explain(root: dict[str, Any]) -> None:
    fields = [
        (path, node)
        for part in ("spec", "status")
        for path, node in nodes(root["properties"][part], f".{part}")
        if path[-1] not in "]}" and path != ".status.kopf"
    ]
    undocumented = [path for path, node in fields if "description" not in node]
    assert undocumented == []
    assert all("\n" not in node.get("description", "") for _, node in nodes(root))


def test_every_cel_rule_has_a_one_line_message(root: dict[str, Any]) -> None:
    rules = [rule for _, node in nodes(root) for rule in node.get("x-kubernetes-validations", [])]
    assert len(rules) > 20
    for rule in rules:
        assert rule["message"], rule
        assert "\n" not in rule["message"], rule


def test_cel_rules_have_bounded_inputs_for_the_cost_budget(root: dict[str, Any]) -> None:
    """The API server refuses a CRD whose rules may cost too much; unbounded lists, maps and strings
    under a rule are what make the estimate explode."""
    for path, node in nodes(root):
        if "x-kubernetes-validations" not in node:
            continue
        for inner_path, inner in nodes(node, path):
            kind = inner.get("type")
            bound = {"string": "maxLength", "array": "maxItems"}.get(kind or "")
            if kind == "object" and "additionalProperties" in inner:
                bound = "maxProperties"
            if bound and inner_path.startswith(".spec"):
                assert bound in inner or "enum" in inner, f"{inner_path} under a CEL rule needs {bound}"


def test_apply_time_ranges_match_the_models(root: dict[str, Any]) -> None:
    vllm = root["properties"]["spec"]["properties"]["vllm"]["properties"]
    assert vllm["gpuMemoryUtilization"] == {
        **vllm["gpuMemoryUtilization"],
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
        "default": 0.9,
    }
    assert vllm["maxModelLen"]["default"] == 8192
    assert vllm["dtype"]["enum"] == ["auto", "half", "float16", "bfloat16", "float", "float32"]
    assert root["properties"]["spec"]["properties"]["engine"]["enum"] == ["vllm", "ollama"]
    assert root["properties"]["spec"]["required"] == ["engine", "model"]


def test_defaults_in_the_crd_are_the_models_defaults(root: dict[str, Any]) -> None:
    """The API server fills these in; the operator must read the same values from an empty spec."""
    parsed = InferenceBackendSpec.model_validate(
        {
            "engine": "vllm",
            "model": {"name": "m", "storage": {}},
            "rollout": {"canary": {"steps": [{"setWeight": 5}]}, "benchmark": {}},
        }
    )
    dumped = parsed.model_dump(mode="json", by_alias=True)
    spec_schema = root["properties"]["spec"]
    for path, node in nodes(spec_schema):
        if "default" not in node or "[*]" in path or "{*}" in path:
            continue
        value: Any = dumped
        for part in path.strip(".").split("."):
            value = value[part]
        assert value == node["default"], path


def test_status_and_scale_subresources(generated: dict[str, Any], root: dict[str, Any]) -> None:
    version = generated["spec"]["versions"][0]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    status = root["properties"]["status"]["properties"]
    assert status["replicas"]["type"] == "integer"
    assert status["selector"]["type"] == "string"
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    assert "default" not in str(root["properties"]["status"])


def test_printer_columns_point_at_fields_that_exist(generated: dict[str, Any], root: dict[str, Any]) -> None:
    columns = generated["spec"]["versions"][0]["additionalPrinterColumns"]
    default_view = [column["name"] for column in columns if not column.get("priority")]
    assert default_view == ["Engine", "Model", "Active", "Phase", "Ready", "Age"]
    paths = {path for path, _ in nodes(root)}
    for column in columns:
        if column["jsonPath"] != ".metadata.creationTimestamp":
            assert column["jsonPath"] in paths, column


def test_crd_file_is_plain_yaml_with_a_do_not_edit_header() -> None:
    text = CRD_PATH.read_text()
    assert text.startswith("# Generated from turnout/api/spec.py")
    assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"
