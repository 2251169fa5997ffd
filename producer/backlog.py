"""The publisher's backlog: batches not yet acknowledged by the broker, in seq order.

A batch stays here from the moment it is packed until the broker says it is in the log.
Payloads live in memory up to :data:`MEMORY_CAP` bytes and otherwise in a spool file (each
record ``<u32 little-endian length><payload>``), which is also where every batch goes while
the broker is unreachable. A *durable* backlog (crash capture, see
:mod:`memscope.producer.harvest`) writes every batch to the file as it is packed, before the
tracer recycles the buffers its records came from: if the process dies, the file (in the
page cache, whatever killed the process) still holds every batch not yet acknowledged.
When the backlog empties, the spool file is truncated; when the publisher closes with
batches the broker never confirmed, they all stay in the file for
:mod:`memscope.producer.spool` (or a harvester) to replay.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from memscope.protocol.wire import Frame, join_frames

MEMORY_CAP = 16 * 1024 * 1024
_HEADER = struct.Struct("<I")


def _underlying(frame: Frame) -> Frame:
    """What a frame keeps in memory: a view keeps the whole object it is a view of."""
    if isinstance(frame, memoryview) and isinstance(frame.obj, bytes | bytearray):
        return frame.obj
    return frame


@dataclass
class Entry:
    """One packed batch."""

    seq: int
    events: int
    payload: list[Frame] | None  # the message's frames; None: only in the spool file
    offset: int = 0
    length: int = 0
    sent: bool = False
    on_disk: bool = False  # offset and length name its copy in the spool file


def spool_path(spool_dir: str, producer: str) -> Path:
    """Where ``producer`` spools (a name derived from the producer id)."""
    base = Path(spool_dir) if spool_dir else Path(tempfile.gettempdir()) / "memscope-spool"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", producer)[:200]
    return base / f"{safe}.spool"


class Backlog:
    """Unacknowledged batches of one producer."""

    def __init__(self, path: Path, durable: bool = False) -> None:
        self.path = path
        self.durable = durable
        self.entries: deque[Entry] = deque()
        self.memory_bytes = 0  # of the objects the in-memory batches keep (each once)
        self._held: dict[int, list[int]] = {}  # id(object) -> [its bytes, batches holding it]
        self.spooled = 0  # batches spooled because the broker was away or memory full
        self.journal_errors = 0  # durable copies that could not be written (disk full)
        self._fd: int | None = None
        self._end = 0

    def _file(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            self._end = 0
        return self._fd

    def add(self, seq: int, events: int, frames: list[Frame], to_disk: bool) -> Entry:
        """Append a batch, given as its message's frames.

        It goes to the spool file if ``to_disk`` or memory is full.
        """
        if to_disk or self.memory_bytes + self._extra(frames) > MEMORY_CAP:
            entry = Entry(seq, events, None)
            self._write(entry, frames)
            self.spooled += 1
        else:
            entry = Entry(seq, events, None)
            # a durable backlog's batches are only in the file (read back to be sent): the
            # process's memory holds none of them
            if not (self.durable and self._journal(entry, frames)):
                entry.payload = frames
                self._hold(frames)
        self.entries.append(entry)
        return entry

    def _extra(self, frames: list[Frame]) -> int:
        """Bytes that holding ``frames`` in memory would add (objects not held yet)."""
        bases = {id(b): len(b) for b in map(_underlying, frames) if id(b) not in self._held}
        return sum(bases.values())

    def _hold(self, frames: list[Frame]) -> None:
        for base in map(_underlying, frames):
            held = self._held.setdefault(id(base), [len(base), 0])
            if held[1] == 0:
                self.memory_bytes += held[0]
            held[1] += 1

    def _let_go(self, frames: list[Frame]) -> None:
        # (an object held is alive, so its id is not reused before it is let go here)
        for base in map(_underlying, frames):
            held = self._held[id(base)]
            held[1] -= 1
            if held[1] == 0:
                self.memory_bytes -= held[0]
                del self._held[id(base)]

    def _journal(self, entry: Entry, frames: list[Frame]) -> bool:
        """A durable backlog's copy of a batch; False when it could not be written."""
        try:
            self._write(entry, frames)
        except OSError:  # (a full disk) the batch is then held in memory
            self.journal_errors += 1
            return False
        return True

    def _write(self, entry: Entry, frames: list[Frame]) -> None:
        # the spool holds one frame per batch: a split batch is joined (memscope.protocol.wire)
        payload = join_frames(frames)
        os.pwrite(self._file(), _HEADER.pack(len(payload)) + payload, self._end)
        entry.offset, entry.length = self._end + _HEADER.size, len(payload)
        entry.on_disk = True
        self._end += _HEADER.size + len(payload)

    def spill_unsent(self, include_sent: bool = False) -> int:
        """Move unsent (or all) batches held in memory to the spool file; return how many."""
        moved = 0
        for entry in self.entries:
            if entry.payload is not None and (include_sent or not entry.sent):
                frames = entry.payload
                if not entry.on_disk:
                    self._write(entry, frames)
                    self.spooled += 1
                entry.payload = None
                self._let_go(frames)
                moved += 1
        return moved

    def payload(self, entry: Entry) -> list[Frame]:
        """The batch's message, as frames."""
        if entry.payload is not None:
            return entry.payload
        return [os.pread(self._file(), entry.length, entry.offset)]

    def all_on_disk(self) -> bool:
        """Whether every batch not yet acknowledged has its copy in the spool file."""
        return all(e.on_disk for e in self.entries)

    def unsent(self) -> list[Entry]:
        """Entries not sent yet, in order."""
        return [e for e in self.entries if not e.sent]

    def release(self, acked: int) -> int:
        """Drop entries with seq <= ``acked``; return how many."""
        dropped = 0
        while self.entries and self.entries[0].seq <= acked:
            entry = self.entries.popleft()
            if entry.payload is not None:
                self._let_go(entry.payload)
            dropped += 1
        if not self.entries and self._fd is not None and self._end:
            os.ftruncate(self._fd, 0)
            self._end = 0
        return dropped

    def resend_after(self, acked: int) -> int:
        """Mark every entry after ``acked`` as unsent again; return how many."""
        count = 0
        for entry in self.entries:
            if entry.seq > acked and entry.sent:
                entry.sent = False
                count += 1
        return count

    def close(self) -> None:
        """Close the spool file; delete it when nothing is left in it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if not any(e.on_disk for e in self.entries):
                self.path.unlink(missing_ok=True)
