"""A synthetic event source: producers that emit known events (no tracer needed).

The broker and the log are tested and benchmarked with it.

The memory events of producer ``index`` are a deterministic function of ``(seed, index,
chunk number)``: :func:`memory_chunk` regenerates any chunk, so a test can compute what the
log must hold. Each chunk is half allocations and half frees of the same addresses
(distinct heap-like addresses, each freed at most once in its chunk and after its allocation),
with monotonically increasing timestamps; ``entropy`` picks realistic distributions (the
default) or random ones (the compression worst case). The first batch also carries rare rows
(process and thread start, frames, stacks), the last one a
producer-statistics row and the process exit.

Command line (one process per producer)::

    python -m memscope.producer.synthetic --address tcp://127.0.0.1:5555 --events 1000000
        --producers 8 [--chunk 65536] [--seed 0] [--rate EVENTS_PER_S] [--entropy real|high]
        [--encoding rec1|cols1]

prints one JSON line per producer (``producer``, ``pid``, ``batches``, ``events``,
``last_seq``, ``seconds``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

from memscope.config import Settings, load_settings
from memscope.protocol.records import encode_cols1, encode_rec1
from memscope.protocol.wire import DOMAIN_MEM, DOMAIN_OBJ, DOMAIN_RAW, KIND_ALLOC, KIND_FREE

_HEAP_BASE = 0x7F3A_0000_0000
_STACKS = 64  # stacks announced in the rare rows (high-entropy chunks use ids 1.._STACKS)
_REAL_STACKS = 300  # stack ids of realistic chunks (1.._REAL_STACKS, Zipf-distributed)
_ARENAS = 4  # realistic chunks allocate from this many bump-pointer arenas
_ARENA_SPAN = 1 << 36  # bytes between arena bases
#: Names accepted by ``entropy``: how random the synthetic memory events are.
ENTROPIES = ("real", "high")
#: Chunk encodings a synthetic producer can send (rec1, the tracer's, by default).
ENCODINGS = ("rec1", "cols1")


def memory_chunk(
    seed: int, index: int, chunk: int, n: int, start_ns: int = 0, entropy: str = "real"
) -> dict[str, np.ndarray]:
    """The columns of chunk number ``chunk`` (``n`` events) of producer ``index``.

    ``entropy="real"`` (the default) resembles a traced Python program: timestamps with small
    deltas, 16-byte aligned addresses handed out by a few bump-pointer arenas, mostly small
    sizes, a few hundred Zipf-distributed stacks, each free shortly after its allocation (stack
    id 0, as the tracer records frees). ``entropy="high"`` is the worst case for compression:
    random addresses and timestamp steps, all allocations first, then the frees. In both, every
    address is allocated at most once per chunk and freed at most once, after its allocation.
    """
    if entropy == "high":
        return _high_entropy_chunk(seed, index, chunk, n, start_ns)
    if entropy != "real":
        raise ValueError(f"entropy {entropy!r}: choose one of {', '.join(ENTROPIES)}")
    rng = np.random.default_rng([seed, index, chunk, 1])
    half = n // 2
    allocs = n - half
    arena = rng.integers(0, _ARENAS, size=allocs)
    step = rng.geometric(0.6, size=allocs).astype(np.uint64)  # 16-byte slots to the next block
    address = np.empty(allocs, np.uint64)
    for number in range(_ARENAS):
        mine = arena == number
        # Each chunk continues its arenas where a chunk of this size would have left them.
        base = _HEAP_BASE + number * _ARENA_SPAN + 16 * 4 * chunk * allocs
        address[mine] = np.uint64(base) + np.uint64(16) * np.cumsum(step[mine], dtype=np.uint64)
    small = 16 + 8 * rng.geometric(1 / 6, size=allocs)
    large = rng.geometric(1 / 8192, size=allocs)
    size = np.minimum(np.where(rng.random(allocs) < 0.03, large, small), 1 << 24).astype(np.uint64)
    stack = ((rng.zipf(1.2, size=allocs) - 1) % _REAL_STACKS + 1).astype(np.uint32)
    pick = rng.integers(0, 16, size=allocs)
    domain = np.where(pick < 12, DOMAIN_OBJ, np.where(pick < 15, DOMAIN_MEM, DOMAIN_RAW))
    # The freed half: mostly short-lived objects, freed a few events after their allocation.
    freed = np.sort(rng.permutation(allocs)[:half])
    free_at = freed + rng.geometric(1 / 6, size=half) - 0.5
    order = np.argsort(
        np.concatenate([np.arange(allocs, dtype=np.float64), free_at]), kind="stable"
    )
    steps = rng.geometric(1 / 60, size=n).astype(np.int64)
    return {
        "ts_ns": start_ns + chunk * 1_000_000_000 + np.cumsum(steps),
        "kind": np.concatenate(
            [np.full(allocs, KIND_ALLOC, np.uint8), np.full(half, KIND_FREE, np.uint8)]
        )[order],
        "domain": np.concatenate([domain, domain[freed]]).astype(np.uint8)[order],
        "address": np.concatenate([address, address[freed]])[order],
        "old_address": np.zeros(n, np.uint64),
        "size": np.concatenate([size, np.zeros(half, np.uint64)])[order],
        "stack_id": np.concatenate([stack, np.zeros(half, np.uint32)])[order],
    }


def _high_entropy_chunk(
    seed: int,
    index: int,
    chunk: int,
    n: int,
    start_ns: int,
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, index, chunk])
    half = n // 2
    allocs = n - half
    slots = rng.choice(max(1 << 22, 2 * allocs), size=allocs, replace=False).astype(np.uint64)
    address = _HEAP_BASE + 16 * slots  # distinct within a chunk: each freed exactly once
    size = np.minimum(rng.geometric(1 / 64, size=allocs), 1 << 20).astype(np.uint64)
    freed = rng.permutation(allocs)[:half]
    steps = rng.integers(20, 400, size=n, dtype=np.int64)
    domain_pick = rng.integers(0, 16, size=allocs)
    domain = np.where(
        domain_pick < 12, DOMAIN_OBJ, np.where(domain_pick < 15, DOMAIN_MEM, DOMAIN_RAW)
    ).astype(np.uint8)
    stack = rng.integers(1, _STACKS + 1, size=allocs, dtype=np.uint32)
    return {
        "ts_ns": start_ns + chunk * 1_000_000_000 + np.cumsum(steps),
        "kind": np.concatenate(
            [np.full(allocs, KIND_ALLOC, np.uint8), np.full(half, KIND_FREE, np.uint8)]
        ),
        "domain": np.concatenate([domain, domain[freed]]),
        "address": np.concatenate([address, address[freed]]),
        "old_address": np.zeros(n, np.uint64),
        "size": np.concatenate([size, np.zeros(half, np.uint64)]),
        "stack_id": np.concatenate([stack, stack[freed]]),
    }


def chunk_sizes(events: int, chunk: int) -> list[int]:
    """How ``events`` are split into chunks of at most ``chunk``."""
    full, rest = divmod(events, chunk)
    return [chunk] * full + ([rest] if rest else [])


def expected_totals(
    seed: int, index: int, events: int, chunk: int, entropy: str = "real"
) -> dict[str, int]:
    """Count and sums of the memory events producer ``index`` emits (for checking a log)."""
    totals = {"events": 0, "size": 0, "address": 0}
    for number, n in enumerate(chunk_sizes(events, chunk)):
        cols = memory_chunk(seed, index, number, n, entropy=entropy)
        totals["events"] += n
        totals["size"] += int(cols["size"].sum())
        address_sum = int(cols["address"].sum(dtype=np.uint64))
        totals["address"] = (totals["address"] + address_sum) % (1 << 64)
    return totals


class SyntheticSource:
    """A ``drain()`` callable that yields the next chunk of a synthetic producer each call."""

    def __init__(
        self,
        index: int,
        events: int,
        chunk: int = 65536,
        seed: int = 0,
        pid: int | None = None,
        rare: bool = True,
        entropy: str = "real",
        encoding: str = "rec1",
    ) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding {encoding!r}: choose one of {', '.join(ENCODINGS)}")
        self.index, self.events, self.chunk, self.seed = index, events, chunk, seed
        self.entropy = entropy
        self.encode = encode_rec1 if encoding == "rec1" else encode_cols1
        self.pid = pid or os.getpid()
        self.tid = threading.get_ident()
        self.rare = rare
        self._sizes = chunk_sizes(events, chunk)
        self._next = 0
        self._started = False
        self._ended = False
        self.start_ns = time.monotonic_ns()

    @property
    def exhausted(self) -> bool:
        """True once every chunk and the final rows were handed out."""
        return self._ended

    def __call__(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[Any]]]]:
        """Next chunk (and rare rows on the first and last call)."""
        rare: dict[str, dict[str, list[Any]]] = {}
        chunks: list[dict[str, Any]] = []
        if self.rare and not self._started:
            rare.update(self._start_rows())
        self._started = True
        if self._next < len(self._sizes):
            columns = memory_chunk(
                self.seed,
                self.index,
                self._next,
                self._sizes[self._next],
                self.start_ns,
                self.entropy,
            )
            chunks.append(self.encode(self.tid, columns))
            self._next += 1
        if self._next >= len(self._sizes) and not self._ended:
            self._ended = True
            if self.rare:
                rare.update(self._end_rows())
        return chunks, rare

    def _start_rows(self) -> dict[str, dict[str, list[Any]]]:
        now = time.monotonic_ns()
        frames = list(range(1, _REAL_STACKS + 1))
        return {
            "processes": {
                "ts_ns": [now],
                "event": ["start"],
                "ppid": [os.getppid()],
                "host": [socket.gethostname()],
                "argv": [["synthetic", str(self.index)]],
                "mode": ["full"],
            },
            "threads": {
                "tid": [self.tid],
                "ts_ns": [now],
                "event": ["start"],
                "name": ["MainThread"],
            },
            "frames": {
                "frame_id": frames,
                "function": [f"fn_{i}" for i in frames],
                "filename": ["synthetic.py"] * len(frames),
                "lineno": frames,
            },
            "stacks": {"stack_id": frames, "parent_id": [0] * len(frames), "frame_id": frames},
        }

    def _end_rows(self) -> dict[str, dict[str, list[Any]]]:
        now = time.monotonic_ns()
        return {
            "producer_stats": {
                "ts_ns": [now],
                "events": [self.events],
                "bytes": [0],
                "drops": [0],
                "buffer_high_water": [0],
                "batches": [0],
                "spooled": [0],
            },
            "processes": {
                "ts_ns": [now],
                "event": ["exit"],
                "ppid": [os.getppid()],
                "host": [socket.gethostname()],
                "exit_code": [0],
            },
        }


def run_producer(
    address: str,
    events: int,
    index: int = 0,
    chunk: int = 65536,
    seed: int = 0,
    settings: Settings | None = None,
    rate: float = 0.0,
    timeout: float = 120.0,
    rare: bool = True,
    entropy: str = "real",
    encoding: str = "rec1",
) -> dict[str, Any]:
    """Send a synthetic producer's events to the broker at ``address``; return its stats."""
    from memscope.producer.publisher import Publisher, default_producer_id

    settings = settings or load_settings()
    source = SyntheticSource(
        index, events, chunk, seed, rare=rare, entropy=entropy, encoding=encoding
    )
    producer_id = default_producer_id()
    publisher = Publisher(address, producer_id, os.getpid(), source, settings)
    publisher.start()
    started = time.monotonic()
    while not source.exhausted:
        publisher.flush(timeout)
        if rate > 0:
            ahead = source._next * chunk / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    publisher.close(timeout)
    return {
        "producer": producer_id,
        "pid": os.getpid(),
        "index": index,
        "seconds": time.monotonic() - started,
        **publisher.stats(),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m memscope.producer.synthetic")
    parser.add_argument("--address", required=True)
    parser.add_argument("--events", type=int, required=True, help="memory events per producer")
    parser.add_argument("--producers", type=int, default=1)
    parser.add_argument("--index", type=int, default=0, help="index of the first producer")
    parser.add_argument("--chunk", type=int, default=65536, help="events per batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0, help="events/s per producer (0: max)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--entropy",
        choices=ENTROPIES,
        default="real",
        help="real: events like a traced program; high: random (worst case)",
    )
    parser.add_argument(
        "--encoding",
        choices=ENCODINGS,
        default="rec1",
        help="memory chunk encoding: rec1 (the tracer's) or cols1 (columns)",
    )
    args = parser.parse_args(argv)
    if args.producers == 1:
        result = run_producer(
            args.address,
            args.events,
            args.index,
            args.chunk,
            args.seed,
            rate=args.rate,
            timeout=args.timeout,
            entropy=args.entropy,
            encoding=args.encoding,
        )
        # one write of the whole line: the producers of one run share a stdout pipe, and a
        # line written in two parts (print's text, then its newline) can be split by another's
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        return 0 if result["unacked"] == 0 else 1
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "memscope.producer.synthetic",
                "--address",
                args.address,
                "--events",
                str(args.events),
                "--index",
                str(args.index + i),
                "--chunk",
                str(args.chunk),
                "--seed",
                str(args.seed),
                "--rate",
                str(args.rate),
                "--timeout",
                str(args.timeout),
                "--entropy",
                args.entropy,
                "--encoding",
                args.encoding,
            ]
        )
        for i in range(args.producers)
    ]
    codes = [child.wait() for child in children]
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
