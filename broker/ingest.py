"""Per-producer ingest bookkeeping: which batch sequence numbers landed, and the counters.

A :class:`SeqSet` holds the landed sequence numbers of one producer as sorted disjoint
ranges (normally a single range ``[0, last]``). ``events`` counts memory (allocator) events,
the same unit as the tracer's ``producer_stats.events``; ``rows`` counts the rows of every
table the producer's batches carried (memory events plus rare rows). ``gaps`` is the number
of sequence numbers below the highest one seen that have not landed (a replay that fills a
hole makes it smaller again); ``duplicates`` counts batches dropped because their seq had
landed already.

The table is bounded (:meth:`Ingest.trim`): a producer silent for :data:`PRODUCER_TTL_S` is
forgotten, and beyond :data:`MAX_PRODUCERS` the least recently active ones are; their last
counters go into the next ``ingest`` rows first. A forgotten producer that sends again starts
a new entry, so a replay of batches it had landed before it was forgotten is not recognised
as duplicates (see docs/limitations.md).
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from memscope.protocol.log_schema import INGEST

#: The producer name under which messages are counted that named no readable producer.
UNIDENTIFIED = "(unidentified)"
#: The broker itself (a log it cannot write): its ingest row counts the refused batches.
BROKER = "(broker)"
#: Producers kept in the table at most (the least recently active are forgotten first).
MAX_PRODUCERS = 10_000
#: A producer that sent nothing for this long is forgotten.
PRODUCER_TTL_S = 24 * 3600.0
#: Holes a producer's landed sequence numbers may have (a real one has a few at most).
MAX_RANGES = 1024


class SeqSet:
    """A set of non-negative integers stored as sorted inclusive ranges."""

    def __init__(self, ranges: list[list[int]] | None = None) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []
        for lo, hi in sorted(ranges or []):
            if self._hi and lo <= self._hi[-1] + 1:
                self._hi[-1] = max(self._hi[-1], hi)
            else:
                self._lo.append(int(lo))
                self._hi.append(int(hi))

    def __contains__(self, value: int) -> bool:
        i = bisect.bisect_right(self._lo, value) - 1
        return i >= 0 and value <= self._hi[i]

    def add(self, value: int) -> bool:
        """Add ``value``; return False when it was present already."""
        if self._hi and value == self._hi[-1] + 1:
            self._hi[-1] = value
            return True
        i = bisect.bisect_right(self._lo, value) - 1
        if i >= 0 and value <= self._hi[i]:
            return False
        joins_left = i >= 0 and self._hi[i] == value - 1
        joins_right = i + 1 < len(self._lo) and self._lo[i + 1] == value + 1
        if joins_left and joins_right:
            self._hi[i] = self._hi[i + 1]
            del self._lo[i + 1], self._hi[i + 1]
        elif joins_left:
            self._hi[i] = value
        elif joins_right:
            self._lo[i + 1] = value
        else:
            self._lo.insert(i + 1, value)
            self._hi.insert(i + 1, value)
        return True

    def splits(self, value: int) -> bool:
        """Whether adding ``value`` would start a new range (it touches no range)."""
        i = bisect.bisect_right(self._lo, value) - 1
        if i >= 0 and value <= self._hi[i] + 1:
            return False  # inside range i, or right after it
        return not (i + 1 < len(self._lo) and self._lo[i + 1] == value + 1)

    def range_count(self) -> int:
        """How many disjoint ranges the set holds."""
        return len(self._lo)

    def count(self) -> int:
        """How many values the set holds."""
        return sum(hi - lo + 1 for lo, hi in zip(self._lo, self._hi, strict=True))

    def highest(self) -> int:
        """The largest value, or -1 when empty."""
        return self._hi[-1] if self._hi else -1

    def contiguous(self) -> int:
        """The largest n such that 0..n are all present, or -1."""
        return self._hi[0] if self._lo and self._lo[0] == 0 else -1

    def gaps(self) -> int:
        """Missing values below the highest one."""
        return self.highest() + 1 - self.count()

    def ranges(self) -> list[list[int]]:
        """The ranges, for persisting."""
        return [[lo, hi] for lo, hi in zip(self._lo, self._hi, strict=True)]


@dataclass(slots=True)
class ProducerState:
    """Cumulative counters of one producer as the broker sees it."""

    producer: str
    pid: int
    seqs: SeqSet = field(default_factory=SeqSet)
    batches: int = 0
    events: int = 0  # memory events
    rows: int = 0  # rows of every table (memory events + rare rows)
    duplicates: int = 0
    rejected: int = 0
    rejected_rows: int = 0
    refused: int = 0
    problem: str | None = None
    changed: bool = True
    seen: float = field(default_factory=time.monotonic)  # last message (for expiry)

    def to_json(self) -> dict[str, Any]:
        """The persisted form (kept in the manifest's state)."""
        return {
            "pid": self.pid,
            "ranges": self.seqs.ranges(),
            "batches": self.batches,
            "events": self.events,
            "rows": self.rows,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "rejected_rows": self.rejected_rows,
            "refused": self.refused,
            "problem": self.problem,
        }

    @classmethod
    def from_json(cls, producer: str, raw: dict[str, Any]) -> ProducerState:
        """Rebuild from :meth:`to_json` output."""
        return cls(
            producer=producer,
            pid=int(raw.get("pid", 0)),
            seqs=SeqSet(raw.get("ranges", [])),
            batches=int(raw.get("batches", 0)),
            events=int(raw.get("events", 0)),
            # States saved before "rows" existed counted every row as an event.
            rows=int(raw.get("rows", raw.get("events", 0))),
            duplicates=int(raw.get("duplicates", 0)),
            rejected=int(raw.get("rejected", 0)),
            rejected_rows=int(raw.get("rejected_rows", 0)),
            refused=int(raw.get("refused", 0)),
            problem=raw.get("problem"),
        )

    def counters(self) -> dict[str, int | str]:
        """The counters as reported by the ``ingest`` control op."""
        return {
            "producer": self.producer,
            "pid": self.pid,
            "batches": self.batches,
            "events": self.events,
            "rows": self.rows,
            "gaps": self.seqs.gaps(),
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "rejected_rows": self.rejected_rows,
            "refused": self.refused,
            "problem": self.problem or "",
            "last_seq": self.seqs.highest(),
        }


class Ingest:
    """All producers' states."""

    def __init__(self, max_producers: int = MAX_PRODUCERS, ttl_s: float = PRODUCER_TTL_S) -> None:
        #: Least recently active first (:meth:`touch` moves one to the end).
        self.producers: OrderedDict[str, ProducerState] = OrderedDict()
        self.max_producers = max_producers
        self.ttl_s = ttl_s
        self.forgotten = 0  # producers dropped by trim() so far
        self._unwritten: list[ProducerState] = []  # forgotten with counters not in a row yet

    def get(self, producer: str, pid: int) -> ProducerState:
        """The state of ``producer``, created on first sight; marks it active now."""
        state = self.producers.get(producer)
        if state is None:
            state = self.producers[producer] = ProducerState(producer, pid)
        else:
            self.producers.move_to_end(producer)
            state.seen = time.monotonic()
        return state

    def reject(self, producer: str, pid: int, reason: str = "") -> None:
        """Count one rejected message (``producer`` may be :data:`UNIDENTIFIED`)."""
        state = self.get(producer, pid)
        state.rejected += 1
        state.problem = reason[:500] or state.problem
        state.changed = True

    def trim(self, now: float | None = None, keep: set[str] | frozenset[str] = frozenset()) -> int:
        """Forget expired producers and the least recently active beyond the limit.

        ``keep``: producers that must stay (batches of theirs are pending). Returns how many
        were forgotten.
        """
        now = time.monotonic() if now is None else now
        dropped = 0
        for _ in range(len(self.producers)):  # each turn drops, moves or stops
            name, state = next(iter(self.producers.items()))
            over = len(self.producers) > self.max_producers
            if not over and now - state.seen < self.ttl_s:
                break
            if name in keep or name in (UNIDENTIFIED, BROKER):
                self.producers.move_to_end(name)  # (rare: it is active, or it is ours)
                continue
            del self.producers[name]
            if state.changed:
                self._unwritten.append(state)
            dropped += 1
        self.forgotten += dropped
        return dropped

    @property
    def unwritten(self) -> int:
        """Forgotten producers whose last counters are not in an ``ingest`` row yet."""
        return len(self._unwritten)

    def to_json(self) -> dict[str, Any]:
        """Every producer's persisted state."""
        return {name: state.to_json() for name, state in self.producers.items()}

    def load(self, raw: dict[str, Any]) -> None:
        """Restore from :meth:`to_json` output."""
        for name, value in raw.items():
            self.producers[name] = ProducerState.from_json(name, value)

    def rows(self, only_changed: bool = True) -> pa.RecordBatch | None:
        """Ingest table rows (cumulative counters now) of the producers that changed."""
        chosen = self._unwritten + [
            s for s in self.producers.values() if s.changed or not only_changed
        ]
        self._unwritten = []
        if not chosen:
            return None
        now = time.monotonic_ns()
        for state in chosen:
            state.changed = False
        return pa.RecordBatch.from_pydict(
            {
                "ts_ns": [now] * len(chosen),
                "producer": [s.producer for s in chosen],
                "pid": [s.pid for s in chosen],
                "batches": [s.batches for s in chosen],
                "events": [s.events for s in chosen],
                "rows": [s.rows for s in chosen],
                "gaps": [s.seqs.gaps() for s in chosen],
                "duplicates": [s.duplicates for s in chosen],
                "rejected": [s.rejected for s in chosen],
                "rejected_rows": [s.rejected_rows for s in chosen],
                "refused": [s.refused for s in chosen],
                "problem": [s.problem for s in chosen],
            },
            schema=INGEST,
        )
