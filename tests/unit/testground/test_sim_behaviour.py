from collections.abc import Callable

import pytest

from testground.behaviour import Behaviour, BehaviourError, Degradation, Mode


@pytest.mark.parametrize(
    ("text", "mode", "seconds"),
    [
        (None, Mode.HEALTHY, 0),
        ("", Mode.HEALTHY, 0),
        ("healthy", Mode.HEALTHY, 0),
        ("slow-start:20", Mode.SLOW_START, 20),
        ("fail-after:0.5", Mode.FAIL_AFTER, 0.5),
        ("never-serves-model", Mode.NEVER_SERVES_MODEL, 0),
        ("wrong-model", Mode.WRONG_MODEL, 0),
        (" refuse ", Mode.REFUSE, 0),
    ],
)
def test_parses_each_spelling(text: str | None, mode: Mode, seconds: float) -> None:
    assert Behaviour.parse(text) == Behaviour(mode, seconds)


@pytest.mark.parametrize("text", ["healthy", "slow-start:20", "fail-after:0.5", "refuse"])
def test_prints_what_it_parses(text: str) -> None:
    assert str(Behaviour.parse(text)) == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("sleepy", "accepted: healthy, slow-start:N"),
        ("slow-start", "needs seconds"),
        ("fail-after:soon", "needs seconds"),
        ("fail-after:-1", ">= 0"),
        ("refuse:3", "takes no argument"),
    ],
)
def test_rejects_with_a_message_that_says_what_to_write(text: str, says: str) -> None:
    with pytest.raises(BehaviourError, match=says):
        Behaviour.parse(text)


@pytest.mark.parametrize(
    ("error_ratio", "latency", "degradation"),
    [
        (None, None, Degradation()),
        ("0.2", "", Degradation(0.2, 0.0)),
        (" 1 ", "1.5", Degradation(1.0, 1.5)),
        ("0", "0.05", Degradation(0.0, 0.05)),
    ],
)
def test_degradation_parses_its_two_annotations(
    error_ratio: str | None, latency: str | None, degradation: Degradation
) -> None:
    parsed = Degradation(Degradation.parse_error_ratio(error_ratio), Degradation.parse_latency(latency))
    assert parsed == degradation
    assert Degradation.from_json(parsed.to_json()) == parsed


@pytest.mark.parametrize(
    ("error_ratio", "latency", "says"),
    [
        ("1.2", "0", "error ratio '1.2': a share of requests from 0 to 1"),
        ("-0.1", "0", "a share of requests from 0 to 1"),
        ("nan", "0", "a share of requests from 0 to 1"),
        ("a fifth", "0", "'a fifth' is not a number"),
        ("0", "-1", "latency '-1': seconds >= 0"),
        ("0", "inf", "seconds >= 0"),
    ],
)
def test_degradation_rejects_with_a_message_that_says_what_to_write(error_ratio: str, latency: str, says: str) -> None:
    with pytest.raises(BehaviourError, match=says):
        Degradation(Degradation.parse_error_ratio(error_ratio), Degradation.parse_latency(latency))


def test_errors_are_spread_evenly_and_exactly() -> None:
    fifth = Degradation(error_ratio=0.2)
    failing = [n for n in range(1, 21) if fifth.errors_among(n) > fifth.errors_among(n - 1)]
    assert failing == [5, 10, 15, 20]
    # Decimal ratios are exact: 0.29 of 100 is 29, where 100 * 0.29 is 28.999... in floating point.
    assert Degradation(error_ratio=0.29).errors_among(100) == 29
    assert Degradation(error_ratio=1.0).errors_among(7) == 7
    assert Degradation().errors_among(1000) == 0


@pytest.mark.parametrize(
    ("ttft", "pace", "jitter", "says"),
    [
        ("-0.1", "0", "0", "ttft '-0.1': seconds >= 0 to the first token"),
        ("0", "fast", "0", "'fast' is not a number"),
        ("0", "inf", "0", "tokens per second 'inf': output tokens a second >= 0"),
        ("0", "0", "2", "jitter '2': a share from 0 to 1"),
    ],
)
def test_a_pace_that_cannot_be_read_says_what_to_write(ttft: str, pace: str, jitter: str, says: str) -> None:
    with pytest.raises(BehaviourError, match=says):
        Degradation(
            ttft_seconds=Degradation.parse_ttft(ttft),
            tokens_per_second=Degradation.parse_tokens_per_second(pace),
            jitter=Degradation.parse_jitter(jitter),
        )


def test_a_pace_round_trips_through_the_simhosts_json() -> None:
    paced = Degradation(0.1, 0.5, ttft_seconds=0.2, tokens_per_second=40.0, jitter=0.25)
    assert Degradation.from_json(paced.to_json()) == paced
    assert Degradation.from_json({"error_ratio": 0.1}) == Degradation(error_ratio=0.1)


def test_the_waits_are_the_ttft_then_one_over_the_pace_each() -> None:
    never: Callable[[float, float], float] = lambda low, high: pytest.fail("no jitter, no draw")  # noqa: E731
    assert Degradation(ttft_seconds=0.2, tokens_per_second=40).waits(4, never) == [0.2, 0.025, 0.025, 0.025]
    assert Degradation().waits(3, never) == [0.0, 0.0, 0.0]
    assert Degradation(tokens_per_second=10).waits(0, never) == []


def test_jitter_draws_each_wait_from_its_band() -> None:
    bands: list[tuple[float, float]] = []

    def highest(low: float, high: float) -> float:
        bands.append((low, high))
        return high

    waits = Degradation(ttft_seconds=1.0, tokens_per_second=4, jitter=0.5).waits(3, highest)
    assert waits == [1.5, 0.375, 0.375]
    assert bands == [(0.5, 1.5)] * 3
