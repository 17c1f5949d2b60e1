"""Contract with vLLM: its own `vllm serve` parser accepts the arguments turnout renders, and reads
them as meant (model, served name, parallelism, ...). A flag renamed in vLLM breaks this test. And
turnout refuses in `extraArgs` exactly the spellings vLLM reads as an option turnout owns: the table
of refused flags is derived here from the parser's own actions, in every spelling it accepts.

Needs vLLM in its own virtualenv (about 5 minutes and 6 GB, once per version), which is created
only when the engine tests are required: TURNOUT_REQUIRE_ENGINE_TESTS=1, as `hack/test` with no
arguments and CI set it. Then a virtualenv that cannot be created is a failure; otherwise the tests
skip and say how to run them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.preparation import run_in_vllm
from turnout.api.backend import Backend
from turnout.api.spec import Engine, Task
from turnout.api.status import Color
from turnout.cli import find_backend
from turnout.engines.vllm import (
    ESTIMATED_FLAGS,
    OWNED_OPTIONS,
    REFUSED_FLAGS,
    REPEATABLE_FLAGS,
    VLLM,
    flag_read_as,
    owned_flag,
    vllm_args,
)
from turnout.render import render_deployment

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]
PARSE_SCRIPT = Path(__file__).with_name("vllm_parse_args.py")
# Flags a misspelling or a rename in vLLM would turn into an unknown argument.
# (argparse takes an unambiguous prefix of a flag, so a shortened flag would still be accepted.)
MISSPELT = ["--servd-model-name=chat", "--max-model-length=4096", "--tensor-paralel-size=2"]


def example_backends() -> list[Backend]:
    """The vLLM backends of examples/."""
    backends = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        backend = find_backend(list(yaml.safe_load_all(path.read_text())), "default")
        if backend.engine is Engine.VLLM:
            backends.append(backend)
    assert len(backends) >= 3, "examples/ should hold the vLLM examples"
    return backends


def random_backends(count: int, seed: int = 20) -> list[Backend]:
    """Valid vLLM specs with varied values: model ids and paths with odd characters, GPU layouts,
    tuning, and extra flags this vLLM documents."""
    rng = random.Random(seed)
    odd = ["", ":", "#", "{{x}}", "'", '"', "&a", "*a", "ü", "😀", "%", ",", "[1]", "=", "--"]
    extra_flags = [
        "--enable-prefix-caching",
        "--max-num-seqs=32",
        "--max-num-batched-tokens=8192",
        "--enforce-eager",
        "--trust-remote-code",
        "--kv-cache-dtype=fp8",
        "--seed=7",
        "--generation-config=vllm",
    ]
    backends = []
    for index in range(count):
        gpus = rng.choice([1, 2, 4, 8])
        model = rng.choice(
            [
                f"org{index}/Model-{rng.choice(odd)}x",
                f"/data/models/{rng.choice(odd)}m{index}",
                f"Qwen/Qwen2.5-{index}B",
            ]
        )
        spec: dict[str, Any] = {
            "engine": "vllm",
            "model": {"name": model, "servedName": rng.choice(["chat", f"team/m-{index}:v1", "a.b_c"])},
            "resources": {"gpus": gpus},
            "vllm": {
                "tensorParallelSize": rng.choice([d for d in (1, 2, 4, 8) if gpus % d == 0]),
                "gpuMemoryUtilization": rng.choice([0.5, 0.9, 0.95, 1.0, 0.123456789]),
                "maxModelLen": rng.choice([16, 2048, 131072]),
                "dtype": rng.choice(["auto", "half", "float16", "bfloat16", "float", "float32"]),
                "extraArgs": rng.sample(extra_flags, rng.randint(0, 3)),
            },
        }
        if rng.random() < 0.5:
            spec["vllm"]["apiKeySecretRef"] = {"name": "key", "key": "token"}
        drain = rng.choice([None, {"gracePeriodSeconds": 2}, {"preStopSeconds": 0, "gracePeriodSeconds": 3600}])
        if drain is not None:
            spec["template"] = {"drain": drain}
        backends.append(Backend.parse(f"random-{index}", "ml", spec))
    return backends


def embedding_backends() -> list[Backend]:
    """Embedding models as people run them on vLLM: a native embedding architecture, one that needs
    its own modelling code, and a decoder converted to embed."""
    models = [
        ("BAAI/bge-base-en-v1.5", []),
        ("nomic-ai/nomic-embed-text-v1.5", ["--trust-remote-code"]),
        ("intfloat/e5-mistral-7b-instruct", ["--max-num-seqs=32"]),
    ]
    return [
        Backend.parse(
            f"embed-{index}",
            "ml",
            {
                "engine": "vllm",
                "model": {"name": model, "servedName": "embed", "task": "embedding"},
                "vllm": {"extraArgs": extra},
            },
        )
        for index, (model, extra) in enumerate(models)
    ]


def spellings(option: str) -> list[str]:
    """Words vLLM may read as `option` or one of its abbreviations: each prefix of it, alone, with a
    value, with a `.key` (a key of its JSON) and with `_` for `-` (vLLM reads both alike)."""
    start = 3 if option.startswith("--") else 2
    words = []
    for end in range(start, len(option) + 1):
        prefix = option[:end]
        words += [prefix, f"{prefix}=1", f"{prefix}.key=1"]
        if option.startswith("--") and "-" in prefix[2:]:
            underscored = "--" + prefix[2:].replace("-", "_")
            words += [underscored, f"{underscored}=1"]
    return words


SPELLINGS = [word for flag in REFUSED_FLAGS for word in spellings(flag)]
ESTIMATED_SPELLINGS = [word for flag in ESTIMATED_FLAGS for word in spellings(flag)]


def rendered_args(backend: Backend) -> list[str]:
    """The words after `vllm serve` in the rendered Deployment."""
    container = render_deployment(backend, Color.BLUE, 1)["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["vllm", "serve"]
    args: list[str] = container["args"]
    assert args == vllm_args(backend)
    return args


@pytest.fixture(scope="module")
def backends() -> list[Backend]:
    return example_backends() + random_backends(24) + embedding_backends()


@pytest.fixture(scope="module")
def parsed(backends: list[Backend]) -> dict[str, Any]:
    """vLLM's verdict on every backend's args, then on misspelt variants: one parser build for all."""
    cases = [rendered_args(backend) for backend in backends]
    cases += [[*rendered_args(backends[0]), flag] for flag in MISSPELT]
    cases.append([arg.replace("--tensor-parallel-size=", "--tensor-parallel-size=two-") for arg in cases[0]])
    result: dict[str, Any] = json.loads(
        run_in_vllm(PARSE_SCRIPT, {"argument_lists": cases, "words": SPELLINGS + ESTIMATED_SPELLINGS})
    )
    print(f"vLLM {result['vllm_version']}: parser built in {result['parser_seconds']:.1f} s")
    return result


def test_the_image_and_the_parser_are_the_same_vllm_version(parsed: dict[str, Any]) -> None:
    assert VLLM.image.rsplit(":v", 1)[1] == parsed["vllm_version"]


def test_vllm_serve_reads_the_rendered_args_as_the_spec_says(backends: list[Backend], parsed: dict[str, Any]) -> None:
    for backend, outcome in zip(backends, parsed["outcomes"], strict=False):
        assert outcome["accepted"], f"{backend.name}: vLLM refused {vllm_args(backend)}: {outcome['error']}"
        options = backend.spec.vllm
        assert outcome["parsed"] == {
            "model": backend.spec.model.name,
            "served_model_name": [backend.served_name],
            "tensor_parallel_size": VLLM.tensor_parallel_size(backend),
            "gpu_memory_utilization": options.gpu_memory_utilization,
            "max_model_len": options.max_model_len,
            "dtype": options.dtype.value,
            "port": VLLM.port,
            "host": None,
            # The key reaches vLLM through VLLM_API_KEY only.
            "api_key": None,
            # A chat model is left to vLLM's choice of runner; an embedding model runs the pooling one.
            "runner": "pooling" if backend.task is Task.EMBEDDING else "auto",
            "convert": "embed" if backend.task is Task.EMBEDDING else "auto",
            # Drains for the grace period after the pause; vLLM's default 0 would abort at SIGTERM.
            "shutdown_timeout": backend.drain.after_sigterm,
        }, backend.name
        assert outcome["parsed"]["shutdown_timeout"] > 0, backend.name


def test_the_embedding_backends_are_tested(backends: list[Backend]) -> None:
    embedding = [backend for backend in backends if backend.task is Task.EMBEDDING]
    assert len(embedding) >= 3
    for backend in embedding:
        assert {"--runner=pooling", "--convert=embed"} <= set(vllm_args(backend))


def test_vllm_serve_refuses_a_misspelt_flag_or_a_wrong_value(backends: list[Backend], parsed: dict[str, Any]) -> None:
    refused = parsed["outcomes"][len(backends) :]
    assert len(refused) == len(MISSPELT) + 1
    for flag, outcome in zip([*MISSPELT, "--tensor-parallel-size=two-2"], refused, strict=True):
        assert not outcome["accepted"], f"vLLM accepted {flag}"
    for flag, outcome in zip(MISSPELT, refused, strict=False):
        assert "unrecognized arguments" in outcome["error"]
        assert flag in outcome["error"]


def owned_actions(parsed: dict[str, Any]) -> list[dict[str, Any]]:
    return [option for option in parsed["options"] if option["dest"] in OWNED_OPTIONS]


def test_turnout_owns_options_this_vllm_has_and_every_ssl_option(parsed: dict[str, Any]) -> None:
    dests = {option["dest"] for option in parsed["options"]}
    assert set(OWNED_OPTIONS) <= dests, f"vLLM has no option {sorted(set(OWNED_OPTIONS) - dests)}"
    ssl = {dest for dest in dests if "ssl" in dest}
    assert ssl <= set(OWNED_OPTIONS), f"vLLM serves TLS with {sorted(ssl - set(OWNED_OPTIONS))} too"


def test_the_refused_flags_are_every_option_string_of_the_options_turnout_owns(parsed: dict[str, Any]) -> None:
    from_parser = {flag: option["dest"] for option in owned_actions(parsed) for flag in option["option_strings"]}
    refused = {flag: dest for flag, (_, dest) in REFUSED_FLAGS.items()}
    assert refused == from_parser, (
        f"REFUSED_FLAGS misses {sorted(set(from_parser) - set(refused))}, "
        f"has no such option {sorted(set(refused) - set(from_parser))}"
    )


def test_vllm_expands_abbreviations_and_reads_underscores_and_keys(parsed: dict[str, Any]) -> None:
    """What the refused spellings are made of, seen in this vLLM: argparse's prefixes are allowed."""
    resolved = dict(zip(SPELLINGS + ESTIMATED_SPELLINGS, parsed["resolved"], strict=True))
    assert resolved["--max-m"] == ["max_model_len"]
    assert resolved["--api_k=1"] == ["api_key"]
    assert resolved["--host.key=1"] == ["host"]
    assert resolved["-t"] == ["tensor_parallel_size"]
    assert resolved["--model=1"] == ["model_tag"]  # vLLM moves `--model` to the positional model
    assert resolved["--max-"] == []  # ambiguous


def test_turnout_refuses_each_spelling_vllm_reads_as_an_option_turnout_owns_and_no_other(
    parsed: dict[str, Any],
) -> None:
    missed, refused_wrongly = [], []
    read_as_owned: dict[str, bool] = {}
    for word, dests in zip(SPELLINGS, parsed["resolved"][: len(SPELLINGS)], strict=True):
        owns = any(dest in OWNED_OPTIONS for dest in dests)
        refused = owned_flag(word) is not None
        if owns and not refused:
            missed.append(word)
        if dests and not owns and refused:
            refused_wrongly.append(f"{word} ({dests})")
        prefix = word.split("=", 1)[0].split(".", 1)[0].replace("_", "-")
        read_as_owned[prefix] = read_as_owned.get(prefix, False) or owns
    assert missed == [], "vLLM reads these as options turnout owns: add them to REFUSED_FLAGS (a shorter abbreviation?)"
    assert refused_wrongly == [], "turnout refuses these, vLLM reads them as other options"
    dead = [prefix for prefix, owns in read_as_owned.items() if owned_flag(prefix) and not owns]
    assert dead == [], "turnout refuses these, which vLLM reads as no option turnout owns (abbreviation too short?)"


def test_no_option_turnout_leaves_to_users_is_refused(parsed: dict[str, Any]) -> None:
    others = [
        flag for option in parsed["options"] if option["dest"] not in OWNED_OPTIONS for flag in option["option_strings"]
    ]
    assert len(others) > 200
    refused = [flag for flag in others for word in (flag, f"{flag}=1") if owned_flag(word) is not None]
    assert refused == []


def test_the_flags_that_may_be_given_twice_are_those_vllm_collects(parsed: dict[str, Any]) -> None:
    collecting = {"_AppendAction", "_AppendConstAction", "_ExtendAction", "_CountAction"}
    collected = {
        flag for option in parsed["options"] if option["action"] in collecting for flag in option["option_strings"]
    }
    assert collected == set(REPEATABLE_FLAGS)


def test_the_estimate_reads_its_options_in_exactly_the_spellings_vllm_reads_as_them(parsed: dict[str, Any]) -> None:
    """`--max-num-seqs` and `--performance-mode`, read from extraArgs for the GPU memory estimate."""
    wrong = []
    for word, dests in zip(ESTIMATED_SPELLINGS, parsed["resolved"][len(SPELLINGS) :], strict=True):
        if "." in word:
            continue  # a key of an option that takes no JSON: vLLM refuses the value
        flag = flag_read_as(word, ESTIMATED_FLAGS)
        read = [ESTIMATED_FLAGS[flag][1]] if flag else []
        if read != dests:
            wrong.append(f"{word}: turnout reads {read}, vLLM {dests}")
    assert wrong == []
