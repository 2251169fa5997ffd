"""The batch envelope: round trip and rejection of malformed messages."""

import msgpack
import pytest

from memscope.protocol import wire


def _batch(**overrides):
    mem = [{"tid": 1, "n": 2, "enc": "cols1", "cols": {}}]
    thread = {"tid": [1], "ts_ns": [5], "event": ["start"], "native_id": [9], "name": ["a"]}
    rec = {"threads": thread}
    message = wire.encode_batch("host:1:2", 1, 0, mem, rec)
    if overrides:
        raw = msgpack.unpackb(message)
        raw.update(overrides)
        message = msgpack.packb(raw)
    return message


def test_round_trip_counts_events():
    envelope = wire.decode_envelope(_batch())
    assert (envelope.producer, envelope.pid, envelope.seq, envelope.n) == ("host:1:2", 1, 0, 3)


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"v": 99}, "wire version 99"),
        ({"n": 7}, "n=7"),
        ({"pid": 0}, "out of range"),
        ({"schema": "other"}, "schema"),
        ({"mem": "x"}, "'mem' has type str"),
    ],
)
def test_bad_envelopes_are_rejected_with_a_reason(overrides, reason):
    with pytest.raises(wire.WireError, match=reason):
        wire.decode_envelope(_batch(**overrides))


def test_random_bytes_are_rejected():
    with pytest.raises(wire.WireError):
        wire.decode_envelope(b"\xc1\x00garbage")


def _rec1_chunks():
    from memscope.producer.synthetic import memory_chunk
    from memscope.protocol.records import encode_rec1

    big = encode_rec1(7, memory_chunk(0, 0, 0, 20_000))  # data well over SPLIT_MIN_BYTES
    small = encode_rec1(8, memory_chunk(0, 0, 1, 10))
    assert len(big["data"]) >= wire.SPLIT_MIN_BYTES > len(small["data"])
    return [big, small]


def test_split_batches_carry_all_large_rec1_data_in_one_frame():
    big, small = _rec1_chunks()
    other = {**big, "tid": 9, "data": big["data"][::-1]}  # another large chunk, other bytes
    chunks = [big, small, other]
    frames = wire.encode_batch_frames("host:1:2", 1, 3, chunks, {})
    # one data frame, whatever the number of chunks (each frame is a GIL release); once one
    # chunk is large, the small ones go into it as well
    assert frames[1:] == [big["data"] + small["data"] + other["data"]]
    envelope = wire.decode_envelope(frames[0], [memoryview(f) for f in frames[1:]])
    assert [bytes(c["data"]) for c in envelope.mem] == [c["data"] for c in chunks]
    assert all("off" not in c and "len" not in c for c in envelope.mem)
    assert envelope.n == 40_010
    # the one-frame form (the spool's) is exactly what encode_batch packs
    assert wire.join_frames(frames) == wire.encode_batch("host:1:2", 1, 3, chunks, {})
    assert wire.encode_batch_frames("host:1:2", 1, 3, [small], {}) == [
        wire.encode_batch("host:1:2", 1, 3, [small], {})
    ]


def test_a_chunk_may_still_take_a_whole_frame():
    """The first form of a split batch (a frame per chunk, no slice) is still read."""
    big = _rec1_chunks()[0]
    message = _split_message([{**big, "data": 1}], 20_000)
    envelope = wire.decode_envelope(message, [memoryview(big["data"])])
    assert bytes(envelope.mem[0]["data"]) == big["data"]


def _split_message(mem, n):
    return msgpack.packb(
        {
            "v": wire.WIRE_VERSION,
            "schema": wire.SCHEMA_ID,
            "producer": "h:1:1",
            "pid": 1,
            "seq": 0,
            "n": n,
            "mem": mem,
            "rec": {},
        },
        use_bin_type=True,
    )


@pytest.mark.parametrize(
    "slices, reason",
    [
        ([(0, 10), (5, 10)], "does not start where the slices before it end"),
        ([(10, 10), (0, 10)], "does not start where the slices before it end"),
        ([(0, 10), (11, 10)], "does not start where the slices before it end"),
        ([(0, 1 << 40)], "runs past its end"),
        ([(0, -1)], "runs past its end"),
        ([(-5, 10)], "does not start where"),
        ([("0", 10)], "bad offset or length"),
        ([(True, 10)], "bad offset or length"),
        ([(0, None)], "bad offset or length"),
        ([(0, 10), None], "frame 1 is taken by two chunks"),
        ([None, (0, 10)], "does not start where"),
        ([(0, 10)], r"its chunks take 10 of its \d+ bytes"),  # the rest rides along unread
        ([(0, 0)], r"its chunks take 0 of its \d+ bytes"),
    ],
)
def test_bad_slices_of_a_frame_are_rejected_with_a_reason(slices, reason):
    """A hostile client's slices: overlapping, out of range, of the wrong type, mixed."""
    big = _rec1_chunks()[0]
    mem = []
    for piece in slices:
        chunk = {**big, "data": 1}
        if piece is not None:
            chunk["off"], chunk["len"] = piece
        mem.append(chunk)
    message = _split_message(mem, 20_000 * len(mem))
    with pytest.raises(wire.WireError, match=reason):
        wire.decode_envelope(message, [big["data"]])
    with pytest.raises(wire.WireError, match=reason):
        wire.join_frames([message, big["data"]])


@pytest.mark.parametrize(
    "refs, extra, reason",
    [
        ([2], 1, "takes frame 2 of a 2-frame message"),
        ([0], 1, "takes frame 0"),
        ([-1], 1, "takes frame -1"),
        ([1, 1], 1, "frame 1 is taken by two chunks"),
        ([1], 2, "frame 2 of 3 is taken by no chunk"),
        (["x"], 1, "frame 1 of 2 is taken by no chunk"),
        ([True], 1, "frame 1 of 2 is taken by no chunk"),
    ],
)
def test_bad_split_batches_are_rejected_with_a_reason(refs, extra, reason):
    big = _rec1_chunks()[0]
    mem = [{**big, "data": ref} for ref in refs]
    message = msgpack.packb(
        {
            "v": wire.WIRE_VERSION,
            "schema": wire.SCHEMA_ID,
            "producer": "h:1:1",
            "pid": 1,
            "seq": 0,
            "n": 20_000 * len(refs),
            "mem": mem,
            "rec": {},
        },
        use_bin_type=True,
    )
    with pytest.raises(wire.WireError, match=reason):
        wire.decode_envelope(message, [big["data"]] * extra)
    with pytest.raises(wire.WireError, match=reason):
        wire.join_frames([message] + [big["data"]] * extra)


def test_a_chunk_still_referencing_a_frame_is_rejected_as_having_no_data():
    from memscope.broker.decode import decode

    big = _rec1_chunks()[0]
    frames = wire.encode_batch_frames("host:1:2", 1, 3, [big], {})
    envelope = wire.decode_envelope(frames[0])  # the data frames were lost on the way
    with pytest.raises(wire.WireError, match="no 'data' bytes"):
        decode(envelope, keep_chunks=True)


def test_only_rec1_chunks_take_frames():
    """A cols1 chunk whose data names a frame takes nothing: the frame is left over."""
    big = _rec1_chunks()[0]
    cols = {"tid": 1, "n": 0, "enc": "cols1", "cols": {}, "data": 1}
    message = msgpack.packb(
        {
            "v": wire.WIRE_VERSION,
            "schema": wire.SCHEMA_ID,
            "producer": "h:1:1",
            "pid": 1,
            "seq": 0,
            "n": 0,
            "mem": [cols],
            "rec": {},
        },
        use_bin_type=True,
    )
    with pytest.raises(wire.WireError, match="frame 1 of 2 is taken by no chunk"):
        wire.decode_envelope(message, [big["data"]])


def _drained_like(chunks):
    """Chunks as the tracer drains them: slices of one bytes object, each with its "at"."""
    base = b"".join(c["data"] for c in chunks)
    view, at, out = memoryview(base), 0, []
    for chunk in chunks:
        size = len(chunk["data"])
        out.append({**chunk, "data": view[at : at + size], "at": at})
        at += size
    return base, out


def test_drained_chunks_lying_together_go_out_as_a_view_without_a_copy():
    big, small = _rec1_chunks()
    other = {**big, "tid": 9, "data": big["data"][::-1]}
    base, drained = _drained_like([small, big, other])
    frames = wire.encode_batch_frames("host:1:2", 1, 3, drained, {})
    data = frames[1]
    assert isinstance(data, memoryview) and data.obj is base  # a view of the drained buffer
    assert bytes(data) == small["data"] + big["data"] + other["data"] == base
    envelope = wire.decode_envelope(frames[0], [data])
    assert [bytes(c["data"]) for c in envelope.mem] == [small["data"], big["data"], other["data"]]
    assert all("at" not in c for c in msgpack.unpackb(frames[0])["mem"])


def test_small_drained_chunks_between_large_ones_go_in_the_view_too():
    big, small = _rec1_chunks()
    other = {**big, "tid": 9, "data": big["data"][::-1]}
    base, drained = _drained_like([big, small, other])  # a thread's last partial block between
    frames = wire.encode_batch_frames("host:1:2", 1, 3, drained, {})
    assert isinstance(frames[1], memoryview) and frames[1].obj is base
    envelope = wire.decode_envelope(frames[0], [frames[1]])
    assert [bytes(c["data"]) for c in envelope.mem] == [big["data"], small["data"], other["data"]]


def test_drained_chunks_of_two_drains_are_copied_together():
    big, small = _rec1_chunks()
    other = {**big, "tid": 9, "data": big["data"][::-1]}
    _, first = _drained_like([big, small])
    _, second = _drained_like([other])  # another drain's buffer
    frames = wire.encode_batch_frames("host:1:2", 1, 3, first + second, {})
    assert isinstance(frames[1], bytearray)
    assert bytes(frames[1]) == big["data"] + small["data"] + other["data"]
    envelope = wire.decode_envelope(frames[0], [frames[1]])
    assert [bytes(c["data"]) for c in envelope.mem] == [big["data"], small["data"], other["data"]]
    assert wire.join_frames(frames) == wire.encode_batch("host:1:2", 1, 3, [big, small, other], {})
