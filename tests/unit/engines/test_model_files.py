"""What a model's own files say about its size: config.json as Hugging Face models write it, and where
vLLM finds the files on the model claim."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from turnout.engines.model_files import (
    ModelDirectory,
    config_facts,
    index_total_size,
    model_directory,
    snapshot_prefix,
)

# meta-llama/Llama-3.1-8B-Instruct's config.json (the keys that matter) and its index's total_size.
LLAMA_8B_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}
LLAMA_8B_BYTES = 16_060_522_496


def config(**changes: Any) -> bytes:
    found = {**LLAMA_8B_CONFIG, **changes}
    return json.dumps({key: value for key, value in found.items() if value is not None}).encode()


def test_llamas_config_gives_the_facts_model_architecture_would_declare() -> None:
    facts = config_facts(config(), LLAMA_8B_BYTES)
    assert (facts.parameters, facts.layers, facts.kv_heads, facts.head_dim, facts.vocab_size) == (
        8_030_261_248,
        32,
        8,
        128,
        128256,
    )
    assert facts.quantization is None
    assert facts.describe() == "8.03B parameters, 15.0 GiB of weights, 32 layers, 8 KV heads of 128, vocabulary 128256"


def test_head_dim_is_taken_as_given_over_hidden_size() -> None:
    # Gemma-2-9B: hidden_size 3584, 16 heads, but head_dim 256.
    facts = config_facts(config(hidden_size=3584, num_attention_heads=16, head_dim=256), LLAMA_8B_BYTES)
    assert facts.head_dim == 256


def test_without_num_key_value_heads_every_head_has_its_own() -> None:
    facts = config_facts(config(num_key_value_heads=None), LLAMA_8B_BYTES)
    assert facts.kv_heads == 32


def test_a_float32_checkpoint_has_four_bytes_a_parameter() -> None:
    assert config_facts(config(torch_dtype="float32"), 4_000_000).parameters == 1_000_000
    assert config_facts(config(torch_dtype=None, dtype="float32"), 4_000_000).parameters == 1_000_000


def test_a_quantized_checkpoint_keeps_its_bytes_and_names_its_method() -> None:
    facts = config_facts(config(quantization_config={"quant_method": "awq", "bits": 4}), 5_734_000_000)
    assert facts.quantization == "awq"
    assert facts.checkpoint_bytes == 5_734_000_000
    assert facts.describe().startswith("awq weights, 5.3 GiB of weights")


def test_a_multimodal_config_has_the_language_models_facts_in_text_config() -> None:
    text = {"num_hidden_layers": 32, "num_attention_heads": 32, "hidden_size": 4096, "vocab_size": 32064}
    facts = config_facts(json.dumps({"text_config": text, "torch_dtype": "float16"}).encode(), 14_000_000_000)
    assert (facts.layers, facts.kv_heads, facts.head_dim, facts.vocab_size) == (32, 32, 128, 32064)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "config.json is not JSON"),
        (b"[1, 2]", "config.json is not a JSON object"),
        (b"\xff\xfe", "config.json is not JSON"),
        (config(num_hidden_layers=None), "config.json has no num_hidden_layers"),
        (config(num_attention_heads=None), "config.json has no num_attention_heads"),
        (config(hidden_size=None), "config.json has neither head_dim nor hidden_size"),
        (config(num_hidden_layers="32"), "config.json gives num_hidden_layers '32', not a whole number"),
        (config(num_hidden_layers=True), "config.json gives num_hidden_layers 'True', not a whole number"),
        (config(num_hidden_layers=10**9), "config.json gives layers 1000000000, outside 1 to 10000"),
        (config(num_key_value_heads=0), "config.json gives kv_heads 0, outside 1 to 10000"),
        (config(vocab_size=-1), "config.json gives vocab_size -1, outside 1 to 100000000"),
    ],
    ids=[
        "not-json",
        "not-object",
        "not-utf8",
        "no-layers",
        "no-heads",
        "no-head-size",
        "string",
        "bool",
        "too-many-layers",
        "zero-kv-heads",
        "negative-vocab",
    ],
)
def test_a_config_that_says_nothing_usable_is_refused_saying_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        config_facts(body, LLAMA_8B_BYTES)


def test_the_index_gives_the_weights_bytes() -> None:
    index = json.dumps({"metadata": {"total_size": LLAMA_8B_BYTES}, "weight_map": {"lm_head.weight": "x"}})
    assert index_total_size(index.encode()) == LLAMA_8B_BYTES
    with pytest.raises(ValueError, match=r"no metadata\.total_size"):
        index_total_size(b'{"metadata": {}}')
    with pytest.raises(ValueError, match=r"no metadata\.total_size"):
        index_total_size(b'{"metadata": {"total_size": "16GB"}}')


def test_a_path_on_the_claim_is_served_as_it_is_and_a_hub_id_from_vllms_hub_cache() -> None:
    assert model_directory("/data/models/llama-8b", "/data/models") == ModelDirectory("/data/models/llama-8b", False)
    assert model_directory("meta-llama/Llama-3.1-8B-Instruct", "/data/models/") == ModelDirectory(
        "/data/models/huggingface/hub/models--meta-llama--Llama-3.1-8B-Instruct", True
    )


@pytest.mark.parametrize(
    ("model", "why"),
    [
        ("/opt/models/llama", "the model path /opt/models/llama is not on the model claim (mounted at /data/models)"),
        ("/data/models/../etc", "the model path /data/models/../etc is not on the model claim"),
        ("/data/modelsx/llama", "the model path /data/modelsx/llama is not on the model claim"),
        ("llama-8b", "llama-8b is neither a path on the model claim nor a Hugging Face hub id"),
        ("org/../x", "org/../x is neither"),
    ],
)
def test_a_model_off_the_claim_is_not_read_and_says_why(model: str, why: str) -> None:
    found = model_directory(model, "/data/models")
    assert isinstance(found, str)
    assert found.startswith(why)


def test_the_hub_caches_ref_names_the_snapshot() -> None:
    commit = "0e9e39f249a16976918f6564b8830bc894c89659"
    assert snapshot_prefix(f"{commit}\n".encode()) == f"snapshots/{commit}/"
    with pytest.raises(ValueError, match="refs/main holds no commit hash"):
        snapshot_prefix(b"../../etc")
