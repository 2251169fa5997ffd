"""Broker ingest benchmark: events per broker CPU-second, bytes per event on disk, read cost.

**Events.** ``--source`` picks the memory chunks every producer sends (each row says which):

* ``tracer`` (default): real tracer chunks (rec1), captured once in this process by tracing a
  small Python allocation loop with memscope's tracer (capture.start/drain), then re-sent;
* ``real`` / ``high``: synthetic events (:mod:`memscope.producer.synthetic`: like a traced
  program / random, the compression worst case) encoded as rec1 chunks of 65,536 events.

Envelopes hold about 65,536 events each.

**Storage** (``--storage``, each a broker setting): ``chunks-none``, ``chunks-lz4``,
``chunks-zstd`` store the rec1 chunks as received in the ``memory_chunks`` table (validated by
the C scan, never decoded) with that segment compression (``log_chunk_compression``);
``columns-zstd`` is the old behaviour (``log_memory = "columns"``: chunks decoded into the
columnar ``memory`` table, zstd).

**Rows.** ``in-process`` feeds the envelopes to the broker's own message handler and commit
path in this process (no ZeroMQ, no producers): best of ``--repeat`` runs of CPU time
(``time.process_time``) of validating/decoding and writing the log. ``1``, ``4``, ``8``: a
broker process (``start_embedded``) and that many producer processes over ZeroMQ (ipc); the
broker's CPU time is read from /proc, so events per broker CPU-second is what one broker
core sustains even though the producers compete for the same cores (best of ``--repeat``
runs as well). Bytes/event: the size of the memory tables' segment files over the events.

**Read side** (``read ns/ev``, ``read Mev/s``, in-process rows): the CPU time on one core of
turning the log back into Arrow record batches of the ``memory`` schema
(``LogReader.memory_batches``: for chunks, reading the segments and the C decoder; for
columns, reading and decompressing the columnar segments), best of ``--repeat``.

    python bench/bench_broker.py [--events N] [--source tracer,real,high] [--producers 1,4,8]
                                 [--storage chunks-zstd,...] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

from memscope.broker import start_embedded
from memscope.broker.server import COMMIT_ENVELOPES, COMMIT_EVENTS, Broker
from memscope.config import Settings
from memscope.eventlog.log import open_log
from memscope.producer.synthetic import memory_chunk
from memscope.protocol.records import encode_rec1
from memscope.protocol.wire import encode_batch

ENVELOPE_EVENTS = 65536
STORAGES = {
    "chunks-none": {"log_memory": "chunks", "log_chunk_compression": "none"},
    "chunks-lz4": {"log_memory": "chunks", "log_chunk_compression": "lz4"},
    "chunks-zstd": {"log_memory": "chunks", "log_chunk_compression": "zstd"},
    "columns-zstd": {"log_memory": "columns", "log_compression": "zstd"},
}
_MEMORY_DIRS = ("memory", "memory_chunks")


def tracer_chunks(events: int) -> list[dict[str, Any]]:
    """rec1 chunks of about ``events`` real tracer events (a Python allocation loop)."""
    from memscope.producer import capture

    chunks: list[dict[str, Any]] = []
    keep: list[bytearray] = []
    capture.start(mode="full")
    try:
        while sum(c["n"] for c in chunks) < events:
            for _ in range(50_000):
                keep.append(bytearray(random.randrange(1, 512)))
                if len(keep) > 1000:
                    keep.pop(random.randrange(len(keep)))
            drained, _ = capture.drain()
            chunks += [c for c in drained if c.get("enc") == "rec1" and c["n"]]
    finally:
        capture.stop()
    return chunks


def envelopes(source: str, events: int) -> list[list[dict[str, Any]]]:
    """The memory chunks of each envelope (about ENVELOPE_EVENTS events each)."""
    if source != "tracer":
        return [
            [encode_rec1(7, memory_chunk(0, 0, i, ENVELOPE_EVENTS, entropy=source))]
            for i in range(max(events // ENVELOPE_EVENTS, 1))
        ]
    out: list[list[dict[str, Any]]] = [[]]
    size = 0
    for chunk in tracer_chunks(events):
        if size >= ENVELOPE_EVENTS:
            out.append([])
            size = 0
        out[-1].append(chunk)
        size += chunk["n"]
    return out


def _events(env: list[dict[str, Any]]) -> int:
    return sum(c["n"] for c in env)


def _memory_bytes(events_dir: Path) -> int:
    return sum(f.stat().st_size for d in _MEMORY_DIRS for f in (events_dir / d).glob("*.arrow"))


def _producer(
    address: str, index: int, envs: list[list[dict[str, Any]]], batches: int, ready: Any, go: Any
) -> None:
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.sndhwm = 16
    push.connect(address)
    producer = f"bench:{os.getpid()}:{index}"
    messages = [
        encode_batch(producer, os.getpid(), seq, envs[seq % len(envs)], {})
        for seq in range(min(batches, len(envs)))
    ]
    ready.release()
    go.wait()
    for seq in range(batches):
        message = (
            messages[seq]
            if seq < len(messages)
            else encode_batch(producer, os.getpid(), seq, envs[seq % len(envs)], {})
        )
        push.send(message, copy=False)
    push.close(linger=-1)
    context.term()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_zmq(
    producers: int, envs: list[list[dict[str, Any]]], per_producer: int, settings: Settings
) -> dict[str, float]:
    """One broker process and ``producers`` producer processes over ZeroMQ (ipc)."""
    batches = max(per_producer // max(_events(envs[0]), 1), 1)
    total = producers * sum(_events(envs[s % len(envs)]) for s in range(batches))
    with tempfile.TemporaryDirectory() as tmp:
        broker = start_embedded(Path(tmp) / "events", settings=settings)
        ctx = multiprocessing.get_context("fork")
        ready, go = ctx.Semaphore(0), ctx.Event()
        procs = [
            ctx.Process(target=_producer, args=(broker.address, i, envs, batches, ready, go))
            for i in range(producers)
        ]
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.acquire()
        client = broker.client(timeout_s=60)
        cpu0, t0 = _cpu_seconds(broker.pid), time.perf_counter()
        go.set()
        while sum(p["events"] for p in client.ingest()) < total:
            time.sleep(0.02)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds(broker.pid) - cpu0
        client.close()
        for proc in procs:
            proc.join()
        broker.stop()
        disk = _memory_bytes(Path(tmp) / "events")
    return {
        "events": total,
        "wall_s": wall,
        "cpu_s": cpu,
        "events_per_cpu_s": total / cpu,
        "bytes_per_event": disk / total,
    }


class _Frame:
    def __init__(self, data: bytes) -> None:
        self.buffer = memoryview(data)


def run_in_process(
    envs: list[list[dict[str, Any]]],
    settings: Settings,
    repeat: int,
) -> dict[str, float]:
    """The broker's ingest path in this process, then the read side: best CPU times."""
    messages = [encode_batch("bench:1:1", 4242, seq, env, {}) for seq, env in enumerate(envs)]
    total = sum(_events(env) for env in envs)
    best: dict[str, float] = {"cpu_s": float("inf"), "read_s": float("inf")}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            events_dir = Path(tmp) / "events"
            broker = Broker(events_dir, f"ipc://{tmp}/bench.sock", settings)
            writes = [0.0]
            _time_memory_writes(broker, writes)
            cpu0 = time.process_time()
            for message in messages:
                broker._on_message([_Frame(message)])
                group = broker._group
                if group.events >= COMMIT_EVENTS or len(group.decoded) >= COMMIT_ENVELOPES:
                    broker.commit()
            broker.commit()
            cpu = time.process_time() - cpu0
            broker.close()
            disk = _memory_bytes(events_dir)
            log = open_log(events_dir)
            read0 = time.process_time()
            read = sum(batch.num_rows for batch in log.memory_batches())
            read_s = time.process_time() - read0
        if read != total:
            raise RuntimeError(f"the log holds {read} memory events, {total} were sent")
        if cpu < best["cpu_s"]:
            best.update(cpu_s=cpu, write_s=writes[0], bytes=disk)
        best["read_s"] = min(best["read_s"], read_s)
    return {
        "events": total,
        "wall_s": float("nan"),
        "cpu_s": best["cpu_s"],
        "events_per_cpu_s": total / best["cpu_s"],
        "write_share": best["write_s"] / best["cpu_s"],
        "bytes_per_event": best["bytes"] / total,
        "read_ns": best["read_s"] / total * 1e9,
    }


def _time_memory_writes(broker: Broker, total: list[float]) -> None:
    """Add the CPU time of the memory tables' segment writes to total[0]."""
    append = broker.writer.append

    def timed(table: str, data):  # type: ignore[no-untyped-def]
        if table not in _MEMORY_DIRS:
            return append(table, data)
        start = time.process_time()
        try:
            return append(table, data)
        finally:
            total[0] += time.process_time() - start

    broker.writer.append = timed  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--events",
        type=int,
        default=16 * 1024 * 1024,
        help="events per row (split among the producers)",
    )
    parser.add_argument("--source", default="tracer", help="tracer, real, high (comma list)")
    parser.add_argument(
        "--storage", default=",".join(STORAGES), help=f"comma list of {', '.join(STORAGES)}"
    )
    parser.add_argument("--producers", default="1,4,8")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each row (best kept)")
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 and 4 producers")
    args = parser.parse_args()
    if args.quick:
        args.events = min(args.events, 4 * 1024 * 1024)
        args.producers = "1,4"
        args.repeat = min(args.repeat, 2)
    print(
        f"broker ingest, about {ENVELOPE_EVENTS} events per envelope, {os.cpu_count()} cores "
        f"on this machine (load average {os.getloadavg()[0]:.1f}); best of {args.repeat}"
    )
    header = (
        f"{'storage':<12} {'source':<6} {'producers':>10} {'events':>9} {'wall s':>7} "
        f"{'Mev/broker-cpu-s':>16} {'write %':>7} {'bytes/event':>11} "
        f"{'read ns/ev':>10} {'read Mev/s':>10}"
    )
    print(header)
    print("-" * len(header))
    for source in args.source.split(","):
        envs = envelopes(source, min(args.events, 4 * 1024 * 1024))
        for storage in args.storage.split(","):
            settings = Settings().replace(**STORAGES[storage])
            _row(storage, source, "in-process", run_in_process(envs, settings, args.repeat))
            for producers in (int(p) for p in args.producers.split(",")):
                per = max(args.events // producers, ENVELOPE_EVENTS)
                runs = [run_zmq(producers, envs, per, settings) for _ in range(args.repeat)]
                _row(
                    storage, source, str(producers), max(runs, key=lambda r: r["events_per_cpu_s"])
                )
    print(
        "goal: >= 20 M events per broker CPU-second, <= 8 bytes/event on disk. read: CPU "
        "time to decode the log into Arrow memory batches, one core"
    )
    return 0


def _row(storage: str, source: str, producers: str, r: dict[str, float]) -> None:
    share = f"{100 * r['write_share']:.0f}" if "write_share" in r else "-"
    wall = "-" if r["wall_s"] != r["wall_s"] else f"{r['wall_s']:.2f}"
    read = (
        f"{r['read_ns']:>10.2f} {1e3 / r['read_ns']:>10.1f}"
        if "read_ns" in r
        else f"{'-':>10} {'-':>10}"
    )
    print(
        f"{storage:<12} {source:<6} {producers:>10} {r['events']:>9} {wall:>7} "
        f"{r['events_per_cpu_s'] / 1e6:>16.2f} {share:>7} {r['bytes_per_event']:>11.2f} "
        f"{read}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
