"""vLLM's own `/metrics` text after known traffic (vllm_metrics.txt), and that traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# What tests/engine/vllm_metrics_text.py was given to make vllm_metrics.txt (tests/engine makes it again).
VLLM_SCENARIO: dict[str, Any] = {
    "served": [
        ["POST", "/v1/chat/completions", 200],
        ["POST", "/v1/chat/completions", 200],
        ["POST", "/v1/chat/completions", 200],
        ["POST", "/v1/chat/completions", 500],
        ["POST", "/v1/chat/completions", 400],
        ["POST", "/v1/completions", 200],
        ["POST", "/v1/completions", 503],
        ["POST", "/v1/embeddings", 200],
        # Not inference: not counted.
        ["GET", "/v1/models", 200],
        ["GET", "/v1/models", 500],
        ["GET", "/health", 200],
        ["GET", "/health", 503],
        ["POST", "/tokenize", 200],
    ],
    "finished": [
        [0.2, "stop"],
        [0.45, "stop"],
        [1.2, "length"],
        [2.2, "stop"],
        [0.9, "error"],
        [0.1, "stop"],
        [3.4, "stop"],
    ],
    "first_tokens": [0.003, 0.05, 0.07, 0.3, 0.09, 0.6],
}
VLLM_METRICS = Path(__file__).with_name("vllm_metrics.txt").read_text()
