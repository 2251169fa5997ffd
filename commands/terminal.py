"""Terminal output of the reporters: rich colours on a terminal, plain text in a pipe.

:func:`console` gives a ``rich`` console on stdout; when stdout is not a terminal it has no
colours, no cursor codes and a wide line (nothing is cut), so ``memscope tree LOG > f``
keeps every location whole. Progress goes to stderr (:mod:`memscope.commands.progress`).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from memscope.commands.progress import is_terminal

#: Line width used when stdout is not a terminal.
PIPE_WIDTH = 10_000


def console(stream: TextIO | None = None) -> Any:
    """A rich console for ``stream`` (default stdout): plain unless it is a terminal."""
    from rich.console import Console

    out = stream or sys.stdout
    if is_terminal(out):
        return Console(file=out, highlight=False)
    return Console(
        file=out,
        color_system=None,
        width=PIPE_WIDTH,
        highlight=False,
        force_terminal=False,
        emoji=False,
        soft_wrap=True,
    )


def share(part: int, whole: int) -> str:
    """``part`` as a percentage of ``whole``: ``12.34%``."""
    return f"{100.0 * part / whole:.2f}%" if whole else "-"


def table(out: Any, title: str) -> Any:
    """A rich table for ``out``: boxed on a terminal, bare aligned columns in a pipe."""
    from rich import box
    from rich.table import Table

    if out.is_terminal:
        return Table(title=title, title_justify="left", box=box.HEAVY_HEAD)
    return Table(title=title, title_justify="left", box=None, show_edge=False, pad_edge=False)
