"""Turn a pydantic model's JSON schema into a structural OpenAPI v3 schema for a CRD.

Kubernetes accepts only a subset of JSON schema: no `$ref`, no `anyOf` with `null`, no `title`,
every node typed, maps as `additionalProperties`, free-form objects marked
`x-kubernetes-preserve-unknown-fields`. Patterns become CEL rules whose message says what a valid
value looks like (from `spec.PATTERN_HINTS`), because the API server would print the regex.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import BaseModel

from turnout.api.spec import PATTERN_HINTS

Schema = dict[str, Any]

# Keys copied as they are; anything else pydantic emits must be handled below or is an error.
_PLAIN_KEYS = frozenset(
    {
        "type",
        "description",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "required",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-validations",
        "x-kubernetes-preserve-unknown-fields",
    }
)


class UnsupportedSchema(ValueError):
    """A model uses a JSON-schema feature a CRD cannot express; change the model."""


def structural_schema(model: type[BaseModel], *, keep_defaults: bool = True) -> Schema:
    """The CRD schema of `model`, by its camelCase aliases; `keep_defaults=False` drops `default`s."""
    source = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(source, source.get("$defs", {}), keep_defaults, "")


def _convert(node: Schema, defs: dict[str, Schema], keep_defaults: bool, where: str) -> Schema:
    node = _resolve(node, defs, where)
    out: Schema = {}
    for key, value in node.items():
        if key in _PLAIN_KEYS:
            out[key] = copy.deepcopy(value)  # a definition used twice must not become a YAML alias
        elif key == "default":
            if keep_defaults and value is not None:
                out[key] = value
        elif key in {"exclusiveMinimum", "exclusiveMaximum"}:
            # JSON schema 2020 gives the bound itself; OpenAPI v3.0 wants the bound and a flag.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "pattern":
            out.setdefault("x-kubernetes-validations", []).append(_pattern_rule(value, where))
        elif key == "properties":
            out[key] = {name: _convert(child, defs, keep_defaults, f"{where}.{name}") for name, child in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, keep_defaults, f"{where}[*]")
        elif key == "additionalProperties":
            if value is True and "properties" not in node:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out[key] = _convert(value, defs, keep_defaults, f"{where}[*]")
            # False: a structural schema prunes unknown fields (and `kubectl apply` reports them).
        elif key == "patternProperties":
            out.update(_map_with_key_pattern(value, defs, keep_defaults, where))
        elif key == "propertyNames":
            out.setdefault("x-kubernetes-validations", []).extend(_key_rules(value, where))
        elif key in {"title", "$defs"}:
            continue  # titles are noise in `kubectl explain`
        else:
            raise UnsupportedSchema(f"{where or '.'}: JSON schema keyword {key!r} has no CRD equivalent")
    if "description" in out:
        out["description"] = _one_paragraph(out["description"])
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        raise UnsupportedSchema(f"{where or '.'}: every node of a structural schema needs a type")
    return dict(sorted(out.items(), key=_reading_order))


# Type and meaning first, then constraints, then the children: the order people read a CRD in.
_FIRST = ("type", "description", "default", "enum")
_LAST = ("required", "properties", "items", "additionalProperties")


def _reading_order(item: tuple[str, Any]) -> tuple[int, int, str]:
    key = item[0]
    if key in _FIRST:
        return (0, _FIRST.index(key), key)
    if key in _LAST:
        return (2, _LAST.index(key), key)
    return (1, 0, key)


def _resolve(node: Schema, defs: dict[str, Schema], where: str) -> Schema:
    """Inline `$ref` and collapse `anyOf [X, null]` to X; the field's own keys win over X's."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        rest = {key: value for key, value in node.items() if key != "$ref"}
        return _resolve({**target, **rest}, defs, where)
    if "anyOf" in node:
        choices = [choice for choice in node["anyOf"] if choice.get("type") != "null"]
        if len(choices) != 1:
            raise UnsupportedSchema(f"{where or '.'}: a union of several types cannot be a structural schema")
        rest = {key: value for key, value in node.items() if key != "anyOf"}
        return _resolve({**choices[0], **rest}, defs, where)
    return node


def _map_with_key_pattern(
    pattern_properties: dict[str, Schema], defs: dict[str, Schema], keep_defaults: bool, where: str
) -> Schema:
    """`dict[Key, V]` with a key pattern: a map of V whose keys are checked by a CEL rule."""
    if len(pattern_properties) != 1:
        raise UnsupportedSchema(f"{where or '.'}: a map needs exactly one key pattern")
    ((pattern, values),) = pattern_properties.items()
    key_rule = _pattern_rule(pattern, where)
    return {
        "additionalProperties": _convert(values, defs, keep_defaults, f"{where}[*]"),
        "x-kubernetes-validations": [
            {"rule": f"self.all(k, k.matches({_cel_raw_string(pattern)}))", "message": f"keys {key_rule['message']}"}
        ],
    }


def _key_rules(property_names: Schema, where: str) -> list[dict[str, str]]:
    """A map's bound on the length of its keys, which no structural schema can state, as a CEL rule."""
    if set(property_names) - {"maxLength"}:
        raise UnsupportedSchema(f"{where or '.'}: keys can be bounded in length only (a key pattern is a key type)")
    limit = property_names["maxLength"]
    return [{"rule": f"self.all(k, k.size() <= {limit})", "message": f"keys must be at most {limit} characters"}]


def _pattern_rule(pattern: str, where: str) -> dict[str, str]:
    hint = PATTERN_HINTS.get(pattern)
    if hint is None:
        raise UnsupportedSchema(f"{where or '.'}: pattern {pattern!r} has no entry in PATTERN_HINTS")
    return {"rule": f"self.matches({_cel_raw_string(pattern)})", "message": hint}


def _cel_raw_string(text: str) -> str:
    if "'" in text:
        raise UnsupportedSchema(f"pattern {text!r} contains a quote, which a CEL raw string cannot hold")
    return f"r'{text}'"


def _one_paragraph(text: str) -> str:
    """Docstrings wrap at the source's line length; `kubectl explain` wraps again on its own."""
    return re.sub(r"\s*\n\s*", " ", text.strip())
