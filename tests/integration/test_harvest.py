"""Crash capture: the arena a killed process leaves is harvested once, and only when dead."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from api_support import PROGRAMS, clean_env, table
from broker_helpers import ipc_address

from memscope.broker import start_embedded
from memscope.config import Settings
from memscope.producer import _tracer
from memscope.producer.harvest import arenas, harvest_arena, harvest_dir
from memscope.protocol import _rec1

pytestmark = pytest.mark.timeout(90)


def _traced_child(tmp_path, address, count, **env):
    arena_dir = tmp_path / "arenas"
    child = subprocess.Popen(
        [sys.executable, str(PROGRAMS / "arena_child.py"), str(count)],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(
            MEMSCOPE_BROKER_ADDRESS=address,
            MEMSCOPE_ARENA_DIR=str(arena_dir),
            MEMSCOPE_SPOOL_DIR=str(tmp_path / "spool"),
            **env,
        ),
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child, arena_dir


def _kill(child):
    child.send_signal(signal.SIGKILL)
    child.wait(10)


def test_a_live_arena_is_left_alone_and_a_killed_ones_records_land_once(tmp_path):
    address = ipc_address(tmp_path)
    broker = start_embedded(tmp_path / "events", bind=address)
    try:
        # nothing is shipped after the start row: every buffer is still in the arena
        child, arena_dir = _traced_child(tmp_path, address, 3000, MEMSCOPE_FLUSH_INTERVAL_S="60")
        (path,) = arenas(arena_dir)
        assert harvest_dir(arena_dir, Settings()) == []  # alive: its lock is held
        assert path.exists()
        _kill(child)
        # small batches: the harvest is split and every one of them must land
        result = harvest_arena(path, Settings().replace(batch_max_events=500))
        assert result is not None and result.pid == child.pid and not result.closed
        assert result.events >= 3000
        assert not path.exists() and arenas(arena_dir) == []
        assert harvest_dir(arena_dir, Settings()) == []  # nothing twice
        with broker.client() as client:
            client.flush()
        memory = table(tmp_path / "events", "memory", columns=["pid", "kind", "size"])
        buffers = [
            m for m in memory if m["pid"] == child.pid and m["kind"] == 0 and m["size"] == 4097
        ]
        assert len(buffers) == 3000
        exits = [
            r
            for r in table(tmp_path / "events", "processes")
            if r["pid"] == child.pid and r["event"] == "exit"
        ]
        assert len(exits) == 1
    finally:
        broker.stop()


def test_a_broker_that_is_away_leaves_the_files_for_a_later_harvest(tmp_path):
    address = ipc_address(tmp_path)
    child, arena_dir = _traced_child(tmp_path, address, 500, MEMSCOPE_SEND_TIMEOUT_S="0.1")
    _kill(child)
    assert harvest_dir(arena_dir, Settings(), timeout=0.5) == []  # no broker: kept
    assert len(arenas(arena_dir)) == 1
    broker = start_embedded(tmp_path / "events", bind=address)
    try:
        (result,) = harvest_dir(arena_dir, Settings())
        assert result.pid == child.pid
        with broker.client() as client:
            client.flush()
        memory = table(tmp_path / "events", "memory", columns=["pid", "kind", "size"])
        assert (
            sum(1 for m in memory if m["pid"] == child.pid and m["kind"] == 0 and m["size"] == 4097)
            == 500
        )
    finally:
        broker.stop()


def test_files_that_are_not_arenas_are_removed_without_a_traceback(tmp_path):
    arena_dir = tmp_path / "arenas"
    arena_dir.mkdir()
    (arena_dir / "short.arena").write_bytes(b"\0" * 100)
    (arena_dir / "garbage.arena").write_bytes(os.urandom(1 << 17))
    with pytest.raises(ValueError):
        _tracer.harvest(str(arena_dir / "garbage.arena"))
    assert harvest_dir(arena_dir, Settings()) == []
    assert arenas(arena_dir) == []


def test_damaged_arenas_never_crash_the_harvester(tmp_path):
    """Random single-byte flips over the header, thread states and blocks of a dead arena."""
    address = ipc_address(tmp_path)  # no broker: the child spools, its arena stays
    child, arena_dir = _traced_child(
        tmp_path, address, 2000, MEMSCOPE_FLUSH_INTERVAL_S="60", MEMSCOPE_SEND_TIMEOUT_S="0.1"
    )
    _kill(child)
    (path,) = arenas(arena_dir)
    intact = _tracer.harvest(str(path))
    assert intact["events"] >= 2000 and intact["pid"] == child.pid
    used = 64 * 1024 * 8  # the header and the first slots (thread states, blocks)
    rng = random.Random(13)
    started = time.monotonic()
    with open(path, "r+b") as f:
        for _ in range(400):
            at = rng.randrange(used)
            f.seek(at)
            old = f.read(1)
            f.seek(at)
            f.write(bytes([old[0] ^ (1 << rng.randrange(8))]))
            f.flush()
            try:
                damaged = _tracer.harvest(str(path))
            except ValueError:
                pass  # a damaged header: refused
            else:  # what it gives is well-formed: the broker's own check takes every chunk
                for chunk in damaged["chunks"]:
                    _rec1.validate_rec1(chunk["data"], chunk["n"])
            f.seek(at)
            f.write(old)
            f.flush()
    assert time.monotonic() - started < 60
    assert _tracer.harvest(str(path))["events"] == intact["events"]


#: The arena header's layout (tr_arena.c's tr_arena_hdr_t): where nslots, base and kinds are.
_NSLOTS_AT, _BASE_AT, _KINDS_AT = 16, 32, 1912
_SLOT = 64 * 1024


def test_block_chains_looped_by_damage_give_each_record_once(tmp_path):
    address = ipc_address(tmp_path)
    child, arena_dir = _traced_child(
        tmp_path, address, 2000, MEMSCOPE_FLUSH_INTERVAL_S="60", MEMSCOPE_SEND_TIMEOUT_S="0.1"
    )
    _kill(child)
    (path,) = arenas(arena_dir)
    intact = _tracer.harvest(str(path))["events"]
    with open(path, "r+b") as f:
        header = f.read(_KINDS_AT)
        nslots = int.from_bytes(header[_NSLOTS_AT : _NSLOTS_AT + 4], "little")
        base = int.from_bytes(header[_BASE_AT : _BASE_AT + 8], "little")
        kinds = f.read(nslots)
        blocks = [i for i, kind in enumerate(kinds) if kind == 1]
        assert blocks
        for slot in blocks:  # every block's `next` points at itself
            f.seek(slot * _SLOT)
            f.write((base + slot * _SLOT).to_bytes(8, "little"))
    looped = _tracer.harvest(str(path))
    assert looped["events"] <= intact
    assert len(looped["chunks"]) <= len(blocks)


def test_run_directories_of_dead_supervisors_are_removed(tmp_path):
    from memscope.producer.harvest import remove_abandoned_runs

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone = tmp_path / f"run-{int(dead.stdout)}-abc"
    alive = tmp_path / f"run-{os.getpid()}-def"
    for directory in (gone, alive):
        directory.mkdir()
        (directory / "1-2.arena").write_bytes(b"\0" * 100)  # (not even a readable arena)
        (directory / ".1-3.tmp").write_bytes(b"")
    remove_abandoned_runs(tmp_path, Settings())
    assert not gone.exists()
    assert sorted(p.name for p in alive.iterdir()) == [".1-3.tmp", "1-2.arena"]
