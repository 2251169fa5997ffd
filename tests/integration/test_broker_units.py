"""Small units of the broker: sequence sets, the commit journal, envelope decoding."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from memscope.broker.decode import decode
from memscope.broker.ingest import SeqSet
from memscope.eventlog import journal
from memscope.producer.synthetic import memory_chunk
from memscope.protocol.records import SEQ_SHIFT, encode_cols1
from memscope.protocol.wire import WireError, decode_envelope, encode_batch


def test_seqset_counts_gaps_and_duplicates():
    seqs = SeqSet()
    assert [seqs.add(v) for v in (0, 1, 2, 5, 7)] == [True] * 5
    assert seqs.add(5) is False and 6 not in seqs and 5 in seqs
    assert seqs.gaps() == 3 and seqs.contiguous() == 2 and seqs.highest() == 7
    for value in (4, 3, 6):
        seqs.add(value)
    assert seqs.ranges() == [[0, 7]] and seqs.gaps() == 0 and seqs.count() == 8
    assert SeqSet([[5, 9], [0, 2], [3, 4]]).ranges() == [[0, 9]]


def test_journal_replays_after_an_offset_and_ignores_a_torn_tail(tmp_path):
    j = journal.Journal(tmp_path)
    j.commit([("p", 1, 0, 10)], {"memory/memory-000000.arrow": 100})
    middle = j.offset()
    j.commit([("p", 1, 1, 10), ("q", 2, 0, 5)], {"memory/memory-000000.arrow": 200})
    j.close()
    with open(j.path, "ab") as handle:
        handle.write(msgpack.packb({"b": [["p", 1, 2, 10]], "o": {}})[:-3])  # torn
    replayed = journal.replay(tmp_path, j.name, middle)
    assert replayed.batches == [("p", 1, 1, 10), ("q", 2, 0, 5)]
    assert replayed.offsets == {"memory/memory-000000.arrow": 200}
    assert journal.replay(tmp_path, j.name, 0).batches[0] == ("p", 1, 0, 10)


def test_decode_builds_columns_without_python_loops_and_orders_seq():
    chunks = [
        encode_cols1(11, memory_chunk(0, 0, 0, 6)),
        encode_cols1(12, memory_chunk(0, 0, 1, 4)),
    ]
    rare = {"threads": {"tid": [11], "ts_ns": [5], "event": ["start"], "name": ["main"]}}
    decoded = decode(decode_envelope(encode_batch("h:1:1", 77, 3, chunks, rare)))
    memory = decoded.tables["memory"]
    assert memory.num_rows == 10
    assert memory.column("tid").to_pylist() == [11] * 6 + [12] * 4
    assert set(memory.column("pid").to_pylist()) == {77}
    seq = memory.column("seq").to_numpy()
    assert (seq >> SEQ_SHIFT == 3).all()
    assert (seq & ((1 << SEQ_SHIFT) - 1)).tolist() == list(range(10))
    np.testing.assert_array_equal(
        memory.column("size").to_numpy()[:6], memory_chunk(0, 0, 0, 6)["size"]
    )
    threads = decoded.tables["threads"]
    assert threads.column("pid").to_pylist() == [77]
    assert threads.column("native_id").null_count == 1  # omitted columns are null


def test_decode_rejects_bad_rare_rows_with_the_reason():
    message = encode_batch("h:1:1", 77, 0, [], {"frames": {"lineno": ["x"]}})
    with pytest.raises(WireError, match="column 'lineno'"):
        decode(decode_envelope(message))


class _Frame:
    def __init__(self, data: bytes) -> None:
        self.buffer = memoryview(data)


def _broker(tmp_path):
    from memscope.broker.server import Broker

    return Broker(tmp_path / "events", f"ipc://{tmp_path}/b.sock")


def test_ingest_counts_memory_events_and_all_rows_apart_and_keeps_them_across_a_crash(tmp_path):
    from memscope.eventlog.log import open_log

    rare = {
        "threads": {"tid": [11, 12], "ts_ns": [5, 6], "event": ["start"] * 2, "name": ["a", "b"]}
    }
    broker = _broker(tmp_path)
    broker._on_message(
        [_Frame(encode_batch("h:1:1", 77, 0, [encode_cols1(11, memory_chunk(0, 0, 0, 100))], rare))]
    )
    broker._on_message(
        [_Frame(encode_batch("h:1:1", 77, 1, [encode_cols1(11, memory_chunk(0, 0, 1, 50))], {}))]
    )
    broker.commit()
    [counters] = [c.counters() for c in broker.ingest.producers.values()]
    assert (counters["events"], counters["rows"], counters["batches"]) == (150, 152, 2)
    # A crash after the commit: the restarted broker rebuilds both counters from the journal.
    broker.writer._write_manifest()
    broker._close_sockets()
    restarted = _broker(tmp_path)
    [state] = restarted.ingest.producers.values()
    assert (state.events, state.rows, state.batches) == (150, 152, 2)
    restarted.close()
    [row] = open_log(tmp_path / "events").table("ingest").to_pylist()
    assert (row["events"], row["rows"]) == (150, 152)


def test_assembler_coalesces_small_parts_and_passes_big_ones_through():
    from memscope.broker.decode import MemoryAssembler

    def part(seq, sizes, tid=11):
        chunks = [
            encode_cols1(tid + i, memory_chunk(0, 0, seq * 10 + i, n)) for i, n in enumerate(sizes)
        ]
        return decode(decode_envelope(encode_batch("h:1:1", 77, seq, chunks, {}))).memory

    parts = [part(0, [30, 20]), part(1, [40]), part(2, [200]), part(3, [10])]
    assembler = MemoryAssembler(reuse=True, target=100)
    seen = []
    for batch in assembler.batches(parts):
        seen.append(
            (
                batch.num_rows,
                batch.column("seq").to_numpy().copy(),
                batch.column("tid").to_numpy().copy(),
                batch.column("size").to_numpy().copy(),
            )
        )
    assert [rows for rows, *_ in seen] == [90, 200, 10]
    seq = np.concatenate([s for _, s, _, _ in seen])
    assert (seq >> SEQ_SHIFT).tolist() == [0] * 50 + [1] * 40 + [2] * 200 + [3] * 10
    assert (seq & 0xFFFFFF).tolist() == [*range(50), *range(40), *range(200), *range(10)]
    assert seen[0][2].tolist() == [11] * 30 + [12] * 20 + [11] * 40
    expected = [
        memory_chunk(0, 0, n, k)["size"]
        for n, k in ((0, 30), (1, 20), (10, 40), (20, 200), (30, 10))
    ]
    np.testing.assert_array_equal(np.concatenate([s for *_, s in seen]), np.concatenate(expected))


@pytest.mark.parametrize("entropy", ["real", "high"])
def test_synthetic_chunks_free_each_address_once_after_its_allocation(entropy):
    cols = memory_chunk(3, 1, 2, 20_000, entropy=entropy)
    assert (np.diff(cols["ts_ns"]) > 0).all() and (cols["address"] % 16 == 0).all()
    live: set[int] = set()
    for kind, address in zip(cols["kind"].tolist(), cols["address"].tolist(), strict=True):
        if kind == 0:
            assert address not in live
            live.add(address)
        else:
            live.remove(address)  # KeyError: a free before (or without) its allocation
    assert not live  # half the events are allocations, half their frees
    if entropy == "real":  # realistic: frees interleaved, small sizes, few hundred stacks
        assert cols["kind"][:100].tolist().count(3) > 20
        assert np.median(cols["size"][cols["kind"] == 0]) <= 64
        assert 100 < len(np.unique(cols["stack_id"])) <= 301
        assert np.median(np.diff(cols["ts_ns"])) < 100
    with pytest.raises(ValueError, match="entropy 'medium'"):
        memory_chunk(0, 0, 0, 10, entropy="medium")
