"""The analysis functions handed to a broker (:class:`memscope.broker.analysis.LogAnalysis`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from memscope.broker.analysis import Archive, LiveStats, LogAnalysis


def _live_stats(log_dir: Path) -> LiveStats:
    from memscope.analyzers.follow import live_stats_for

    return live_stats_for(log_dir)


def checkpoint_fold(log_dir: Path) -> Any:
    """Fold the log into its analysis checkpoint (:mod:`memscope.analyzers.state`), saved.

    Returns the fold's parameters (those every report uses).
    """
    from memscope.analyzers.state import open_state
    from memscope.eventlog.log import open_log

    state = open_state(open_log(log_dir))
    state.wait_saved()
    return state.params.as_dict()


def dataset_archive(root: Path) -> Archive:
    """An archive writing segments into the fleet dataset at ``root``."""

    def archive(log_dir: Path, files: set[str]) -> Iterable[str]:
        from memscope.analyzers.dataset import archive_segments

        written: Iterable[str] = archive_segments(log_dir, root, files)
        return written

    return archive


def _running_totals(log_dir: Path) -> Any:
    from memscope.analyzers.live_totals import RunningTotals

    return RunningTotals.open(log_dir)


def log_analysis() -> LogAnalysis:
    """Everything a broker may ask of the analyzers (imported only when first called)."""
    return LogAnalysis(
        live_stats=_live_stats,
        checkpoint_fold=checkpoint_fold,
        dataset_archive=dataset_archive,
        running_totals=_running_totals,
    )
