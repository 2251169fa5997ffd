"""``memscope analyze --follow`` under a sustained event rate: how far behind, how much memory.

    python bench/bench_follow.py [--rate 2000000] [--seconds 180] [--producers 2]
                                 [--interval 0.5]

A broker (``start_embedded``) takes the events of ``--producers`` traced Python programs
(``memscope.init()``, full mode) that allocate and free small lists at ``--rate`` events per
second in total (throttled every 10 ms) for ``--seconds``: a real heap, whose addresses are
reused. A follower (``memscope analyze LOG --follow``) keeps the six files current.
Twice a second the bench compares the events the broker has landed (its ``ingest``
counters) with the events the follower's latest memory file covers (allocations, frees
and unmatched frees), and reads the follower's RSS from /proc. The lag in seconds is that
difference over the rate. The follower holds each process's last second back while the
log is written (events of a thread can arrive a drain late), so about one second of it is
by design.

Goal (issue 12): never more than 2 s behind, with flat RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_LAG_S = 2.0

# A traced program making about RATE events a second: each iteration allocates and frees a
# list object, its item array and an int (about 5.4 events, measured with this script).
_PROGRAM = """
import sys, time
import memscope
memscope.init()
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
start = time.monotonic()
made = 0
keep = []
while time.monotonic() - start < seconds:
    for i in range(2000):
        x = [i, i]
        if i % 1000 == 0:
            keep.append(x)
            if len(keep) > 500:
                keep.clear()
    made += 2000 * 5.4
    ahead = made / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
"""


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reported(path: Path) -> int | None:
    try:
        stats = json.loads(path.read_text())["memory_stats"]
    except (OSError, ValueError, KeyError):
        return None
    return int(
        stats.get("total_allocations", 0)
        + stats.get("total_deallocations", 0)
        + stats.get("unmatched_frees", 0)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2_000_000)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    from memscope.broker.embedded import start_embedded

    root = Path(tempfile.mkdtemp(prefix="memscope-follow-"))
    broker = start_embedded(root / "events")
    script = root / "program.py"
    script.write_text(_PROGRAM)
    env = {**os.environ, "MEMSCOPE_BROKER_ADDRESS": broker.address}
    programs = [
        subprocess.Popen(
            [sys.executable, str(script), str(args.rate / args.producers), str(args.seconds)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(args.producers)
    ]
    time.sleep(1.0)
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memscope",
            "analyze",
            str(root / "events"),
            "--out",
            str(root / "out"),
            "--follow",
            "--interval",
            str(args.interval),
            "--quiet",
            "--only",
            "memory",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    memory_file = root / "out" / "snapshot_memory_analysis.json"
    samples: list[tuple[float, float, int]] = []
    landed_total = 0
    started = time.monotonic()
    with broker.client() as client:
        while any(p.poll() is None for p in programs):
            time.sleep(0.5)
            landed = sum(int(r["events"]) for r in client.ingest())
            reported = _reported(memory_file)
            if reported is None:
                continue
            landed_total = landed
            samples.append(
                (time.monotonic() - started, (landed - reported) / args.rate, _rss(follower.pid))
            )
    follower.terminate()
    follower.wait(30)
    broker.stop()
    if not samples:
        print("no follower output was seen", file=sys.stderr)
        return 1
    steady = [s for s in samples if s[0] > 10]  # after the start-up (imports, first round)
    lags = [lag for _, lag, _ in steady] or [samples[-1][1]]
    rss = [r for _, _, r in steady] or [samples[-1][2]]
    half = len(rss) // 2
    print(
        f"{args.rate / 1e6:.1f} M events/s asked for {args.seconds:.0f} s from "
        f"{args.producers} traced programs, follow interval {args.interval} s; "
        f"{landed_total / max(1e-9, samples[-1][0]) / 1e6:.2f} M events/s landed"
    )
    print(f"{'measure':32} {'value':>10} {'goal':>8} {'ratio':>7}")
    print(
        f"{'lag, worst (s)':32} {max(lags):10.2f} {GOAL_LAG_S:8.1f} {max(lags) / GOAL_LAG_S:7.2f}"
    )
    print(f"{'lag, median (s)':32} {sorted(lags)[len(lags) // 2]:10.2f}")
    print(f"{'follower RSS, first half max (MiB)':32} {max(rss[:half] or rss) / 2**20:10.0f}")
    print(f"{'follower RSS, second half max (MiB)':32} {max(rss[half:]) / 2**20:10.0f}")
    print(f"(1-minute load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
