"""Broker ingest benchmark: events/s with 1, 4 and 8 producers, and bytes per event on disk.

Each producer process pre-builds a few cols1 chunks of synthetic events (65,536 events per
batch), then pushes envelopes with consecutive seqs as fast as the broker takes them. The
broker runs in its own process (``start_embedded``); its CPU time is read from /proc, so
"events per broker CPU second" is what one broker core sustains even when the producers
compete for the same cores. Bytes/event is the size of the memory table's segment files
divided by the events in them. ``--entropy`` picks the synthetic events (each row says which):
``real`` (default) resembles a traced program (small timestamp steps, clustered 16-byte
aligned addresses, small sizes, a few hundred stacks, frees soon after their allocations),
``high`` is the compression worst case (random addresses, sizes and steps).

The ``in-process`` rows feed the same envelopes to the broker's own message handler and
commit path in this process (no ZeroMQ, no producers): the best of ``--repeat`` runs of CPU
time (``time.process_time``) of decoding and writing the log; ``write %`` is the share of the
memory table's segment writes in it (Arrow IPC serialization and compression).

For scale, the bench also traces a small Python allocation loop with memscope itself (real
tracer events) and with memray (its capture file size per allocation).

    python bench/bench_broker.py [--events-per-producer N] [--compression zstd,lz4,none]
                                 [--entropy real,high] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from memscope.broker import start_embedded
from memscope.broker.server import COMMIT_ENVELOPES, COMMIT_EVENTS, Broker
from memscope.config import Settings
from memscope.producer.records import encode_cols1
from memscope.producer.synthetic import memory_chunk
from memscope.producer.wire import encode_batch

CHUNK = 65536


def _producer(address: str, index: int, batches: int, ready, go, entropy: str) -> None:
    chunks = [encode_cols1(1, memory_chunk(0, index, i, CHUNK, entropy=entropy))
              for i in range(4)]
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.sndhwm = 16
    push.connect(address)
    producer = f"bench:{os.getpid()}:{index}"
    ready.release()
    go.wait()
    for seq in range(batches):
        push.send(encode_batch(producer, os.getpid(), seq, [chunks[seq % 4]], {}), copy=False)
    push.close(linger=-1)
    context.term()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(producers: int, events_per_producer: int, compression: str, entropy: str,
        ) -> dict[str, float]:
    """One broker process and ``producers`` producer processes over ZeroMQ (ipc)."""
    batches = max(events_per_producer // CHUNK, 1)
    total = producers * batches * CHUNK
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings().replace(log_compression=compression)
        broker = start_embedded(Path(tmp) / "events", settings=settings)
        ctx = multiprocessing.get_context("fork")
        ready, go = ctx.Semaphore(0), ctx.Event()
        procs = [ctx.Process(target=_producer,
                             args=(broker.address, i, batches, ready, go, entropy))
                 for i in range(producers)]
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.acquire()
        client = broker.client(timeout_s=30)
        cpu0, t0 = _cpu_seconds(broker.pid), time.perf_counter()
        go.set()
        while sum(p["events"] for p in client.ingest()) < total:
            time.sleep(0.02)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds(broker.pid) - cpu0
        client.close()
        for proc in procs:
            proc.join()
        broker.stop()
        disk = sum(f.stat().st_size for f in (Path(tmp) / "events" / "memory").glob("*.arrow"))
    return {"producers": producers, "events": total, "wall_s": wall, "cpu_s": cpu,
            "events_per_s": total / wall, "events_per_cpu_s": total / cpu,
            "bytes_per_event": disk / total}


class _Frame:
    def __init__(self, data: bytes) -> None:
        self.buffer = memoryview(data)


def run_in_process(batches: int, compression: str, entropy: str, repeat: int,
                   ) -> dict[str, float]:
    """The broker's decode and commit path in this process: best CPU time of ``repeat``."""
    messages = [encode_batch("bench:1:1", 4242, seq,
                             [encode_cols1(7, memory_chunk(0, 0, seq, CHUNK, entropy=entropy))],
                             {}) for seq in range(batches)]
    best = {"cpu_s": float("inf")}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings().replace(log_compression=compression)
            broker = Broker(Path(tmp) / "events", f"ipc://{tmp}/bench.sock", settings)
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
            disk = sum(f.stat().st_size for f in (Path(tmp) / "events" / "memory").glob("*.arrow"))
        if cpu < best["cpu_s"]:
            best = {"cpu_s": cpu, "write_s": writes[0], "bytes": disk}
    total = batches * CHUNK
    return {"producers": 0, "events": total, "wall_s": float("nan"), "cpu_s": best["cpu_s"],
            "events_per_s": float("nan"), "events_per_cpu_s": total / best["cpu_s"],
            "write_share": best["write_s"] / best["cpu_s"],
            "bytes_per_event": best["bytes"] / total}


def _time_memory_writes(broker: Broker, total: list[float]) -> None:
    """Add the CPU time of the memory table's segment writes (the codec's work) to total[0]."""
    append = broker.writer.append

    def timed(table: str, data):  # type: ignore[no-untyped-def]
        if table != "memory":
            return append(table, data)
        start = time.process_time()
        try:
            return append(table, data)
        finally:
            total[0] += time.process_time() - start

    broker.writer.append = timed  # type: ignore[method-assign]


_MEMRAY_WORKLOAD = """
import random
keep = []
for i in range(200_000):
    keep.append(bytearray(random.randrange(1, 512)))
    if len(keep) > 1000:
        keep.pop(random.randrange(len(keep)))
"""


def memray_bytes_per_event() -> tuple[float, int] | None:
    """(bytes per allocation record, records) of a memray capture of a comparable loop."""
    try:
        from memray import FileReader
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        script, out = Path(tmp) / "w.py", Path(tmp) / "w.bin"
        script.write_text(_MEMRAY_WORKLOAD)
        command = [sys.executable, "-m", "memray", "run", "-q", "--trace-python-allocators",
                   "-o", str(out), str(script)]
        subprocess.run(command, check=True, capture_output=True)
        reader = FileReader(str(out))
        records = int(reader.metadata.total_allocations)
        reader.close()
        return out.stat().st_size / records, records


def traced_bytes_per_event() -> tuple[float, int] | None:
    """(bytes per event, events) of the memory table when memscope traces the same loop."""
    with tempfile.TemporaryDirectory() as tmp:
        events_dir = Path(tmp) / "events"
        code = ("import memscope\n"
                f"memscope.init(log_dir={str(events_dir)!r})\n"
                + _MEMRAY_WORKLOAD + "memscope.shutdown()\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"(traced workload failed: {done.stderr.strip()[-300:]})")
            return None
        from memscope.broker.log import open_log

        log = open_log(events_dir)
        events = log.dataset("memory").count_rows()
        size = sum(s.path.stat().st_size for s in log.segments("memory"))
        return size / max(events, 1), events


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events-per-producer", type=int, default=2 * 1024 * 1024)
    parser.add_argument("--compression", default="zstd,lz4,none")
    parser.add_argument("--entropy", default="real", help="real, high or both: real,high")
    parser.add_argument("--repeat", type=int, default=3, help="in-process runs (best kept)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, 1 and 4 producers, no tracing comparison")
    args = parser.parse_args()
    if args.quick:
        args.events_per_producer = min(args.events_per_producer, 8 * CHUNK)
    print(f"broker ingest, {CHUNK} events per batch, {os.cpu_count()} cores on this machine "
          f"(load average {os.getloadavg()[0]:.1f})")
    header = (f"{'compression':<11} {'entropy':<7} {'producers':>10} {'events':>9} "
              f"{'wall s':>7} {'Mev/s wall':>10} {'Mev/broker-cpu-s':>16} {'write %':>7} "
              f"{'bytes/event':>11}")
    print(header)
    print("-" * len(header))
    for entropy in args.entropy.split(","):
        for compression in args.compression.split(","):
            r = run_in_process(max(args.events_per_producer // CHUNK, 1), compression, entropy,
                               args.repeat)
            _row(compression, entropy, "in-process", r)
            for producers in (1, 4) if args.quick else (1, 4, 8):
                per = max(args.events_per_producer // producers, CHUNK) if producers > 1 else (
                    args.events_per_producer)
                _row(compression, entropy, str(producers), run(producers, per, compression,
                                                               entropy))
    if not args.quick:
        memray = memray_bytes_per_event()
        if memray is not None:
            print(f"memray capture file of a comparable loop: {memray[0]:.2f} bytes per "
                  f"allocation ({memray[1]} allocations; the file also holds their frees and "
                  "stack records)")
        traced = traced_bytes_per_event()
        if traced is not None:
            print(f"memscope log of the same loop, traced (zstd): {traced[0]:.2f} bytes per "
                  f"event ({traced[1]} allocation and free events)")
    print("goal: >= 20 M events/s on one broker core, <= 8 bytes/event")
    return 0


def _row(compression: str, entropy: str, producers: str, r: dict[str, float]) -> None:
    share = f"{100 * r['write_share']:.0f}" if "write_share" in r else "-"
    wall = "-" if r["wall_s"] != r["wall_s"] else f"{r['wall_s']:.2f}"
    rate = "-" if r["events_per_s"] != r["events_per_s"] else f"{r['events_per_s'] / 1e6:.2f}"
    print(f"{compression:<11} {entropy:<7} {producers:>10} {r['events']:>9} {wall:>7} "
          f"{rate:>10} {r['events_per_cpu_s'] / 1e6:>16.2f} {share:>7} "
          f"{r['bytes_per_event']:>11.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
