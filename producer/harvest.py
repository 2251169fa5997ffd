"""Crash capture: ship what dead traced processes left behind.

A traced process given an ``arena_dir`` (``memscope run`` gives every process of the program
one directory of its own, on tmpfs) keeps its record buffers in a file there, the *arena*
(``tr_arena.c``), and writes every batch to its spool file before the buffers it came from
are recycled (a durable backlog, :mod:`memscope.producer.backlog`). Whatever ends the
process -- SIGKILL, the OOM killer, a segfault, ``os._exit`` -- each record it made is then
in one of two files:

* the spool holds every packed batch the broker had not acknowledged;
* the arena holds, per thread, the records after its *committed cursor* (the point up to
  which the records are in spooled batches), and the seq the next batch would have had.

:func:`harvest_arena` takes a dead process's files (its flock on the arena is gone), sends
the committed spooled batches again (the broker drops those it has), then one batch with the
arena's records and the rare rows of the batches packed after the last commit (their memory
records are the arena's own), and an ``exit`` row, and deletes both files once the broker
has confirmed them. Records whose stack was interned after the last drain keep their stack
id but have no ``stacks`` row (the code objects died with the process).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from memscope.config import Settings
from memscope.producer import _tracer
from memscope.producer.spool import read_spool, send_payloads
from memscope.protocol.control_client import BrokerError
from memscope.protocol.wire import (
    MAX_BATCH_EVENTS,
    MAX_CHUNKS,
    WireError,
    decode_envelope,
    encode_batch,
)

ARENA_SUFFIX = ".arena"


@dataclass(frozen=True)
class Harvest:
    """What one dead process's files gave."""

    pid: int
    producer: str
    events: int  # memory records taken from its arena
    replayed: int  # spooled batches sent again
    closed: bool  # it had closed its arena itself (only its spool was left)


def arenas(directory: Path) -> list[Path]:
    """The arena files in ``directory`` (live and dead), oldest first."""
    try:
        found = [p for p in directory.iterdir() if p.name.endswith(ARENA_SUFFIX)]
    except OSError:
        return []
    return sorted(found, key=lambda p: p.name)


@contextlib.contextmanager
def _dead(path: Path) -> Iterator[bool]:
    """Holds the arena's lock while the block runs; yields False if its owner still lives."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


Rare = dict[str, dict[str, list[Any]]]


class ArenaError(ValueError):
    """A file that is not a readable arena of this version."""


@dataclass
class _Spool:
    """What a dead process's spool file holds."""

    committed: list[tuple[int, bytes]]  # (seq, batch) of the batches before the next seq
    # the other batches (packed after the last commit): their rec1 records are still in the
    # arena, but not their rare rows or aggregated mode's promotions (cols1 chunks)
    later: list[tuple[list[dict[str, Any]], Rare]]
    exited: bool  # some batch carries the process's own exit row


def _read_spool(spool: Path, next_seq: int) -> _Spool:
    found = _Spool([], [], False)
    if not spool.name or not spool.is_file():
        return found
    for payload in read_spool(spool):
        try:
            envelope = decode_envelope(payload)
        except WireError:
            continue
        exits = envelope.rec.get("processes", {}).get("event", [])
        found.exited = found.exited or "exit" in exits
        if envelope.seq < next_seq:
            found.committed.append((envelope.seq, payload))
            continue
        promoted = [c for c in envelope.mem if c.get("enc") != "rec1"]
        if promoted or envelope.rec:
            found.later.append((promoted, envelope.rec))
    return found


def _exit_row(info: dict[str, Any]) -> dict[str, list[Any]]:
    return {
        "ts_ns": [int(info["last_ns"]) + 1],
        "event": ["exit"],
        "ppid": [None],
        "host": [socket.gethostname()],
        "producer": [info["producer"]],
        "argv": [None],
        "executable": [None],
        "python": [None],
        "mode": [None],
        "sample_bytes": [None],
        "exit_code": [None],
    }


def _arena_batches(
    info: dict[str, Any],
    later: list[tuple[list[dict[str, Any]], Rare]],
    with_exit: bool,
    max_events: int,
) -> list[tuple[int, bytes]]:
    """(seq, batch) from the arena's next seq on.

    Its records (at most ``max_events`` a batch), what the batches packed after its last
    commit held besides them, and the exit row.
    """
    parts: list[tuple[list[dict[str, Any]], Rare]] = []
    group: list[dict[str, Any]] = []
    events = 0
    for chunk in info["chunks"]:
        if group and (events + int(chunk["n"]) > max_events or len(group) >= MAX_CHUNKS):
            parts.append((group, {}))
            group, events = [], 0
        group.append(chunk)
        events += int(chunk["n"])
    if group:
        parts.append((group, {}))
    parts += later
    if with_exit:
        parts.append(([], {"processes": _exit_row(info)}))
    first = int(info["next_seq"])
    return [
        (first + i, encode_batch(info["producer"], int(info["pid"]), first + i, mem, rows))
        for i, (mem, rows) in enumerate(parts)
    ]


def harvest_arena(
    path: Path, settings: Settings, address: str | None = None, timeout: float = 30.0
) -> Harvest | None:
    """Ship what the dead owner of the arena at ``path`` left; None if it still lives.

    ``address``: the broker to send to (default: the one the process sent to).

    Raises:
        BrokerError: the broker did not confirm the batches within ``timeout`` (the files
            stay, for a later harvest).
        ArenaError: ``path`` is not an arena of this version (it stays too).
    """
    with _dead(path) as dead:
        if not dead:
            return None
        try:
            info = _tracer.harvest(str(path))
        except ValueError as exc:
            raise ArenaError(f"{path}: {exc}") from None
        producer = str(info["producer"])
        spool = Path(str(info["spool"])) if info["spool"] else Path()
        if not producer:
            # a forked child that never started tracing (it called exec, or died at once)
            path.unlink(missing_ok=True)
            return None
        found = _read_spool(spool, int(info["next_seq"]))
        closed = bool(info["closed"])
        limit = max(1, min(int(settings.batch_max_events), MAX_BATCH_EVENTS))
        batches = found.committed + _arena_batches(
            info, found.later, with_exit=not (closed or found.exited), max_events=limit
        )
        if batches:
            send_payloads(
                [payload for _, payload in batches],
                [(producer, seq) for seq, _ in batches],
                address or str(info["address"]),
                settings,
                timeout,
            )
        if spool.name:
            spool.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        return Harvest(
            int(info["pid"]), producer, int(info["events"]), len(found.committed), closed
        )


def harvest_dir(
    directory: Path, settings: Settings, address: str | None = None, timeout: float = 30.0
) -> list[Harvest]:
    """Harvest every dead process's arena in ``directory``; the live ones are left alone.

    An arena that cannot be read is removed (it is not retried forever); a broker that does
    not confirm leaves the files for the next call.
    """
    done = []
    for path in arenas(directory):
        try:
            result = harvest_arena(path, settings, address, timeout)
        except ArenaError:
            path.unlink(missing_ok=True)
            continue
        except (BrokerError, OSError, zmq.ZMQError, MemoryError):
            continue  # the files stay for the next sweep
        if result is not None:
            done.append(result)
    return done


def remove_stale_temporaries(directory: Path, older_than_s: float = 60.0) -> None:
    """Delete arena files half-made by processes that died while creating them."""
    now = time.time()
    with contextlib.suppress(OSError):
        for path in directory.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > older_than_s:
                    path.unlink()


def run_arena_dir(settings: Settings | None = None) -> Path:
    """A new directory for the arenas of one ``memscope run`` (on tmpfs where there is one).

    With ``settings``, the directories of earlier runs whose supervisor is gone (killed
    before its last sweep) are harvested if their broker still answers, then removed: their
    files would otherwise hold tmpfs memory until the machine restarts.
    """
    shm = Path("/dev/shm")
    root = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    base = root / f"memscope-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    if settings is not None:
        remove_abandoned_runs(base, settings)
    return Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=base))


def remove_abandoned_runs(base: Path, settings: Settings) -> None:
    """Harvest what can be, then remove, the run directories whose supervisor is gone."""
    with contextlib.suppress(OSError):
        for directory in base.glob("run-*-*"):
            try:
                supervisor = int(directory.name.split("-")[1])
                os.kill(supervisor, 0)
                continue  # its supervisor runs: its own sweeps take care of it
            except ProcessLookupError:
                pass
            except (ValueError, PermissionError):
                continue
            harvest_dir(directory, settings, timeout=1.0)
            for path in arenas(directory):
                with _dead(path) as dead:
                    if dead:  # (its broker is gone too: nothing can take its records now)
                        path.unlink(missing_ok=True)
            remove_stale_temporaries(directory, older_than_s=0.0)
            with contextlib.suppress(OSError):
                directory.rmdir()


class Harvester:
    """Harvests one directory of arenas every ``interval_s`` on a thread, until stopped.

    ``memscope run`` keeps one beside the program: a process of the program that dies
    mid-run has its records in the log within about ``interval_s``, not only at the end.
    ``on_harvest`` is called (on that thread) with each harvest.
    """

    def __init__(
        self,
        directory: Path,
        settings: Settings,
        on_harvest: Callable[[Harvest], None],
        interval_s: float = 0.5,
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.on_harvest = on_harvest
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one sweep at a time
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (with the caller's signal mask: start it with signals blocked)."""
        self._thread = threading.Thread(target=self._run, name="memscope-harvester", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sweep(timeout=5.0)

    def sweep(self, timeout: float = 30.0) -> list[Harvest]:
        """Harvest every dead process's arena now."""
        with self._lock:
            results = harvest_dir(self.directory, self.settings, timeout=timeout)
        for result in results:
            self.on_harvest(result)
        return results

    def stop(self) -> None:
        """Stop the thread (a sweep under way finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def remove(self) -> bool:
        """Delete the directory if no arena is left in it; whether it is gone."""
        remove_stale_temporaries(self.directory, older_than_s=0.0)
        try:
            self.directory.rmdir()
        except OSError:
            return False
        return True
