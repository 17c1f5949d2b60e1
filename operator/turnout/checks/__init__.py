"""Engine-aware checks over httpx: does each pod of a color serve the model, and what traffic did it serve?"""

from turnout.checks.round import CheckResult, CheckRound, CheckTarget, check_round
from turnout.checks.traffic import ScrapeFailure, TrafficScrape, scrape_color

__all__ = ["CheckResult", "CheckRound", "CheckTarget", "ScrapeFailure", "TrafficScrape", "check_round", "scrape_color"]
