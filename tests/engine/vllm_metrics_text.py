"""Print the `/metrics` text vLLM's own metric code serves after given traffic; run by vLLM's virtualenv python.

Reads a JSON object on stdin:
  - "served": [[method, path, status], ...]: HTTP requests answered so, through vLLM's
    prometheus-fastapi-instrumentator setup (`vllm.entrypoints.serve.instrumentator.metrics`);
  - "finished": [[e2e_seconds, finished_reason], ...]: requests the engine finished, and
    "first_tokens": [seconds, ...]: their times to first token, recorded by vLLM's
    `PrometheusStatLogger` (`vllm/v1/metrics/loggers.py`) as the engine records them.
Prints the metrics text on stdout. No model is loaded: the logger gets the few settings it reads.
This file is not part of turnout: it runs against the vLLM package only.
"""

from __future__ import annotations

import json
import sys
import types

# At module level: FastAPI reads the handler's annotation (a string here) in this module's globals.
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

MODEL = "chat"


def stat_logger() -> object:
    """vLLM's Prometheus stat logger for one engine serving MODEL, with default observability settings."""
    from vllm.config import CacheConfig, ObservabilityConfig
    from vllm.v1.metrics.loggers import PrometheusStatLogger

    config = types.SimpleNamespace(
        model_config=types.SimpleNamespace(served_model_name=MODEL, max_model_len=8192, is_diffusion=False),
        observability_config=ObservabilityConfig(),
        cache_config=CacheConfig(),
        parallel_config=types.SimpleNamespace(data_parallel_size=1),
        speculative_config=None,
        kv_transfer_config=None,
        ec_transfer_config=None,
        watermark_config=None,
        lora_config=None,
    )
    return PrometheusStatLogger(config)


def main() -> None:
    from vllm.entrypoints.serve.instrumentator.metrics import attach_router
    from vllm.v1.engine import FinishReason
    from vllm.v1.metrics.stats import FinishedRequestStats, IterationStats

    wanted = json.load(sys.stdin)
    logger = stat_logger()
    app = FastAPI()

    async def answer(request: Request) -> JSONResponse:
        return JSONResponse({}, status_code=int(request.query_params["status"]))

    for method, path, _ in wanted["served"]:
        app.add_api_route(path, answer, methods=[method])
    attach_router(app)

    client = TestClient(app)
    for method, path, status in wanted["served"]:
        client.request(method, path, params={"status": status})

    stats = IterationStats()
    reasons = {str(reason): reason for reason in FinishReason}
    for e2e, reason in wanted["finished"]:
        stats.finished_requests.append(FinishedRequestStats(finish_reason=reasons[reason], e2e_latency=e2e))
    stats.time_to_first_tokens_iter.extend(wanted["first_tokens"])
    logger.record(None, stats)  # type: ignore[attr-defined]
    sys.stdout.write(client.get("/metrics").text)


if __name__ == "__main__":
    main()
