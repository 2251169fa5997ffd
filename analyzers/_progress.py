"""A small progress bar on stderr (a redrawn line on a terminal, one line per step otherwise)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``total`` steps; :meth:`step` advances one and names what finished."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.total = max(1, total)
        self.done = 0
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        if enabled:
            self._draw("")

    def _draw(self, what: str) -> None:
        width = 24
        filled = width * self.done // self.total
        bar = "#" * filled + "." * (width - filled)
        elapsed = time.monotonic() - self.started
        line = f"{self.label} [{bar}] {self.done}/{self.total} {elapsed:5.1f}s {what}"
        if self.tty:
            self.stream.write("\r" + line.ljust(78)[:120])
            if self.done >= self.total:
                self.stream.write("\n")
        elif what:
            self.stream.write(line + "\n")
        self.stream.flush()

    def step(self, what: str) -> None:
        """One step finished (``what`` names it)."""
        self.done = min(self.total, self.done + 1)
        if self.enabled:
            self._draw(what)

    def note(self, what: str) -> None:
        """Redraw with ``what`` as the current activity (no step; terminals only)."""
        if self.enabled and self.tty:
            self._draw(what)

    def reset(self, total: int, label: str | None = None) -> None:
        """Start a new round (``--follow``)."""
        self.total, self.done = max(1, total), 0
        self.label = label or self.label
        self.started = time.monotonic()
