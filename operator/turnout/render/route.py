"""Traffic through a Gateway API HTTPRoute: one Service per color, and the weights of exactly those two backendRefs.

When a canary moves traffic through an HTTPRoute (gateway.networking.k8s.io/v1, the backend's namespace),
turnout keeps a Service per color, `<service name>-blue` and `<service name>-green`, each selecting only
that color's pods, and sets the `weight` of the route's backendRefs to those two Services. Everything
else of the route is the user's (or the platform's): other rules, other refs, matches, filters, parents.

A backendRef is turnout's when its `group` is "" (or absent), its `kind` is Service (or absent), its
`namespace` is absent or the route's own, and its `name` is one of the two color Services.

The name of a color Service must fit a DNS label: with `canary.traffic.httpRoute`, validation (the
models and a CEL rule, `turnout.api.rules.ROUTED_SERVICE_NAME_TOO_LONG`) refuses a `spec.service.name`
without room for the suffix; the renderers here assume it fits.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from turnout.api.backend import Backend
from turnout.api.spec import ServiceType
from turnout.api.status import Color
from turnout.render.service import render_backend_service

DEFAULT_WEIGHT = 1
"""The weight of a backendRef that sets none (Gateway API)."""
MAX_WEIGHT = 1_000_000
"""The largest weight the HTTPRoute schema takes."""


@dataclass(frozen=True)
class RouteChange:
    """The route with turnout's weights in place, to be written back as a whole (it keeps the
    resourceVersion it was read with, so a concurrent edit makes the write fail instead of being lost)."""

    route: dict[str, Any]
    """A deep copy of the route read, where only the weights of turnout's backendRefs may differ."""
    changed: bool
    """Whether any of those weights differ from the route read (False: nothing to write)."""

    @property
    def rules(self) -> list[dict[str, Any]]:
        """The route's `spec.rules`, weights set."""
        rules: list[dict[str, Any]] = self.route["spec"]["rules"]
        return rules


@dataclass(frozen=True)
class RouteProblem:
    """A route turnout refuses to change, with the sentence the user reads in a condition."""

    message: str


def color_service_name(backend: Backend, color: Color) -> str:
    """`<spec.service.name>-<color>`: the Service of one color that the HTTPRoute's backendRef names."""
    return f"{backend.service_name}-{color.value}"


def color_service_names(backend: Backend) -> dict[Color, str]:
    """Both colors' Service names, as `route_weights` and `route_with_weights` take them."""
    return {color: color_service_name(backend, color) for color in Color}


def render_color_service(backend: Backend, color: Color) -> dict[str, Any]:
    """The ClusterIP Service `color_service_name(backend, color)` in front of that color's pods only, with
    the stable Service's labels and port (`spec.service.port` to the engine's named port)."""
    return render_backend_service(backend, color_service_name(backend, color), ServiceType.CLUSTER_IP.value, color)


def route_weights(route: Mapping[str, Any], names: Mapping[Color, str]) -> dict[Color, int] | None:
    """The weights on turnout's backendRefs (`names`: each color's Service) in the first rule that has any;
    None when no rule has one.

    A weight is relative to the sum of the weights of all refs of its rule, other Services' included;
    an unset weight is 1. A color without a ref in that rule gets 0, two refs to one color add up.
    """
    services = _services_by_name(names)
    namespace = _namespace_of(route)
    for rule in _rules_of(route):
        refs = _refs_of(rule)
        owned = _owned_refs(refs, services, namespace)
        if owned:
            weights = dict.fromkeys(Color, 0)
            for color, indices in owned.items():
                weights[color] = sum(_weight(refs[index]) for index in indices)
            return weights
    return None


def route_with_weights(
    route: Mapping[str, Any], names: Mapping[Color, str], weights: Mapping[Color, int]
) -> RouteChange | RouteProblem:
    """The route with the weight of each color's backendRef set to `weights` (relative weights, 0 to
    1,000,000), in every rule that refers to both colors; nothing else of it differs.

    `names` gives each color's Service. Refused, with what to change: a route with no backendRef to
    either Service; a rule that refers to only one of them (a canary needs both in the same rule), or to
    one of them twice. A weight already equal (an unset weight is 1) is left as written.
    """
    _check_weights(weights)
    services = _services_by_name(names)
    namespace = _namespace_of(route)
    copied: dict[str, Any] = copy.deepcopy(dict(route))
    problems: list[str] = []
    carrying = 0
    changed = False
    for index, rule in enumerate(_rules_of(copied)):
        refs = _refs_of(rule)
        owned = _owned_refs(refs, services, namespace)
        if not owned:
            continue
        problem = _rule_problem(owned, names)
        if problem:
            problems.append(f"{_route_label(route)} {_rule_label(rule, index)} {problem}")
            continue
        carrying += 1
        for color, (ref_index,) in owned.items():
            if _weight(refs[ref_index]) != weights[color]:
                refs[ref_index]["weight"] = weights[color]
                changed = True
    if problems:
        return RouteProblem("; ".join(problems))
    if not carrying:
        blue, green = names[Color.BLUE], names[Color.GREEN]
        return RouteProblem(
            f"{_route_label(route)} has no backendRef to Service {blue} or {green}: "
            "add both to the rule that should carry the model's traffic"
        )
    return RouteChange(route=copied, changed=changed)


def _rule_problem(owned: Mapping[Color, list[int]], names: Mapping[Color, str]) -> str | None:
    """What is wrong with a rule whose backendRefs to turnout's Services are `owned`, or None."""
    missing = [color for color in Color if color not in owned]
    if missing:
        (absent,) = missing
        present = absent.other
        return (
            f"has a backendRef to Service {names[present]} but none to {names[absent]}: a canary needs both "
            f"in the same rule; add a backendRef to {names[absent]} beside the one to {names[present]}"
        )
    twice = [names[color] for color in Color if len(owned[color]) > 1]
    if twice:
        return f"has more than one backendRef to Service {' and '.join(twice)}: keep one each, turnout sets its weight"
    return None


def _check_weights(weights: Mapping[Color, int]) -> None:
    for color in Color:
        weight = weights.get(color)
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= MAX_WEIGHT:
            raise ValueError(f"the {color.value} weight must be an integer from 0 to {MAX_WEIGHT}, not {weight!r}")


def _services_by_name(names: Mapping[Color, str]) -> dict[str, Color]:
    services = {names[color]: color for color in Color}
    if len(services) != len(Color):
        raise ValueError(f"each color needs its own Service, not {dict(names)}")
    return services


def _owned_refs(
    refs: list[dict[str, Any]], services: Mapping[str, Color], namespace: str | None
) -> dict[Color, list[int]]:
    """The indices in `refs` of the backendRefs to turnout's color Services, by color."""
    owned: dict[Color, list[int]] = {}
    for index, ref in enumerate(refs):
        color = services.get(ref.get("name", ""))
        if (
            color is not None
            and ref.get("group", "") == ""
            and ref.get("kind", "Service") == "Service"
            and ref.get("namespace", namespace) == namespace
        ):
            owned.setdefault(color, []).append(index)
    return owned


def _rules_of(route: Mapping[str, Any]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = (route.get("spec") or {}).get("rules") or []
    return rules


def _refs_of(rule: Mapping[str, Any]) -> list[dict[str, Any]]:
    refs: list[dict[str, Any]] = rule.get("backendRefs") or []
    return refs


def _weight(ref: Mapping[str, Any]) -> int:
    return int(ref.get("weight", DEFAULT_WEIGHT))


def _namespace_of(route: Mapping[str, Any]) -> str | None:
    namespace: str | None = (route.get("metadata") or {}).get("namespace")
    return namespace


def _route_label(route: Mapping[str, Any]) -> str:
    return f"HTTPRoute {(route.get('metadata') or {}).get('name', '')}"


def _rule_label(rule: Mapping[str, Any], index: int) -> str:
    """`rule canary (spec.rules[1])` for a named rule, `spec.rules[1]` for another."""
    where = f"spec.rules[{index}]"
    return f"rule {rule['name']} ({where})" if rule.get("name") else where
