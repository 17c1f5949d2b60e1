import pytest

from testground.behaviour import Behaviour, BehaviourError, Mode


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
