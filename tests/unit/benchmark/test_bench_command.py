"""`turnout bench` against engine simulators served from a thread: the table, JSON, --compare, and one-line failures."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web

from testground.behaviour import Behaviour
from testground.engines import EngineConfig, EngineState, build_app
from turnout.cli import main

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Served:
    """Engine simulators on 127.0.0.1 in a thread's event loop, with the requests each is serving now."""

    def __init__(self, engines: list[str]) -> None:
        self.engines = engines
        self.urls: list[str] = []
        self.in_flight = [0] * len(engines)
        self.overlaps = 0
        self.served = [0] * len(engines)
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)

    def _app(self, index: int, engine: str) -> web.Application:
        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.endswith("/chat/completions"):
                self.in_flight[index] += 1
                self.served[index] += 1
                if sum(1 for n in self.in_flight if n) > 1:
                    self.overlaps += 1
                try:
                    return await handler(request)
                finally:
                    self.in_flight[index] -= 1
            return await handler(request)

        app = build_app(EngineState(EngineConfig(engine, ("chat",)), Behaviour()))  # type: ignore[arg-type]
        app.middlewares.append(count)
        return app

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runners = []
        for index, engine in enumerate(self.engines):
            runner = web.AppRunner(self._app(index, engine), access_log=None, shutdown_timeout=0.1)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            runners.append(runner)
            self.urls.append(f"http://127.0.0.1:{runner.addresses[0][1]}/v1")
        self._ready.set()
        await self._stop.wait()
        for runner in runners:
            await runner.cleanup()

    def __enter__(self) -> Served:
        self._thread.start()
        assert self._ready.wait(10), "the simulators did not start within 10 s"
        return self

    def __exit__(self, *_: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@contextmanager
def served(*engines: str) -> Iterator[Served]:
    with Served(list(engines)) as running:
        yield running


def bench(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["bench", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_table_says_what_was_measured(capsys: pytest.CaptureFixture[str]) -> None:
    with served("vllm") as engines:
        status, out, err = bench(capsys, engines.urls[0], "--model", "chat", "--requests", "12", "--max-tokens", "4")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "model chat: 12 requests per endpoint, concurrency 8, max tokens 4"
    assert lines[1].split() == [engines.urls[0]]
    rows = {line[:18].strip(): line[18:].strip() for line in lines[2:]}
    assert rows["requests answered"] == "12 of 12"
    assert rows["errors"] == "0"
    assert rows["output tokens"] == "48 (from usage)"
    assert set(rows) >= {"duration", "output tokens/s", "requests/s", "TTFT p50 / p95", "latency p50 / p95"}
    assert engines.served == [12]


def test_json_is_the_only_thing_on_stdout_and_holds_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    with served("ollama") as engines:
        status, out, err = bench(capsys, engines.urls[0], "--model", "chat", "--requests", "6", "--json")
    assert (status, err) == (0, "")
    document = json.loads(out)
    assert document["model"] == "chat"
    (run,) = document["runs"]
    assert run["url"] == engines.urls[0]
    assert run["result"]["completed"] == 6
    assert run["result"]["tokensCountedFrom"] == "usage"
    assert "ratios" not in document


def test_compare_runs_one_endpoint_after_the_other_and_shows_the_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    with served("ollama", "vllm") as engines:
        first, second = engines.urls
        args = ["--model", "chat", "--requests", "40", "--concurrency", "4", "--compare", second]
        status, out, _ = bench(capsys, first, *args, "--json")
        assert status == 0
        document = json.loads(out)
        assert [run["url"] for run in document["runs"]] == [first, second]
        ratios = document["ratios"]
        one, two = (run["result"] for run in document["runs"])
        expected = two["outputTokensPerSecond"] / one["outputTokensPerSecond"]
        assert ratios["outputTokensPerSecond"] == pytest.approx(expected, abs=0.001)
        expected_latency = two["latencyP95Seconds"] / one["latencyP95Seconds"]
        assert ratios["latencyP95Seconds"] == pytest.approx(expected_latency, abs=0.001)
        assert len(ratios) == 6

        status, out, _ = bench(capsys, first, *args)
        assert status == 0
        assert "ratio (2nd ÷ 1st)" in out.splitlines()[1]
        (throughput,) = [line for line in out.splitlines() if line.startswith("output tokens/s")]
        assert len(throughput.split()) == 5  # the measure's two words, two runs, the ratio
    assert engines.served == [80, 80]
    assert engines.overlaps == 0


def test_an_unreachable_url_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], free_port: Callable[[], int]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    status, out, err = bench(capsys, url, "--model", "chat")
    assert status == 1
    assert out == ""
    assert err == f"turnout bench: cannot reach {url}: connection refused\n"


def test_an_unreachable_second_url_stops_before_the_first_is_benchmarked(
    capsys: pytest.CaptureFixture[str], free_port: Callable[[], int]
) -> None:
    with served("vllm") as engines:
        status, out, err = bench(
            capsys, engines.urls[0], "--model", "chat", "--compare", f"http://127.0.0.1:{free_port()}"
        )
    assert (status, out) == (1, "")
    assert err.count("\n") == 1
    assert engines.served == [0]


def test_an_endpoint_that_answers_nothing_prints_its_errors_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with served("vllm") as engines:
        status, out, err = bench(capsys, engines.urls[0], "--model", "gpt-4", "--requests", "3", "--json")
    assert status == 1
    assert json.loads(out)["runs"][0]["result"]["errorsByKind"] == {"http404": 3}
    assert err == f"turnout bench: {engines.urls[0]} answered none of the requests\n"


@pytest.mark.parametrize(
    ("args", "status", "line"),
    [
        (["--prompts", "{missing}"], 1, "turnout bench: cannot read "),
        (["--prompts", "{bad}"], 1, "turnout bench: {bad} line 1: not JSON"),
        (["--api-key-env", "TURNOUT_TEST_NO_SUCH_VARIABLE"], 1, "turnout bench: --api-key-env TURNOUT_TEST_NO_SUCH"),
        (["--requests", "0"], 2, "turnout bench: requests must be 1 to 100000 (got 0)"),
    ],
)
def test_bad_arguments_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], status: int, line: str
) -> None:
    (tmp_path / "bad.jsonl").write_text("hello\n")
    paths = {"missing": str(tmp_path / "missing.jsonl"), "bad": str(tmp_path / "bad.jsonl")}
    args = [arg.format(**paths) for arg in args]
    got, out, err = bench(capsys, "http://127.0.0.1:9/v1", "--model", "chat", *args)
    assert (got, out) == (status, "")
    assert err.startswith(line.format(**paths))
    assert err.count("\n") == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_is_drawn_on_a_terminal_and_cleared(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    with served("vllm") as engines:
        monkeypatch.setattr("sys.stderr", terminal)
        status, out, _ = bench(capsys, engines.urls[0], "--model", "chat", "--requests", "5", "--json")
    assert status == 0
    json.loads(out)
    drawn = terminal.getvalue()
    assert f"\r{engines.urls[0]} [" in drawn
    assert "] 5/5" in drawn
    assert drawn.endswith("\r\033[K")


def test_the_command_is_named_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "bench" in capsys.readouterr().out
