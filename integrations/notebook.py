"""IPython/Jupyter: ``%load_ext memscope`` and the ``%%memscope`` cell magic.

``%%memscope [--at peak|end|SECONDS] [--leaks] [--temporal] [--mode MODE] [--out DIR]`` runs
the cell as a Python script in a child process traced by ``memscope run`` (so the notebook's
kernel is never traced, and the cell sees none of the notebook's variables), then shows the
cell's output, the headline numbers (``memscope stats``) and the flame graph inline: the
same offline page as ``memscope flamegraph``, in a sandboxed ``<iframe srcdoc>``. The run
directory (log, ``flamegraph.html``) is kept in ``--out`` (default
``MemoryAnalysis/cell-<time>/``).
"""

from __future__ import annotations

import argparse
import html
import io
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: Height of the inline flame graph frame (px).
FRAME_HEIGHT = 560


class MagicError(Exception):
    """A usage problem of the magic, shown as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the kernel
        raise MagicError(f"%%memscope: {message}")


def parser() -> argparse.ArgumentParser:
    """The magic's options (those of ``memscope flamegraph`` and ``memscope run``)."""
    from memscope.commands.flamegraph import parse_at

    p = _Parser(prog="%%memscope", add_help=False)
    p.add_argument("--at", type=parse_at, default="peak")
    p.add_argument("--leaks", action="store_true")
    p.add_argument("--temporal", action="store_true")
    p.add_argument("--mode", choices=("full", "aggregated", "sampled"), default=None)
    p.add_argument("--out", type=Path, default=None)
    return p


class CellResult:
    """What a traced cell produced; shown by IPython as text and as HTML."""

    def __init__(
        self, run_dir: Path, output: str, stats_text: str, page: str, stats: dict[str, Any]
    ) -> None:
        self.run_dir = run_dir
        self.output = output
        self.stats_text = stats_text
        self.page = page
        self.stats = stats

    def __repr__(self) -> str:
        return f"memscope run {self.run_dir}\n{self.stats_text}"

    def _repr_html_(self) -> str:
        frame = (
            f'<iframe sandbox="allow-scripts" style="width:100%;height:{FRAME_HEIGHT}px;'
            f'border:1px solid #ccd" title="memscope flame graph" '
            f'srcdoc="{html.escape(self.page, quote=True)}"></iframe>'
        )
        return (
            f'<div class="memscope-cell"><pre>{html.escape(self.stats_text)}</pre>'
            f"<p>run directory: <code>{html.escape(str(self.run_dir))}</code></p>"
            f"{frame}</div>"
        )


def run_cell(cell: str, line: str = "", cwd: str | Path | None = None) -> CellResult:
    """Trace ``cell`` in a child process; its stats and flame graph (see the module doc)."""
    from memscope.analyzers.flame import FlameOptions
    from memscope.commands.flamegraph import flame_model, write_atomic
    from memscope.commands.stats import collect, print_stats
    from memscope.errors import CliError
    from memscope.exporters.flame_html import flame_page

    try:
        args = parser().parse_args(shlex.split(line))
    except ValueError as exc:  # unbalanced quotes
        raise MagicError(f"%%memscope: {exc}") from None
    if args.leaks and args.at != "peak":
        raise MagicError("%%memscope: --leaks draws the end: give --leaks or --at, not both")
    base = Path(cwd or Path.cwd())
    run_dir = args.out or base / "MemoryAnalysis" / f"cell-{time.strftime('%Y%m%d-%H%M%S')}"
    if run_dir.exists():
        run_dir = run_dir.with_name(f"{run_dir.name}-{time.monotonic_ns() % 10**6}")
    with tempfile.TemporaryDirectory(prefix="memscope-cell-") as tmp:
        script = Path(tmp) / "cell.py"
        script.write_text(cell, "utf-8")
        command = [sys.executable, "-m", "memscope", "run", "--out", str(run_dir), "--no-report"]
        if args.mode:
            command += ["--mode", args.mode]
        done = subprocess.run(
            [*command, str(script)], cwd=base, capture_output=True, text=True, check=False
        )
    output = done.stdout + "".join(
        line + "\n" for line in done.stderr.splitlines() if not line.startswith("memscope:")
    )
    if not (run_dir / "events").is_dir():
        raise MagicError(
            "%%memscope: the cell could not be traced: "
            + (done.stderr.strip().splitlines() or ["no log written"])[-1]
        )
    opts = FlameOptions(at=args.at, leaks=args.leaks, temporal=args.temporal)
    try:
        stats = collect(str(run_dir))
        model = flame_model(run_dir, opts)
    except CliError as exc:
        raise MagicError(f"%%memscope: {exc}") from None
    text = io.StringIO()
    print_stats(stats, text)
    if done.returncode:
        text.write(f"the cell's process exited with status {done.returncode}\n")
    page = flame_page(model)
    write_atomic(run_dir / "flamegraph.html", page)
    return CellResult(run_dir, output, text.getvalue(), page, stats)


def memscope_magic(line: str, cell: str) -> CellResult | None:
    """The ``%%memscope`` cell magic (see the module doc)."""
    from IPython.core.error import UsageError

    try:
        result = run_cell(cell, line)
    except MagicError as exc:
        raise UsageError(str(exc)) from None
    if result.output:
        sys.stdout.write(result.output)
    return result


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%memscope`` (``%load_ext memscope``)."""
    ipython.register_magic_function(memscope_magic, magic_kind="cell", magic_name="memscope")
