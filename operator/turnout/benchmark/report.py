"""Benchmark results for people: one or two runs side by side in a table, and the ratios second ÷ first. Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from turnout.api.benchmark import BenchmarkResult


def ratios(first: BenchmarkResult, second: BenchmarkResult) -> dict[str, float | None]:
    """Each compared measure of `second` ÷ the same of `first`, by JSON name; None where `first` has
    none or zero."""
    one = first.model_dump(by_alias=True)
    two = second.model_dump(by_alias=True)
    return {name: _ratio(two[name], one[name]) for name in COMPARED}


def table(runs: Sequence[tuple[str, BenchmarkResult]]) -> str:
    """The runs side by side, one column per (label, result); with two runs, a last column of the
    ratios second ÷ first."""
    header = ["", *(label for label, _ in runs)]
    results = [result for _, result in runs]
    compared = ratios(results[0], results[1]) if len(results) == 2 else None
    if compared is not None:
        header.append("ratio (2nd ÷ 1st)")
    rows = [header]
    for name, cell, ratio_names in _ROWS:
        row = [name, *(cell(result) for result in results)]
        if compared is not None:
            row.append(" / ".join(_shown_ratio(compared[key]) for key in ratio_names) if ratio_names else "")
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _errors(result: BenchmarkResult) -> str:
    if not result.errors_by_kind:
        return str(result.errors)
    kinds = ", ".join(f"{kind} {count}" for kind, count in result.errors_by_kind.items())
    return f"{result.errors} ({kinds})"


def _pair(first: float | None, second: float | None) -> str:
    return f"{_seconds(first)} / {_seconds(second)} s"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# Each row: its name, its cell for one run, and the measures (by JSON name) whose ratios it shows.
_ROWS: list[tuple[str, Callable[[BenchmarkResult], str], tuple[str, ...]]] = [
    ("requests answered", lambda r: f"{r.completed} of {r.requests}", ()),
    ("errors", _errors, ()),
    ("duration", lambda r: f"{r.duration_seconds:.2f} s" + (" (time bound reached)" if r.timed_out else ""), ()),
    ("output tokens", lambda r: f"{r.output_tokens} (from {r.tokens_counted_from or '-'})", ()),
    ("output tokens/s", lambda r: f"{r.output_tokens_per_second:.1f}", ("outputTokensPerSecond",)),
    ("requests/s", lambda r: f"{r.requests_per_second:.2f}", ("requestsPerSecond",)),
    ("TTFT p50 / p95", lambda r: _pair(r.ttft_p50_seconds, r.ttft_p95_seconds), ("ttftP50Seconds", "ttftP95Seconds")),
    ("TTFT mean", lambda r: f"{_seconds(r.ttft_mean_seconds)} s", ()),
    (
        "latency p50 / p95",
        lambda r: _pair(r.latency_p50_seconds, r.latency_p95_seconds),
        ("latencyP50Seconds", "latencyP95Seconds"),
    ),
]


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def _shown_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


COMPARED = tuple(name for _, _, names in _ROWS for name in names)
"""The measures `ratios` compares, by their JSON names: the rates (higher is better) and the times (lower is)."""
