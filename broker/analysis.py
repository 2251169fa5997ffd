"""What the broker asks of the analysis layer, which sits above it and hands this in.

The broker answers ``stats`` requests from a live fold of its log and, with retention on,
folds the log into its checkpoint before retiring segments. Both are the analyzers' work; the
broker never imports them. Whoever starts a broker with those features (``memscope broker``,
hence every embedded broker) passes a :class:`LogAnalysis` built by
:func:`memscope.analyzers.broker_analysis.log_analysis`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class LiveStats(Protocol):
    """A live fold of one log (``memscope.analyzers.follow.LiveStats``)."""

    def warm(self) -> None:
        """Fold what the log gained since the last call."""

    def stats(self, pid: int | None) -> dict[str, Any]:
        """The headline numbers of ``pid`` (every process when None), as of now."""

    def seed_figures(self, pid: int) -> dict[str, int]:
        """``MemoryStats``' blocks at the peak and the leak figures so far, of ``pid``."""


#: ``archive(log_dir, files)``: copy these segments elsewhere; return the ones copied.
Archive = Callable[[Path, set[str]], Iterable[str]]


@dataclass(frozen=True)
class LogAnalysis:
    """The analysis functions a broker may call (each None when not available)."""

    #: ``live_stats(log_dir)``: the log's live fold, kept per log by the analysis layer.
    live_stats: Callable[[Path], LiveStats] | None = None
    #: ``checkpoint_fold(log_dir)``: fold the log into its saved checkpoint; return the
    #: fold's parameters (retention retires only what the saved checkpoint has folded).
    checkpoint_fold: Callable[[Path], object] | None = None
    #: ``dataset_archive(root)``: an archive copying segments into a fleet dataset.
    dataset_archive: Callable[[Path], Archive] | None = None
    #: ``running_totals(log_dir)``: get_stats' counters folded from the log so far, to be
    #: fed each group the broker writes (``memscope.broker.totals``); None when unusable.
    running_totals: Callable[[Path], Any] | None = None


#: A broker started without the analysis layer: no ``stats``, no retention.
NO_ANALYSIS = LogAnalysis()
