"""A broker flooded with producer ids: its peak memory, its CPU once idle, how fast it stops.

``--producers`` fake producers (default 100,000) each send one valid empty batch over
loopback TCP (which needs no key) to an embedded broker; then the broker's peak RSS (VmHWM),
its CPU share over ``--idle`` seconds with no data, the size of its manifest (which holds
the producer table, bounded by ``ingest.MAX_PRODUCERS``) and the time from SIGTERM to its
exit. The baseline is the same broker given one producer, measured in the same run. No
profiler has an equivalent (tracemalloc and memray have no broker), hence no ratio to them.

    python bench/bench_broker_bounds.py [--producers 100000] [--idle 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import zmq

from memscope.broker import start_embedded
from memscope.protocol.addresses import free_tcp_address
from memscope.protocol.wire import encode_batch


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def flood(producers: int, idle_s: float) -> dict[str, float]:
    """Run one broker through ``producers`` ids; its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp) / "events"
        broker = start_embedded(log_dir, bind=free_tcp_address())
        context = zmq.Context()
        push = context.socket(zmq.PUSH)
        push.linger = 60_000
        push.connect(broker.address)
        try:
            started = time.monotonic()
            for i in range(producers):
                push.send(encode_batch(f"fake:{i}:{i}", i % 60_000 + 1, 0, [], {}))
            with broker.client(timeout_s=300) as client:
                client.wait(f"fake:{producers - 1}:{producers - 1}", 0, timeout_s=300)
                landed_s = time.monotonic() - started
                client.flush()
            time.sleep(1.5)
            cpu, wall = _cpu_seconds(broker.pid), time.monotonic()
            time.sleep(idle_s)
            idle = (_cpu_seconds(broker.pid) - cpu) / (time.monotonic() - wall)
            peak = _peak_rss(broker.pid)
            manifest = (log_dir / "manifest.json").stat().st_size
            stop0 = time.monotonic()
            broker.process.send_signal(signal.SIGTERM)
            broker.process.wait(60)
            stop_s = time.monotonic() - stop0
        finally:
            push.close()
            context.term()
            broker.stop()
    return {
        "landed_s": landed_s,
        "idle_cpu": idle,
        "peak_rss": peak,
        "manifest": manifest,
        "stop_s": stop_s,
    }


def main() -> int:
    """Print the flooded broker's figures beside the one-producer baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--producers", type=int, default=100_000)
    parser.add_argument("--idle", type=float, default=5.0)
    args = parser.parse_args()
    base = flood(1, args.idle)
    many = flood(args.producers, args.idle)
    print(f"{'':26}{'1 producer':>14}{f'{args.producers:,} ids':>14}")
    print(f"{'all landed (s)':26}{base['landed_s']:14.2f}{many['landed_s']:14.2f}")
    print(f"{'peak RSS (MB)':26}{base['peak_rss'] / 1e6:14.1f}{many['peak_rss'] / 1e6:14.1f}")
    print(f"{'idle CPU (%)':26}{100 * base['idle_cpu']:14.2f}{100 * many['idle_cpu']:14.2f}")
    print(f"{'manifest (KB)':26}{base['manifest'] / 1024:14.1f}{many['manifest'] / 1024:14.1f}")
    print(f"{'SIGTERM to exit (s)':26}{base['stop_s']:14.2f}{many['stop_s']:14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
