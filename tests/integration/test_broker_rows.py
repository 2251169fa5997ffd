"""Every producer row is checked against the log schema before it is written."""

from __future__ import annotations

import numpy as np
import pytest
import zmq

from memscope.analyzers.runner import run_all
from memscope.analyzers.views import connect
from memscope.broker import rowcheck, start_embedded
from memscope.broker.decode import decode
from memscope.eventlog.log import open_log
from memscope.producer.synthetic import memory_chunk
from memscope.protocol.records import encode_cols1
from memscope.protocol.wire import WireError, decode_envelope, encode_batch
from tests.broker_helpers import ipc_address

GOOD_PROCESS = {
    "ts_ns": [5],
    "event": ["start"],
    "ppid": [1],
    "host": ["h"],
    "producer": ["p:1:1"],
    "argv": [["prog.py"]],
    "mode": ["full"],
}


def _decoded(rec: dict, mem: list | None = None):
    return decode(decode_envelope(encode_batch("p:1:1", 7, 0, mem or [], rec)))


def test_a_variable_without_its_required_columns_is_rejected_with_the_reason():
    decoded = _decoded({"variables": {"name": ["v"]}, "processes": GOOD_PROCESS})
    assert decoded.rejected_rows == 1
    assert "variables" not in decoded.rare and decoded.rare["processes"].num_rows == 1
    (reason,) = decoded.row_problems
    assert reason.startswith("variables: 1 of 1 rows rejected")
    assert "no size" in reason and "no ts_ns" in reason and "no name" not in reason


def test_all_null_process_rows_and_unknown_events_are_rejected_good_rows_kept():
    rows = {"ts_ns": [None, 9, 10, 11], "event": [None, "start", "born", "exit"]}
    decoded = _decoded({"processes": rows})
    assert decoded.rejected_rows == 2
    assert decoded.rare["processes"].column("event").to_pylist() == ["start", "exit"]
    assert "1 with no ts_ns" in decoded.row_problems[0]
    assert "event not one of start/exit" in decoded.row_problems[0]


def test_out_of_range_domain_and_absurd_sizes_are_rejected():
    aggregates = {
        "tid": [1, 1],
        "ts_ns": [1, 2],
        "stack_id": [0, 0],
        "domain": [2, 9],
        "alloc_count": [1, 1],
        "alloc_bytes": [16, 16],
    }
    decoded = _decoded({"aggregates": aggregates})
    assert decoded.rejected_rows == 1 and "domain above 5" in decoded.row_problems[0]
    variables = {
        "tid": [1],
        "ts_ns": [1],
        "var_id": [1],
        "name": ["v"],
        "type_name": ["int"],
        "address": [16],
        "size": [1 << 63],
    }
    decoded = _decoded({"variables": variables})
    assert decoded.rejected_rows == 1 and "size of 2**63 or more" in decoded.row_problems[0]


def test_overlong_text_is_rejected_including_inside_lists():
    long = "x" * (rowcheck.MAX_LONG_TEXT + 1)
    rows = dict(
        GOOD_PROCESS,
        ts_ns=[5, 6],
        event=["start", "start"],
        argv=[["a"], ["a", long]],
        ppid=[1, 1],
        host=["h", "h"],
        producer=["p", "p"],
        mode=["full", "full"],
    )
    decoded = _decoded({"processes": rows})
    assert decoded.rejected_rows == 1 and "argv longer than" in decoded.row_problems[0]


@pytest.mark.parametrize("column,value", [("kind", 7), ("domain", 6)])
def test_memory_events_of_unknown_kind_or_domain_reject_the_batch(column, value):
    columns = memory_chunk(1, 1, 0, 8)
    columns[column] = np.full(8, value, dtype=np.uint8)
    envelope = decode_envelope(encode_batch("p:1:1", 7, 0, [encode_cols1(1, columns)], {}))
    for keep_chunks in (True, False):
        with pytest.raises(WireError, match=f"{column} {value} is unknown"):
            decode(envelope, keep_chunks=keep_chunks)


def test_poisoned_rows_are_counted_and_analyze_still_works(tmp_path):
    log_dir = tmp_path / "run" / "events"
    broker = start_embedded(log_dir, bind=ipc_address(tmp_path))
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.linger = 5000
    push.connect(broker.address)
    try:
        good = encode_cols1(1, memory_chunk(3, 3, 0, 64))
        push.send(
            encode_batch(
                "good:1:1", 11, 0, [good], {"processes": dict(GOOD_PROCESS, producer=["good:1:1"])}
            )
        )
        push.send(
            encode_batch(
                "evil:2:2",
                12,
                0,
                [],
                {
                    "variables": {"name": ["v"]},
                    "processes": {"ts_ns": [None], "event": [None]},
                    "aggregates": {
                        "tid": [1],
                        "ts_ns": [1],
                        "stack_id": [0],
                        "domain": [200],
                        "alloc_count": [1],
                        "alloc_bytes": [1],
                    },
                },
            )
        )
        with broker.client() as client:
            client.wait("good:1:1", 0, timeout_s=20)
            client.wait("evil:2:2", 0, timeout_s=20)
            counters = {p["producer"]: p for p in client.ingest()}
            client.flush()
    finally:
        push.close()
        context.term()
        broker.stop()
    assert counters["evil:2:2"]["rejected_rows"] == 3
    assert "rows rejected" in counters["evil:2:2"]["problem"]
    assert counters["good:1:1"]["rejected_rows"] == 0
    log = open_log(log_dir)
    assert log.table("variables").num_rows == 0 and log.table("aggregates").num_rows == 0
    con = connect(log)
    try:
        row = con.execute(
            "SELECT rejected_rows, problem FROM ingest WHERE producer = 'evil:2:2'"
        ).fetchone()
    finally:
        con.close()
    assert row[0] == 3 and "rows rejected" in row[1]
    written = run_all(log_dir, tmp_path / "out")
    assert len(written) == 6
