"""Every SQL block in docs/recipes.md runs against a real log and returns rows.

The log is that of ``examples/lifecycle.py`` (the recipes name its variables), traced by
``memscope run --no-report`` once per module.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from memscope.analyzers.views import connect

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "docs" / "recipes.md"
BLOCKS = re.findall(r"```sql\n(.*?)```", RECIPES.read_text(), re.S)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("recipes") / "run"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "memscope",
            "run",
            "--no-report",
            "--out",
            str(out),
            str(ROOT / "examples" / "lifecycle.py"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out


def test_the_recipes_doc_has_sql_blocks() -> None:
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("sql", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_recipe_returns_rows(log: Path, sql: str) -> None:
    con = connect(log, state=True)
    rows = con.execute(sql).fetchall()
    assert rows, f"no rows from:\n{sql}"
    assert all(any(value is not None for value in row) for row in rows)


def test_the_cli_runs_a_recipe(log: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "memscope", "query", str(log), BLOCKS[0], "--format", "csv"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    header, *rows = done.stdout.splitlines()
    assert header == "location,blocks,bytes" and rows


def _anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize(
    "doc", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name
)
def test_relative_links_resolve(doc: Path) -> None:
    """Every relative link in the README and docs/ names a file (and heading) that exists."""
    for target in re.findall(r"\]\(([^)]+)\)", doc.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.exists(), f"{doc.name}: broken link {target}"
        if anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", linked.read_text(), re.M)
            assert anchor in {_anchor(h) for h in headings}, f"{doc.name}: no #{anchor}"
