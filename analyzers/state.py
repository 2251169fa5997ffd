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

import hashlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from memscope.analyzers._fold import Fold as CFold
from memscope.analyzers.fold import TABLE_COLUMNS, FoldParams
from memscope.analyzers.prefetch import prefetched
from memscope.eventlog import integrity
from memscope.eventlog.chunks import decode_chunk_batches
from memscope.protocol.log_schema import MEMORY, TABLES

#: Memory events folded per window (sorted by time as one piece).
WINDOW_ROWS = 1 << 20
#: While a log is written, events this close to their process's latest one wait (see
#: :func:`windows`): a thread's events can arrive up to about a drain later than another's.
#: (Half a second was measured too short: a 34-thread program on a loaded machine then
#: showed findings of events folded out of order, tests/integration/test_run_edges.py.)
HOLD_BACK_NS = 1_000_000_000
#: Layout version of a checkpoint; a checkpoint of another version is rebuilt.
STATE_FORMAT = 2
#: The log tables an update reads (the others are read by the analyzers directly).
_FOLDED_TABLES = ("processes", "variables", "memory", "memory_chunks")
#: Where the checkpoint lives inside a log directory.
STATE_DIRNAME = "_state"

Fold = Any  # memscope.analyzers._fold.Fold (or its twin PyFold, in tests)


def new_fold(params: FoldParams) -> Fold:
    """A new, empty fold (the C type; :class:`memscope.analyzers.fold.PyFold` is its twin)."""
    return CFold(**params.as_dict())


def restore_fold(params: FoldParams, tables: dict[str, dict[str, np.ndarray]]) -> Fold:
    """A fold restored from exported tables (the C type)."""
    return CFold.restore(params.as_dict(), tables)


@dataclass
class _Tail:
    """Where reading an open segment stopped: the byte after its last whole message."""

    offset: int
    schema: pa.Schema
    rows: int


@dataclass
class LogCursor:
    """How much of each segment of some tables has been read (rows), and which are done.

    An open segment (still being written) is read as an Arrow IPC stream from the byte
    where the last read stopped, so following a growing log reads each byte once; after a
    checkpoint is loaded (no byte offset known) it is read once from its start.
    """

    rows: dict[str, int] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    #: Segments whose footer was unreadable (read as a stream), as problems to report.
    problems: list[str] = field(default_factory=list)
    _tails: dict[str, _Tail] = field(default_factory=dict)

    def new_batches(self, reader: Any, table: str) -> Iterator[pa.RecordBatch]:
        """The rows of ``table`` after the ones read so far, as record batches."""
        for segment in reader.segments(table):
            key = f"{table}/{segment.path.name}"
            if key in self.finished:
                continue
            before = self.rows.get(key, 0)
            count = before
            for batch in self._segment_batches(key, segment, before):
                count += batch.num_rows
                yield batch
            self.rows[key] = count
            if segment.closed:
                self.finished.add(key)
                self._tails.pop(key, None)

    def _segment_batches(self, key: str, segment: Any, skip: int) -> Iterator[pa.RecordBatch]:
        verified = integrity.open_verified(segment.path, TABLES[key.split("/")[0]], key)
        if verified is not None:  # each batch checked against its checksum (damaged: skipped)
            tail = self._tails.get(key)
            start, rows = (tail.offset, tail.rows) if tail and tail.rows == skip else (0, 0)
            for batch, end in verified.read(start, self.problems.append):
                before, rows = rows, rows + batch.num_rows
                self._tails[key] = _Tail(end, batch.schema, rows)
                if rows > skip:
                    yield batch.slice(skip - before) if before < skip else batch
            return
        if segment.closed:
            try:
                with pa.memory_map(str(segment.path)) as source:
                    reader = ipc.open_file(source)
                    batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
                    yield from _skip(batches, skip)
                return
            except (pa.ArrowInvalid, OSError):
                self.problems.append(
                    f"{key}: closed segment is damaged (footer "
                    f"unreadable); its complete batches were read"
                )
        tail = self._tails.get(key)
        if tail is not None and tail.rows == skip:
            yield from self._tail(key, segment.path, tail)
            return
        self._tails.pop(key, None)
        yield from _skip(self._tail(key, segment.path, None), skip)

    def _tail(self, key: str, path: Path, tail: _Tail | None) -> Iterator[pa.RecordBatch]:
        """The whole record batches of an IPC file from ``tail`` (or its start) on."""
        try:
            source = pa.memory_map(str(path))
        except OSError:
            return
        with source:
            size = source.size()
            if tail is None:
                if size <= 8:
                    return
                source.seek(8)  # the file format's magic; a stream follows
                try:
                    schema = ipc.read_schema(ipc.read_message(source))
                except (pa.ArrowInvalid, EOFError, OSError):
                    return  # not even a whole schema yet
                tail = self._tails[key] = _Tail(source.tell(), schema, 0)
            source.seek(tail.offset)
            while source.tell() < size:
                try:
                    message = ipc.read_message(source)
                    if message is None or message.type != "record batch":
                        break
                    batch = ipc.read_record_batch(message, tail.schema)
                except (pa.ArrowInvalid, EOFError, OSError):
                    break  # a message still being written: the next read continues here
                tail.offset = source.tell()
                tail.rows += batch.num_rows
                yield batch

    def to_json(self) -> dict[str, Any]:
        """The cursor as JSON-ready data."""
        return {"rows": dict(sorted(self.rows.items())), "finished": sorted(self.finished)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogCursor:
        """The cursor :meth:`to_json` wrote."""
        return cls(
            rows={str(k): int(v) for k, v in data.get("rows", {}).items()},
            finished={str(f) for f in data.get("finished", [])},
        )


def _skip(batches: Iterator[pa.RecordBatch], skip: int) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        yield batch.slice(skip) if skip else batch
        skip = 0


def windows(
    batches: Iterable[pa.RecordBatch],
    rows: int = WINDOW_ROWS,
    hold_ns: int = 0,
    held: list[pa.RecordBatch] | None = None,
    keep: bool = False,
    ended: Callable[[], Collection[int]] | None = None,
    names: Sequence[str] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Memory batches regrouped into windows of about ``rows`` events, sorted by time.

    With ``hold_ns``, each window's latest events wait for the next window: those after the
    earliest of its processes' latest events minus ``hold_ns`` (a drain reads one thread
    after another, so another thread's events up to about a drain's length older can arrive
    in the next batch), at most ``rows`` of them. ``held``: the batches an earlier call held
    back, read first; with ``keep`` the last window's held-back events are left in that list
    (for the next update) instead of being folded. ``ended``: the processes whose events are
    all in the log (their exit rows landed); a last window of only such processes is folded
    whole (nothing of theirs can come later). ``names``: only these columns in the windows
    (all by default; a subset only without ``hold_ns``).
    """
    if names is not None and hold_ns:
        raise ValueError("windows of some columns only cannot hold events back")
    pending: list[pa.RecordBatch] = list(held or [])
    if held is not None:
        held.clear()
    fresh = 0  # rows added since the last split: the held-back ones are not counted again
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        fresh += batch.num_rows
        if fresh >= rows:
            ready, rest = _split_held(pending, hold_ns, rows, names)
            pending = [rest] if rest.num_rows else []
            fresh = 0
            if len(ready["pid"]):
                yield ready
    if not pending:
        return
    if held is not None and keep and hold_ns and not _all_ended(pending, ended):
        ready, rest = _split_held(pending, hold_ns, rows)
        if rest.num_rows:
            held.append(rest)
        if len(ready["pid"]):
            yield ready
    else:
        yield _sorted_window(pending, names=names)


def _all_ended(batches: list[pa.RecordBatch], ended: Callable[[], Collection[int]] | None) -> bool:
    """Whether every process with events in ``batches`` has ended (see :func:`windows`)."""
    if ended is None:
        return False
    done = ended()
    if not done:
        return False
    pids = np.unique(np.concatenate([b.column("pid").to_numpy() for b in batches]))
    return all(int(pid) in done for pid in pids.tolist())


def _split_held(
    batches: list[pa.RecordBatch], hold_ns: int, limit: int, names: Sequence[str] | None = None
) -> tuple[dict[str, np.ndarray], pa.RecordBatch]:
    """(the window's events to fold now, sorted; the ones held back, as one batch)."""
    ts = np.concatenate([b.column("ts_ns").to_numpy() for b in batches])
    if not hold_ns:  # nothing waits
        return _sorted_window(batches, ts, names), pa.RecordBatch.from_pylist([], schema=MEMORY)
    pids = np.concatenate([b.column("pid").to_numpy() for b in batches])
    threshold = int(_latest_of_pid(pids, ts).min()) - hold_ns
    window = _sorted_window(batches, ts)
    cut = int(np.searchsorted(window["ts_ns"], threshold, side="right"))
    cut = max(cut, len(window["ts_ns"]) - limit)
    ready = {name: values[:cut] for name, values in window.items()}
    rest = pa.RecordBatch.from_arrays(
        [pa.array(window[name][cut:]) for name in MEMORY.names], schema=MEMORY
    )
    return ready, rest


def _latest_of_pid(pids: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Each process's latest ``ts`` among the rows (in log order: runs of one process).

    A window's rows come in runs of one process (a producer's batches), so the latest time
    is taken per run (``maximum.reduceat``), then per process over its few runs.
    """
    starts = np.concatenate(([0], np.flatnonzero(pids[1:] != pids[:-1]) + 1))
    latest: dict[int, int] = {}
    for pid, value in zip(
        pids[starts].tolist(), np.maximum.reduceat(ts, starts).tolist(), strict=True
    ):
        if pid not in latest or value > latest[pid]:
            latest[pid] = value
    return np.fromiter(latest.values(), dtype=np.int64, count=len(latest))


def _sorted_window(
    batches: list[pa.RecordBatch], ts: np.ndarray | None = None, names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """The batches' columns concatenated and sorted by time (stable: ties keep log order).

    ``names``: only these columns (default: all).
    """
    if ts is None:
        ts = np.concatenate([b.column("ts_ns").to_numpy() for b in batches])
    columns = {
        name: np.concatenate([b.column(name).to_numpy() for b in batches])
        for name in (MEMORY.names if names is None else names)
    }
    if len(ts) > 1 and bool((ts[1:] < ts[:-1]).any()):
        order = np.argsort(ts, kind="stable")
        return {name: values[order] for name, values in columns.items()}
    return columns


def _feed(fold: Fold, window: dict[str, np.ndarray], names: Sequence[str] | None = None) -> None:
    fold.feed(*(window[name] for name in (MEMORY.names if names is None else names)))


class AnalysisState:
    """The folded state of one log and the cursor of what it has read."""

    def __init__(
        self,
        params: FoldParams | None = None,
        fold: Fold | None = None,
        cursor: LogCursor | None = None,
        log_id: str | None = None,
        problems: Iterable[str] = (),
    ) -> None:
        self.params = params or FoldParams()
        self._fold = fold if fold is not None else new_fold(self.params)
        #: A checkpoint's tables not restored into a fold yet (restored when events come).
        self._unrestored: dict[str, pa.Table] | None = None
        self._reader: Any = None
        self.cursor = cursor or LogCursor()
        self.log_id = log_id
        #: Chunks that did not decode, over every update (each names its segment).
        self.problems: list[str] = list(problems)
        self.events = 0
        #: Events read but not folded yet (see :meth:`update`); kept in the checkpoint.
        self.held: list[pa.RecordBatch] = []
        #: How far behind each process's latest event a non-final update stops folding.
        self.hold_ns = HOLD_BACK_NS
        #: The memory columns the fold's ``feed`` takes, in order (None: all of them).
        self.feed_names: Sequence[str] | None = None
        #: Each process's capture mode, from the ``processes`` rows read so far.
        self.modes: dict[int, str] = {}
        #: pid -> (producers that started, producers that exited), from ``processes`` rows.
        self._lives: dict[int, tuple[set[str], set[str]]] = {}
        #: The thread writing the checkpoint (``open_state(background_save=True)``).
        self.saving: threading.Thread | None = None
        self._tables: dict[str, pa.Table] | None = None

    # -- folding -------------------------------------------------------------------------
    @property
    def fold(self) -> Fold:
        """The fold (restored from the checkpoint's tables on first use)."""
        if self._fold is None:
            tables = self._unrestored or {}
            try:
                self._fold = restore_fold(self.params, {n: _numpy(t) for n, t in tables.items()})
            except (KeyError, ValueError, pa.ArrowException) as exc:
                print(
                    f"memscope: ignoring a damaged analysis checkpoint ({exc}); folding "
                    f"the log again",
                    file=sys.stderr,
                )
                self._fold = new_fold(self.params)
                self.cursor, self.events, self.held = LogCursor(), 0, []
            self._unrestored = None
            self._tables = None
            if self._reader is not None:
                # A restored fold keeps no sampling rate of a process without events yet:
                # the (small) processes table is read again for them.
                for batch in self._reader.stored_dataset("processes").to_batches():
                    self.register_processes(batch)
        return self._fold

    def update(
        self, reader: Any, on_events: Callable[[int], None] | None = None, final: bool | None = None
    ) -> int:
        """Fold what ``reader``'s log added since the last update; the memory events folded.

        While the log is still written (``final`` False; by default: its writer is alive),
        each process's last :data:`HOLD_BACK_NS` of events wait for the next update (see
        :func:`windows`); a final update folds everything.
        """
        if self.log_id is None:
            self.log_id = reader.log_id
        if final is None:
            final = not getattr(reader, "live", False)
        self._reader = reader
        if self._fold is None and self._anything_new(reader):
            self.fold  # noqa: B018 -- restored before reading (a damaged one restarts the cursor)
        for batch in self.cursor.new_batches(reader, "processes"):
            self.register_processes(batch)
        for batch in self.cursor.new_batches(reader, "variables"):
            self.register_variables(batch)
        memory = self._memory(reader)
        read = 0
        # Reading, decoding and sorting run a window ahead on a thread while the fold (which
        # releases the GIL) folds the previous one: the two cores overlap.
        for window in prefetched(
            windows(
                memory,
                WINDOW_ROWS,
                self.hold_ns,
                self.held,
                keep=not final,
                ended=self.ended,
                names=self.feed_names,
            ),
            2,
        ):
            _feed(self.fold, window, self.feed_names)
            read += len(window["pid"])
            if on_events:
                on_events(self.events + read)
        self.events += read
        self.problems += [p for p in self.cursor.problems if p not in self.problems]
        if read:
            self._tables = None
        return read

    def _anything_new(self, reader: Any) -> bool:
        """Whether the log may hold rows the cursor has not read (a segment not finished)."""
        return any(
            f"{table}/{segment.path.name}" not in self.cursor.finished
            for table in _FOLDED_TABLES
            for segment in reader.segments(table)
        )

    def _memory(self, reader: Any) -> Iterator[pa.RecordBatch]:
        yield from self.cursor.new_batches(reader, "memory")
        yield from decode_chunk_batches(
            self.cursor.new_batches(reader, "memory_chunks"), on_problem=self.problems.append
        )

    def ended(self) -> set[int]:
        """The processes whose every producer wrote its exit row (their events are all in)."""
        return {
            pid for pid, (started, exited) in self._lives.items() if exited and started <= exited
        }

    def register_processes(self, batch: pa.RecordBatch) -> None:
        """Give the fold the sampling rate of the sampled processes among ``processes`` rows."""
        names = batch.schema.names
        if "event" in names and "producer" in names:
            for pid, producer, event in zip(
                batch.column("pid").to_pylist(),
                batch.column("producer").to_pylist(),
                batch.column("event").to_pylist(),
                strict=True,
            ):
                started, exited = self._lives.setdefault(int(pid), (set(), set()))
                if event == "start":
                    started.add(str(producer))
                elif event == "exit":
                    exited.add(str(producer))
        rows = batch.select(["pid", "mode", "sample_bytes"]).to_pylist()
        for row in rows:
            if row["mode"] is not None:
                self.modes[int(row["pid"])] = str(row["mode"])
            if row["mode"] == "sampled" and row["sample_bytes"]:
                self.fold.set_sampling(int(row["pid"]), int(row["sample_bytes"]))
                self._tables = None

    def register_variables(self, batch: pa.RecordBatch) -> None:
        """Watch the blocks of ``variables`` rows (their frees are the variables' deaths)."""
        for pid, address, ts in zip(
            batch.column("pid").to_pylist(),
            batch.column("address").to_pylist(),
            batch.column("ts_ns").to_pylist(),
            strict=True,
        ):
            if address:
                self.fold.watch(int(pid), int(address), int(ts))
        self._tables = None

    # -- reading ---------------------------------------------------------------------------
    def tables(self, names: Iterable[str] | None = None) -> dict[str, pa.Table]:
        """The state as Arrow tables (``state_<name>`` in DuckDB; see :mod:`fold`).

        ``names``: only these tables (exported afresh; the whole set is cached).
        """
        if names is not None:
            if self._tables is not None:
                return {name: self._tables[name] for name in names}
            return {
                name: _arrow(name, columns, self.params.site_slots)
                for name, columns in self.fold.export(list(names)).items()
            }
        if self._tables is None:
            self._tables = {
                name: _arrow(name, columns, self.params.site_slots)
                for name, columns in self.fold.export().items()
            }
        return self._tables

    def release_fold(self) -> None:
        """Keep only the exported tables (what the reports read), not the fold behind them.

        The fold is rebuilt from those tables if more events come, as after a checkpoint is
        loaded; meanwhile its memory (the live blocks, the sites' slots) is given back.
        """
        tables = self.tables()
        self._fold = None
        self._unrestored = self._tables = tables

    # -- checkpoints -----------------------------------------------------------------------
    def save_in_background(self, directory: str | os.PathLike[str]) -> None:
        """Write the checkpoint on a thread (:meth:`wait_saved` waits for it)."""
        self.tables()  # exported here: the saving thread and the caller share the tables
        self.saving = threading.Thread(
            target=_save_or_say, args=(self, Path(directory)), name="memscope-checkpoint"
        )
        self.saving.start()

    def wait_saved(self) -> None:
        """Wait for a checkpoint being written in the background, if any."""
        if self.saving is not None:
            self.saving.join()
            self.saving = None

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the checkpoint to ``directory`` (replaced as a whole); return it."""
        target = Path(directory)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, table in self.tables().items():
            with (
                pa.OSFile(str(tmp / f"{name}.arrow"), "wb") as sink,
                ipc.new_file(sink, table.schema) as writer,
            ):
                writer.write_table(table)
        if self.held:
            with (
                pa.OSFile(str(tmp / "held.arrow"), "wb") as sink,
                ipc.new_file(sink, MEMORY) as writer,
            ):
                for batch in self.held:
                    writer.write_batch(batch)
        meta = {
            "format": STATE_FORMAT,
            "log_id": self.log_id,
            "params": self.params.as_dict(),
            "events": self.events,
            "cursor": self.cursor.to_json(),
            "problems": self.problems,
            # Arrow IPC files carry no checksum: a flipped bit must not pass as state.
            "digests": {f.name: _digest(f) for f in sorted(tmp.glob("*.arrow"))},
        }
        (tmp / "state.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        old = target.with_name(f"{target.name}.old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        return target

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], log_id: str, params: FoldParams
    ) -> AnalysisState | None:
        """The checkpoint in ``directory`` if it is of this log and these parameters."""
        path = Path(directory)
        try:
            meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (
            not isinstance(meta, dict)
            or meta.get("format") != STATE_FORMAT
            or meta.get("log_id") != log_id
            or meta.get("params") != params.as_dict()
        ):
            return None
        digests = meta.get("digests") or {}
        damaged = sorted(
            name
            for name, digest in digests.items()
            if not (path / name).is_file() or _digest(path / name) != digest
        )
        if damaged or set(digests) < {f"{name}.arrow" for name in TABLE_COLUMNS}:
            print(
                f"memscope: ignoring the damaged analysis checkpoint in {path} "
                f"({', '.join(damaged) or 'files missing'}); folding the log again",
                file=sys.stderr,
            )
            return None
        try:
            tables = {
                name: ipc.open_file(str(path / f"{name}.arrow")).read_all()
                for name in TABLE_COLUMNS
            }
        except (OSError, pa.ArrowException) as exc:
            print(
                f"memscope: ignoring the damaged analysis checkpoint in {path} ({exc}); "
                f"folding the log again",
                file=sys.stderr,
            )
            return None
        state = cls(
            params,
            None,
            LogCursor.from_json(meta.get("cursor", {})),
            log_id,
            meta.get("problems", []),
        )
        # Restored into a fold only when the log has something new to fold: reading a
        # checkpoint that is up to date costs its files, not a rebuild of the fold.
        state._fold = None
        state._unrestored = state._tables = tables
        state.events = int(meta.get("events", 0))
        if (path / "held.arrow").exists():
            try:
                state.held = ipc.open_file(str(path / "held.arrow")).read_all().to_batches()
            except (OSError, pa.ArrowException) as exc:
                print(
                    f"memscope: ignoring the damaged analysis checkpoint in {path} ({exc}); "
                    f"folding the log again",
                    file=sys.stderr,
                )
                return None
        return state


def _digest(path: Path) -> str:
    """A checkpoint file's BLAKE2b digest (hex)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def state_dir(reader: Any) -> Path:
    """Where the checkpoint of ``reader``'s log lives."""
    return Path(reader.path) / STATE_DIRNAME


def trimmed_without_checkpoint(reader: Any) -> str | None:
    """The problem of a log retention trimmed, read without its checkpoint (else None).

    Only the checkpoint holds the retired segments: a state folded from the rest covers the
    segments kept only, and must not be saved over that checkpoint.
    """
    retired = (getattr(reader, "manifest", None) or {}).get("retired") or {}
    if not retired.get("segments"):
        return None
    return (
        f"{retired['segments']} memory segments were retired by retention and only the "
        "log's analysis checkpoint holds them; it was not usable here (other analysis "
        "parameters, or damaged), so these figures cover the segments kept only"
    )


def open_state(
    reader: Any,
    params: FoldParams | None = None,
    *,
    checkpoint: bool = True,
    on_events: Callable[[int], None] | None = None,
    background_save: bool = False,
) -> AnalysisState:
    """The log's state, folded up to its end: from its checkpoint when it has a valid one.

    With ``checkpoint`` the checkpoint is read and, when the update folded anything, written
    back (a log directory that cannot be written keeps its old checkpoint, with a note);
    with ``background_save`` on a thread, while the caller reads the state
    (:meth:`AnalysisState.wait_saved` waits for it).
    """
    params = params or FoldParams()
    directory = state_dir(reader)
    state = AnalysisState.load(directory, reader.log_id, params) if checkpoint else None
    if state is None:
        state = AnalysisState(params, log_id=reader.log_id)
        note = trimmed_without_checkpoint(reader)
        if note is not None:
            # a fold of what is left must neither pass for the whole run nor replace the
            # checkpoint that still holds the retired segments
            checkpoint = False
            if note not in reader.problems:
                reader.problems.append(note)
    before = state.events
    state.update(reader, on_events)
    for problem in state.problems:
        if problem not in reader.problems:
            reader.problems.append(problem)
    if checkpoint and (state.events != before or not directory.exists()):
        if background_save:
            state.save_in_background(directory)
        else:
            _save_or_say(state, directory)
    return state


def _save_or_say(state: AnalysisState, directory: Path) -> None:
    try:
        state.save(directory)
    except OSError as exc:
        print(
            f"memscope: could not write the analysis checkpoint {directory}: {exc}", file=sys.stderr
        )


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


def fold_tables(
    tables: dict[str, pa.Table], params: FoldParams | None = None, window_rows: int | None = None
) -> AnalysisState:
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
        # An explicit window size (tests) cuts the log there: nothing is held back.
        hold = 0 if window_rows else HOLD_BACK_NS
        for window in windows(memory.to_batches(), window_rows or WINDOW_ROWS, hold):
            _feed(state.fold, window)
            state.events += len(window["pid"])
    return state
