"""What a benchmark sends: turnout's built-in short chat prompts, or chat requests read from JSONL.

A chat request here is an OpenAI chat request body as a dict, at least `{"messages": [...]}`; the
load sets `model`, `stream`, `stream_options` and `max_tokens` on each before sending it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ChatRequest = Mapping[str, Any]

MAX_CHAT_REQUESTS = 10_000
"""The most chat requests one JSONL text may hold: a benchmark sends at most 1000 (the CLI no more
than it is told), so more is a mistake, and it bounds the memory a ConfigMap can take."""

BUILT_IN_PROMPTS: tuple[str, ...] = (
    "What is the capital of Australia, and why is it not Sydney?",
    "Explain in two sentences what a hash table is.",
    "Write a haiku about a train switching tracks at night.",
    "List three differences between TCP and UDP.",
    "Translate 'The weather is lovely today' into French, German and Spanish.",
    "What does the Python expression sorted(set('banana')) return?",
    "Give me a short recipe for a vegetable omelette.",
    "Why is the sky blue? Answer for a ten-year-old.",
    "Summarise the plot of Romeo and Juliet in three sentences.",
    "Write a SQL query that counts orders per customer in a table named orders.",
    "What is the difference between a process and a thread?",
    "Suggest five names for a small bakery by the sea.",
    "Convert 72 degrees Fahrenheit to Celsius and show the formula.",
    "What are the main causes of inflation?",
    "Write a polite email declining a meeting invitation.",
    "Explain what a Kubernetes Service does, in one paragraph.",
    "What is 17 multiplied by 23? Show your steps.",
    "Name three renewable sources of energy and one drawback of each.",
    "Write a limerick about a cat who learns to code.",
    "What is the Pythagorean theorem, and where is it used in everyday life?",
    "Describe the water cycle in four steps.",
    "Give two arguments for and two against working from home.",
    "Write a bash one-liner that counts the lines of every .py file in a directory.",
    "What is the difference between weather and climate?",
    "Explain recursion with a short example in any programming language.",
)


class PromptsError(ValueError):
    """Chat requests that cannot be used; the message names the source and the line."""


def built_in_requests() -> list[ChatRequest]:
    """The built-in prompts as chat requests, one user message each."""
    return [{"messages": [{"role": "user", "content": prompt}]} for prompt in BUILT_IN_PROMPTS]


def parse_jsonl(text: str, source: str) -> list[ChatRequest]:
    """The chat requests of JSONL `text`, one per non-blank line; raises PromptsError naming `source`
    and the line of the first mistake."""
    requests: list[ChatRequest] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(requests) == MAX_CHAT_REQUESTS:
            raise PromptsError(f"{source}: more than {MAX_CHAT_REQUESTS} chat requests")
        try:
            request = json.loads(line)
        except (ValueError, RecursionError) as error:
            raise PromptsError(f"{source} line {number}: not JSON ({_first_line(error)})") from None
        problem = _request_problem(request)
        if problem:
            raise PromptsError(f"{source} line {number}: {problem}")
        requests.append(request)
    if not requests:
        raise PromptsError(f'{source}: no chat requests (expected one JSON object per line, {{"messages": [...]}})')
    return requests


def read_jsonl_file(path: Path) -> list[ChatRequest]:
    """The chat requests of the JSONL file at `path`; raises PromptsError when it cannot be read or used."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PromptsError(f"cannot read {path}: {_first_line(error)}") from None
    return parse_jsonl(text, str(path))


def _request_problem(request: Any) -> str | None:
    if not isinstance(request, dict):
        return f"expected a JSON object (an OpenAI chat request), got {_json_kind(request)}"
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return '"messages" must be a non-empty list of chat messages'
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return f'messages[{index}] must be an object such as {{"role": "user", "content": "Hi"}}'
        if not isinstance(message.get("role"), str):
            return f'messages[{index}] needs a "role" string (system, user or assistant)'
        if not isinstance(message.get("content"), str | list):
            return f'messages[{index}] needs a "content" string (or a list of content parts)'
    for field in ("max_tokens", "max_completion_tokens"):
        value = request.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            return f'"{field}" must be a positive integer'
    return None


def _json_kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
