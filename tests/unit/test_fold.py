"""The streaming fold: the C Fold against its Python twin PyFold, and each rule by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from memscope.analyzers._fold import Fold
from memscope.analyzers.fold import (
    DEAD,
    DEAD_REPEATABLE,
    DOMAIN_MISMATCH,
    INTERIOR_FREE,
    LIVE,
    REPEATED_END,
    TABLE_COLUMNS,
    FoldParams,
    PyFold,
    sample_weight,
    weighted_bytes,
)

COLUMNS = (
    "pid",
    "tid",
    "seq",
    "ts_ns",
    "kind",
    "domain",
    "address",
    "old_address",
    "size",
    "stack_id",
)
DTYPES = ("<u4", "<u8", "<u8", "<i8", "u1", "u1", "<u8", "<u8", "<u8", "<u4")
ALLOC, CALLOC, REALLOC, FREE = 0, 1, 2, 3
TWINS = pytest.mark.parametrize("cls", [Fold, PyFold], ids=["C", "Py"])


def cols(rows: list[dict]) -> list[np.ndarray]:
    """Feed's ten arrays from event dicts (defaults: pid 1, tid 1, domain 2, stack 1)."""
    defaults = {
        "pid": 1,
        "tid": 1,
        "kind": ALLOC,
        "domain": 2,
        "address": 0,
        "old_address": 0,
        "size": 0,
        "stack_id": 1,
    }
    full = [{**defaults, "seq": i, "ts_ns": i * 10, **r} for i, r in enumerate(rows)]
    return [np.array([r[c] for r in full], dtype=d) for c, d in zip(COLUMNS, DTYPES, strict=True)]


def fold(cls, rows: list[dict], **params) -> dict:
    f = cls(**params)
    f.feed(*cols(rows))
    return f.export()


def row(tables: dict, table: str, **match) -> dict:
    """The one row of ``table`` whose columns equal ``match``, as plain values."""
    t = tables[table]
    n = len(next(iter(t.values())))
    keep = np.ones(n, dtype=bool)
    for k, v in match.items():
        keep &= t[k] == v
    (i,) = np.nonzero(keep)[0]
    return {k: v[i].tolist() for k, v in t.items()}


def assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for table in a:
        assert list(a[table]) == list(b[table]), table
        for name in a[table]:
            x, y = a[table][name], b[table][name]
            assert x.dtype == y.dtype, (table, name, x.dtype, y.dtype)
            assert x.shape == y.shape, (table, name, x.shape, y.shape)
            if not np.array_equal(x, y):
                bad = np.nonzero(x != y)[0][:5]
                raise AssertionError(f"{table}.{name} differs at rows {bad}: {x[bad]} != {y[bad]}")


# -- random streams ---------------------------------------------------------------------------


def random_params(rng: np.random.Generator) -> dict:
    buckets = int(rng.choice([1, 4, 8, 64]))
    return {
        "timeline_buckets": buckets,
        "site_slots": int(rng.choice([s for s in (1, 2, 4, 8) if s <= buckets])),
        "initial_width_ns": int(rng.choice([1, 16, 256])),
        "keep_findings": int(rng.choice([0, 2, 1000])),
        "oversized_bytes": int(rng.choice([3000, 100 << 20])),
        "interior_probe_bytes": int(rng.choice([16, 64, 4096])),
        "max_interior_checks": int(rng.choice([3, 1_000_000])),
        "temporary_ns": int(rng.choice([0, 300, 1_000_000])),
    }


class _Heap:
    """Per-pid live and freed addresses, to draw realistic (and unrealistic) addresses."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.live: dict[int, list[int]] = {1: [], 2: [], 3: []}
        self.freed: dict[int, list[int]] = {1: [], 2: [], 3: []}

    def fresh(self, pid: int) -> int:
        if self.freed[pid] and self.rng.random() < 0.5:
            return self.freed[pid].pop()  # LIFO reuse
        return int(0x1000 + 16 * self.rng.integers(0, 300))

    def some_live(self, pid: int) -> int:
        live = self.live[pid]
        return live[int(self.rng.integers(len(live)))] if live else self.fresh(pid)

    def free_address(self, pid: int) -> int:
        q = self.rng.random()
        if q < 0.55:
            return self.some_live(pid)
        if q < 0.65 and self.freed[pid]:
            return self.freed[pid][-1]  # double free
        if q < 0.75:
            return int(0x90000 + 16 * self.rng.integers(0, 50))  # never allocated
        if q < 0.9:
            return self.some_live(pid) + int(self.rng.choice([8, 16, 48, 1024, 6000]))
        return self.fresh(pid) if q < 0.97 else 0

    def addresses(self, pid: int, kind: int) -> tuple[int, int]:
        """(address, old_address) of an event of this kind."""
        q = self.rng.random()
        if kind in (ALLOC, CALLOC):
            return (self.fresh(pid) if q < 0.9 else self.some_live(pid) if q < 0.97 else 0), 0
        if kind == FREE:
            return self.free_address(pid), 0
        if kind == REALLOC:
            old = self.some_live(pid) if q < 0.7 else (0 if q < 0.8 else self.fresh(pid))
            w = self.rng.random()
            return (old if (w < 0.3 and old) else (self.fresh(pid) if w < 0.85 else 0)), old
        return self.fresh(pid), 0

    def record(self, pid: int, kind: int, address: int, old: int) -> None:
        end = address if kind == FREE else old if kind == REALLOC else 0
        if end:
            if end in self.live[pid]:
                self.live[pid].remove(end)
            self.freed[pid].append(end)
        if kind in (ALLOC, CALLOC, REALLOC) and address:
            self.live[pid].append(address)
            if address in self.freed[pid]:
                self.freed[pid].remove(address)


def _next_ts(rng: np.random.Generator, ts: int) -> int:
    t = rng.random()
    if t < 0.05:
        return ts - int(rng.integers(1, 500))  # backwards (sometimes before the origin)
    if t < 0.07:
        return ts + int(rng.integers(1, 50)) * 100_000  # far ahead: width doublings
    return ts + int(rng.integers(0, 200))


def random_stream(rng: np.random.Generator, n: int, start_ts: int = 1000) -> list[np.ndarray]:
    """Events with reuse, double and interior frees, foreign domains, odd reallocs, time
    going backwards and jumping far ahead, several pids and tids."""
    out: dict[str, list[int]] = {c: [] for c in COLUMNS}
    heap = _Heap(rng)
    ts = start_ts
    for seq in range(n):
        pid = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
        r = rng.random()
        kind = (
            ALLOC
            if r < 0.3
            else CALLOC
            if r < 0.35
            else REALLOC
            if r < 0.47
            else FREE
            if r < 0.95
            else int(rng.choice([4, 9]))
        )
        size = int(
            rng.choice(
                [0, 1, 24, 48, 100, 256, 5000, 20000],
                p=[0.03, 0.07, 0.3, 0.2, 0.15, 0.1, 0.1, 0.05],
            )
        )
        address, old = heap.addresses(pid, kind)
        heap.record(pid, kind, address, old)
        ts = _next_ts(rng, ts)
        tid = int(rng.integers(1, 4)) if rng.random() < 0.97 else 1 << 40
        domain = int(rng.choice([0, 1, 2], p=[0.05, 0.1, 0.85]))
        for c, v in zip(
            COLUMNS,
            (pid, tid, seq, ts, kind, domain, address, old, size, int(rng.integers(1, 12))),
            strict=True,
        ):
            out[c].append(v)
    return [np.array(out[c], dtype=d) for c, d in zip(COLUMNS, DTYPES, strict=True)]


def feed_pieces(folds, stream: list[np.ndarray], rng: np.random.Generator) -> None:
    n = len(stream[0])
    cuts = np.sort(rng.integers(0, n + 1, int(rng.integers(1, 6))))
    bounds = [0, *cuts.tolist(), n]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        for f in folds:
            f.feed(*(c[lo:hi] for c in stream))


def configure(folds, rng: np.random.Generator, stream: list[np.ndarray]) -> None:
    addresses = stream[6][stream[6] != 0]
    for pid in (2, 3):
        if rng.random() < 0.5:
            sb = int(rng.choice([1, 100, 4096]))
            for f in folds:
                f.set_sampling(pid, sb)
    for _ in range(3):
        if len(addresses):
            a, ts = int(rng.choice(addresses)), int(rng.integers(0, 3000))
            for f in folds:
                f.watch(1, a, ts)


@pytest.mark.parametrize("seed", range(40))
def test_twins_agree_on_random_streams(seed):
    rng = np.random.default_rng(seed)
    params = random_params(rng)
    c, p = Fold(**params), PyFold(**params)
    stream = random_stream(rng, int(rng.integers(200, 2500)))
    configure([c, p], rng, stream)
    feed_pieces([c, p], stream, rng)
    configure([c, p], rng, stream)  # watches after the frees, sampling changed mid-way
    more = random_stream(rng, 300, start_ts=int(stream[3][-1]))
    feed_pieces([c, p], more, rng)
    assert_same(c.export(), p.export())
    assert set(c.export()) == set(TABLE_COLUMNS)


def test_twins_agree_on_negative_and_far_timestamps():
    rng = np.random.default_rng(99)
    stream = random_stream(rng, 800, start_ts=-5000)
    stream[3][400:] += 1 << 40
    params = {"timeline_buckets": 8, "site_slots": 2, "initial_width_ns": 1}
    c, p = Fold(**params), PyFold(**params)
    feed_pieces([c, p], stream, rng)
    a = c.export()
    assert_same(a, p.export())
    assert a["all"]["origin_ts_ns"][0] < 0 and a["processes"]["width_ns"].max() >= 1 << 37
    assert_same(Fold.restore(params, a).export(), a)
    assert_same(PyFold.restore(params, a).export(), a)


# -- restore ----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["C->C", "Py->C", "C->Py"])
@pytest.mark.parametrize("seed", range(6))
def test_restore_then_feed_equals_feeding_without_the_break(route, seed):
    rng = np.random.default_rng(1000 + seed)
    params = random_params(rng)
    stream = random_stream(rng, 1500)
    half = int(rng.integers(0, 1500))
    first = [c[:half] for c in stream]
    second = [c[half:] for c in stream]
    whole_c, whole_p = Fold(**params), PyFold(**params)
    source = (PyFold if route.startswith("Py") else Fold)(**params)
    configure([whole_c, whole_p, source], rng, stream)
    for f in (whole_c, whole_p, source):
        f.feed(*first)
    tables = source.export()
    target_cls = PyFold if route.endswith("Py") else Fold
    restored = target_cls.restore(FoldParams(**params).as_dict(), tables)
    assert_same(restored.export(), tables)
    # sampling of a pid without events is not in the tables (module docstring): set again
    for pid, sb in whole_p._sampling.items():
        if pid not in tables["processes"]["pid"]:
            restored.set_sampling(pid, sb)
    for f in (whole_c, whole_p, restored):
        f.feed(*second)
    assert_same(restored.export(), whole_p.export())
    assert_same(whole_c.export(), whole_p.export())


def test_restore_of_an_empty_fold_and_params_back():
    f = Fold(site_slots=8)
    assert f.params == FoldParams(site_slots=8)
    tables = f.export()
    assert all(len(v) == 0 for t, cs in tables.items() if t != "all" for v in cs.values())
    assert_same(Fold.restore(f.params.as_dict(), tables).export(), PyFold(site_slots=8).export())
    assert tables["sites"]["series"].shape == (0, 8)


# -- each rule by hand (both twins) -----------------------------------------------------------


@TWINS
def test_alloc_free_counts_lifetime_and_temporary(cls):
    t = fold(
        cls,
        [
            {"address": 0x100, "size": 40, "ts_ns": 1000},
            {"address": 0x200, "size": 60, "ts_ns": 1100, "tid": 2, "stack_id": 7},
            {"kind": FREE, "address": 0x100, "ts_ns": 1400, "tid": 3},
            {"kind": FREE, "address": 0x200, "ts_ns": 5000},
        ],
        temporary_ns=1000,
    )
    p = row(t, "processes", pid=1)
    assert (p["allocations"], p["bytes_allocated"], p["frees"], p["bytes_freed"]) == (
        2,
        100,
        2,
        100,
    )
    assert (p["live_blocks"], p["live_bytes"], p["peak_bytes"], p["peak_ts_ns"]) == (
        0,
        0,
        100,
        1100,
    )
    assert (p["temporary_count"], p["temporary_bytes"]) == (1, 40)  # 400 ns; 3900 ns is not
    assert (p["first_ts_ns"], p["last_ts_ns"], p["origin_ts_ns"]) == (1000, 5000, 1000)
    assert (p["first_alloc_ts_ns"], p["last_alloc_ts_ns"], p["events"]) == (1000, 1100, 4)
    # lifetimes 400 (bit_length 9) and 3900 (bit_length 12)
    assert t["lifetimes"]["bucket"].tolist() == [9, 12]
    assert t["lifetimes"]["bytes"].tolist() == [40, 60]
    # the free counts for the thread that allocated (1), not the freeing thread (3)
    assert row(t, "threads", tid=1)["frees"] == 1 and row(t, "threads", tid=2)["frees"] == 1
    assert t["threads"]["tid"].tolist() == [1, 2]
    b = row(t, "blocks", address=0x100)
    assert (b["state"], b["end_ts_ns"], b["end_tid"], b["end_kind"]) == (
        DEAD_REPEATABLE,
        1400,
        3,
        FREE,
    )
    assert t["sizes"]["size"].tolist() == [40, 60] and t["sizes"]["count"].tolist() == [1, 1]


@TWINS
def test_address_zero_other_kinds_and_realloc_to_zero(cls):
    t = fold(
        cls,
        [
            {"address": 0, "size": 10},  # ignored entirely
            {"address": 0x100, "size": 30},
            {"kind": 7, "address": 0x500, "ts_ns": 99},  # counted as an event only
            {"kind": REALLOC, "address": 0, "old_address": 0x100, "size": 0, "ts_ns": 200},
        ],
    )
    p = row(t, "processes", pid=1)
    assert (p["events"], p["allocations"], p["frees"], p["live_bytes"]) == (3, 1, 1, 0)
    assert (p["first_ts_ns"], p["last_ts_ns"]) == (10, 200)
    assert row(t, "blocks", address=0x100)["end_kind"] == REALLOC
    assert len(t["blocks"]["address"]) == 1


@TWINS
def test_reuse_of_a_live_address_is_not_a_free(cls):
    t = fold(
        cls,
        [
            {"address": 0x100, "size": 30, "stack_id": 1},
            {"address": 0x100, "size": 50, "stack_id": 2, "tid": 2},
        ],
    )
    p = row(t, "processes", pid=1)
    assert (p["reused"], p["reused_bytes"], p["frees"], p["live_blocks"], p["live_bytes"]) == (
        1,
        30,
        0,
        1,
        50,
    )
    assert row(t, "sites", stack_id=1)["reused"] == 1
    assert row(t, "sites", stack_id=1)["live_bytes"] == 0
    assert row(t, "threads", tid=1)["live_blocks"] == 0
    assert row(t, "blocks", address=0x100)["size"] == 50
    assert t["all"]["live_bytes"].tolist() == [50] and t["all"]["peak_bytes"].tolist() == [50]


@TWINS
def test_double_free_is_a_repeated_end_once_then_unmatched(cls):
    t = fold(
        cls,
        [
            {"address": 0x100, "size": 30, "ts_ns": 5, "stack_id": 4},
            {"kind": FREE, "address": 0x100, "ts_ns": 20, "tid": 2, "stack_id": 8},
            {"kind": FREE, "address": 0x100, "ts_ns": 30, "tid": 3, "stack_id": 9, "seq": 77},
            {"kind": FREE, "address": 0x100, "ts_ns": 40},
        ],
    )
    p = row(t, "processes", pid=1)
    assert (p["frees"], p["unmatched_frees"], p["repeated_ends"]) == (1, 2, 1)
    f = row(t, "findings", type=REPEATED_END)
    assert (f["ts_ns"], f["tid"], f["seq"], f["stack_id"], f["alloc_ts_ns"]) == (30, 3, 77, 9, 5)
    assert (f["alloc_stack_id"], f["size"], f["block_address"]) == (4, 30, 0x100)
    assert (f["prev_end_ts_ns"], f["prev_end_tid"], f["prev_end_stack_id"], f["prev_end_kind"]) == (
        20,
        2,
        8,
        FREE,
    )
    b = row(t, "blocks", address=0x100)
    assert (b["state"], b["end_ts_ns"]) == (DEAD, 30)  # the third free is not remembered


@TWINS
def test_unmatched_and_interior_frees(cls):
    t = fold(
        cls,
        [
            {"address": 0x1000, "size": 100, "ts_ns": 10},
            {"address": 0x8000, "size": 50000, "ts_ns": 11, "stack_id": 3},
            {"kind": FREE, "address": 0x1040, "ts_ns": 20},  # inside the first (probe)
            {"kind": FREE, "address": 0x8000 + 30000, "ts_ns": 21},  # inside the large one
            {"kind": FREE, "address": 0x1040, "ts_ns": 22, "domain": 1},  # other domain: none
            {"kind": FREE, "address": 0x5000, "ts_ns": 23},  # nothing there
            {"kind": REALLOC, "old_address": 0x1050, "address": 0x3000, "size": 8, "ts_ns": 24},
        ],
        interior_probe_bytes=256,
    )
    p = row(t, "processes", pid=1)
    assert (p["unmatched_frees"], p["interior_checked"], p["interior_frees"]) == (5, 4, 2)
    found = t["findings"]
    assert found["type"].tolist() == [INTERIOR_FREE, INTERIOR_FREE]
    assert found["block_address"].tolist() == [0x1000, 0x8000]
    assert found["size"].tolist() == [100, 50000] and found["alloc_stack_id"].tolist() == [1, 3]
    assert 0x1040 not in t["blocks"]["address"]  # no entry for unmatched addresses
    t = fold(
        cls,
        [{"address": 0x1000, "size": 100}]
        + [{"kind": FREE, "address": 0x1010 + 16 * i} for i in range(4)],
        max_interior_checks=3,
    )
    p = row(t, "processes", pid=1)
    assert (p["interior_checked"], p["interior_unchecked"], p["interior_frees"]) == (3, 1, 3)


@TWINS
def test_domain_mismatch_is_a_free_and_a_finding(cls):
    t = fold(
        cls,
        [
            {"address": 0x100, "size": 30, "domain": 2},
            {"kind": FREE, "address": 0x100, "domain": 0, "ts_ns": 50},
        ],
    )
    p = row(t, "processes", pid=1)
    assert (p["frees"], p["domain_mismatches"], p["live_bytes"]) == (1, 1, 0)
    f = row(t, "findings", type=DOMAIN_MISMATCH)
    assert (f["domain"], f["alloc_domain"], f["prev_end_ts_ns"], f["kind"]) == (0, 2, -1, FREE)


@TWINS
def test_reallocs_in_place_and_moving(cls):
    t = fold(
        cls,
        [
            {"address": 0x100, "size": 30},
            {"kind": REALLOC, "old_address": 0x100, "address": 0x100, "size": 60, "ts_ns": 50},
            {"kind": REALLOC, "old_address": 0x100, "address": 0x200, "size": 90, "ts_ns": 60},
        ],
    )
    p = row(t, "processes", pid=1)
    assert (p["allocations"], p["frees"], p["live_blocks"], p["live_bytes"]) == (3, 2, 1, 90)
    assert (p["reused"], p["peak_bytes"]) == (0, 90)
    assert row(t, "blocks", address=0x100)["state"] == DEAD_REPEATABLE
    assert row(t, "blocks", address=0x200)["kind"] == REALLOC


@TWINS
def test_oversized_blocks_kept_with_their_free(cls):
    t = fold(
        cls,
        [
            {"address": 0x100, "size": 5000, "ts_ns": 10},
            {"address": 0x9000, "size": 7000, "ts_ns": 20},
            {"address": 0x20000, "size": 9000, "ts_ns": 25},
            {"kind": FREE, "address": 0x100, "ts_ns": 30},
        ],
        oversized_bytes=5000,
        keep_findings=2,
    )
    assert row(t, "processes", pid=1)["oversized"] == 3
    assert t["oversized"]["address"].tolist() == [0x100, 0x9000]
    assert t["oversized"]["free_ts_ns"].tolist() == [30, -1]


@TWINS
def test_keep_findings_caps_each_type_per_process(cls):
    rows = [{"address": 0x100 * (i + 1), "size": 8, "domain": 2} for i in range(5)]
    rows += [{"kind": FREE, "address": 0x100 * (i + 1), "domain": 1} for i in range(5)]
    rows += [{"kind": FREE, "address": 0x100 * (i + 1), "pid": 2} for i in range(1)]
    t = fold(cls, rows, keep_findings=2)
    assert row(t, "processes", pid=1)["domain_mismatches"] == 5
    assert t["findings"]["type"].tolist() == [DOMAIN_MISMATCH, DOMAIN_MISMATCH]


@TWINS
def test_timeline_buckets_merge_when_the_width_doubles(cls):
    t = fold(
        cls,
        [
            {"address": 0x100, "size": 10, "ts_ns": 0},
            {"address": 0x200, "size": 20, "ts_ns": 12},
            {"kind": FREE, "address": 0x100, "ts_ns": 20},
            {"address": 0x300, "size": 40, "ts_ns": 70},  # bucket 8 of 4: width 8 -> 16 -> 32
        ],
        timeline_buckets=4,
        site_slots=2,
        initial_width_ns=8,
    )
    p = row(t, "processes", pid=1)
    assert p["width_ns"] == 32
    tl = t["timeline"]
    assert tl["bucket"].tolist() == [0, 2]
    assert tl["events"].tolist() == [3, 1] and tl["allocations"].tolist() == [2, 1]
    assert tl["frees"].tolist() == [1, 0] and tl["bytes_freed"].tolist() == [10, 0]
    assert tl["live_bytes"].tolist() == [20, 60] and tl["max_live_bytes"].tolist() == [30, 60]
    assert t["timeline_all"]["bucket"].tolist() == [0, 2]
    assert t["all"]["width_ns"].tolist() == [32]


@TWINS
def test_site_series_slots_and_their_halving(cls):
    # 8 buckets of 8 ns, 4 slots of 2 buckets: slot = ts // 16
    first = [
        {"address": 0x100, "size": 10, "ts_ns": 0},  # slot 0: 10
        {"address": 0x200, "size": 5, "ts_ns": 40},
    ]  # slot 2: 15 (slot 1 carries 10)
    params = {"timeline_buckets": 8, "site_slots": 4, "initial_width_ns": 8}
    s = row(fold(cls, first, **params), "sites", stack_id=1)
    assert s["series"] == [10, 10, 15, 15] and s["last_slot"] == 2
    # ts 100: width 16 (one doubling): slot 2 -> 1, and the change lands in slot 3
    s = row(
        fold(cls, first + [{"address": 0x300, "size": 1, "ts_ns": 100}], **params),
        "sites",
        stack_id=1,
    )
    assert s["series"] == [10, 15, 15, 16] and s["last_slot"] == 3
    # ts 1000: width 128 (four doublings, each halves): everything before is in slot 0
    t = fold(cls, first + [{"address": 0x300, "size": 1, "ts_ns": 1000}], **params)
    s = row(t, "sites", stack_id=1)
    assert row(t, "processes", pid=1)["width_ns"] == 128
    assert s["series"] == [15, 15, 15, 16] and s["last_slot"] == 3


@TWINS
def test_a_change_before_the_last_slot_goes_to_the_last_slot(cls):
    t = fold(
        cls,
        [
            {"address": 0x100, "size": 10, "ts_ns": 0},
            {"address": 0x200, "size": 5, "ts_ns": 56},  # slot 3
            {"kind": FREE, "address": 0x100, "ts_ns": 5},  # back in slot 0: applied to slot 3
        ],
        timeline_buckets=8,
        site_slots=4,
        initial_width_ns=8,
    )
    assert row(t, "sites", stack_id=1)["series"] == [10, 10, 10, 5]


@TWINS
def test_sites_remember_their_live_figures_at_the_peaks(cls):
    t = fold(
        cls,
        [
            {"address": 0x100, "size": 100, "stack_id": 1},
            {"address": 0x200, "size": 50, "stack_id": 2},  # peak 150: site 1 has 100
            {"kind": FREE, "address": 0x100},
            {"address": 0x300, "size": 10, "stack_id": 1},
            {"address": 0x400, "size": 30, "stack_id": 3, "pid": 2},  # all-process peak stays
        ],
    )
    s1, s2 = row(t, "sites", stack_id=1), row(t, "sites", stack_id=2)
    assert (s1["peak_blocks"], s1["peak_bytes"], s1["live_bytes"]) == (1, 100, 10)
    assert (s2["peak_blocks"], s2["peak_bytes"]) == (1, 50)
    assert (s1["all_peak_bytes"], s2["all_peak_bytes"]) == (100, 50)
    assert row(t, "sites", stack_id=3)["all_peak_bytes"] == 0
    assert t["all"]["peak_bytes"].tolist() == [150]


@TWINS
def test_sampled_process_weights(cls):
    f = cls()
    f.set_sampling(1, 1000)
    f.feed(
        *cols(
            [
                {"address": 0x100, "size": 300},
                {"address": 0x200, "size": 0},
                {"kind": FREE, "address": 0x100},
            ]
        )
    )
    t = f.export()
    p = row(t, "processes", pid=1)
    w300 = 1.0 / (1.0 - math.exp(-300.0 / 1000.0))
    w1 = 1.0 / (1.0 - math.exp(-1.0 / 1000.0))
    assert w300 == sample_weight(300, 1000)
    assert p["sample_bytes"] == 1000
    assert p["w_allocations"] == w300 + w1 and p["w_bytes_allocated"] == 300 * w300 + 0 * w1
    assert p["w_frees"] == w300 and p["w_bytes_freed"] == 300 * w300
    assert p["w_live_blocks"] == w300 + w1 - w300
    assert p["w_peak_bytes"] == weighted_bytes(300, 1000) == math.floor(300 * w300 + 0.5)
    assert p["w_live_rounded"] == 0
    assert t["all"]["w_peak_bytes"].tolist() == [weighted_bytes(300, 1000)]


@TWINS
def test_watched_addresses_record_their_frees(cls):
    f = cls()
    f.watch(1, 0x100, 0)
    f.feed(
        *cols(
            [
                {"address": 0x100, "size": 8, "ts_ns": 10},
                {"address": 0x200, "size": 8, "ts_ns": 11},
                {"kind": FREE, "address": 0x100, "ts_ns": 20},
                {"kind": FREE, "address": 0x200, "ts_ns": 30},
                {"kind": FREE, "address": 0x100, "ts_ns": 40},
            ]
        )
    )
    f.watch(1, 0x200, 25)  # its free (30) is at or after the watch: recorded at once
    f.watch(1, 0x200, 5)  # already watched: only the earliest ts is kept
    f.watch(1, 0x300, 0)
    t = f.export()
    assert [
        tuple(r)
        for r in zip(t["deaths"]["address"].tolist(), t["deaths"]["ts_ns"].tolist(), strict=True)
    ] == [(0x100, 20), (0x100, 40), (0x200, 30)]
    assert t["watched"]["address"].tolist() == [0x100, 0x200, 0x300]
    assert t["watched"]["ts_ns"].tolist() == [0, 5, 0]


def test_block_state_codes():
    t = fold(Fold, [{"address": 0x100, "size": 1}])
    assert t["blocks"]["state"].tolist() == [LIVE]


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"timeline_buckets": 3},
        {"site_slots": 2048},
        {"initial_width_ns": 0},
        {"interior_probe_bytes": 24},
    ],
)
def test_bad_params_raise_value_error(params):
    with pytest.raises(ValueError):
        Fold(**params)


def test_bad_calls_raise():
    with pytest.raises(TypeError):
        Fold(no_such_param=1)
    with pytest.raises(TypeError):
        Fold(1)
    f = Fold()
    with pytest.raises(ValueError):
        f.set_sampling(1, 0)
    good = cols([{"address": 16, "size": 1}] * 3)
    with pytest.raises(ValueError, match="lengths"):
        f.feed(*good[:-1], good[-1][:2])
    for i, dtype in ((0, "<u8"), (3, "<u8"), (4, "<u2"), (8, "<i8")):
        bad = list(good)
        bad[i] = good[i].astype(dtype)
        with pytest.raises(ValueError):
            f.feed(*bad)
    strided = list(good)
    strided[6] = np.zeros(6, "<u8")[::2]
    with pytest.raises(ValueError):
        f.feed(*strided)
    with pytest.raises(TypeError):
        f.feed(*good[:-1])
    f.feed(*good)
    assert f.export()["processes"]["events"].tolist() == [3]


def test_feed_accepts_other_buffers():
    f = Fold()
    c = cols([{"address": 16, "size": 1}])
    f.feed(*(memoryview(x.tobytes()).cast(x.dtype.char) for x in c))
    assert f.export()["processes"]["allocations"].tolist() == [1]


# -- bounded state ----------------------------------------------------------------------------


def test_a_million_events_over_a_fixed_live_set_do_not_grow_the_state():
    n, addresses = 1_000_000, 1000
    k = np.arange(n)
    pair = k // 2
    events = [
        np.full(n, 7, "<u4"),
        (1 + pair % 3).astype("<u8"),
        k.astype("<u8"),
        (k * 20).astype("<i8"),
        np.where(k % 2 == 0, ALLOC, FREE).astype("u1"),
        np.full(n, 2, "u1"),
        (0x10000 + (pair % addresses) * 32).astype("<u8"),
        np.zeros(n, "<u8"),
        np.where(k % 2 == 0, 16 + pair % 5, 0).astype("<u8"),
        (1 + pair % 50).astype("<u4"),
    ]
    # a fixed live set allocated first
    live = [
        np.full(addresses, 7, "<u4"),
        np.ones(addresses, "<u8"),
        np.arange(addresses, dtype="<u8"),
        np.zeros(addresses, "<i8"),
        np.zeros(addresses, "u1"),
        np.full(addresses, 2, "u1"),
        (0x900000 + np.arange(addresses) * 32).astype("<u8"),
        np.zeros(addresses, "<u8"),
        np.full(addresses, 64, "<u8"),
        np.full(addresses, 99, "<u4"),
    ]
    f = Fold()
    f.feed(*live)
    sizes_before = None
    for half in (slice(0, n // 2), slice(n // 2, n)):
        f.feed(*(c[half] for c in events))
        t = f.export()
        assert len(t["blocks"]["address"]) == 2 * addresses
        assert len(t["sites"]["stack_id"]) == 51 and len(t["threads"]["tid"]) == 3
        sizes_before = sizes_before or len(t["sizes"]["size"])
        assert len(t["sizes"]["size"]) == sizes_before == 6
        assert len(t["timeline"]["bucket"]) <= 1024
    p = row(t, "processes", pid=7)
    assert (p["events"], p["live_blocks"], p["live_bytes"]) == (
        n + addresses,
        addresses,
        64 * addresses,
    )


def test_restore_rejects_inconsistent_tables():
    f = Fold()
    f.feed(*cols([{"address": 0x100, "size": 5000}, {"address": 0x200, "size": 8}]))
    tables = f.export()
    orphan = {t: dict(c) for t, c in tables.items()}
    orphan["processes"] = {k: v[:0] for k, v in tables["processes"].items()}
    with pytest.raises(ValueError, match="pid 1"):
        Fold.restore({}, orphan)
    short = {t: dict(c) for t, c in tables.items()}
    short["blocks"] = dict(tables["blocks"], size=tables["blocks"]["size"][:1])
    with pytest.raises(ValueError, match="one length"):
        Fold.restore({}, short)
    with pytest.raises(ValueError, match="series"):
        Fold.restore({"site_slots": 16}, tables)
    with pytest.raises(KeyError):
        Fold.restore({}, {k: v for k, v in tables.items() if k != "blocks"})
    assert_same(Fold.restore({}, tables).export(), tables)


def test_feed_runs_without_the_gil_and_other_calls_meanwhile_fail():
    import threading

    n = 4_000_000
    k = np.arange(n)
    stream = [
        np.ones(n, "<u4"),
        np.ones(n, "<u8"),
        k.astype("<u8"),
        k.astype("<i8"),
        np.where(k % 2 == 0, ALLOC, FREE).astype("u1"),
        np.full(n, 2, "u1"),
        (0x1000 + (k // 2 % 64) * 16).astype("<u8"),
        np.zeros(n, "<u8"),
        np.full(n, 8, "<u8"),
        np.ones(n, "<u4"),
    ]
    f = Fold()
    worker = threading.Thread(target=f.feed, args=stream)
    busy = 0
    worker.start()
    while worker.is_alive():
        try:
            f.export()
        except RuntimeError as e:
            assert "busy" in str(e)
            busy += 1
    worker.join()
    assert busy > 0  # the main thread ran while feed was folding
    assert f.export()["processes"]["events"].tolist() == [n]


@pytest.mark.parametrize("twin", [Fold, PyFold], ids=["C", "Python"])
def test_export_of_named_tables_equals_those_of_the_whole_export(twin):
    fold = twin(initial_width_ns=1)
    fold.feed(*random_stream(np.random.default_rng(5), 500))
    whole = fold.export()
    for names in (
        ["processes", "all"],
        ["all"],
        ["sites", "processes"],
        ["sites"],
        ["all", "sites"],
        ["sites", "blocks"],
        ["blocks", "sites"],
        ["deaths"],
    ):
        part = fold.export(names)
        assert list(part) == names
        for name in names:
            for column in whole[name]:
                assert np.array_equal(part[name][column], whole[name][column])
    with pytest.raises(ValueError, match="unknown state tables"):
        fold.export(["processes", "nope"])
