"""The batch envelope: round trip and rejection of malformed messages."""

import msgpack
import pytest

from memscope.producer import wire


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
