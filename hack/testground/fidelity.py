"""How far a simulator's answer is from the real engine's: the pure comparison behind the fidelity test.

tests/engine/test_simulator_fidelity.py sends the same requests to the real vLLM OpenAI server and to
the vLLM simulator and compares what came back with `differences`: the status, the content type, and
the body's outline, never its values (ids, timestamps, generated text differ by nature):

- JSON: the keys of every object and the type of every value, recursively (`null`, `boolean`,
  `integer`, `number`, `string`); lists element by element, so their lengths count.
- SSE (`text/event-stream`): the framing (every line `data: <payload>`, events separated by a blank
  line, the last one `data: [DONE]`) and the outline of each chunk, consecutive chunks of the same
  outline counted once (how many tokens a chunk carries is the engine's timing, not its protocol).
- Anything else: only that it is text.

`metric_outline` reads the Prometheus text of `/metrics` for the series turnout's canary analysis
reads: their label sets and counts, and the histograms' bucket bounds.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

DONE = "[DONE]"
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: a bool is an int to Python
    (int, "integer"),
    (float, "number"),
    (str, "string"),
)


@dataclass(frozen=True)
class Stream:
    """A server-sent event stream: each event's `data` (a JSON chunk, or the text `[DONE]`), and its framing faults."""

    events: tuple[Any, ...]
    faults: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: its status, its `Content-Type` header as sent (None without one) and its body,
    read as JSON, as an SSE `Stream`, or kept as text."""

    status: int
    content_type: str | None
    body: Any

    @classmethod
    def read(cls, status: int, content_type: str | None, text: str) -> Answer:
        """The answer of `text` received with `status` and `content_type`; a body that is not what its
        content type says is kept as text (and so differs from a body that is)."""
        media = (content_type or "").split(";")[0].strip().lower()
        body: Any = text
        if media == "application/json":
            with contextlib.suppress(ValueError):
                body = json.loads(text)
        elif media == "text/event-stream":
            body = read_stream(text)
        return cls(status, content_type, body)


def read_stream(text: str) -> Stream:
    """The events of an SSE body and what is wrong with its framing (nothing, for vLLM's)."""
    events: list[Any] = []
    faults: list[str] = []
    if text and not text.endswith("\n\n"):
        faults.append("the stream does not end with a blank line")
    for block in filter(None, text.split("\n\n")):
        lines = block.rstrip("\n").split("\n")
        if len(lines) != 1 or not lines[0].startswith("data: "):
            faults.append(f"an event that is not one `data: ` line: {block[:80]!r}")
            continue
        data = lines[0].removeprefix("data: ")
        if data == DONE:
            events.append(DONE)
            continue
        try:
            events.append(json.loads(data))
        except ValueError:
            faults.append(f"an event whose data is not JSON: {data[:80]!r}")
    if not events or events[-1] != DONE:
        faults.append("the last event is not `data: [DONE]`")
    return Stream(tuple(events), tuple(faults))


def outline(value: Any) -> Any:
    """What the comparison sees of a body: objects keep their keys, lists their length, values become
    their JSON type; a `Stream` becomes its framing faults and its chunks' outlines (runs of one outline
    counted once, `[DONE]` kept as it is)."""
    if isinstance(value, Stream):
        chunks: list[Any] = []
        for event in value.events:
            shape = DONE if event == DONE else outline(event)
            if not chunks or chunks[-1] != shape:
                chunks.append(shape)
        return {"framing faults": list(value.faults), "chunks": chunks}
    if isinstance(value, dict):
        return {key: outline(item) for key, item in value.items()}
    if isinstance(value, list):
        return [outline(item) for item in value]
    if value is None:
        return "null"
    for kind, name in _JSON_TYPES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def differences(real: Answer, simulated: Answer) -> list[str]:
    """Where the simulator's answer differs from the real engine's, one line each; empty when they agree."""
    found = []
    if real.status != simulated.status:
        found.append(f"status: real {real.status}, simulator {simulated.status}")
    if real.content_type != simulated.content_type:
        found.append(f"content type: real {real.content_type!r}, simulator {simulated.content_type!r}")
    return found + tree_differences(outline(real.body), outline(simulated.body), "body")


def tree_differences(real: Any, simulated: Any, where: str) -> list[str]:
    """Where two outlines differ, each line naming its place (`body.choices[0].delta`): keys present
    on one side only, lists of other lengths, and leaves that are not equal."""
    if isinstance(real, dict) and isinstance(simulated, dict):
        found = [f"{where}: key {key!r} only in the real answer" for key in real if key not in simulated]
        found += [f"{where}: key {key!r} only in the simulator's" for key in simulated if key not in real]
        for key in real.keys() & simulated.keys():
            found += tree_differences(real[key], simulated[key], f"{where}.{key}")
        return sorted(found)
    if isinstance(real, list) and isinstance(simulated, list):
        if len(real) != len(simulated):
            return [f"{where}: real {_brief(real)}, simulator {_brief(simulated)}"]
        pairs = enumerate(zip(real, simulated, strict=True))
        return [line for i, (one, other) in pairs for line in tree_differences(one, other, f"{where}[{i}]")]
    if real != simulated:
        return [f"{where}: real {_brief(real)}, simulator {_brief(simulated)}"]
    return []


def metric_outline(text: str, counters: Iterable[str], histograms: Iterable[str]) -> dict[str, Any]:
    """What the comparison sees of Prometheus text: each of `counters` (sample names, `x_total`) as its
    series and their values, each of `histograms` as its label names, bucket bounds and count; a name
    that is absent maps to None."""
    found = [sample for family in text_string_to_metric_families(text) for sample in family.samples]
    seen: dict[str, Any] = {}
    for name in counters:
        series = {_series(sample.labels): sample.value for sample in found if sample.name == name}
        seen[name] = series or None
    for name in histograms:
        buckets = [sample for sample in found if sample.name == f"{name}_bucket"]
        counts = [sample.value for sample in found if sample.name == f"{name}_count"]
        seen[name] = (
            {
                "labels": sorted({label for sample in buckets for label in sample.labels if label != "le"}),
                "bounds": sorted({sample.labels["le"] for sample in buckets}, key=float),
                "count": sum(counts),
            }
            if buckets
            else None
        )
    return seen


def _series(labels: dict[str, str]) -> str:
    return "{" + ",".join(f"{key}={value}" for key, value in sorted(labels.items())) + "}"


def _brief(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 300 else text[:297] + "..."
