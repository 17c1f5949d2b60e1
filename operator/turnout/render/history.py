"""A backend's revision history: one `apps/v1` ControllerRevision per revision, holding its spec.

The convention `kubectl rollout history` follows for StatefulSets and DaemonSets: each entry is
owned by the backend, numbered (`revision`) in the order the revisions were rolled out, and
made again as the newest when an old revision is rolled out again (the API server refuses any
update of one: it re-encodes `data` and finds it changed). Pure: what to write and what to delete.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from turnout.api.backend import Backend
from turnout.api.labels import CHANGE_CAUSE_ANNOTATION, REVISION_LABEL, backend_labels

KubeObject = dict[str, Any]


@dataclass(frozen=True)
class HistoryEntry:
    """One ControllerRevision of a backend, as `kubectl turnout history` shows it."""

    name: str
    number: int
    revision: str
    """turnout's revision (the hash of what shapes the pods)."""
    spec: KubeObject
    change_cause: str
    created: str

    @classmethod
    def of(cls, obj: KubeObject) -> HistoryEntry:
        meta = obj.get("metadata") or {}
        return cls(
            name=str(meta.get("name", "")),
            number=int(obj.get("revision") or 0),
            revision=str((meta.get("labels") or {}).get(REVISION_LABEL, "")),
            spec=dict((obj.get("data") or {}).get("spec") or {}),
            change_cause=str((meta.get("annotations") or {}).get(CHANGE_CAUSE_ANNOTATION, "")),
            created=str(meta.get("creationTimestamp") or ""),
        )


def history_name(backend: Backend) -> str:
    return f"{backend.name}-{backend.revision}"


def render_history_entry(backend: Backend, number: int, change_cause: str | None) -> KubeObject:
    """The ControllerRevision of the backend's revision: its spec as the user wrote it, numbered."""
    annotations = {CHANGE_CAUSE_ANNOTATION: change_cause} if change_cause else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": history_name(backend),
            "namespace": backend.namespace,
            "labels": {**backend_labels(backend, "history"), REVISION_LABEL: backend.revision},
            "annotations": annotations,
        },
        # Fields the user set, by their camelCase names: what `undo` writes back.
        "data": {"spec": backend.spec.model_dump(mode="json", by_alias=True, exclude_unset=True)},
        "revision": number,
    }


def entries(objects: Iterable[KubeObject], owner_uid: str | None = None) -> list[HistoryEntry]:
    """The history entries among `objects` (those owned by `owner_uid`, when given), oldest first."""
    found = [
        HistoryEntry.of(obj)
        for obj in objects
        if owner_uid is None
        or any(ref.get("uid") == owner_uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])
    ]
    return sorted(found, key=lambda entry: entry.number)


def next_number(existing: Sequence[HistoryEntry], revision: str) -> int | None:
    """The number the revision gets now: after the newest; None when it is the newest already."""
    if existing and existing[-1].revision == revision:
        return None
    return (existing[-1].number + 1) if existing else 1


def to_delete(existing: Sequence[HistoryEntry], limit: int, keep: Iterable[str]) -> list[str]:
    """Names of the oldest entries beyond `limit` (the recorded one counted), never one whose
    revision is in `keep` (the serving revision and the warm previous one)."""
    kept = set(keep)
    excess = len(existing) - limit
    names: list[str] = []
    for entry in existing:
        if excess <= 0:
            break
        if entry.revision not in kept:
            names.append(entry.name)
            excess -= 1
    return names


def find(existing: Sequence[HistoryEntry], number: int) -> HistoryEntry | None:
    return next((entry for entry in existing if entry.number == number), None)
