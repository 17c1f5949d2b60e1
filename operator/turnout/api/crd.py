"""The InferenceBackend CustomResourceDefinition, generated from the spec and status models.

`python -m turnout.api.crd` writes `crds/turnout.dev_inferencebackends.yaml`;
`python -m turnout.api.crd --check` exits 1 when that file differs from what the models say.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from turnout.api.backend import GROUP, KIND, PLURAL, VERSION
from turnout.api.cel import Rule
from turnout.api.rules import RULES
from turnout.api.schema import Schema, structural_schema
from turnout.api.spec import InferenceBackendSpec
from turnout.api.status import InferenceBackendStatus

SHORT_NAMES = ["ib"]
CATEGORIES = ["turnout"]
CRD_FILE = Path("crds") / f"{GROUP}_{PLURAL}.yaml"
# The checkout this module lives in (operator/turnout/api/crd.py → the repository root).
REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
REGENERATE = "python -m turnout.api.crd"
HEADER = (
    f"# Generated from turnout/api/spec.py and status.py by `{REGENERATE}`; do not edit.\n"
    f"# `{REGENERATE} --check` fails when this file is stale.\n"
)

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Engine",
        "type": "string",
        "jsonPath": ".status.activeEngine",
        "description": "The engine of the revision the Service serves.",
    },
    {
        "name": "Model",
        "type": "string",
        "jsonPath": ".status.activeModel",
        "description": "The model the revision the Service serves loads (after a rollback, not the spec's).",
    },
    {
        "name": "Served",
        "type": "string",
        "jsonPath": ".spec.model.servedName",
        "priority": 1,
        "description": "The model name clients send, when it is not the backend's name.",
    },
    {"name": "Active", "type": "string", "jsonPath": ".status.activeColor"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {
        "name": "Canary",
        "type": "integer",
        "jsonPath": ".status.canary.trafficShare",
        "priority": 1,
        "description": "Percent of the traffic on the new revision while a canary runs.",
    },
    {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
    {"name": "Revision", "type": "string", "jsonPath": ".status.activeRevision", "priority": 1},
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": ".status.lastFailureReason",
        "priority": 1,
        "description": "Why the last failed revision failed (ReadyTimeout, CheckFailed, BenchmarkFailed, ...).",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_crd() -> dict[str, Any]:
    """The CRD as a plain dict, ready to be applied or dumped."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": SHORT_NAMES,
                "categories": CATEGORIES,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": object_schema()},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


def object_schema() -> Schema:
    """The schema of a whole InferenceBackend object, with every rule of `turnout.api.rules` attached."""
    root: Schema = {
        "type": "object",
        "description": (
            "An LLM inference backend (vLLM or Ollama) behind one stable Service, moved to a new "
            "revision by a blue/green cutover only after the new one proves it serves the model."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            # Declared so that rules on the name can point at it (`fieldPath: .metadata.name`).
            "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
            "spec": structural_schema(InferenceBackendSpec),
            "status": _status_schema(),
        },
    }
    for rule in RULES:
        _attach(root, rule)
    return root


def _status_schema() -> Schema:
    # No defaults: status is written whole by turnout, and a default would hide a field it forgot.
    status = structural_schema(InferenceBackendStatus, keep_defaults=False)
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    # Kopf keeps its handlers' progress under status.kopf; without this the API server prunes it.
    status["properties"]["kopf"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return status


def _attach(root: Schema, rule: Rule) -> None:
    node = root
    for step in rule.at:
        if step == "*":
            node = node["items"] if node["type"] == "array" else node["additionalProperties"]
        else:
            node = node["properties"][step]
    entry = {"rule": rule.rule, "message": rule.message}
    if rule.message_expression:
        entry["messageExpression"] = rule.message_expression
    if rule.field_path:
        entry["fieldPath"] = rule.field_path
    node.setdefault("x-kubernetes-validations", []).append(entry)


def render_crd() -> str:
    """The CRD file's text: a header saying how it was made, then YAML."""
    return HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=100, allow_unicode=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the CRD file, or with `--check` report whether it is stale (exit 1)."""
    return generated_file_command(
        argv,
        prog=REGENERATE,
        description=__doc__,
        default_output=CRD_FILE,
        render=render_crd,
        remedy="run `hack/gen-manifests` (it also refreshes the chart's copy and manifests/) and commit the result",
    )


def generated_file_command(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str | None,
    default_output: Path,
    render: Callable[[], str],
    remedy: str,
) -> int:
    """The command of a file generated from the models: write `render()` to `--output` (by default
    `default_output` in this checkout), or with `--check` exit 1 showing the diff and `remedy` when the
    file differs."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale; write nothing")
    parser.add_argument(
        "--output",
        type=Path,
        default=REPOSITORY_ROOT / default_output,
        help=f"default: {default_output} in this checkout",
    )
    args = parser.parse_args(argv)
    wanted = render()
    output: Path = args.output
    if not args.check:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(wanted)
        print(f"wrote {output}")
        return 0
    present = output.read_text() if output.exists() else ""
    if present == wanted:
        return 0
    diff = difflib.unified_diff(
        present.splitlines(keepends=True), wanted.splitlines(keepends=True), "on disk", "from the models"
    )
    sys.stderr.writelines(list(diff)[:60])
    print(f"\n{output} is stale: {remedy}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
