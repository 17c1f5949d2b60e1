"""Engine-aware health checks over httpx: does each pod of a color serve the model?"""

from turnout.checks.engine import CheckResult, CheckRound, CheckTarget, check_round, ollama_model_name

__all__ = ["CheckResult", "CheckRound", "CheckTarget", "check_round", "ollama_model_name"]
