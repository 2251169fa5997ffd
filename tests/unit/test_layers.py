"""The layers of docs/architecture.md, as pyproject.toml's import-linter contract lists them.

import-linter (in ``make lint``) checks the import statements; this test adds what it cannot
see: module names in strings (``importlib.import_module("memscope....")``, lazy tables), which
must not name a package above their own either.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE_NAME = re.compile(r"memscope(\.\w+)+")


def _layers() -> list[set[str]]:
    """The contract's layers, top first, each a set of names under ``memscope``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [contract] = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [
        {name.strip().removeprefix("memscope.") for name in layer.split("|")}
        for layer in contract["layers"]
    ]


def _rank() -> dict[str, int]:
    return {name: depth for depth, names in enumerate(_layers()) for name in names}


def _source_files(name: str) -> list[Path]:
    package = ROOT / name
    return sorted(package.rglob("*.py")) if package.is_dir() else [ROOT / f"{name}.py"]


def test_every_package_and_bottom_module_is_in_a_layer():
    rank = _rank()
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in ROOT.glob("*.py")} - {"__init__", "__main__"}
    assert packages | modules == set(rank)


def test_no_string_names_a_module_of_a_higher_layer():
    rank = _rank()
    upward = []
    for name, depth in rank.items():
        for path in _source_files(name):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                    continue
                if not MODULE_NAME.fullmatch(node.value):
                    continue
                target = node.value.split(".")[1]
                if target in rank and rank[target] < depth:  # a smaller rank is higher up
                    upward.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value}")
    assert not upward, "\n".join(upward)


def test_the_check_sees_a_string_import():
    tree = ast.parse('importlib.import_module("memscope.analyzers.follow")')
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert [s for s in strings if MODULE_NAME.fullmatch(s)] == ["memscope.analyzers.follow"]
