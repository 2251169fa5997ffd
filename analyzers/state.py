"""The analysis state of a log: its memory events folded once, checkpointed, read by reports.

:class:`AnalysisState` owns a fold (:mod:`memscope.analyzers.fold`) and knows how much of the
log it has folded (:class:`LogCursor`: rows read per segment). :meth:`AnalysisState.update`
reads only what the log added since and folds it:

1. the new ``processes`` rows: a sampled process's rate goes to the fold;
2. the new ``variables`` rows: each tracked object's block is watched (its free is its death);
3. the new memory events (columnar ``memory`` rows, then the ``memory_chunks`` rows decoded),
   in **windows** of about :data:`WINDOW_ROWS` events: each window is sorted by time (a
   stable sort: ties keep log order) and folded in that order. Events of one process arrive
   in the order its batches were sent, so a process's events are folded in time order;
   events of several processes are in time order within a window, and across windows in the
   order the broker received them.

The state is checkpointed in the log directory (``events/_state/``: one Arrow IPC file per
table and ``state.json`` with the cursor), so ``analyze``, ``report``, ``stats``, the
Tracker's exports and ``query`` start from the checkpoint and fold only what is new. A
checkpoint of another log, fold version or set of parameters is ignored (and replaced).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from memscope.analyzers.fold import TABLE_COLUMNS, FoldParams, PyFold
from memscope.broker.chunks import decode_chunk_batches
from memscope.broker.schema import MEMORY

#: Memory events folded per window (sorted by time as one piece).
WINDOW_ROWS = 1 << 20
#: Layout version of a checkpoint; a checkpoint of another version is rebuilt.
STATE_FORMAT = 1
#: Where the checkpoint lives inside a log directory.
STATE_DIRNAME = "_state"

Fold = Any  # memscope.analyzers._fold.Fold or its twin PyFold


def new_fold(params: FoldParams) -> Fold:
    """A new, empty fold (the C type)."""
    try:
        from memscope.analyzers._fold import Fold as CFold
    except ImportError:  # pragma: no cover - until the C twin is built
        return PyFold(**params.as_dict())
    return CFold(**params.as_dict())


def restore_fold(params: FoldParams, tables: dict[str, dict[str, np.ndarray]]) -> Fold:
    """A fold restored from exported tables (the C type)."""
    try:
        from memscope.analyzers._fold import Fold as CFold
    except ImportError:  # pragma: no cover - until the C twin is built
        return PyFold.restore(params.as_dict(), tables)
    return CFold.restore(params.as_dict(), tables)


@dataclass
class LogCursor:
    """How much of each segment of some tables has been read (rows), and which are done."""

    rows: dict[str, int] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)

    def new_batches(self, reader: Any, table: str) -> Iterator[pa.RecordBatch]:
        """The rows of ``table`` after the ones read so far, as record batches."""
        for segment in reader.segments(table):
            key = f"{table}/{segment.path.name}"
            if key in self.finished:
                continue
            before = self.rows.get(key, 0)
            count = before
            for batch in _segment_batches(segment, before):
                count += batch.num_rows
                yield batch
            self.rows[key] = count
            if segment.closed:
                self.finished.add(key)

    def to_json(self) -> dict[str, Any]:
        """The cursor as JSON-ready data."""
        return {"rows": dict(sorted(self.rows.items())), "finished": sorted(self.finished)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogCursor:
        """The cursor :meth:`to_json` wrote."""
        return cls(rows={str(k): int(v) for k, v in data.get("rows", {}).items()},
                   finished={str(f) for f in data.get("finished", [])})


def _segment_batches(segment: Any, skip: int) -> Iterator[pa.RecordBatch]:
    """Record batches of one segment after its first ``skip`` rows."""
    if segment.closed:
        try:
            with pa.memory_map(str(segment.path)) as source:
                reader = ipc.open_file(source)
                batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
                yield from _skip(batches, skip)
            return
        except (pa.ArrowInvalid, OSError):
            pass  # damaged: read its complete batches as a stream instead (below)
    yield from _skip(iter(segment.read().to_batches()), skip)


def _skip(batches: Iterator[pa.RecordBatch], skip: int) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        yield batch.slice(skip) if skip else batch
        skip = 0


def windows(batches: Iterable[pa.RecordBatch], rows: int = WINDOW_ROWS
            ) -> Iterator[dict[str, np.ndarray]]:
    """Memory batches regrouped into windows of about ``rows`` events, sorted by time."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield _sorted_window(pending)
            pending, count = [], 0
    if pending:
        yield _sorted_window(pending)


def _sorted_window(batches: list[pa.RecordBatch]) -> dict[str, np.ndarray]:
    table = pa.Table.from_batches(batches, schema=MEMORY).combine_chunks()
    ts = table.column("ts_ns").to_numpy()
    if len(ts) > 1 and bool((ts[1:] < ts[:-1]).any()):
        order = np.argsort(ts, kind="stable")
        return {name: table.column(name).to_numpy()[order] for name in MEMORY.names}
    return {name: np.ascontiguousarray(table.column(name).to_numpy()) for name in MEMORY.names}


def _feed(fold: Fold, window: dict[str, np.ndarray]) -> None:
    fold.feed(*(window[name] for name in MEMORY.names))


class AnalysisState:
    """The folded state of one log and the cursor of what it has read."""

    def __init__(self, params: FoldParams | None = None, fold: Fold | None = None,
                 cursor: LogCursor | None = None, log_id: str | None = None,
                 problems: Iterable[str] = ()) -> None:
        self.params = params or FoldParams()
        self.fold = fold if fold is not None else new_fold(self.params)
        self.cursor = cursor or LogCursor()
        self.log_id = log_id
        #: Chunks that did not decode, over every update (each names its segment).
        self.problems: list[str] = list(problems)
        self.events = 0
        self._tables: dict[str, pa.Table] | None = None

    # -- folding -------------------------------------------------------------------------
    def update(self, reader: Any, on_events: Callable[[int], None] | None = None) -> int:
        """Fold what ``reader``'s log added since the last update; the memory events read."""
        if self.log_id is None:
            self.log_id = reader.log_id
        for batch in self.cursor.new_batches(reader, "processes"):
            self.register_processes(batch)
        for batch in self.cursor.new_batches(reader, "variables"):
            self.register_variables(batch)
        memory = self._memory(reader)
        read = 0
        for window in windows(memory):
            _feed(self.fold, window)
            read += len(window["pid"])
            if on_events:
                on_events(self.events + read)
        self.events += read
        if read:
            self._tables = None
        return read

    def _memory(self, reader: Any) -> Iterator[pa.RecordBatch]:
        yield from self.cursor.new_batches(reader, "memory")
        yield from decode_chunk_batches(self.cursor.new_batches(reader, "memory_chunks"),
                                        on_problem=self.problems.append)

    def register_processes(self, batch: pa.RecordBatch) -> None:
        """Give the fold the sampling rate of the sampled processes among ``processes`` rows."""
        rows = batch.select(["pid", "mode", "sample_bytes"]).to_pylist()
        for row in rows:
            if row["mode"] == "sampled" and row["sample_bytes"]:
                self.fold.set_sampling(int(row["pid"]), int(row["sample_bytes"]))
                self._tables = None

    def register_variables(self, batch: pa.RecordBatch) -> None:
        """Watch the blocks of ``variables`` rows (their frees are the variables' deaths)."""
        for pid, address, ts in zip(batch.column("pid").to_pylist(),
                                    batch.column("address").to_pylist(),
                                    batch.column("ts_ns").to_pylist(), strict=True):
            if address:
                self.fold.watch(int(pid), int(address), int(ts))
        self._tables = None

    # -- reading ---------------------------------------------------------------------------
    def tables(self) -> dict[str, pa.Table]:
        """The state as Arrow tables (``state_<name>`` in DuckDB; see :mod:`fold`)."""
        if self._tables is None:
            self._tables = {name: _arrow(name, columns, self.params.site_slots)
                            for name, columns in self.fold.export().items()}
        return self._tables

    # -- checkpoints -----------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the checkpoint to ``directory`` (replaced as a whole); return it."""
        target = Path(directory)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, table in self.tables().items():
            with pa.OSFile(str(tmp / f"{name}.arrow"), "wb") as sink, \
                    ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
        meta = {"format": STATE_FORMAT, "log_id": self.log_id, "params": self.params.as_dict(),
                "events": self.events, "cursor": self.cursor.to_json(),
                "problems": self.problems}
        (tmp / "state.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        old = target.with_name(f"{target.name}.old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        return target

    @classmethod
    def load(cls, directory: str | os.PathLike[str], log_id: str,
             params: FoldParams) -> AnalysisState | None:
        """The checkpoint in ``directory`` if it is of this log and these parameters."""
        path = Path(directory)
        try:
            meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT
                or meta.get("log_id") != log_id or meta.get("params") != params.as_dict()):
            return None
        try:
            tables = {name: _numpy(ipc.open_file(str(path / f"{name}.arrow")).read_all())
                      for name in TABLE_COLUMNS}
            fold = restore_fold(params, tables)
        except (OSError, pa.ArrowException, KeyError, ValueError) as exc:
            print(f"memscope: ignoring the damaged analysis checkpoint in {path} ({exc}); "
                  f"folding the log again", file=sys.stderr)
            return None
        state = cls(params, fold, LogCursor.from_json(meta.get("cursor", {})), log_id,
                    meta.get("problems", []))
        state.events = int(meta.get("events", 0))
        return state


def state_dir(reader: Any) -> Path:
    """Where the checkpoint of ``reader``'s log lives."""
    return Path(reader.path) / STATE_DIRNAME


def open_state(reader: Any, params: FoldParams | None = None, *, checkpoint: bool = True,
               on_events: Callable[[int], None] | None = None) -> AnalysisState:
    """The log's state, folded up to its end: from its checkpoint when it has a valid one.

    With ``checkpoint`` the checkpoint is read and, when the update folded anything, written
    back (a log directory that cannot be written keeps its old checkpoint, with a note).
    """
    params = params or FoldParams()
    directory = state_dir(reader)
    state = AnalysisState.load(directory, reader.log_id, params) if checkpoint else None
    if state is None:
        state = AnalysisState(params, log_id=reader.log_id)
    before = state.events
    state.update(reader, on_events)
    for problem in state.problems:
        if problem not in reader.problems:
            reader.problems.append(problem)
    if checkpoint and (state.events != before or not directory.exists()):
        try:
            state.save(directory)
        except OSError as exc:
            print(f"memscope: could not write the analysis checkpoint {directory}: {exc}",
                  file=sys.stderr)
    return state


def _arrow(name: str, columns: dict[str, np.ndarray], slots: int) -> pa.Table:
    arrays: dict[str, pa.Array] = {}
    for column, values in columns.items():
        if column == "series":
            flat = pa.array(np.ascontiguousarray(values, dtype="<i8").reshape(-1))
            arrays[column] = pa.FixedSizeListArray.from_arrays(flat, slots)
        else:
            arrays[column] = pa.array(values)
    if name == "sites" and "series" not in arrays:
        arrays["series"] = pa.FixedSizeListArray.from_arrays(pa.array([], pa.int64()), slots)
    return pa.table(arrays)


def _numpy(table: pa.Table) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if name == "series":
            slots = column.type.list_size
            out[name] = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, slots)
        else:
            out[name] = column.to_numpy(zero_copy_only=False)
    return out


def fold_tables(tables: dict[str, pa.Table], params: FoldParams | None = None,
                window_rows: int | None = None) -> AnalysisState:
    """The state of a log given as in-memory tables (tests, samples): folded in one go."""
    state = AnalysisState(params)
    processes = tables.get("processes")
    if processes is not None:
        for batch in processes.to_batches():
            state.register_processes(batch)
    variables = tables.get("variables")
    if variables is not None:
        for batch in variables.to_batches():
            state.register_variables(batch)
    memory = tables.get("memory")
    if memory is not None:
        for window in windows(memory.to_batches(), window_rows or WINDOW_ROWS):
            _feed(state.fold, window)
            state.events += len(window["pid"])
    return state
