"""The jinja2 environment the renderers share: templates hold layout, every value goes through `tojson`.

JSON is valid YAML, so a value written as `{{ value | tojson }}` inside a YAML layout is one YAML
scalar or flow collection whatever characters it holds: a user's string cannot add a key.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jinja2
import yaml

# YAML line breaks (NEL, LS, PS), DEL, C1 controls, BOM, noncharacters and lone surrogates are legal
# in JSON text but a YAML reader folds or refuses them; as \u escapes they load back unchanged.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def _yaml_safe_json(value: Any, **kwargs: Any) -> str:
    """JSON that PyYAML and the API server read back to `value` exactly.

    `ensure_ascii` is off because PyYAML decodes a \\u surrogate pair as two broken characters;
    the few characters a YAML reader treats specially are escaped instead.
    """
    kwargs["ensure_ascii"] = False
    text = json.dumps(value, **kwargs)
    return _YAML_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("turnout.render", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)
_environment.policies["json.dumps_function"] = _yaml_safe_json
_environment.policies["json.dumps_kwargs"] = {"sort_keys": False}


# libyaml's reader when PyYAML was built with it (its wheels are): the same safe loader, ten times
# faster than the pure-Python one, which was a tenth of the operator's CPU at 1000 backends.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def render_manifest(template: str, **values: Any) -> dict[str, Any]:
    """Render `templates/<template>` with `values` and load the result as one Kubernetes object."""
    text = _environment.get_template(template).render(**values)
    loaded = yaml.load(text, Loader=_Loader)
    if not isinstance(loaded, dict):
        raise TypeError(f"template {template} did not render a mapping")
    return loaded
