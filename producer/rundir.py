"""Where a run's log and reports go by default: ``MemoryAnalysis/<program>-<YYYYmmdd-HHMMSS>/``."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

#: The parent of default run directories, relative to the working directory.
ROOT = "MemoryAnalysis"


def program_label(argv: list[str] | None = None, module: str | None = None) -> str:
    """A file-name-safe label for the traced program (script stem or module name)."""
    if module:
        raw = module
    else:
        args = sys.argv if argv is None else argv
        raw = Path(args[0]).stem if args and args[0] not in ("", "-c", "-") else "python"
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("._") or "python"
    return label[:64]


def default_run_dir(label: str, now: float | None = None) -> Path:
    """A new run directory path (not created) under :data:`ROOT`; unique within this host."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path = Path(ROOT) / f"{label}-{stamp}"
    n = 2
    while path.exists():
        path = Path(ROOT) / f"{label}-{stamp}-{n}"
        n += 1
    return path
