"""rec1: the C decoder and its pure-Python twin agree on valid, random and corrupted input."""

import random
import struct

import numpy as np
import pytest

from memscope.protocol import records
from memscope.protocol.wire import WireError

M64 = (1 << 64) - 1


def _varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zz(delta, bits=64):
    delta &= (1 << bits) - 1
    signed = delta - (1 << bits) if delta >> (bits - 1) else delta
    return ((signed << 1) ^ (signed >> (bits - 1))) & ((1 << bits) - 1)


def encode_rec1(rows, clock=(1000, 5_000_000, 1 << 32), base=(0, 0, 0), same_tick=True):
    """A test-side rec1 encoder: rows of (tick, kind, domain, addr, old, size, stack).

    ``same_tick``: an unchanged tick is flagged in the header (as the tracer writes it), else
    written as a zero delta (also valid).
    """
    tick, addr, stack = base
    body = bytearray()
    for r_tick, kind, domain, r_addr, old, size, r_stack in rows:
        hdr = kind | (domain << 2)
        rec = b""
        if same_tick and r_tick == tick:
            hdr |= 0x40
        else:
            rec += _varint(_zz(r_tick - tick))
        rec += _varint(_zz(r_addr - addr))
        tick, addr = r_tick, r_addr
        if kind != 3:
            rec += _varint(size)
        if kind == 2:
            rec += _varint(_zz(old - r_addr))
        if kind != 3 and r_stack != stack:
            hdr |= 0x20
            rec += _varint(_zz(r_stack - stack, 32))
            stack = r_stack
        body += bytes([hdr]) + rec
    header = struct.pack("<IIQqQQQII", records.REC1_MAGIC, len(rows), *clock, *base, 0)
    return {"tid": 1, "n": len(rows), "enc": "rec1", "data": header + bytes(body)}


def _random_rows(rng, n):
    rows, tick, addr = [], rng.randrange(1 << 40), rng.randrange(1 << 47)
    for _ in range(n):
        tick = (tick + rng.choice([0, 1, 37, 2_500, -5, 1 << 33])) & M64
        addr = (addr + rng.choice([16, -16, 4096, -(1 << 20), 1 << 40])) & M64
        kind = rng.randrange(4)
        old = rng.randrange(1 << 64) if kind == 2 else 0
        size = 0 if kind == 3 else rng.choice([1, 24, 1000, 1 << 31, M64])
        stack = 0 if kind == 3 else rng.choice([0, 1, 2, 77, (1 << 32) - 1])
        rows.append((tick, kind, rng.randrange(6), addr, old, size, stack))
    return rows


def _same(chunk):
    """Both decoders give the same arrays, or both reject with the same message."""
    outcomes = []
    for decode in (records.decode_chunk, records.decode_chunk_py):
        try:
            outcomes.append(decode(chunk))
        except WireError as exc:
            outcomes.append(str(exc))
    c_out, py_out = outcomes
    if isinstance(c_out, str) or isinstance(py_out, str):
        assert c_out == py_out
        return c_out
    assert c_out.keys() == py_out.keys()
    for name in c_out:
        assert c_out[name].dtype == py_out[name].dtype, name
        assert np.array_equal(c_out[name], py_out[name]), name
    return c_out


def test_round_trip_of_known_rows():
    rows = [
        (1000, 0, 2, 0x7F0000001000, 0, 48, 5),
        (1003, 2, 1, 0x7F0000002000, 0x7F0000001000, 96, 5),
        (1010, 3, 1, 0x7F0000002000, 0, 0, 0),
        (1011, 1, 0, 0x10, 0, 4096, 9),
    ]
    out = _same(encode_rec1(rows, clock=(1000, 5_000_000, 3 << 31)))
    assert out["ts_ns"].tolist() == [5_000_000, 5_000_004, 5_000_015, 5_000_016]
    assert out["kind"].tolist() == [0, 2, 3, 1]
    assert out["address"].tolist() == [r[3] for r in rows]
    assert out["old_address"].tolist() == [0, 0x7F0000001000, 0, 0]
    assert out["size"].tolist() == [48, 96, 0, 4096]
    assert out["stack_id"].tolist() == [5, 5, 0, 9]


@pytest.mark.parametrize("seed", range(20))
def test_random_streams_agree(seed):
    rng = random.Random(seed)
    rows = _random_rows(rng, rng.randrange(0, 300))
    clock = (rng.randrange(1 << 64), rng.randrange(-(1 << 40), 1 << 40), rng.randrange(1 << 34))
    base = (rng.randrange(1 << 64), rng.randrange(1 << 64), rng.randrange(1 << 32))
    out = _same(encode_rec1(rows, clock=clock, base=base, same_tick=seed % 2 == 0))
    assert out["address"].tolist() == [r[3] for r in rows]
    assert out["size"].tolist() == [r[5] for r in rows]
    assert out["stack_id"].tolist() == [r[6] for r in rows]


@pytest.mark.parametrize("seed", range(30))
def test_corrupted_and_truncated_input_is_rejected_identically(seed):
    rng = random.Random(1000 + seed)
    chunk = encode_rec1(_random_rows(rng, 50))
    data = bytearray(chunk["data"])
    for _ in range(rng.randrange(1, 6)):
        pos = rng.randrange(len(data))
        data[pos] = rng.randrange(256)
    cut = rng.choice([len(data), rng.randrange(len(data) + 1)])
    _same({**chunk, "data": bytes(data[:cut])})
    _same({**chunk, "data": bytes(data[:cut]), "n": rng.randrange(0, 80)})


def test_specific_faults_name_the_problem():
    chunk = encode_rec1(_random_rows(random.Random(7), 10))
    with pytest.raises(WireError, match="shorter than its"):
        records.decode_chunk({**chunk, "data": chunk["data"][:20]})
    with pytest.raises(WireError, match="trailing bytes"):
        records.decode_chunk({**chunk, "data": chunk["data"] + b"\0"})
    with pytest.raises(WireError, match="header counts"):
        records.decode_chunk({**chunk, "n": 11})
    with pytest.raises(WireError, match="claims"):
        bad = bytearray(chunk["data"])
        bad[4:8] = struct.pack("<I", 1 << 30)
        records.decode_chunk({**chunk, "data": bytes(bad), "n": 1 << 30})
    with pytest.raises(WireError, match="no 'data'"):
        records.decode_chunk({"tid": 1, "n": 0, "enc": "rec1"})
    overlong = struct.pack("<IIQqQQQII", records.REC1_MAGIC, 1, 0, 0, 0, 0, 0, 0, 0)
    overlong += b"\x00" + b"\xff" * 10 + b"\x01\x00"
    with pytest.raises(WireError, match="bad tick varint"):
        records.decode_chunk({"tid": 1, "n": 1, "enc": "rec1", "data": overlong})


def test_random_bytes_never_crash():
    rng = random.Random(99)
    for _ in range(300):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
        header = struct.pack(
            "<IIQqQQQII", records.REC1_MAGIC, rng.randrange(0, 40), 0, 0, 1 << 32, 0, 0, 0, 0
        )
        _same(
            {
                "tid": 1,
                "n": struct.unpack_from("<I", header, 4)[0],
                "enc": "rec1",
                "data": header + body,
            }
        )


def test_c_decoder_survives_many_mutations():
    rng = random.Random(4242)
    base = encode_rec1(_random_rows(rng, 200))
    data = base["data"]
    rejected = 0
    for _ in range(5000):
        mutated = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(records.REC1_HEADER, len(mutated))] = rng.randrange(256)
        cut = rng.randrange(records.REC1_HEADER, len(mutated) + 1)
        try:
            out = records.decode_chunk({**base, "data": bytes(mutated[:cut])})
        except WireError:
            rejected += 1
        else:
            assert len(out["kind"]) == base["n"]
    assert rejected > 0
