"""The ``memscope`` command line: a registry of verbs, each one command object.

A command module exposes ``COMMAND``, an object with ``name``, ``help``,
``add_arguments(parser)`` and ``run(args) -> int`` (and optionally ``split_argv``, see
``_split_passthrough``). Commands are imported only when chosen,
so ``memscope --help`` stays fast and one broken verb cannot take the others down.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Protocol

from memscope.config.settings import SettingsError
from memscope.errors import CliError

# verb -> (module defining COMMAND, one-line help). Add a verb by adding a line here.
VERBS: dict[str, tuple[str, str]] = {
    "run": ("memscope.commands.run", "trace a program and its children, then report"),
    "attach": ("memscope.commands.attach", "trace a running Python process, then detach"),
    "broker": ("memscope.commands.broker", "a standalone broker for services and many hosts"),
    "keys": ("memscope.commands.keys", "make a CURVE key pair for an authenticated broker"),
    "analyze": ("memscope.commands.analyze", "the six JSON files from a log"),
    "report": ("memscope.commands.report", "SVGs, snapshot JSON and dashboard"),
    "dashboard": ("memscope.commands.dashboard", "the dashboard, as a file or served"),
    "query": ("memscope.commands.query", "DuckDB SQL over a log"),
    "stats": ("memscope.commands.stats", "the headline numbers of a log"),
    "flamegraph": ("memscope.commands.flamegraph", "an interactive flame graph of a run"),
    "table": ("memscope.commands.table", "the allocation sites alive at the peak"),
    "tree": ("memscope.commands.tree", "the largest allocators at the peak, as a tree"),
    "summary": ("memscope.commands.summary", "the functions holding most at the peak"),
    "compact": ("memscope.commands.compact", "copy a log to Parquet for other engines"),
}


class Command(Protocol):
    """What a verb module's ``COMMAND`` provides."""

    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the verb's options."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work; return the exit code."""


def _load(verb: str) -> Command:
    module_name, _ = VERBS[verb]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise CliError(f"memscope {verb}: not available in this build") from None
        raise
    command: Command = module.COMMAND
    return command


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; with ``verb`` given, only that verb's options are loaded."""
    parser = argparse.ArgumentParser(
        prog="memscope", description="Memory analysis for Python programs."
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (_, help_text) in VERBS.items():
        verb_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == verb:
            _load(name).add_arguments(verb_parser)
    return parser


def _split_passthrough(
    verb: str | None, args_list: list[str]
) -> tuple[list[str], list[str] | None]:
    """``(words for argparse, words the verb passes on to a program, or None)``.

    A verb whose ``COMMAND`` has ``split_argv(words after the verb) -> (own, passed on)``
    (``run``) keeps its program's arguments away from argparse; they land in
    ``args.passthrough`` unchanged.
    """
    if verb not in VERBS:
        return args_list, None
    split = getattr(_load(verb), "split_argv", None)
    if split is None:
        return args_list, None
    at = args_list.index(verb) + 1
    own, passthrough = split(args_list[at:])
    return args_list[:at] + list(own), list(passthrough)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in args_list if not a.startswith("-")), None)
    try:
        parser = build_parser(verb if verb in VERBS else None)
        own, passthrough = _split_passthrough(verb, args_list)
        args = parser.parse_args(own)
        if passthrough is not None:
            args.passthrough = passthrough
        if args.verb is None:
            parser.print_help()
            return 2
        return _load(args.verb).run(args)
    except CliError as exc:
        print(f"memscope: {exc}", file=sys.stderr)
        return exc.exit_code
    except SettingsError as exc:
        print(f"memscope: bad setting: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`memscope query ... | head`): not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
