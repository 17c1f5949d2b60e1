"""A simulated vLLM's `/metrics`: the series of vLLM 0.32.0, counted from the requests the simulator served.

Named, labelled and bucketed as vLLM serves them, by the same prometheus-client:

- `http_requests_total{handler,method,status}`: prometheus-fastapi-instrumentator as vLLM installs it
  (vllm/entrypoints/serve/instrumentator/metrics.py): the handler is the route template (`none`
  without a route), the status grouped (`2xx`, `5xx`), nothing for /metrics, /health, /load, /ping,
  /version, /server_info.
- The engine's, labelled `{model_name, engine="0"}` (vllm/v1/metrics/loggers.py):
  `vllm:e2e_request_latency_seconds` and `vllm:time_to_first_token_seconds` with vLLM's bucket
  bounds (vllm/v1/metrics/buckets.py), `vllm:request_success_total{finished_reason}`, the prompt and
  generation token counters, and the scheduler gauges (always 0 here).

Each simulator has a registry of its own, so simulators in one process count apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REQUEST_LATENCY_BUCKETS = (
    *(0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0),
    *(120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0),
)
TIME_TO_FIRST_TOKEN_BUCKETS = (
    *(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
    *(20.0, 40.0, 80.0, 160.0, 640.0, 2560.0),
)
FINISHED_REASONS = ("stop", "length", "abort", "error", "repetition")
UNCOUNTED_HANDLERS = frozenset({"/metrics", "/health", "/load", "/ping", "/version", "/server_info"})
_ENGINE = "0"


class VllmMetrics:
    """One simulated vLLM's counters, serving `model_name` (its first served name)."""

    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry()
        self._labels = (model_name, _ENGINE)
        engine_labels = ("model_name", "engine")
        self._http = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            ("method", "status", "handler"),
            registry=self.registry,
        )
        for name, documentation in (
            ("vllm:num_requests_running", "Number of requests in model execution batches."),
            ("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
            ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
        ):
            Gauge(name, documentation, engine_labels, registry=self.registry).labels(*self._labels).set(0)
        self._success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            (*engine_labels, "finished_reason"),
            registry=self.registry,
        )
        for reason in FINISHED_REASONS:
            self._success.labels(*self._labels, reason)
        self._prompt_tokens = Counter(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", engine_labels, registry=self.registry
        ).labels(*self._labels)
        self._generation_tokens = Counter(
            "vllm:generation_tokens", "Number of generation tokens processed.", engine_labels, registry=self.registry
        ).labels(*self._labels)
        self._ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            engine_labels,
            buckets=TIME_TO_FIRST_TOKEN_BUCKETS,
            registry=self.registry,
        ).labels(*self._labels)
        self._e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            engine_labels,
            buckets=REQUEST_LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(*self._labels)

    def answered(self, method: str, handler: str, status: int) -> None:
        """One HTTP request answered `status` by the route `handler` (its template), as the instrumentator counts it."""
        if handler not in UNCOUNTED_HANDLERS:
            self._http.labels(method, f"{status // 100}xx", handler).inc()

    def first_token(self, seconds: float) -> None:
        """A request's first token came `seconds` after it arrived."""
        self._ttft.observe(seconds)

    def finished(self, seconds: float, reason: str, prompt_tokens: int = 0, generation_tokens: int = 0) -> None:
        """The engine finished a request `seconds` after it arrived, for `reason` (`error`: it answered 500)."""
        self._success.labels(*self._labels, reason).inc()
        self._e2e.observe(seconds)
        self._prompt_tokens.inc(prompt_tokens)
        self._generation_tokens.inc(generation_tokens)

    def text(self) -> bytes:
        """The Prometheus text of every series."""
        return generate_latest(self.registry)
