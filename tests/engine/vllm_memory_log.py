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


def make_model(shape: dict[str, int], directory: str) -> int:
    """A random-weight bfloat16 Llama of `shape` with a word-level tokenizer, saved in `directory`; its parameters."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    config = LlamaConfig(**shape, max_position_embeddings=4096, tie_word_embeddings=False, torch_dtype="bfloat16")
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory, safe_serialization=True)
    vocabulary = {f"t{i}": i for i in range(shape["vocab_size"])}
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="t0"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="t0", eos_token="t1", bos_token="t2").save_pretrained(
        directory
    )
    return sum(parameter.numel() for parameter in model.parameters())


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
