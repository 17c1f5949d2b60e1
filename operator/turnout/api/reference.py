"""docs/reference.md: every spec and status field, from the CRD's schema (itself from the models).

Walks `build_crd()`'s openAPIV3Schema, so the page says what `kubectl explain` would, on one page.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from turnout.api.crd import build_crd, generated_file_command

REFERENCE_FILE = Path("docs") / "reference.md"
REGENERATE = "python -m turnout.api.reference"
INTRO = f"""# InferenceBackend field reference

<!-- Generated from turnout/api/spec.py and status.py by `{REGENERATE}`; do not edit. -->

Every field of `spec` and `status`, as `kubectl explain inferencebackend.spec --recursive` would
show it, on one page. `[]` is an item of a list, `{{}}` the value of a map. Rules that span fields
(CEL) are listed under the field they are attached to.

"""
BOUNDS = (
    ("minimum", ">= {}"),
    ("maximum", "<= {}"),
    ("minLength", "length >= {}"),
    ("maxLength", "length <= {}"),
    ("minItems", "items >= {}"),
    ("maxItems", "items <= {}"),
    ("maxProperties", "keys <= {}"),
    ("pattern", "matches `{}`"),
)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _type(node: dict[str, Any]) -> str:
    kind = node.get("type", "any")
    if kind == "array":
        return f"[]{_type(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type(node['additionalProperties'])}"
    if node.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    return str(kind)


def _bounds(node: dict[str, Any], required: bool) -> str:
    parts = ["required"] if required else []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{value}`" for value in node["enum"]))
    parts += [template.format(node[key]) for key, template in BOUNDS if key in node]
    # OpenAPI v3.0 (the CRD's dialect): exclusiveMinimum/Maximum are flags on minimum/maximum.
    for flag, bound, sign in (("exclusiveMinimum", "minimum", ">"), ("exclusiveMaximum", "maximum", "<")):
        if node.get(flag) is True:
            parts[parts.index(f"{sign}= {node[bound]}")] = f"{sign} {node[bound]}"
    parts += [f"rule: {rule['message']}" for rule in node.get("x-kubernetes-validations", []) if "message" in rule]
    return _cell("; ".join(parts))


def _rows(node: dict[str, Any], path: str, required: bool) -> Iterator[str]:
    default = f"`{json.dumps(node['default'])}`" if "default" in node else ""
    description = _cell(node.get("description", ""))
    yield f"| `{path}` | {_type(node)} | {_cell(default)} | {_bounds(node, required)} | {description} |"
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        yield from _children(node["items"], f"{path}[]")
    elif isinstance(node.get("additionalProperties"), dict):
        yield from _children(node["additionalProperties"], f"{path}{{}}")
    else:
        yield from _children(node, path)


def _children(node: dict[str, Any], path: str) -> Iterator[str]:
    needed = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        yield from _rows(child, f"{path}.{name}", name in needed)


def render_reference() -> str:
    """The reference page's Markdown: one table each for spec and status."""
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    out = [INTRO]
    for section in ("spec", "status"):
        node = root["properties"][section]
        out.append(f"## {section}\n\n{_cell(node.get('description', ''))}\n\n".replace("\n\n\n\n", "\n\n"))
        out.append("| field | type | default | bounds | description |\n|---|---|---|---|---|\n")
        out.extend(f"{row}\n" for row in _children(node, section))
        out.append("\n")
    return "".join(out).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write docs/reference.md, or with `--check` report whether it is stale (exit 1)."""
    return generated_file_command(
        argv,
        prog=REGENERATE,
        description=__doc__,
        default_output=REFERENCE_FILE,
        render=render_reference,
        remedy="run `hack/gen-manifests` and commit the result",
    )


if __name__ == "__main__":
    sys.exit(main())
