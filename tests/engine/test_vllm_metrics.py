"""Contract with vLLM: the metrics turnout reads to judge a canary are the ones vLLM's own code serves.

vLLM's metric code (its prometheus-fastapi-instrumentator setup and its `PrometheusStatLogger`) is
run in vLLM's virtualenv after known traffic, without a model (vllm_metrics_text.py); turnout's vLLM
profile must read that traffic back. A renamed metric or label in vLLM breaks this test. The text is
also the unit tests' fixture (tests/unit/engines/vllm_metrics.txt): it must still be what vLLM serves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.preparation import run_in_vllm
from tests.unit.engines.vllm_metrics import VLLM_METRICS, VLLM_SCENARIO
from turnout.engines.vllm import E2E_LATENCY, HTTP_REQUESTS, TIME_TO_FIRST_TOKEN, vllm_traffic

pytestmark = pytest.mark.engine

METRICS_SCRIPT = Path(__file__).with_name("vllm_metrics_text.py")


@pytest.fixture(scope="module")
def served() -> str:
    """The /metrics text of vLLM's own metric code after VLLM_SCENARIO."""
    return run_in_vllm(METRICS_SCRIPT, VLLM_SCENARIO)


def declarations(text: str) -> list[str]:
    """The HELP and TYPE lines of the metrics turnout reads."""
    names = (HTTP_REQUESTS, E2E_LATENCY, TIME_TO_FIRST_TOKEN)
    return [line for line in text.splitlines() if line.startswith(("# HELP ", "# TYPE ")) and line.split()[2] in names]


def test_turnout_reads_back_the_traffic_vllm_counted(served: str) -> None:
    traffic = vllm_traffic(served)
    assert (traffic.requests, traffic.errors) == (8, 2)
    assert traffic.latency.count == len(VLLM_SCENARIO["finished"])
    assert traffic.ttft.count == len(VLLM_SCENARIO["first_tokens"])
    assert traffic.latency.sum == pytest.approx(sum(e2e for e2e, _ in VLLM_SCENARIO["finished"]))


def test_the_unit_tests_fixture_is_what_vllm_serves(served: str) -> None:
    assert len(declarations(served)) == 6
    assert declarations(served) == declarations(VLLM_METRICS)
    assert vllm_traffic(served) == vllm_traffic(VLLM_METRICS)
