"""Running analyzers over a log: one process or parallel worker processes.

``run_all`` first brings the log's analysis state up to date (:func:`memscope.analyzers.state.
open_state`: from its checkpoint, folding only what the log added since), then runs each
analyzer over it -- in this process with ``jobs=1``, else in ``jobs`` worker processes that
each open the checkpoint. An analyzer that fails does not stop the others: its error is
collected and raised at the end as :class:`AnalysisError` naming it, after every other file
is written.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb

from memscope.analyzers.common import AnalyzerOptions, log_time, now_iso
from memscope.analyzers.fold import FoldParams
from memscope.analyzers.registry import ANALYZERS, Analyzer, select
from memscope.analyzers.state import AnalysisState, fold_tables, open_state
from memscope.analyzers.views import connect, connect_tables, open_reader, use_state

Progress = Callable[[str], None]


class AnalysisError(RuntimeError):
    """Some analyzers failed (the others' files were written); the message names each."""

    def __init__(self, failures: dict[str, str], written: list[Path]) -> None:
        self.failures = failures
        self.written = written
        lines = [f"{kind}: {msg.strip().splitlines()[-1]}" for kind, msg in failures.items()]
        super().__init__("analyzers failed -- " + "; ".join(lines))


def retained_window(reader: Any) -> dict[str, Any] | None:
    """The full-detail window of a log that retention trimmed (None: the whole log is kept)."""
    from memscope.eventlog.retention import detail_window

    manifest = getattr(reader, "manifest", None)
    return detail_window(manifest) if isinstance(manifest, dict) else None


def default_out_dir(log: str | Path) -> Path:
    """The run directory of a log: LOG itself, or its parent when LOG is an ``events/`` dir."""
    path = Path(log)
    return path.parent if path.name == "events" else path


def fold_params(options: AnalyzerOptions | None) -> FoldParams:
    """The fold parameters the analyzer options call for."""
    options = options or AnalyzerOptions()
    return FoldParams(
        temporary_ns=int(options.temporary_ns), oversized_bytes=int(options.oversized_bytes)
    )


def memory_budget_mb() -> int:
    """DuckDB's memory budget of one analysis run (the ``analysis_memory_mb`` setting)."""
    from memscope.config import load_settings

    return load_settings().analysis_memory_mb


def state_connection(
    reader: Any, state: AnalysisState, memory_mb: int | None = None, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """A connection over the log's tables and its analysis state (what analyzers read).

    ``memory_mb``: DuckDB's memory limit (default: the ``analysis_memory_mb`` setting).
    """
    con = connect(
        reader,
        memory_limit=f"{memory_mb or memory_budget_mb()}MB",
        threads=threads,
        raw_memory=False,
    )
    use_state(con, state.tables())
    return con


def connect_analyzed(
    log: Any,
    options: AnalyzerOptions | None = None,
    on_events: Callable[[int], None] | None = None,
    memory_mb: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection over ``log`` (path or reader) with its state brought up to date."""
    reader = log if hasattr(log, "dataset") else open_reader(log)
    state = open_state(reader, fold_params(options), on_events=on_events)
    return state_connection(reader, state, memory_mb)


def analyze_connection(
    con: duckdb.DuckDBPyConnection,
    options: AnalyzerOptions,
    analyzers: Sequence[Analyzer],
    progress: Progress | None = None,
) -> tuple[list[Path], dict[str, str]]:
    """Run ``analyzers`` one after another on ``con``; (files written, failures)."""
    written: list[Path] = []
    failures: dict[str, str] = {}
    for analyzer in analyzers:
        try:
            analyzer(con, options)
        except Exception:  # noqa: BLE001 -- reported per analyzer, the others still run
            failures[analyzer.kind] = traceback.format_exc()
        else:
            if options.out_dir is not None:
                written.append(Path(options.out_dir) / analyzer.file_name(options.base))
        if progress:
            progress(analyzer.kind)
    return written, failures


def _worker(
    log: str, kind: str, options: AnalyzerOptions, memory_mb: int, threads: int
) -> tuple[str, str | None]:
    """Run one analyzer in a worker process; (kind, traceback or None)."""
    try:
        reader = open_reader(log)
        state = open_state(reader, fold_params(options))  # the checkpoint the parent wrote
        con = state_connection(reader, state, memory_mb, threads)
        ANALYZERS[kind](con, options)
        con.close()
    except Exception:  # noqa: BLE001 -- sent back to the parent, which reports it
        return kind, traceback.format_exc()
    return kind, None


def run_all(
    log: str | Path | Any,
    out_dir: str | Path | None = None,
    *,
    base: str = "snapshot",
    only: Iterable[str] | None = None,
    jobs: int = 1,
    options: AnalyzerOptions | None = None,
    progress: Progress | None = None,
    on_chunk: Callable[[int], None] | None = None,
    state: AnalysisState | None = None,
    first: Iterable[str] = (),
) -> list[Path]:
    """Run the selected analyzers over ``log`` into ``out_dir``; return the files written.

    Args:
        log: a run directory, its ``events/`` directory, or an open LogReader (its
            :attr:`problems` then gain the chunks that did not decode).
        out_dir: where the files go (default: the run directory).
        base: file name prefix.
        only: analyzer kinds (or file kinds) to run; all six when empty.
        jobs: worker processes (1: everything in this process).
        options: analyzer options (``out_dir``, ``base``, ``log_id``, ``generated_at`` and
            ``log_problems`` are filled in here).
        progress: called with each analyzer's kind when it finishes (and "prepare" when
            the block matching is done).
        on_chunk: called with the memory events folded so far, during the fold.
        state: the log's state, already folded to its end (``memscope run``'s background
            fold), instead of the checkpoint's; with ``jobs`` > 1 its checkpoint is read.
        first: analyzer kinds to run before the others (``memscope run`` draws the SVG from
            three of them while the others run); the files are listed in registry order.

    Raises:
        AnalysisError: some analyzers failed; the others' files were written.
    """
    reader = log if hasattr(log, "dataset") else open_reader(log)
    analyzers = select(only)
    out = Path(out_dir) if out_dir is not None else default_out_dir(getattr(reader, "path", log))
    opts = replace(
        options or AnalyzerOptions(),
        out_dir=out,
        base=base,
        log_id=getattr(reader, "log_id", None),
        generated_at=(
            (options.generated_at if options else None)
            or log_time(getattr(reader, "manifest", None))
            or now_iso()
        ),
    )
    if state is None:
        state = open_state(
            reader,
            fold_params(opts),
            on_events=on_chunk,
            background_save=jobs <= 1 or len(analyzers) == 1,
        )
    else:
        problems = getattr(reader, "problems", None)
        if problems is not None:
            problems.extend(p for p in state.problems if p not in problems)
        if jobs > 1 and len(analyzers) > 1:
            state.wait_saved()  # the workers read the checkpoint
    if progress:
        progress("prepare")
    # Taken after the fold: chunks that did not decode are among the problems.
    opts = replace(
        opts,
        log_problems=tuple(getattr(reader, "problems", ()) or ()),
        detail_window=retained_window(reader),
    )
    if jobs <= 1 or len(analyzers) == 1:
        con = state_connection(reader, state)
        early = set(first)
        try:
            written, failures = analyze_connection(
                con, opts, sorted(analyzers, key=lambda a: a.kind not in early), progress
            )
            files = [a.file_name(opts.base) for a in analyzers]
            written.sort(key=lambda p: files.index(p.name))
            failures = {a.kind: failures[a.kind] for a in analyzers if a.kind in failures}
        finally:
            con.close()
            state.wait_saved()
    else:
        written, failures = _parallel(
            str(getattr(reader, "path", log)), analyzers, opts, jobs, progress
        )
    if failures:
        raise AnalysisError(failures, written)
    return written


def _parallel(
    log: str,
    analyzers: Sequence[Analyzer],
    opts: AnalyzerOptions,
    jobs: int,
    progress: Progress | None,
) -> tuple[list[Path], dict[str, str]]:
    workers = min(jobs, len(analyzers))
    memory_mb = max(128, memory_budget_mb() // workers)
    threads = max(1, (os.cpu_count() or 1) // workers)
    written: list[Path] = []
    failures: dict[str, str] = {}
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_worker, log, a.kind, opts, memory_mb, threads) for a in analyzers]
        by_kind = {a.kind: a for a in analyzers}
        for future in cf.as_completed(futures):
            kind, error = future.result()
            if error:
                failures[kind] = error
            else:
                written.append(Path(opts.out_dir or ".") / by_kind[kind].file_name(opts.base))
            if progress:
                progress(kind)
    order = [a.kind for a in analyzers]
    written.sort(
        key=lambda p: next(i for i, a in enumerate(analyzers) if p.name == a.file_name(opts.base))
    )
    return written, {k: failures[k] for k in order if k in failures}


def analyze_tables(
    tables: dict[str, Any],
    options: AnalyzerOptions,
    only: Iterable[str] | None = None,
) -> list[Path]:
    """Run analyzers over in-memory Arrow tables (tests, samples); raise on any failure."""
    con = connect_tables_analyzed(tables, options)
    written, failures = analyze_connection(con, options, select(only))
    con.close()
    if failures:
        raise AnalysisError(failures, written)
    return written


def connect_tables_analyzed(
    tables: dict[str, Any], options: AnalyzerOptions | None = None, window_rows: int | None = None
) -> duckdb.DuckDBPyConnection:
    """A connection over in-memory log tables with their analysis state (tests, samples)."""
    con = connect_tables(tables)
    state = fold_tables(tables, fold_params(options), window_rows)
    use_state(con, state.tables())
    return con
