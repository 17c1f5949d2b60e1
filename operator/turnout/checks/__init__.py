"""Engine-aware health checks over httpx: does each pod of a color serve the model?"""

from turnout.checks.round import CheckResult, CheckRound, CheckTarget, check_round

__all__ = ["CheckResult", "CheckRound", "CheckTarget", "check_round"]
