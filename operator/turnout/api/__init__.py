"""The InferenceBackend API: pydantic models of spec and status, the validated Backend, the CRD.

Only the spec and status models are named here: importing them must not load `turnout.api.backend`,
which consults the engines, whose modules import these models.
"""

from turnout.api.spec import Engine, InferenceBackendSpec
from turnout.api.status import Color, InferenceBackendStatus, Phase

__all__ = ["Color", "Engine", "InferenceBackendSpec", "InferenceBackendStatus", "Phase"]
