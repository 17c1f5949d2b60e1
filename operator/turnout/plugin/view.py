"""Pure formatting and decisions of the `kubectl turnout` verbs, over plain dicts as the API returns them."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from turnout.api.labels import ABORT_ANNOTATION, PAUSE_ANNOTATION, PROMOTE_ANNOTATION, RETRY_ANNOTATION
from turnout.render.history import HistoryEntry, find

# `status --watch` exit codes, like `kubectl rollout status`: 0 Healthy, 1 Degraded, 3 Paused.
WATCH_EXIT = {"Healthy": 0, "Degraded": 1, "Paused": 3}
# Phases in which a cutover is under way: `abort` has something to roll back.
IN_FLIGHT = {"Progressing", "Verifying", "Paused", "Benchmarking", "Canary", "Baking"}
# Fields the API server or other controllers set: `diff` leaves them out.
SERVER_METADATA = {
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "ownerReferences",
}
SERVER_ANNOTATIONS = {"deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration"}

_COLORS = {"Healthy": "32", "Degraded": "31", "Paused": "33"}


def watch_exit(backend: Mapping[str, Any]) -> int | None:
    """The `status --watch` exit code once the phase settles, None while it moves or the operator has
    not seen the latest spec yet (status.observedGeneration behind metadata.generation) or the last
    request of a verb (see `unanswered`)."""
    status = backend.get("status") or {}
    generation = (backend.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return None
    if unanswered(backend):
        return None
    return WATCH_EXIT.get(status.get("phase") or "Pending")


def unanswered(backend: Mapping[str, Any]) -> str | None:
    """The annotation the operator has not acted on yet, if any: annotations do not bump the
    generation, so right after `promote`, `abort`, `retry` or `resume` the status still shows the
    phase from before, which a watch must not take for the answer."""
    annotations = _annotations(backend)
    status = backend.get("status") or {}
    phase = status.get("phase")
    preview = status.get("previewRevision")
    in_flight = preview or (status.get("activeRevision") if phase == "Baking" else None)
    retry = annotations.get(RETRY_ANNOTATION)
    if retry is not None and retry != status.get("lastRetry"):
        return RETRY_ANNOTATION
    abort = annotations.get(ABORT_ANNOTATION)
    if abort is not None and in_flight and abort == in_flight:
        return ABORT_ANNOTATION
    promote = annotations.get(PROMOTE_ANNOTATION)
    step = (status.get("canary") or {}).get("step", 0)
    if phase == "Paused" and promote is not None and promote in (preview, f"{preview}/{step}"):
        return PROMOTE_ANNOTATION
    held = any(
        c.get("type") == "Progressing" and c.get("reason") == "PausedByUser" for c in status.get("conditions") or []
    )
    if phase == "Paused" and held and PAUSE_ANNOTATION not in annotations:
        return PAUSE_ANNOTATION
    return None


class Refused(Exception):
    """A verb that has nothing to act on; the message is its one line."""


Annotations = dict[str, str | None]
"""Annotation changes for a merge patch: a value sets, None removes."""


def promote_annotations(backend: Mapping[str, Any], *, full: bool = False) -> Annotations:
    """`promote`: release what waits for a promotion, and lift a pause (as Argo Rollouts' promote does)."""
    key, value = promote_annotation(backend.get("status") or {}, full=full)
    changes: Annotations = {key: value}
    if PAUSE_ANNOTATION in _annotations(backend):
        changes[PAUSE_ANNOTATION] = None
    return changes


def abort_annotations(backend: Mapping[str, Any]) -> Annotations:
    key, value = abort_annotation(backend.get("status") or {})
    return {key: value}


def retry_annotations(backend: Mapping[str, Any], now: str) -> Annotations:
    """`retry`: name the failed revision once more (`<revision>@<now>`, so each retry is new), and
    drop an abort annotation that names it (else the retry would be aborted at once)."""
    status = backend.get("status") or {}
    if status.get("previewRevision"):
        raise Refused(f"a cutover is in flight (revision {status['previewRevision']}, phase {status.get('phase')})")
    benchmark = status.get("benchmark") or {}
    verdict = benchmark.get("verdict") or {}
    revision = status.get("lastFailedRevision")
    if not revision and verdict and not verdict.get("passed"):
        revision = benchmark.get("revision")
    if not revision:
        raise Refused("no failed revision to retry")
    changes: Annotations = {RETRY_ANNOTATION: f"{revision}@{now}"}
    if _annotations(backend).get(ABORT_ANNOTATION) == revision:
        changes[ABORT_ANNOTATION] = None
    return changes


def pause_annotations(backend: Mapping[str, Any], *, pause: bool) -> Annotations:
    """`pause` sets `turnout.dev/pause`, `resume` removes it; each refused when there is nothing to do."""
    paused = PAUSE_ANNOTATION in _annotations(backend)
    if pause and paused:
        raise Refused("already paused")
    if not pause and not paused:
        raise Refused("not paused")
    return {PAUSE_ANNOTATION: "true" if pause else None}


def _annotations(backend: Mapping[str, Any]) -> Mapping[str, str]:
    return (backend.get("metadata") or {}).get("annotations") or {}


def describe_changes(changes: Annotations) -> str:
    """`turnout.dev/retry=abc@..., turnout.dev/abort-` as `kubectl annotate` writes them."""
    return " ".join(f"{key}={value}" if value is not None else f"{key}-" for key, value in changes.items())


def promote_annotation(status: Mapping[str, Any], *, full: bool = False) -> tuple[str, str]:
    """The (annotation, value) that releases what waits for a promotion, or Refused when nothing waits."""
    revision = status.get("previewRevision")
    if status.get("phase") != "Paused" or not revision:
        raise Refused(f"nothing waits for a promotion (phase {status.get('phase') or 'Pending'})")
    canary = status.get("canary")
    if canary and not full:
        return PROMOTE_ANNOTATION, f"{revision}/{canary.get('step', 0)}"
    return PROMOTE_ANNOTATION, str(revision)


def abort_annotation(status: Mapping[str, Any]) -> tuple[str, str]:
    """The (annotation, value) that rolls back the cutover in flight, or Refused when none is."""
    phase = status.get("phase")
    revision = status.get("previewRevision") or (status.get("activeRevision") if phase == "Baking" else None)
    if phase not in IN_FLIGHT or not revision:
        raise Refused(f"no cutover in flight to abort (phase {phase or 'Pending'})")
    return ABORT_ANNOTATION, str(revision)


def _paint(text: str, phase: str, colour: bool) -> str:
    code = _COLORS.get(phase)
    return f"\033[{code}m{text}\033[0m" if colour and code else text


def _replicas(deployment: Mapping[str, Any] | None) -> str:
    if not deployment:
        return "absent"
    desired = (deployment.get("spec") or {}).get("replicas", 0)
    ready = (deployment.get("status") or {}).get("readyReplicas", 0) or 0
    return f"{ready}/{desired} ready"


def served_colors(service: Mapping[str, Any] | None) -> str:
    """Which color the Service selects: one color, `both` (a canary without a mesh), or `none`."""
    if not service:
        return "none (no Service)"
    color = ((service.get("spec") or {}).get("selector") or {}).get("turnout.dev/color")
    return color or "both"


def format_status(
    backend: Mapping[str, Any],
    deployments: Mapping[str, Mapping[str, Any] | None],
    service: Mapping[str, Any] | None,
    events: Sequence[Mapping[str, Any]],
    *,
    colour: bool = False,
) -> str:
    """The `kubectl turnout status` text of one backend; `deployments` by color; `events` newest last."""
    meta = backend.get("metadata") or {}
    spec = backend.get("spec") or {}
    status = backend.get("status") or {}
    phase = status.get("phase") or "Pending"
    lines = [
        f"Name:       {meta.get('namespace', '')}/{meta.get('name', '')}",
        f"Engine:     {spec.get('engine', '')}   Model: {(spec.get('model') or {}).get('name', '')}",
        *(
            [f"Serving:    {status.get('activeEngine', '')} {status['activeModel']}"]
            if status.get("activeModel")
            else []
        ),
        f"Phase:      {_paint(phase, phase, colour)}",
        f"Strategy:   {(spec.get('rollout') or {}).get('strategy', 'BlueGreen')}",
        f"Service:    selects {served_colors(service)}",
    ]
    measured = [m for m in status.get("servedModels") or [] if isinstance(m, dict) and m.get("embeddingDimension")]
    if measured:
        dimensions = ", ".join(f"{m['embeddingDimension']} (revision {m.get('revision', '')})" for m in measured)
        lines.append(f"Embeddings: dimension {dimensions}")
    for color in ("blue", "green"):
        roles = []
        if status.get("activeColor") == color:
            roles.append(f"active {status.get('activeRevision') or ''}".rstrip())
        if status.get("previewColor") == color:
            roles.append(f"preview {status.get('previewRevision') or ''}".rstrip())
        deployment = deployments.get(color)
        revision = ((deployment or {}).get("metadata") or {}).get("labels", {}).get("turnout.dev/revision", "-")
        role = f" ({', '.join(roles)})" if roles else ""
        lines.append(f"{color.capitalize() + ':':<11} revision {revision}, {_replicas(deployment)}{role}")
    canary = status.get("canary")
    if canary:
        share = canary.get("trafficShare")
        share_text = f"{share}%" if share is not None else "-"
        lines.append(
            f"Canary:     step {canary.get('step', 0)}, weight {canary.get('weight', 0)}%, traffic {share_text}"
        )
        analysis = canary.get("analysis")
        if analysis:
            lines.append(f"Analysis:   {analysis.get('outcome', '')} {analysis.get('message', '')}".rstrip())
    if status.get("lastCheckTime"):
        lines.append(
            f"Checks:     {status.get('checkPasses', 0)} passed, {status.get('checkFailures', 0)} failed "
            f"in a row (last {status['lastCheckTime']})"
        )
    benchmark = status.get("benchmark")
    if benchmark:
        lines.append(f"Benchmark:  {benchmark.get('verdict') or 'running'}")
    model_files = status.get("modelFiles")
    if model_files and model_files.get("message"):
        lines.append(f"Model files: {model_files.get('revision', '')} {model_files['message']}")
    gpu_memory = status.get("gpuMemory")
    if gpu_memory:
        verdict = {True: "fits", False: "does not fit"}.get(gpu_memory.get("fits"), "not judged")
        lines.append(f"GPU memory: {gpu_memory.get('revision', '')} {verdict}: {gpu_memory.get('message', '')}")
    if PAUSE_ANNOTATION in _annotations(backend):
        lines.append(f"Held:       by {PAUSE_ANNOTATION}; kubectl turnout resume {meta.get('name', '')}")
    if status.get("lastFailedRevision"):
        lines.append(
            f"Failed:     {status['lastFailedRevision']}: {status.get('lastFailureReason', '')} "
            f"{status.get('lastFailureMessage', '')}".rstrip()
        )
    if events:
        lines.append("Events:")
        for event in events[-10:]:
            when = event.get("lastTimestamp") or event.get("eventTime") or ""
            lines.append(f"  {when}  {event.get('type', '')}  {event.get('reason', '')}  {event.get('message', '')}")
    return "\n".join(lines) + "\n"


def _table(rows: Sequence[Sequence[str]]) -> str:
    """Rows (the header first) in columns three spaces apart, as kubectl prints tables."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )


def format_list(backends: Sequence[Mapping[str, Any]]) -> str:
    """The `kubectl turnout list` table: one line per backend."""
    header = ("NAMESPACE", "NAME", "ENGINE", "PHASE", "ACTIVE", "REVISION", "PREVIEW", "READY")
    rows = [header]
    for backend in backends:
        meta = backend.get("metadata") or {}
        status = backend.get("status") or {}
        rows.append(
            (
                meta.get("namespace", ""),
                meta.get("name", ""),
                (backend.get("spec") or {}).get("engine", ""),
                status.get("phase") or "Pending",
                status.get("activeColor") or "-",
                status.get("activeRevision") or "-",
                status.get("previewRevision") or "-",
                f"{status.get('readyReplicas', 0)}/{status.get('replicas', 0)}",
            )
        )
    return _table(rows)


def strip_server_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` without what the API server, controllers and defaults set: status, uid, managedFields..."""
    clean = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_METADATA}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in SERVER_ANNOTATIONS}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    clean["metadata"] = meta
    return clean


def _pruned(live: Any, desired: Any) -> Any:
    """`live` restricted to the keys `desired` has: fields defaulted by the server are not a change."""
    if isinstance(live, dict) and isinstance(desired, dict):
        return {k: _pruned(live[k], desired[k]) for k in desired if k in live}
    if isinstance(live, list) and isinstance(desired, list) and len(live) == len(desired):
        return [_pruned(a, b) for a, b in zip(live, desired, strict=True)]
    return live


def unified_diff(live: Sequence[Mapping[str, Any]], desired: Sequence[Mapping[str, Any]]) -> str:
    """The unified diff, as YAML, from the objects in the cluster to the objects the spec renders."""
    out: list[str] = []
    for want in desired:
        kind, name = want.get("kind", ""), (want.get("metadata") or {}).get("name", "")
        have = next((o for o in live if o.get("kind") == kind and (o.get("metadata") or {}).get("name") == name), None)
        before = yaml.safe_dump(_pruned(strip_server_fields(have), want), sort_keys=True) if have else ""
        after = yaml.safe_dump(dict(want), sort_keys=True)
        out.extend(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=f"live/{kind}/{name}",
                tofile=f"spec/{kind}/{name}",
            )
        )
    return "".join(out)


def history_state(entry: HistoryEntry, status: Mapping[str, Any]) -> str:
    """What the revision is now: serving, in flight, warm (the previous color), failed, or nothing."""
    if entry.revision == status.get("activeRevision"):
        return "serving"
    if entry.revision == status.get("previewRevision"):
        return "in flight"
    if entry.revision == status.get("previousRevision"):
        return "warm"
    if entry.revision == status.get("lastFailedRevision"):
        return f"failed ({status.get('lastFailureReason') or 'RolledBack'})"
    return ""


def _model_of(spec: Mapping[str, Any]) -> str:
    """The model a spec serves: the engine's own `model` when set, else `model.name`."""
    engine = str(spec.get("engine") or "")
    own = (spec.get(engine) or {}).get("model") if engine else None
    return str(own or (spec.get("model") or {}).get("name") or "")


def format_history(entries: Sequence[HistoryEntry], status: Mapping[str, Any]) -> str:
    """The `kubectl turnout history` table, oldest first, like `kubectl rollout history`."""
    header = ("REVISION", "TURNOUT-REVISION", "ENGINE", "MODEL", "STATE", "CHANGE-CAUSE")
    rows = [header]
    for entry in entries:
        spec = entry.spec
        rows.append(
            (
                str(entry.number),
                entry.revision,
                str(spec.get("engine") or ""),
                _model_of(spec),
                history_state(entry, status) or "-",
                entry.change_cause or "<none>",
            )
        )
    return _table(rows)


def undo_target(entries: Sequence[HistoryEntry], to_revision: int | None) -> HistoryEntry:
    """The entry `undo` goes back to: number `to_revision`, or the one before the newest."""
    if not entries:
        raise Refused("no revision history (revisions are kept from the first cutover on)")
    if to_revision is None:
        if len(entries) < 2:
            raise Refused(f"no revision before {entries[-1].number} in history")
        return entries[-2]
    found = find(entries, to_revision)
    if found is None:
        kept = ", ".join(str(entry.number) for entry in entries)
        raise Refused(f"revision {to_revision} is not in history (kept: {kept})")
    return found
