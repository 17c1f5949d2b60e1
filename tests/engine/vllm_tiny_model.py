"""Make the tiny random-weight Llama that `vllm serve` runs in the engine tests; run by vLLM's virtualenv python.

Reads a JSON object on stdin: "directory" (created if absent) and the Llama's "shape" (as
vllm_memory_log.py takes it). Saves there the model, its word-level tokenizer and a chat template
(OpenAI chat completions need one), then prints the directory. Random weights answer nonsense, which
is all a test of the server's HTTP side needs. This file is not part of turnout: it runs against the
vLLM package's dependencies only.
"""

from __future__ import annotations

import json
import sys

from vllm_memory_log import make_model

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def main() -> None:
    request = json.load(sys.stdin)
    directory = request["directory"]
    make_model(request["shape"], directory)
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(directory)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    print(directory)


if __name__ == "__main__":
    main()
