"""The broker's commit journal: which batches landed, so a restart neither loses nor repeats.

After the record batches of a group of envelopes are written to their segments, the broker
appends one journal entry (msgpack map) ``{"b": [[producer, pid, seq, n, events], ...], "o":
{segment: end_offset, ...}}`` and only then counts those batches as landed (``n``: the
envelope's rows of every table; ``events``: its memory events, absent in journals written
before it was added). The manifest's
state holds a snapshot (every producer's landed ranges, the journal file and its offset at the
snapshot, the end offsets of open segments). Recovery after a crash = the snapshot plus the
journal entries after it; segment bytes beyond the last committed offset belong to batches
that never committed, so they are cut off and those batches are taken again when the
producers replay them.

Journal files live in ``<log>/_broker/journal-<NNNNNN>.msgpack``; a new file is started when
the current one grows past :data:`ROTATE_BYTES` at a snapshot.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from memscope.eventlog import faults as _faults

ROTATE_BYTES = 8 * 1024 * 1024
DIRECTORY = "_broker"


@dataclass
class Replayed:
    """What the journal after a snapshot says."""

    batches: list[tuple[str, int, int, int]] = field(default_factory=list)
    #: The memory events of each of ``batches`` (its ``n`` where the journal did not say).
    events: list[int] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)
    torn: bool = False


class Journal:
    """Append-only commit journal of one log directory."""

    def __init__(self, log_dir: Path, number: int = 0) -> None:
        self.directory = log_dir / DIRECTORY
        self.directory.mkdir(exist_ok=True)
        self.number = number
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 -- kept open

    @property
    def path(self) -> Path:
        """The current journal file."""
        return self.directory / f"journal-{self.number:06d}.msgpack"

    @property
    def name(self) -> str:
        """The current file's name (as stored in the snapshot)."""
        return self.path.name

    def offset(self) -> int:
        """Bytes written to the current file."""
        return self._file.tell()

    def commit(
        self,
        batches: list[tuple[str, int, int, int]],
        offsets: dict[str, int],
        events: list[int] | None = None,
    ) -> None:
        """Record that ``batches`` landed and the segments reached ``offsets``.

        ``events`` (one per batch) are their memory events, kept for a restart's counters.
        """
        rows = [list(b) for b in batches]
        if events is not None:
            rows = [[*b, e] for b, e in zip(rows, events, strict=True)]
        entry = msgpack.packb({"b": rows, "o": offsets}, use_bin_type=True)
        start = self._file.tell()
        try:
            _faults.check()
            written = self._file.write(entry)
            if written != len(entry):  # a full disk takes part of it
                raise OSError(errno.ENOSPC, f"journal: wrote {written} of {len(entry)} bytes")
        except OSError:
            # a torn entry would hide every later one from a restart's replay: cut it off
            self._file.truncate(start)
            self._file.seek(start)
            raise

    def sync(self) -> None:
        """Force the journal to disk."""
        os.fsync(self._file.fileno())

    def maybe_rotate(self) -> bool:
        """Start a new journal file if the current one is large; call right after a snapshot."""
        if self.offset() < ROTATE_BYTES:
            return False
        old = self.path
        self._file.close()
        self.number += 1
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 -- kept open
        old.unlink(missing_ok=True)
        return True

    def close(self) -> None:
        """Flush, sync and close."""
        if not self._file.closed:
            try:
                os.fsync(self._file.fileno())
            finally:
                self._file.close()


def replay(log_dir: Path, name: str, offset: int) -> Replayed:
    """Read the journal ``name`` from ``offset``; a torn last entry is ignored."""
    out = Replayed()
    path = log_dir / DIRECTORY / name
    if not path.is_file():
        return out
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(data)
    try:
        for entry in unpacker:
            if not isinstance(entry, dict):
                break
            raw = entry.get("b", [])
            out.batches.extend(_batches(raw))
            out.events.extend(int(b[4]) if len(b) > 4 else int(b[3]) for b in raw)
            out.offsets.update({str(k): int(v) for k, v in entry.get("o", {}).items()})
    except (ValueError, msgpack.UnpackException):
        out.torn = True  # the torn tail of a crash: that entry did not commit
    return out


def _batches(raw: Any) -> list[tuple[str, int, int, int]]:
    return [(str(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in raw]


def journal_number(name: str) -> int:
    """The number in a journal file name."""
    try:
        return int(name.rsplit("-", 1)[1].split(".", 1)[0])
    except (IndexError, ValueError):
        return 0
