"""Start vLLM (CPU) on a tiny random-weight Llama and let it log what its weights and KV cache take;
run by vLLM's virtualenv python.

Reads a JSON object on stdin: the Llama's shape ("hidden_size", "intermediate_size",
"num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size"),
"max_model_len" and "kv_cache_space_gib" (VLLM_CPU_KVCACHE_SPACE). Makes the model in a temporary
directory and starts vLLM's offline engine on it. vLLM's log lines go to stdout; the last line
printed is a JSON object with the model's parameter count. This file is not part of turnout: it runs
against the vLLM package only.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

# The tiny Llama is the test ground's (hack/testground/tiny_llama.py), which imports vLLM's dependencies only.
sys.path.append(str(Path(__file__).resolve().parents[2] / "hack" / "testground"))  # last: no name of it shadows
from tiny_llama import make_model


def main() -> None:
    request = json.load(sys.stdin)
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(request["kv_cache_space_gib"])
    with tempfile.TemporaryDirectory() as directory:
        parameters = make_model(request["shape"], directory)
        from vllm import LLM

        length = request["max_model_len"]
        LLM(model=directory, dtype="bfloat16", max_model_len=length, enforce_eager=True, max_num_seqs=4)
        sys.stdout.flush()
        print(json.dumps({"parameters": parameters}), flush=True)


if __name__ == "__main__":  # vLLM starts its engine in a spawned process, which imports this module again
    main()
