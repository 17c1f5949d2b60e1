"""Reading the model's size facts from its own files on the model claim, for the GPU memory estimate. Pure.

A vLLM revision whose model is on a claim and whose spec declares no `model.architecture` has its
`config.json` read once, before its pods are created: turnout asks for an inspector pod that serves
the model's directory, reads the files from it when it is Ready, records what they say (or why they
say nothing) in `status.modelFiles`, and deletes the pod. What is recorded for a revision is not read
again. An inspector that is not Ready within INSPECTION_SECONDS, fails, or is refused by the API server
leaves the estimate unsure: the revision goes on, and the status says why.
"""

from __future__ import annotations

from datetime import datetime

from turnout.api.backend import Backend
from turnout.api.spec import Engine
from turnout.api.status import InferenceBackendStatus, ModelFilesStatus
from turnout.rollout.conditions import bounded
from turnout.rollout.observed import InspectorPod, ModelFilesRead

INSPECTION_SECONDS = 120
"""How long the inspector pod gets to be Ready and serve the files (an image pull included)."""
INSPECTOR_POLL_SECONDS = 2.0
"""How soon turnout looks again while the inspector pod starts (its Ready event wakes it sooner)."""


def inspects(backend: Backend) -> bool:
    """The backend's model size facts come from its files: vLLM, a model claim, no `model.architecture`."""
    spec = backend.spec
    return spec.engine is Engine.VLLM and spec.model.storage is not None and spec.model.architecture is None


def model_config_pending(backend: Backend, status: InferenceBackendStatus) -> bool:
    """The files of the spec's revision are still to be read."""
    found = status.model_files
    return inspects(backend) and not (found is not None and found.revision == backend.revision and found.complete)


def model_config_of(backend: Backend, status: InferenceBackendStatus) -> ModelFilesStatus | None:
    """What was read for the spec's revision, when the reading is over (with or without facts)."""
    found = status.model_files
    if found is None or found.revision != backend.revision or not found.complete:
        return None
    return found


def has_facts(found: ModelFilesStatus | None) -> bool:
    return found is not None and found.layers is not None


def model_files_due(backend: Backend, status: InferenceBackendStatus, inspector: InspectorPod | None) -> bool:
    """Read the files now: they are pending and the spec's revision's inspector pod is Ready."""
    return (
        model_config_pending(backend, status)
        and inspector is not None
        and inspector.revision == backend.revision
        and inspector.ready
        and not inspector.deleting
    )


def started(revision: str, now: str) -> ModelFilesStatus:
    """The reading of `revision`'s files begins at `now` (RFC 3339)."""
    return ModelFilesStatus(revision=revision, started_at=now, message="reading config.json from the model claim")


def recorded(reading: ModelFilesStatus, read: ModelFilesRead) -> ModelFilesStatus:
    """The reading with what the files said: the facts, or why there are none."""
    facts = read.facts
    if facts is None:
        return unsure(reading, read.problem)
    return reading.model_copy(
        update={
            "complete": True,
            "source": bounded(read.source),
            "path": bounded(read.path),
            "parameters": None if facts.quantization else facts.parameters,
            "layers": facts.layers,
            "kv_heads": facts.kv_heads,
            "head_dim": facts.head_dim,
            "vocab_size": facts.vocab_size,
            "weights_bytes": facts.checkpoint_bytes,
            "message": bounded(f"read {read.source} ({read.path}): {facts.describe()}"),
        }
    )


def unsure(reading: ModelFilesStatus, why: str) -> ModelFilesStatus:
    """The reading is over without facts; `why` says so in the status."""
    return reading.model_copy(update={"complete": True, "message": bounded(why)})


def timed_out(now: datetime, started_at: datetime | None) -> bool:
    """The inspector pod has had its INSPECTION_SECONDS."""
    return started_at is not None and (now - started_at).total_seconds() > INSPECTION_SECONDS


__all__ = [
    "INSPECTION_SECONDS",
    "INSPECTOR_POLL_SECONDS",
    "has_facts",
    "inspects",
    "model_config_of",
    "model_config_pending",
    "model_files_due",
    "recorded",
    "started",
    "timed_out",
    "unsure",
]
