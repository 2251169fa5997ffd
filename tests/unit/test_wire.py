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


def test_split_batches_carry_large_rec1_data_in_frames_of_their_own():
    chunks = _rec1_chunks()
    frames = wire.encode_batch_frames("host:1:2", 1, 3, chunks, {})
    assert frames[1:] == [chunks[0]["data"]]  # the very bytes object: not copied
    assert frames[1] is chunks[0]["data"]
    envelope = wire.decode_envelope(frames[0], [memoryview(f) for f in frames[1:]])
    assert bytes(envelope.mem[0]["data"]) == chunks[0]["data"]
    assert envelope.mem[1]["data"] == chunks[1]["data"]
    assert envelope.n == 20_010
    # the one-frame form (the spool's) is exactly what encode_batch packs
    assert wire.join_frames(frames) == wire.encode_batch("host:1:2", 1, 3, chunks, {})
    assert wire.encode_batch_frames("host:1:2", 1, 3, chunks[1:], {}) == [
        wire.encode_batch("host:1:2", 1, 3, chunks[1:], {})
    ]


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
