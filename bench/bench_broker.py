"""Broker ingest benchmark: events/s with 1, 4 and 8 producers, and bytes per event on disk.

Each producer process pre-builds a few cols1 chunks of synthetic events (65,536 events per
batch), then pushes envelopes with consecutive seqs as fast as the broker takes them. The
broker runs in its own process (``start_embedded``); its CPU time is read from /proc, so
"events per broker CPU second" is what one broker core sustains even when the producers
compete for the same cores. Bytes/event is the size of the memory table's segment files
divided by the events in them (the synthetic events are deliberately high-entropy: random
addresses and sizes). For scale, the bench also traces a small Python allocation loop with
memscope itself (real tracer events) and with memray (its capture file size per allocation).

    python bench/bench_broker.py [--events-per-producer N] [--compression zstd,lz4,none]
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
from memscope.config import Settings
from memscope.producer.records import encode_cols1
from memscope.producer.synthetic import memory_chunk
from memscope.producer.wire import encode_batch

CHUNK = 65536


def _producer(address: str, index: int, batches: int, ready, go) -> None:
    chunks = [encode_cols1(1, memory_chunk(0, index, i, CHUNK)) for i in range(4)]
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


def run(producers: int, events_per_producer: int, compression: str) -> dict[str, float]:
    batches = max(events_per_producer // CHUNK, 1)
    total = producers * batches * CHUNK
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings().replace(log_compression=compression)
        broker = start_embedded(Path(tmp) / "events", settings=settings)
        ctx = multiprocessing.get_context("fork")
        ready, go = ctx.Semaphore(0), ctx.Event()
        procs = [ctx.Process(target=_producer, args=(broker.address, i, batches, ready, go))
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
    args = parser.parse_args()
    print(f"broker ingest, {CHUNK} events per batch, {os.cpu_count()} cores on this machine")
    header = (f"{'compression':<11} {'producers':>9} {'events':>10} {'wall s':>7} "
              f"{'Mev/s wall':>10} {'Mev/broker-cpu-s':>16} {'bytes/event':>11}")
    print(header)
    print("-" * len(header))
    for compression in args.compression.split(","):
        for producers in (1, 4, 8):
            per = max(args.events_per_producer // producers, CHUNK) if producers > 1 else (
                args.events_per_producer)
            r = run(producers, per, compression)
            print(f"{compression:<11} {producers:>9} {r['events']:>10} {r['wall_s']:>7.2f} "
                  f"{r['events_per_s'] / 1e6:>10.2f} {r['events_per_cpu_s'] / 1e6:>16.2f} "
                  f"{r['bytes_per_event']:>11.2f}")
    memray = memray_bytes_per_event()
    if memray is not None:
        print(f"memray capture file of a comparable loop: {memray[0]:.2f} bytes per allocation "
              f"({memray[1]} allocations; the file also holds their frees and stack records)")
    traced = traced_bytes_per_event()
    if traced is not None:
        print(f"memscope log of the same loop, traced (zstd): {traced[0]:.2f} bytes per event "
              f"({traced[1]} allocation and free events)")
    print("goal: >= 20 M events/s on one broker core, <= 8 bytes/event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
