"""`kubectl turnout` output and decisions on status dicts as the API returns them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from turnout.plugin import view

CANARY_PAUSED: dict[str, Any] = {
    "metadata": {"name": "chat", "namespace": "ml"},
    "spec": {"engine": "vllm", "model": {"name": "llama"}, "rollout": {"strategy": "Canary"}},
    "status": {
        "phase": "Paused",
        "activeColor": "blue",
        "activeRevision": "aaa111",
        "previewColor": "green",
        "previewRevision": "bbb222",
        "canary": {"step": 3, "weight": 50, "trafficShare": 50, "analysis": {"outcome": "Passed", "message": "ok"}},
        "lastFailedRevision": "ccc333",
        "lastFailureReason": "CheckFailed",
        "lastFailureMessage": '/v1/models lacks "chat"',
        "readyReplicas": 2,
        "replicas": 2,
    },
}


def _deployment(revision: str, ready: int, desired: int) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"turnout.dev/revision": revision}},
        "spec": {"replicas": desired},
        "status": {"readyReplicas": ready},
    }


def test_status_shows_phase_step_colors_service_failure_and_events() -> None:
    text = view.format_status(
        CANARY_PAUSED,
        {"blue": _deployment("aaa111", 2, 2), "green": _deployment("bbb222", 1, 1)},
        {"spec": {"selector": {"turnout.dev/backend": "chat"}}},
        [{"type": "Normal", "reason": "Paused", "message": "promote", "lastTimestamp": "t1"}],
    )
    assert "Phase:      Paused" in text
    assert "step 3, weight 50%, traffic 50%" in text
    assert "Blue:       revision aaa111, 2/2 ready (active aaa111)" in text
    assert "Green:      revision bbb222, 1/1 ready (preview bbb222)" in text
    assert "Service:    selects both" in text
    assert 'ccc333: CheckFailed /v1/models lacks "chat"' in text
    assert "Normal  Paused  promote" in text
    assert "\033[" not in text


def test_status_shows_each_revisions_embedding_dimension_and_nothing_for_chat() -> None:
    embedding = {
        **CANARY_PAUSED,
        "status": {
            **CANARY_PAUSED["status"],
            "servedModels": [
                {"revision": "aaa111", "engine": "ollama", "model": "nomic-embed-text", "embeddingDimension": 768},
                {"revision": "bbb222", "engine": "vllm", "model": "BAAI/bge-large-en-v1.5", "embeddingDimension": 1024},
            ],
        },
    }
    text = view.format_status(embedding, {"blue": None, "green": None}, None, [])
    assert "Embeddings: dimension 768 (revision aaa111), 1024 (revision bbb222)" in text
    assert "Embeddings:" not in view.format_status(CANARY_PAUSED, {"blue": None, "green": None}, None, [])


def test_status_shows_the_gpu_memory_estimate_and_its_verdict() -> None:
    message = (
        "needs 15.0 GiB weights + 4.0 GiB KV cache (maxModelLen 32768) + 2.0 GiB activations and runtime per GPU; "
        "NVIDIA-L4 offers 22.5 GiB \u00d7 0.90 = 20.2 GiB: use maxModelLen ≤ 26624"
    )
    refused = {
        "metadata": {"name": "chat", "namespace": "ml"},
        "spec": {"engine": "vllm", "model": {"name": "llama"}},
        "status": {"phase": "Degraded", "gpuMemory": {"revision": "ddd444", "fits": False, "message": message}},
    }
    text = view.format_status(refused, {"blue": None, "green": None}, None, [])
    assert f"GPU memory: ddd444 does not fit: {message}" in text
    unknown = {**refused, "status": {"gpuMemory": {"revision": "ddd444", "message": "not estimated: set it"}}}
    assert "GPU memory: ddd444 not judged: not estimated: set it" in view.format_status(unknown, {}, None, [])


def test_status_colours_only_when_asked_and_says_what_is_absent() -> None:
    text = view.format_status(CANARY_PAUSED, {"blue": None, "green": None}, None, [], colour=True)
    assert "\033[33mPaused\033[0m" in text
    assert "absent" in text
    assert "none (no Service)" in text


def test_list_one_line_per_backend() -> None:
    text = view.format_list([CANARY_PAUSED, {"metadata": {"name": "b", "namespace": "x"}}])
    lines = text.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "ENGINE", "PHASE", "ACTIVE", "REVISION", "PREVIEW", "READY"]
    assert lines[1].split() == ["ml", "chat", "vllm", "Paused", "blue", "aaa111", "bbb222", "2/2"]
    assert lines[2].split()[:4] == ["x", "b", "Pending", "-"]


def test_promote_a_canary_pause_releases_that_step_or_every_pause_with_full() -> None:
    status = CANARY_PAUSED["status"]
    assert view.promote_annotation(status) == ("turnout.dev/promote", "bbb222/3")
    assert view.promote_annotation(status, full=True) == ("turnout.dev/promote", "bbb222")


def test_promote_blue_green_names_the_preview_revision() -> None:
    status = {"phase": "Paused", "previewRevision": "bbb222"}
    assert view.promote_annotation(status) == ("turnout.dev/promote", "bbb222")


@pytest.mark.parametrize(
    "status", [{"phase": "Healthy", "activeRevision": "a"}, {"phase": "Verifying", "previewRevision": "b"}, {}]
)
def test_promote_refused_when_nothing_waits(status: dict[str, Any]) -> None:
    with pytest.raises(view.Refused, match="nothing waits for a promotion"):
        view.promote_annotation(status)


def test_abort_names_the_preview_or_the_baking_revision() -> None:
    assert view.abort_annotation(CANARY_PAUSED["status"]) == ("turnout.dev/abort", "bbb222")
    assert view.abort_annotation({"phase": "Baking", "activeRevision": "aaa"}) == ("turnout.dev/abort", "aaa")


def test_abort_refused_when_nothing_in_flight() -> None:
    with pytest.raises(view.Refused, match="no cutover in flight"):
        view.abort_annotation({"phase": "Healthy", "activeRevision": "aaa"})


def test_watch_exit_codes() -> None:
    assert view.WATCH_EXIT == {"Healthy": 0, "Degraded": 1, "Paused": 3}


def test_watch_waits_until_the_operator_has_seen_the_latest_spec() -> None:
    meta = {"generation": 2}
    assert view.watch_exit({"metadata": meta, "status": {"phase": "Healthy", "observedGeneration": 1}}) is None
    assert view.watch_exit({"metadata": meta, "status": {"phase": "Healthy", "observedGeneration": 2}}) == 0
    assert view.watch_exit({"metadata": meta, "status": {"phase": "Baking", "observedGeneration": 2}}) is None


def test_status_json_round_trips() -> None:
    assert json.loads(json.dumps(CANARY_PAUSED))["status"]["canary"]["step"] == 3


def test_diff_ignores_server_fields_and_defaults_and_shows_changes() -> None:
    desired = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "chat"},
        "spec": {"selector": {"c": "green"}},
    }
    live = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "chat", "uid": "u", "resourceVersion": "9", "managedFields": []},
        "spec": {"selector": {"c": "green"}, "clusterIP": "10.0.0.1"},
        "status": {},
    }
    assert view.unified_diff([live], [desired]) == ""
    changed = {**desired, "spec": {"selector": {"c": "blue"}}}
    text = view.unified_diff([live], [changed])
    assert "--- live/Service/chat" in text
    assert "-    c: green" in text
    assert "+    c: blue" in text


@pytest.mark.parametrize(
    ("annotations", "status"),
    [
        ({"turnout.dev/retry": "bbb@2026-11-28T15:00:00Z"}, {"phase": "Degraded", "lastFailedRevision": "bbb"}),
        ({"turnout.dev/abort": "bbb"}, {"phase": "Paused", "previewRevision": "bbb"}),
        ({"turnout.dev/abort": "bbb"}, {"phase": "Baking", "activeRevision": "bbb"}),
        ({"turnout.dev/promote": "bbb"}, {"phase": "Paused", "previewRevision": "bbb"}),
        ({"turnout.dev/promote": "bbb/1"}, {"phase": "Paused", "previewRevision": "bbb", "canary": {"step": 1}}),
        (
            {},
            {
                "phase": "Paused",
                "previewRevision": "bbb",
                "conditions": [{"type": "Progressing", "status": "True", "reason": "PausedByUser"}],
            },
        ),
    ],
)
def test_watch_waits_while_the_operator_has_not_answered_a_verb(
    annotations: dict[str, str], status: dict[str, Any]
) -> None:
    backend = {"metadata": {"generation": 1, "annotations": annotations}, "status": {"observedGeneration": 1, **status}}
    assert view.watch_exit(backend) is None


@pytest.mark.parametrize(
    ("annotations", "status", "code"),
    [
        # Each acted on: retried, aborted (rolled back), promoted past that pause, paused by the user.
        ({"turnout.dev/retry": "b@t"}, {"phase": "Degraded", "lastRetry": "b@t", "lastFailedRevision": "b"}, 1),
        ({"turnout.dev/abort": "bbb"}, {"phase": "Degraded", "lastFailedRevision": "bbb"}, 1),
        ({"turnout.dev/promote": "bbb/1"}, {"phase": "Paused", "previewRevision": "bbb", "canary": {"step": 3}}, 3),
        ({"turnout.dev/pause": "true"}, {"phase": "Paused", "previewRevision": "bbb"}, 3),
    ],
)
def test_watch_exits_once_the_operator_answered(annotations: dict[str, str], status: dict[str, Any], code: int) -> None:
    backend = {"metadata": {"generation": 1, "annotations": annotations}, "status": {"observedGeneration": 1, **status}}
    assert view.watch_exit(backend) == code


def test_status_shows_what_was_read_from_the_model_claim() -> None:
    read = "read config.json on claim models (/data/models/llama): 8.03B parameters, 32 layers"
    backend = {
        "metadata": {"name": "chat", "namespace": "ml"},
        "spec": {"engine": "vllm", "model": {"name": "/data/models/llama"}},
        "status": {"modelFiles": {"revision": "ddd444", "complete": True, "message": read}},
    }
    assert f"Model files: ddd444 {read}" in view.format_status(backend, {"blue": None, "green": None}, None, [])
