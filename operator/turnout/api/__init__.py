"""The InferenceBackend API: pydantic models of spec and status, the validated Backend, the CRD."""

from turnout.api.backend import Backend, InvalidSpec
from turnout.api.spec import Engine, InferenceBackendSpec
from turnout.api.status import Color, InferenceBackendStatus, Phase

__all__ = ["Backend", "Color", "Engine", "InferenceBackendSpec", "InferenceBackendStatus", "InvalidSpec", "Phase"]
