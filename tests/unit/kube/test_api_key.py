"""The API key the checks send: read from its Secret, refused with a message that names the Secret and
never the value, and a busy API server skips the round instead of failing the revision."""

from __future__ import annotations

import asyncio
import logging

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from tests.unit.fakes.cluster import FakeCluster
from tests.unit.rollout.world import backend
from turnout.api.backend import Backend
from turnout.api.status import Color
from turnout.kube.observe import run_checks
from turnout.rollout.observed import CheckOutcome

NAMESPACE = "ml"
CANARY = "canary-3f9c1d7e-never-print-me"
KEY_REF = {"apiKeySecretRef": {"name": "vllm-key", "key": "token"}}
FIELD = "spec.vllm.apiKeySecretRef"


def with_key() -> Backend:
    return backend(vllm=KEY_REF)


def check(cluster: FakeCluster) -> CheckOutcome | None:
    """One round with no pod to check: what is said about the key comes first."""
    return asyncio.run(run_checks(cluster, with_key(), [], Color.GREEN))


def cluster_with(value: str | bytes) -> FakeCluster:
    cluster = FakeCluster()
    cluster.put_secret(NAMESPACE, "vllm-key", {"token": value})
    return cluster


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (f"{CANARY}\n", "starts or ends with whitespace (a trailing newline, as `echo` writes, is the usual cause)"),
        (f"{CANARY} x", "contains whitespace"),
        (f"{CANARY}\x1b", "contains control characters"),
        (f"{CANARY}é", "contains non-ASCII characters"),
        (CANARY.encode() + b"\xff", "is not valid UTF-8"),
        ("", "is empty"),
    ],
    ids=["newline", "space", "control", "non-ascii", "non-utf8", "empty"],
)
def test_a_key_that_cannot_be_a_bearer_token_fails_the_check_naming_the_secret_not_the_value(
    value: str | bytes, problem: str
) -> None:
    outcome = check(cluster_with(value))
    assert outcome == CheckOutcome(
        False,
        f"the API key in Secret vllm-key, key token ({FIELD}), {problem}: store it as printable ASCII without "
        "whitespace, e.g. kubectl create secret generic vllm-key --from-literal=token=<key>",
    )
    assert CANARY not in repr(outcome)


def test_a_usable_key_goes_on_to_the_pods() -> None:
    assert check(cluster_with(CANARY)) == CheckOutcome(False, "no Ready pods to check")


def test_a_missing_secret_and_a_missing_key_are_told_apart() -> None:
    assert check(FakeCluster()) == CheckOutcome(
        False, f"Secret vllm-key ({FIELD}) does not exist in namespace ml: create it, or name another"
    )
    cluster = FakeCluster()
    cluster.put_secret(NAMESPACE, "vllm-key", {"other": CANARY})
    outcome = check(cluster)
    assert outcome == CheckOutcome(
        False, f"Secret vllm-key has no key token ({FIELD}): add it, or name the key that holds the API key"
    )
    assert CANARY not in repr(outcome)


def test_a_forbidden_read_says_which_grant_is_missing() -> None:
    cluster = cluster_with(CANARY)
    cluster.secret_read_errors = [ApiException(status=403, reason="Forbidden")]
    assert check(cluster) == CheckOutcome(
        False,
        f"cannot read Secret vllm-key ({FIELD}): forbidden: grant get on secrets in ml to turnout's ServiceAccount",
    )


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (ApiException(status=429, reason="Too Many Requests"), "the API server answered 429 reading Secret vllm-key"),
        (ApiException(status=500, reason="Internal Server Error"), "the API server answered 500 reading Secret"),
        (ApiException(status=503, reason="Service Unavailable"), "the API server answered 503 reading Secret"),
        (urllib3.exceptions.ReadTimeoutError(None, "/api/v1", "Read timed out."), "(ReadTimeoutError)"),  # type: ignore[arg-type]
        (urllib3.exceptions.MaxRetryError(None, "/api/v1"), "(MaxRetryError)"),  # type: ignore[arg-type]
        (ConnectionRefusedError(111, "Connection refused"), "(ConnectionRefusedError)"),
    ],
    ids=["429", "500", "503", "timeout", "retries", "refused"],
)
def test_a_busy_or_unreachable_api_server_skips_the_round_with_one_warning(
    error: Exception, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = cluster_with(CANARY)
    cluster.secret_read_errors = [error]
    with caplog.at_level(logging.DEBUG):
        assert check(cluster) is None
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert (record.name, record.levelno) == ("turnout", logging.WARNING)
    assert record.exc_info is None
    assert said in record.getMessage()
    assert record.getMessage().startswith("ml/chat: no check round this time: ")
