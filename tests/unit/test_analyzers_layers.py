"""The analyzers package imports one way: no module imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "analyzers"


def _imports(path: Path) -> set[str]:
    """Modules of memscope.analyzers that ``path`` imports (at any depth, but not for types)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "memscope.analyzers":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("memscope.analyzers."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(
                a.name.split(".")[2] for a in node.names if a.name.startswith("memscope.analyzers.")
            )
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    return {name for name in found if name in modules and name != path.stem}


def test_no_import_cycle_inside_the_analyzers():
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        if state.get(module) == 2:
            return
        assert state.get(module) != 1, "import cycle: " + " -> ".join([*path, module])
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            visit(target, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        visit(module, [])
    assert {"fold", "state", "views", "runner", "follow"} <= set(graph)
