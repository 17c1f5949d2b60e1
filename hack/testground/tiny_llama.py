"""Make a tiny random-weight Llama that `vllm serve` can run; run by vLLM's virtualenv python.

Reads a JSON object on stdin: "directory" (created if absent) and the Llama's "shape"
("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
"num_key_value_heads", "head_dim", "vocab_size"). Saves there the model (bfloat16 safetensors), its
word-level tokenizer and a chat template (OpenAI chat completions need one), then prints the
directory. Random weights answer nonsense, which is all a test of a server's HTTP side needs. The
engine tests and the real node's vLLM image (`real_vllm.tiny_model`, cached) use it; it imports only
what vLLM's virtualenv has (torch, transformers, tokenizers), never the test ground.
"""

from __future__ import annotations

import json
import sys

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
MAX_POSITIONS = 4096


def make_model(shape: dict[str, int], directory: str) -> int:
    """A random-weight bfloat16 Llama of `shape` with a word-level tokenizer, saved in `directory`; its parameters."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    config = LlamaConfig(
        **shape, max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=False, torch_dtype="bfloat16"
    )
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


def make_chat_model(shape: dict[str, int], directory: str) -> None:
    """`make_model` with the chat template saved beside the tokenizer."""
    make_model(shape, directory)
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(directory)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)


def main() -> None:
    request = json.load(sys.stdin)
    make_chat_model(request["shape"], request["directory"])
    print(request["directory"])


if __name__ == "__main__":
    main()
