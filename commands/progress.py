"""Progress on stderr for the steps that take a while: a redrawn line, on a terminal only.

Output that is not a terminal (a pipe, a file, CI's log) gets nothing: progress there would
be noise. :class:`ProgressBar` counts steps (analyzers, exporters) and shows the fold's
running event count meanwhile; :class:`StatusLine` is one line for work without steps (the
fold of ``stats``, a ``query`` that decodes or folds the log). Both clear or end their line
when closed, so what the command prints next starts on a fresh line.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Self, TextIO

#: Redraws closer together than this are skipped (the final one always happens).
REDRAW_S = 0.1
_WIDTH = 100


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (progress is drawn only there)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def events_text(n: int) -> str:
    """What the fold's ``on_events(n)`` shows: ``folded 1,234,567 events``."""
    return f"folded {n:,} events"


class _Line:
    """A line redrawn in place (carriage return); inert unless the stream is a terminal."""

    def __init__(self, stream: TextIO | None, enabled: bool) -> None:
        self.stream = stream or sys.stderr
        self.active = enabled and is_terminal(self.stream)
        self.started = time.monotonic()
        self._drawn_at: float | None = None
        self._width = 0

    def _write(self, line: str, force: bool = False) -> None:
        if not self.active:
            return
        now = time.monotonic()
        if not force and self._drawn_at is not None and now - self._drawn_at < REDRAW_S:
            return
        line = line[:_WIDTH]
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)
        self._drawn_at = now

    def _clear(self) -> None:
        if self.active and self._drawn_at is not None:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._drawn_at = None

    def elapsed(self) -> str:
        """Seconds since the line started, as ``12.3s``."""
        return f"{time.monotonic() - self.started:.1f}s"

    def close(self) -> None:
        """Clear the line (an unfinished bar: an error message may follow)."""
        self._clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class ProgressBar(_Line):
    """``total`` steps; :meth:`step` advances one and names what finished.

    On a terminal: ``label [#####.......] 3/8 1.2s what``, redrawn; the finished bar stays
    (its line ended). Anywhere else: nothing.
    """

    def __init__(
        self, total: int, label: str, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        super().__init__(stream, enabled)
        self.total = max(1, total)
        self.done = 0
        self.label = label
        self.enabled = enabled
        self.tty = self.active
        self._draw("", force=True)

    def _draw(self, what: str, force: bool = False) -> None:
        width = 24
        filled = width * self.done // self.total
        bar = "#" * filled + "." * (width - filled)
        finished = self.done >= self.total
        self._write(
            f"{self.label} [{bar}] {self.done}/{self.total} {self.elapsed():>6} {what}",
            force=force or finished,
        )
        if finished and self.active and self._drawn_at is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn_at = None

    def step(self, what: str) -> None:
        """One step finished (``what`` names it)."""
        self.done = min(self.total, self.done + 1)
        self._draw(what, force=True)

    def note(self, what: str) -> None:
        """Redraw with ``what`` as the current activity (no step)."""
        self._draw(what)

    def folded(self, events: int) -> None:
        """The fold's ``on_events``: show the events folded so far."""
        self.note(events_text(events))

    def reset(self, total: int, label: str | None = None) -> None:
        """Start a new round (``--follow``)."""
        self.total, self.done = max(1, total), 0
        self.label = label or self.label
        self.started = time.monotonic()


class StatusLine(_Line):
    """One redrawn line, ``label: what (1.2s)``, for work without steps; cleared on close."""

    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        super().__init__(stream, enabled)
        self.label = label
        self.show("starting")

    def show(self, what: str) -> None:
        """Redraw with ``what`` as the current activity."""
        self._write(f"{self.label}: {what} ({self.elapsed()})", force=self._drawn_at is None)

    def folded(self, events: int) -> None:
        """The fold's ``on_events``: show the events folded so far."""
        self.show(events_text(events))
