"""``memscope tree LOG``: the largest allocation sites at the peak, as a tree of call stacks."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from memscope.analyzers.peak_report import Node
from memscope.commands.peak_reporters import add_common, heading, load


def _json(node: Node) -> dict[str, Any]:
    return {
        "location": node.label,
        "bytes": node.bytes,
        "blocks": node.blocks,
        "children": [_json(c) for c in node.ordered()],
    }


class TreeCommand:
    """The ``tree`` verb (memray's ``tree``)."""

    name = "tree"
    help = "the largest allocation sites at the peak, as a tree of call stacks"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """LOG, ``--at``, ``--pid``, ``--json``, ``-b``."""
        add_common(parser)
        parser.add_argument(
            "-b",
            "--biggest",
            type=int,
            default=10,
            help="the sites shown, largest first (default 10)",
        )

    def run(self, args: argparse.Namespace) -> int:
        """Print the tree; 0 on success."""
        from memscope.analyzers.peak_report import build_tree
        from memscope.errors import CliError

        if args.biggest < 1:
            raise CliError("memscope tree: --biggest must be at least 1")
        loaded = load(args, "tree")
        try:
            root = build_tree(loaded.sites, loaded.resolver, args.biggest, loaded.programs)
        finally:
            loaded.close()
        if args.json:
            json.dump(
                {"at": args.at, "pid": args.pid, "biggest": args.biggest, "tree": _json(root)},
                sys.stdout,
                indent=2,
            )
            sys.stdout.write("\n")
            return 0
        self._print(root, loaded, args)
        return 0

    @staticmethod
    def _print(root: Node, loaded: Any, args: argparse.Namespace) -> None:
        from rich.markup import escape
        from rich.tree import Tree

        from memscope.commands.terminal import console, share
        from memscope.units import human_bytes

        def label(node: Node) -> str:
            return (
                f"[bold magenta]{human_bytes(node.bytes)}[/] "
                f"({share(node.bytes, root.bytes)}) [cyan]{escape(node.label)}[/]"
            )

        tree = Tree(label(root))
        stack = [(tree, root)]
        while stack:
            branch, node = stack.pop()
            for child in node.ordered():
                stack.append((branch.add(label(child)), child))
        out = console()
        shown = min(args.biggest, len(loaded.sites))
        out.print(
            escape(
                f"memory {heading(loaded, args)}: the {shown} largest of "
                f"{len(loaded.sites)} allocation sites"
            )
        )
        out.print(tree)


COMMAND = TreeCommand()
