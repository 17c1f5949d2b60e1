"""The comparison behind the simulator fidelity test: outlines, not values; SSE framing; metric series."""

from __future__ import annotations

import json

from testground.fidelity import DONE, Answer, differences, metric_outline, read_stream

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"


def answer(body: object, status: int = 200, content_type: str = JSON) -> Answer:
    return Answer.read(status, content_type, json.dumps(body))


def sse(*events: object, tail: str = "") -> str:
    return "".join(f"data: {e if e == DONE else json.dumps(e)}\n\n" for e in events) + tail


def test_values_do_not_count_keys_and_types_do() -> None:
    real = answer({"id": "chatcmpl-1", "created": 1, "choices": [{"message": {"content": "hi"}}], "fp": None})
    same = answer({"id": "chatcmpl-2", "created": 9, "choices": [{"message": {"content": "hello there"}}], "fp": None})
    other = answer({"id": 2, "created": 9, "choices": [{"message": {}}], "fp": "x", "extra": []})
    assert differences(real, same) == []
    assert differences(real, other) == [
        "body.choices[0].message: key 'content' only in the real answer",
        'body.fp: real "null", simulator "string"',
        'body.id: real "string", simulator "integer"',
        "body: key 'extra' only in the simulator's",
    ]


def test_status_content_type_and_list_length_count() -> None:
    real = answer({"data": [{"id": "a"}]}, 401)
    simulated = answer({"data": []}, 404, "application/json; charset=utf-8")
    assert differences(real, simulated) == [
        "status: real 401, simulator 404",
        "content type: real 'application/json', simulator 'application/json; charset=utf-8'",
        'body.data: real [{"id": "string"}], simulator []',
    ]


def test_a_body_that_is_not_what_its_content_type_says_is_text() -> None:
    assert Answer.read(404, JSON, "404: Not Found").body == "404: Not Found"
    assert differences(answer({"detail": "Not Found"}, 404), Answer.read(404, JSON, "404: Not Found")) == [
        'body: real {"detail": "string"}, simulator "string"'
    ]
    assert differences(answer(True), answer(1)) == ['body: real "boolean", simulator "integer"']


def test_streams_compare_framing_and_chunk_outlines_runs_counted_once() -> None:
    role = {"choices": [{"delta": {"role": "assistant", "content": ""}}]}
    token = {"choices": [{"delta": {"content": "t"}}]}
    last = {"choices": [{"delta": {"content": "t"}, "finish_reason": "length"}]}
    real = Answer.read(200, SSE, sse(role, token, token, token, last, DONE))
    fewer_tokens = Answer.read(200, SSE, sse(role, token, last, DONE))
    apart = Answer.read(200, SSE, sse(role, token, {"choices": [{"delta": {}, "finish_reason": "length"}]}, DONE))
    assert differences(real, fewer_tokens) == []
    assert differences(real, apart) == [
        "body.chunks[2].choices[0].delta: key 'content' only in the real answer",
    ]


def test_stream_framing_faults_are_named() -> None:
    assert read_stream(sse({"a": 1}, DONE)).faults == ()
    assert read_stream(sse({"a": 1})).faults == ("the last event is not `data: [DONE]`",)
    assert read_stream("data: {}\n\ndata: [DONE]\n").faults == ("the stream does not end with a blank line",)
    broken = read_stream('event: x\ndata: {}\n\ndata: {"a"\n\ndata: [DONE]\n\n')
    assert broken.events == (DONE,)
    assert broken.faults == (
        "an event that is not one `data: ` line: 'event: x\\ndata: {}'",
        "an event whose data is not JSON: '{\"a\"'",
    )
    assert differences(Answer.read(200, SSE, sse({}, DONE)), Answer.read(200, SSE, sse({}))) == [
        'body.chunks: real [{}, "[DONE]"], simulator [{}]',
        'body.framing faults: real [], simulator ["the last event is not `data: [DONE]`"]',
    ]


METRICS = """\
# HELP http_requests_total Total number of requests by method, status and handler.
# TYPE http_requests_total counter
http_requests_total{handler="/v1/models",method="GET",status="2xx"} 1.0
http_requests_total{handler="none",method="POST",status="4xx"} 2.0
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.3",model_name="chat"} 3.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="chat"} 3.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="chat"} 3.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="chat"} 0.2
"""


def test_metric_outline_keeps_series_counts_and_bucket_bounds() -> None:
    assert metric_outline(METRICS, ["http_requests_total", "absent_total"], ["vllm:e2e_request_latency_seconds"]) == {
        "http_requests_total": {
            "{handler=/v1/models,method=GET,status=2xx}": 1.0,
            "{handler=none,method=POST,status=4xx}": 2.0,
        },
        "absent_total": None,
        "vllm:e2e_request_latency_seconds": {
            "labels": ["engine", "model_name"],
            "bounds": ["0.3", "+Inf"],
            "count": 3.0,
        },
    }
