"""What a benchmark measured, and the verdict of its gates: the models `status.benchmark` holds.

A benchmark is one bounded run of streamed chat completions against one endpoint (see
`turnout.benchmark`). These models hold only numbers and words, so the api layer can store them
without importing the code that measures them. Times are seconds; rates are per second of the run.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class BenchmarkModel(BaseModel):
    """Base of the benchmark models: camelCase aliases, unknown fields kept out (as status models)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_attribute_docstrings=True
    )


class TokenCount(StrEnum):
    """Where a run's output tokens were counted."""

    USAGE = "usage"
    """From the engine's own `usage.completion_tokens`, on every answered request."""
    CHUNKS = "chunks"
    """From the streamed chunks that carried content (one token each, as vLLM and Ollama stream):
    the engine reported no `usage`."""
    MIXED = "mixed"
    """From `usage` where the engine reported it, from the chunks elsewhere."""


class BenchmarkResult(BenchmarkModel):
    """One benchmark run against one endpoint. Latencies are over the answered requests only;
    a run with none answered has none."""

    requests: int
    """Requests the run was to send."""
    completed: int
    """Requests answered in full: HTTP 200 and a stream that ended."""
    errors: int
    """Requests that failed: an HTTP error status, a broken or unreadable stream, or no answer in time."""
    errors_by_kind: dict[str, int] = Field(default_factory=dict)
    """Failed requests per kind: `http503` (any status >= 400 by its code), `timeout`, `connect`,
    `brokenStream` (the connection ended mid-answer), `badStream` (not an OpenAI chat stream),
    `streamError` (the engine reported an error in the stream)."""
    duration_seconds: float
    """Wall-clock seconds from the first request sent to the last answer (or to the time bound)."""
    output_tokens: int
    """Output tokens of the answered requests."""
    output_tokens_per_second: float
    """`outputTokens` / `durationSeconds`: the throughput the endpoint gave this load."""
    requests_per_second: float
    """`completed` / `durationSeconds`."""
    ttft_p50_seconds: float | None = None
    """Median time to first token: from sending a request to its first chunk of content."""
    ttft_p95_seconds: float | None = None
    """95th percentile time to first token."""
    ttft_mean_seconds: float | None = None
    """Mean time to first token."""
    latency_p50_seconds: float | None = None
    """Median end-to-end latency: from sending a request to the end of its answer."""
    latency_p95_seconds: float | None = None
    """95th percentile end-to-end latency."""
    tokens_counted_from: TokenCount | None = None
    """Where the output tokens were counted; none when no request was answered."""
    timed_out: bool = False
    """The run reached its time bound and was stopped: the requests still in flight were abandoned
    (neither completed nor errors) and those not sent yet were never sent."""

    @property
    def answered(self) -> int:
        """Requests that came to an end, answered or failed (not those abandoned at the time bound)."""
        return self.completed + self.errors

    @property
    def error_ratio(self) -> float:
        """Failed requests among those that came to an end, 0 to 1 (0 when none did)."""
        return self.errors / self.answered if self.answered else 0.0


class BenchmarkVerdict(BenchmarkModel):
    """The gates of `rollout.benchmark` applied to a new revision's run (and the old one's, if any)."""

    passed: bool
    """Every gate passed."""
    message: str
    """The numbers behind the verdict: the failed gates when it failed, every gate when it passed,
    e.g. `output tokens/s 41.2 vs 38.0 (ratio 1.08 < 3.0, benchmark.minThroughputRatio)`."""
    failed_gates: list[str] = Field(default_factory=list)
    """The gates that failed, by field name (`minThroughputRatio`, `timeoutSeconds`, ...)."""


class BenchmarkStatus(BenchmarkModel):
    """The benchmark of one cutover: each color's run and the verdict."""

    revision: str | None = None
    """The new revision the benchmark judged."""
    blue: BenchmarkResult | None = None
    """The run against one pod of the blue color."""
    green: BenchmarkResult | None = None
    """The run against one pod of the green color."""
    verdict: BenchmarkVerdict | None = None
    """The gates' verdict on the new revision."""
