"""Retention of a long-running log: old memory segments retired, oldest first, once folded.

A service traced for days writes far more memory events than any disk holds. With
``log_retention_bytes`` and/or ``log_retention_age`` set (``config/default.toml``), the broker
retires closed segments of the memory tables (``memory``, ``memory_chunks``: nearly all of a
log's bytes), oldest first, while the log directory is over its bound or the segments are
older than the age. The other tables (processes, threads, frames, stacks, variables, scopes,
FFI, producer stats, aggregates, ingest) are small and kept whole.

**Nothing the reports need is lost.** Every report reads the log's analysis state (the fold
of every memory event: per-site aggregates and series, memory over time, peaks, lifetimes,
findings, variables' deaths; :mod:`memscope.analyzers.state`), checkpointed in
``events/_state/``. A segment is retired only once that checkpoint, **as saved on disk**, has
folded it: before each pass the log is folded into its checkpoint (``fold``, passed in by the
caller so that this module imports nothing above the broker), and only segments the saved
cursor lists as finished may go. Reports over the whole history therefore keep working;
what a retired segment takes with it is the raw events, so the raw-event views of ``memscope
query`` (``events``, ``allocations``, ``frees``, ...) cover only the segments kept, the
**full-detail window** that ``memscope stats`` and every report's ``metadata.detail_window``
state (:func:`detail_window`).

**The bound holds at all times**: a pass retires until the directory is at most
``log_retention_bytes`` minus room for one open segment (``segment_max_bytes``) and for a
second copy of the checkpoint (written beside the old one, then swapped), so the open
segment can fill and the checkpoint be rewritten without crossing it. The newest segment of
each table is never retired (the writer numbers new segments after it).

**Crash safety**: a segment is renamed to ``<file>.retired`` (no reader globs it), then the
manifest is rewritten without it and with the retired totals (``manifest["retired"]``), then
the file is deleted. A crash between the steps is finished at the next start or pass
(:func:`finish_interrupted`): the log never lists a segment that is not on disk.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memscope.config.settings import parse_duration

log = logging.getLogger("memscope.eventlog")

#: The tables whose segments retention retires.
RETIRABLE = ("memory", "memory_chunks")
RETIRED_SUFFIX = ".retired"
#: Where the analysis checkpoint lives (``memscope.analyzers.state.STATE_DIRNAME``).
STATE_DIRNAME = "_state"
Fold = Callable[[Path], object]
#: ``archive(log_dir, files)``: copy these segments elsewhere; return the ones copied.
Archive = Callable[[Path, set[str]], Iterable[str]]


@dataclass(frozen=True)
class RetentionPolicy:
    """When segments are retired.

    Attributes:
        max_bytes: bound of the log directory in bytes (0: none).
        max_age_s: segments closed longer ago than this are retired (0: none).
        headroom_bytes: room kept for the open segment (``segment_max_bytes``).
    """

    max_bytes: int = 0
    max_age_s: float = 0.0
    headroom_bytes: int = 0

    @property
    def enabled(self) -> bool:
        """Whether any limit is set."""
        return self.max_bytes > 0 or self.max_age_s > 0

    @classmethod
    def from_settings(cls, settings: Any) -> RetentionPolicy:
        """The policy of ``settings`` (``log_retention_bytes``, ``log_retention_age``)."""
        return cls(
            int(settings.log_retention_bytes),
            parse_duration(str(settings.log_retention_age)),
            int(settings.segment_max_bytes),
        )


def disk_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (no symbolic link followed)."""
    total = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue  # a directory removed meanwhile (a checkpoint being swapped)
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue  # a file removed meanwhile
    return total


def saved_folded(log_dir: Path, log_id: str | None = None, params: Any = None) -> frozenset[str]:
    """The segments (``table/file``) the checkpoint saved in ``log_dir`` has folded whole.

    Empty unless the checkpoint is of ``log_id`` and folded with ``params`` (when given):
    a checkpoint reports cannot use must not let a segment go.
    """
    try:
        meta = json.loads((log_dir / STATE_DIRNAME / "state.json").read_text(encoding="utf-8"))
        if log_id is not None and meta["log_id"] != log_id:
            return frozenset()
        if params is not None and meta["params"] != params:
            return frozenset()
        return frozenset(str(f) for f in meta["cursor"]["finished"])
    except (OSError, ValueError, KeyError, TypeError):
        return frozenset()


def _number(entry: Mapping[str, Any]) -> int:
    try:
        return int(str(entry["file"]).rsplit("-", 1)[1].split(".", 1)[0])
    except (IndexError, ValueError):
        return -1


def plan(
    manifest: Mapping[str, Any],
    policy: RetentionPolicy,
    now_ns: int,
    used_bytes: int,
    folded: Iterable[str],
    state_bytes: int = 0,
) -> list[dict[str, Any]]:
    """The manifest entries to retire now, oldest first (a pure function of its inputs).

    A segment qualifies when it is closed, of a :data:`RETIRABLE` table, not its table's
    newest, folded into the saved checkpoint, and either older than the age or needed to
    bring ``used_bytes`` under the bound. The first segment that does not qualify stops the
    plan: segments go strictly oldest first.
    """
    done = set(folded)
    entries = [e for e in manifest.get("segments", []) if e.get("table") in RETIRABLE]
    newest: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        table = entry["table"]
        if table not in newest or _number(entry) > _number(newest[table]):
            newest[table] = entry
    candidates = sorted(
        (e for e in entries if e.get("closed") and e is not newest[e["table"]]),
        key=lambda e: (int(e.get("closed_ns") or e.get("created_ns") or 0), str(e["file"])),
    )
    limit = policy.max_bytes - policy.headroom_bytes - state_bytes
    chosen: list[dict[str, Any]] = []
    for entry in candidates:
        if entry["file"] not in done:
            break
        closed = int(entry.get("closed_ns") or entry.get("created_ns") or 0)
        too_old = policy.max_age_s > 0 and now_ns - closed > policy.max_age_s * 1e9
        too_big = policy.max_bytes > 0 and used_bytes > limit
        if not (too_old or too_big):
            break
        chosen.append(entry)
        used_bytes -= int(entry.get("bytes") or 0)
    return chosen


def _add_retired(manifest: dict[str, Any], entry: Mapping[str, Any], now_ns: int) -> None:
    retired = manifest.setdefault(
        "retired",
        {
            "segments": 0,
            "rows": 0,
            "events": 0,
            "bytes": 0,
            "first_created_ns": None,
            "last_closed_ns": None,
            "updated_ns": None,
        },
    )
    retired["segments"] += 1
    retired["rows"] += int(entry.get("rows") or 0)
    events = entry.get("events") if entry["table"] == "memory_chunks" else entry.get("rows")
    retired["events"] += int(events or 0)
    retired["bytes"] += int(entry.get("bytes") or 0)
    created, closed = entry.get("created_ns"), entry.get("closed_ns")
    if isinstance(created, int) and (
        retired["first_created_ns"] is None or created < retired["first_created_ns"]
    ):
        retired["first_created_ns"] = created
    if isinstance(closed, int) and (
        retired["last_closed_ns"] is None or closed > retired["last_closed_ns"]
    ):
        retired["last_closed_ns"] = closed
    retired["updated_ns"] = now_ns


def retire(writer: Any, entries: list[dict[str, Any]], now_ns: int) -> list[str]:
    """Retire ``entries`` of ``writer``'s log (see the module docs); return their files."""
    root = Path(writer.path)
    moved: list[dict[str, Any]] = []
    for entry in entries:
        path = root / entry["file"]
        try:
            path.rename(path.with_name(path.name + RETIRED_SUFFIX))
        except FileNotFoundError:
            pass  # gone already: only the manifest still names it
        moved.append(entry)
    if not moved:
        return []
    gone = {id(e) for e in moved}
    writer.manifest["segments"] = [e for e in writer.manifest["segments"] if id(e) not in gone]
    for entry in moved:
        _add_retired(writer.manifest, entry, now_ns)
    writer.flush(sync=False)  # rewrites the manifest (atomically) without them
    for entry in moved:
        path = root / entry["file"]
        path.with_name(path.name + RETIRED_SUFFIX).unlink(missing_ok=True)
    return [str(e["file"]) for e in moved]


def finish_interrupted(writer: Any, now_ns: int) -> int:
    """Complete retirements a crash interrupted; return how many were finished."""
    root = Path(writer.path)
    finished = 0
    listed = {e["file"]: e for e in writer.manifest.get("segments", [])}
    pending = []
    for table in RETIRABLE:
        for path in (root / table).glob(f"*{RETIRED_SUFFIX}"):
            relative = f"{table}/{path.name.removesuffix(RETIRED_SUFFIX)}"
            if relative in listed and not (root / relative).exists():
                pending.append(listed[relative])
            else:
                path.unlink(missing_ok=True)  # the manifest was rewritten: delete the file
                finished += 1
    if pending:
        finished += len(retire(writer, pending, now_ns))
    return finished


def detail_window(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """What of the memory events is kept in full detail, when retention retired some.

    None for a log that retired nothing. Else ``from_ns``/``to_ns`` (wall clock, ns: from the
    creation of the oldest memory segment kept to the last write of the newest, None when
    none is kept), and ``retired``: segments, events, bytes and the wall-clock span they
    covered (``first_created_ns``, ``last_closed_ns``). Reports built from the analysis
    state cover the whole run; raw-event queries cover this window only.
    """
    retired = manifest.get("retired")
    if not isinstance(retired, Mapping) or not retired.get("segments"):
        return None
    kept = [e for e in manifest.get("segments", []) if e.get("table") in RETIRABLE]
    starts = [int(e["created_ns"]) for e in kept if isinstance(e.get("created_ns"), int)]
    ends = [int(e.get("closed_ns") or manifest.get("updated_ns") or 0) for e in kept]
    start, end = (min(starts) if starts else None), (max(ends) if ends else None)
    return {
        "from_ns": start,
        "to_ns": end,
        "from": _iso(start),
        "to": _iso(end),
        "retired": {
            key: retired.get(key)
            for key in ("segments", "events", "bytes", "first_created_ns", "last_closed_ns")
        },
        "retired_from": _iso(retired.get("first_created_ns")),
        "retired_to": _iso(retired.get("last_closed_ns")),
    }


def _iso(wall_ns: Any) -> str | None:
    if not isinstance(wall_ns, int) or wall_ns <= 0:
        return None
    when = _dt.datetime.fromtimestamp(wall_ns / 1e9, _dt.UTC).replace(microsecond=0)
    return when.isoformat().replace("+00:00", "Z")


class Retention:
    """Retention of one writer's log: :meth:`run_once` (synchronous), or :meth:`tick`.

    ``fold(log_dir)`` must fold the log into its checkpoint, save it and return the fold
    parameters (the broker passes the analyzers' ``checkpoint_fold``); which segments may go is then
    read from the saved checkpoint (:func:`saved_folded`: of this log, with those
    parameters), never taken on trust. With ``archive`` (``log_retention_dataset``: the
    analyzers' ``dataset_archive``), a segment must also have been copied by it. ``clock`` gives
    the wall time in ns.
    """

    def __init__(
        self,
        writer: Any,
        policy: RetentionPolicy,
        fold: Fold,
        clock: Callable[[], int] = time.time_ns,
        interval_s: float = 30.0,
        archive: Archive | None = None,
    ) -> None:
        self.writer = writer
        self.policy = policy
        self.fold = fold
        self.archive = archive
        self.clock = clock
        self.interval_s = interval_s
        self.retired_total = 0
        #: Segments ``archive`` has copied (it is idempotent: a restart copies them again).
        self.archived: set[str] = set()
        self._last = float("-inf")
        self._job: threading.Thread | None = None
        self._ready: frozenset[str] | None = None
        self._warned_over = False
        # A retirement a crash cut short is finished at start (the log lists no lost file).
        finish_interrupted(writer, clock())

    @classmethod
    def from_settings(
        cls,
        writer: Any,
        settings: Any,
        fold: Fold | None,
        archive_for: Callable[[Path], Archive] | None,
    ) -> Retention:
        """The broker's retention: the settings' policy, with the analysis layer's fold.

        ``archive_for(root)`` makes the archive of ``log_retention_dataset``.

        Raises:
            ValueError: retention is on but no ``fold`` (or no ``archive_for`` for a
                dataset) was given: without them no segment could ever safely go.
        """
        policy = RetentionPolicy.from_settings(settings)
        root = str(getattr(settings, "log_retention_dataset", "") or "")
        if policy.enabled and fold is None:
            raise ValueError(
                "log retention needs the analyzers (start the broker with `memscope broker`)"
            )
        if root and archive_for is None:
            raise ValueError(
                "log_retention_dataset needs the analyzers (start the broker "
                "with `memscope broker`)"
            )
        return cls(
            writer,
            policy,
            fold or _no_fold,
            archive=archive_for(Path(root)) if root and archive_for else None,
        )

    def prepare(self) -> frozenset[str]:
        """Fold (and archive); return the segments that may be retired.

        Safe off the writer's thread: it reads the log from disk only.
        """
        path = Path(self.writer.path)
        params = self.fold(path)  # the parameters the reports fold with
        folded = saved_folded(path, self.writer.log_id, params)
        if self.archive is None:
            return folded
        closed = {
            f"{s.table}/{s.path.name}"
            for table in RETIRABLE
            for s in _open_reader(path).segments(table)
            if s.closed
        }
        todo = set(folded & closed) - self.archived
        if todo:
            self.archived |= set(self.archive(path, todo))
        return folded & frozenset(self.archived)

    def run_once(self) -> list[str]:
        """Fold (and archive), then retire what the policy asks; return the files retired."""
        return self.apply(self.prepare())

    def apply(self, ready: Iterable[str]) -> list[str]:
        """Retire what the policy asks among ``ready`` segments (on the writer's thread)."""
        now = self.clock()
        finish_interrupted(self.writer, now)
        root = Path(self.writer.path)
        used = disk_bytes(root)
        entries = plan(
            self.writer.manifest, self.policy, now, used, ready, disk_bytes(root / STATE_DIRNAME)
        )
        files = retire(self.writer, entries, now)
        self.retired_total += len(files)
        if files:
            log.info("retention: retired %d segment(s), the oldest %s", len(files), files[0])
        left = used - sum(int(e.get("bytes") or 0) for e in entries)
        if self.policy.max_bytes and left > self.policy.max_bytes and not self._warned_over:
            self._warned_over = True
            log.warning(
                "retention: the log holds %d bytes, over log_retention_bytes = %d, "
                "in segments not folded yet or not retirable (the small tables and "
                "the newest segments are kept)",
                left,
                self.policy.max_bytes,
            )
        return files

    def tick(self, now_mono: float) -> list[str]:
        """From the broker's loop: prepare on a thread every ``interval_s``, retire when done."""
        if not self.policy.enabled:
            return []
        if self._job is not None:
            if self._job.is_alive():
                return []
            self._job = None
            ready, self._ready = self._ready, None
            return self.apply(ready) if ready is not None else []
        if now_mono - self._last >= self.interval_s:
            self._last = now_mono
            if not self.due():
                return []
            self._job = threading.Thread(
                target=self._prepare_job, name="memscope-retention", daemon=True
            )
            self._job.start()
        return []

    def due(self) -> bool:
        """Whether a pass could retire anything soon (else the fold is not worth its cost).

        Counted as if every closed segment were folded, and one more segment were written:
        a pass starts early enough to finish before the open segment fills its room.
        """
        root = Path(self.writer.path)
        manifest = self.writer.manifest
        every = [e["file"] for e in manifest.get("segments", []) if e.get("table") in RETIRABLE]
        return bool(
            plan(
                manifest,
                self.policy,
                self.clock(),
                disk_bytes(root) + self.policy.headroom_bytes,
                every,
                disk_bytes(root / STATE_DIRNAME),
            )
        )

    def _prepare_job(self) -> None:
        try:
            self._ready = self.prepare()
        except Exception:  # noqa: BLE001 -- a failed pass retires nothing; the next one retries
            log.exception("retention: folding or archiving the log failed")

    def join(self) -> None:
        """Wait for a pass in progress (at stop)."""
        if self._job is not None:
            self._job.join()


def _open_reader(path: Path) -> Any:
    from memscope.eventlog.log import open_log

    return open_log(path)


def _no_fold(log_dir: Path) -> object:
    raise RuntimeError("retention is off: nothing folds the log")
