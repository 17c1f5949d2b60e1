"""The checks that span several fields, written once for both layers that enforce them.

Each rule's CEL expression goes into the CRD (`kubectl apply` refuses the object) and its message
is reused word for word by `Backend.check()` (the InvalidSpec condition), so a user reads the same
sentence whichever layer caught the mistake.
"""

from __future__ import annotations

from dataclasses import dataclass

# A backend's objects are named `<name>-green` and it labels pods with its name, so names must
# leave room for the longest suffix within a 63-character label value.
MAX_NAME_LENGTH = 63 - len("-green")

# Flags turnout sets from fields of its own; in extraArgs they would contradict those fields.
OWNED_VLLM_FLAGS = (
    "--model",
    "--served-model-name",
    "--port",
    "--host",
    "--tensor-parallel-size",
    "-tp",
    "--api-key",
    "--gpu-memory-utilization",
    "--max-model-len",
    "--dtype",
    "--download-dir",
)
# Environment variables turnout sets from fields of its own.
OWNED_ENV = (
    "VLLM_API_KEY",
    "HF_HOME",
    "OLLAMA_HOST",
    "OLLAMA_MODELS",
    "OLLAMA_KEEP_ALIVE",
    "OLLAMA_NUM_PARALLEL",
    "OLLAMA_CONTEXT_LENGTH",
)
OWNED_ENV_PREFIX = "TURNOUT_"
# Pod labels turnout's selectors and tooling rely on.
RESERVED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
)
RESERVED_LABEL_PREFIX = "turnout.dev/"
# An Ollama model reference: optional registry and namespace, a name, an optional tag.
OLLAMA_MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]*(:[A-Za-z0-9][A-Za-z0-9._-]*)?$"
SERVICE_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

NAME_TOO_LONG = (
    f"metadata.name must be at most {MAX_NAME_LENGTH} characters: "
    "turnout names the Deployments <name>-blue and <name>-green"
)
NAME_NOT_SERVICE_NAME = (
    "metadata.name is also the Service's name unless spec.service.name is set, and a Service name "
    "needs lowercase letters, digits and '-', starting with a letter; set spec.service.name"
)
VLLM_NEEDS_GPU = "vLLM needs at least 1 GPU per replica; set resources.gpus to 1 or more, or use engine ollama"
TP_MUST_DIVIDE_GPUS = (
    "tensorParallelSize must divide resources.gpus (the GPUs per replica, 1 when unset); use a divisor of the GPU count"
)
OLLAMA_MODEL_NAME = (
    "with engine ollama, ollama.model (or model.name) must be an Ollama model such as llama3:8b or qwen2.5:0.5b"
)
RWOP_NEEDS_ONE_POD = (
    "a ReadWriteOncePod claim can be mounted by one pod only; use ReadWriteMany (or ReadOnlyMany for "
    "pre-loaded weights), or rollout.strategy Recreate with replicas 1"
)
OWNED_FLAG = (
    "turnout sets this flag (or the flag it abbreviates) from its own field ("
    + ", ".join(OWNED_VLLM_FLAGS)
    + "); set that field instead of passing the flag"
)
# vLLM's parser expands unique prefixes (`--max-model` is `--max-model-len`); shorter ones are ambiguous.
MIN_ABBREVIATION = len("--abc")


def _flag_or_abbreviation(flag: str) -> str:
    """A regex for `flag` or any prefix of it down to MIN_ABBREVIATION, `_` read as `-` like vLLM does.

    Flags are letters and dashes, so they need no escaping.
    """
    if not flag.startswith("--"):
        return flag
    characters = ["[-_]" if character == "-" else character for character in flag[2:]]
    required = MIN_ABBREVIATION - 2
    optional = ""
    for character in reversed(characters[required:]):
        optional = f"({character}{optional})?"
    return "--" + "".join(characters[:required]) + optional


# The models' check: an owned flag, its underscore spelling or an abbreviation, alone or with `=value`.
OWNED_FLAG_PATTERN = "^(" + "|".join(_flag_or_abbreviation(flag) for flag in OWNED_VLLM_FLAGS) + ")(=|$)"
# The CRD's checks are cheaper (a regex's CEL cost grows with its length times maxLength): whole flags
# by regex, abbreviations only as a word of their own; `--max-model=4096` is left to the models.
_EXACT_OWNED_FLAG_PATTERN = (
    "^(" + "|".join(flag[:2] + flag[2:].replace("-", "[-_]") for flag in OWNED_VLLM_FLAGS) + ")(=|$)"
)
_OWNED_FLAG_SPELLINGS = OWNED_VLLM_FLAGS + tuple(
    "--" + flag[2:].replace("-", "_") for flag in OWNED_VLLM_FLAGS if "-" in flag[2:]
)
ONE_ARGV_WORD = (
    "each item is one argv word: put a flag and its value in two items, or join them with '=' (--max-num-seqs=64)"
)
OWNED_ENV_VAR = (
    "turnout sets this variable itself (" + ", ".join(OWNED_ENV) + f", {OWNED_ENV_PREFIX}*); "
    "use the matching spec field instead (the vLLM API key goes in vllm.apiKeySecretRef)"
)
ENV_VALUE_AND_VALUE_FROM = "set either value or valueFrom, not both"
RESERVED_LABEL = (
    "turnout sets " + ", ".join(RESERVED_LABELS) + f" and {RESERVED_LABEL_PREFIX}* itself; remove them from podLabels"
)
TOLERATION_EXISTS_WITH_VALUE = "a toleration with operator Exists matches any value; leave value empty"
TOLERATION_WITHOUT_KEY = "a toleration without a key matches every taint and needs operator Exists"


@dataclass(frozen=True)
class Rule:
    """One apply-time check: a CEL expression over `self`, where `self` is the schema node at `at`."""

    at: tuple[str, ...]
    """Path of the node in the CRD schema, from the object: `("spec", "vllm")`; `"*"` is a list item."""
    rule: str
    message: str
    field_path: str | None = None
    """Where the error points, relative to `at` (`.resources.gpus`)."""


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


_GPUS = "(has(self.resources) && has(self.resources.gpus) ? self.resources.gpus : 1)"
_STORAGE = "self.model.storage"

RULES: tuple[Rule, ...] = (
    Rule((), f"self.metadata.name.size() <= {MAX_NAME_LENGTH}", NAME_TOO_LONG),
    Rule(
        (),
        "(has(self.spec.service) && has(self.spec.service.name)) "
        f"|| self.metadata.name.matches(r'{SERVICE_NAME_PATTERN}')",
        NAME_NOT_SERVICE_NAME,
    ),
    Rule(("spec",), f"self.engine != 'vllm' || {_GPUS} >= 1", VLLM_NEEDS_GPU, ".resources.gpus"),
    Rule(
        ("spec",),
        "self.engine != 'vllm' || !has(self.vllm) || !has(self.vllm.tensorParallelSize) "
        f"|| {_GPUS} % self.vllm.tensorParallelSize == 0",
        TP_MUST_DIVIDE_GPUS,
        ".vllm.tensorParallelSize",
    ),
    Rule(
        ("spec",),
        f"self.engine != 'ollama' || (has(self.ollama) && has(self.ollama.model) ? self.ollama.model : "
        f"self.model.name).matches(r'{OLLAMA_MODEL_PATTERN}')",
        OLLAMA_MODEL_NAME,
        ".model.name",
    ),
    Rule(
        ("spec",),
        f"!has({_STORAGE}) || !has({_STORAGE}.create) || !{_STORAGE}.create "
        f"|| !has({_STORAGE}.accessModes) || !('ReadWriteOncePod' in {_STORAGE}.accessModes) "
        "|| (has(self.rollout) && has(self.rollout.strategy) && self.rollout.strategy == 'Recreate' "
        "&& (!has(self.replicas) || self.replicas <= 1))",
        RWOP_NEEDS_ONE_POD,
        ".model.storage.accessModes",
    ),
    Rule(("spec", "vllm", "extraArgs", "*"), f"!self.matches(r'{_EXACT_OWNED_FLAG_PATTERN}')", OWNED_FLAG),
    Rule(
        ("spec", "vllm", "extraArgs", "*"),
        f"!self.startsWith('--') || self.size() < {MIN_ABBREVIATION} "
        f"|| !{_cel_list(_OWNED_FLAG_SPELLINGS)}.exists(f, f.startsWith(self))",
        OWNED_FLAG,
    ),
    Rule(
        ("spec", "vllm", "extraArgs", "*"),
        "!self.startsWith('-') || !self.split('=')[0].matches(r'\\s')",
        ONE_ARGV_WORD,
    ),
    Rule(
        ("spec", "template", "env", "*"),
        f"!(self.name in {_cel_list(OWNED_ENV)}) && !self.name.startsWith('{OWNED_ENV_PREFIX}')",
        OWNED_ENV_VAR,
        ".name",
    ),
    Rule(
        ("spec", "template", "env", "*"),
        "!has(self.value) || self.value == '' || !has(self.valueFrom)",
        ENV_VALUE_AND_VALUE_FROM,
    ),
    Rule(
        ("spec", "template", "podLabels"),
        f"self.all(k, !(k in {_cel_list(RESERVED_LABELS)}) && !k.startsWith('{RESERVED_LABEL_PREFIX}'))",
        RESERVED_LABEL,
    ),
    Rule(
        ("spec", "template", "tolerations", "*"),
        "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
        TOLERATION_EXISTS_WITH_VALUE,
        ".value",
    ),
    Rule(
        ("spec", "template", "tolerations", "*"),
        "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
        TOLERATION_WITHOUT_KEY,
    ),
)
