"""The ``vllm`` command of the real node's vLLM image (`real_vllm`): the pod's rendered command, run
by vLLM's own ``vllm`` from the mounted virtualenv, on the tiny Llama.

Runs in the container with this machine's Python and the standard library only (the test ground's
code is mounted there, turnout is not). Usage: python -m testground.vllm_command ARG...
"""

from __future__ import annotations

import os
import sys

ARGS_VARIABLE = "TESTGROUND_VLLM_ARGS"  # words the image appends, space-separated
VLLM_VARIABLE = "TESTGROUND_VLLM"  # the virtualenv's vllm
MODEL_VARIABLE = "TESTGROUND_TINY_MODEL"


def serve_argv(argv: list[str], model: str, appended: list[str]) -> list[str]:
    """The arguments of the virtualenv's ``vllm`` for the container's `argv`: for ``serve``, the model
    (the first positional word, or ``--model``) replaced by `model`, served under the name the pod gave
    (``--served-model-name`` if given, else the model it named), then `appended`; anything else as it is."""
    if not argv or argv[0] != "serve":
        return argv
    rest, named = list(argv[1:]), None
    if rest and not rest[0].startswith("-"):
        named = rest.pop(0)
    else:
        for index, word in enumerate(rest):
            if word == "--model" and index + 1 < len(rest):
                named = rest[index + 1]
                del rest[index : index + 2]
                break
            if word.startswith("--model="):
                named = word.split("=", 1)[1]
                del rest[index]
                break
    served = any(word == "--served-model-name" or word.startswith("--served-model-name=") for word in rest)
    names = [] if served or named is None else ["--served-model-name", named]
    return ["serve", model, *rest, *names, *appended]


def main() -> None:
    """The image's ``vllm``: exec the virtualenv's with `serve_argv`, without the test ground's variables."""
    environ = dict(os.environ)
    vllm, model = environ.pop(VLLM_VARIABLE), environ.pop(MODEL_VARIABLE)
    appended = environ.pop(ARGS_VARIABLE, "").split()
    for name in [name for name in environ if name.startswith("TESTGROUND_")] + ["PYTHONPATH"]:
        environ.pop(name, None)
    argv = serve_argv(sys.argv[1:], model, appended)
    print(f"testground: vllm {' '.join(argv)}", file=sys.stderr, flush=True)
    os.execve(vllm, ["vllm", *argv], environ)


if __name__ == "__main__":
    main()
