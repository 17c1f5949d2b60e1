"""The built-in prompts, and JSONL chat requests: read when sound, refused naming the line when not."""

from __future__ import annotations

from pathlib import Path

import pytest

from turnout.benchmark.prompts import (
    BUILT_IN_PROMPTS,
    MAX_CHAT_REQUESTS,
    PromptsError,
    built_in_requests,
    parse_jsonl,
    read_jsonl_file,
)


def test_the_built_in_prompts_are_many_short_and_different() -> None:
    assert len(BUILT_IN_PROMPTS) >= 20
    assert len(set(BUILT_IN_PROMPTS)) == len(BUILT_IN_PROMPTS)
    assert all(0 < len(prompt) <= 200 for prompt in BUILT_IN_PROMPTS)
    requests = built_in_requests()
    assert requests[0] == {"messages": [{"role": "user", "content": BUILT_IN_PROMPTS[0]}]}
    assert len(requests) == len(BUILT_IN_PROMPTS)


def test_jsonl_lines_are_chat_requests_kept_as_given_and_blank_lines_skipped() -> None:
    text = (
        '{"messages": [{"role": "user", "content": "Hi"}]}\n'
        "\n"
        '{"model": "x", "messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": '
        '[{"type": "text", "text": "Hello"}]}], "temperature": 0, "max_tokens": 5}\r\n'
    )
    requests = parse_jsonl(text, "prompts.jsonl")
    assert len(requests) == 2
    assert requests[1]["temperature"] == 0
    assert requests[1]["messages"][1]["content"] == [{"type": "text", "text": "Hello"}]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "line 2: not JSON (Expecting value"),
        ("[1, 2]", "line 2: expected a JSON object (an OpenAI chat request), got a list"),
        ('"hello"', "line 2: expected a JSON object (an OpenAI chat request), got a string"),
        ('{"prompt": "hi"}', 'line 2: "messages" must be a non-empty list of chat messages'),
        ('{"messages": []}', 'line 2: "messages" must be a non-empty list of chat messages'),
        ('{"messages": ["hi"]}', "line 2: messages[0] must be an object"),
        ('{"messages": [{"content": "hi"}]}', 'line 2: messages[0] needs a "role" string'),
        ('{"messages": [{"role": "user"}]}', 'line 2: messages[0] needs a "content" string'),
        ('{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', '"max_tokens" must be a positive'),
        ('{"messages": [{"role": "user", "content": "hi"}], "max_tokens": true}', '"max_tokens" must be a positive'),
        ('{"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": "5"}', "max_completion_tokens"),
        ("[" * 100_000, "line 2: not JSON"),
    ],
)
def test_a_bad_line_is_refused_naming_the_source_and_the_line(line: str, problem: str) -> None:
    text = '{"messages": [{"role": "user", "content": "fine"}]}\n' + line + "\n"
    with pytest.raises(PromptsError) as refused:
        parse_jsonl(text, "prompts.jsonl")
    assert str(refused.value).startswith("prompts.jsonl ")
    assert problem in str(refused.value)
    assert "\n" not in str(refused.value)


def test_no_requests_at_all_is_refused() -> None:
    with pytest.raises(PromptsError, match=r"^empty.jsonl: no chat requests"):
        parse_jsonl("\n  \n", "empty.jsonl")


def test_too_many_requests_are_refused() -> None:
    line = '{"messages": [{"role": "user", "content": "hi"}]}\n'
    assert len(parse_jsonl(line * MAX_CHAT_REQUESTS, "ok")) == MAX_CHAT_REQUESTS
    with pytest.raises(PromptsError, match=f"more than {MAX_CHAT_REQUESTS}"):
        parse_jsonl(line * (MAX_CHAT_REQUESTS + 1), "big")


def test_a_file_is_read_or_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "Grüß dich"}]}\n', encoding="utf-8")
    assert read_jsonl_file(path)[0]["messages"][0]["content"] == "Grüß dich"
    with pytest.raises(PromptsError, match=r"^cannot read .*missing.jsonl"):
        read_jsonl_file(tmp_path / "missing.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"messages": [{"role": "user", "content": "\xe9"}]}')
    with pytest.raises(PromptsError, match="cannot read"):
        read_jsonl_file(tmp_path / "latin1.jsonl")
