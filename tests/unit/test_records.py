import numpy as np
import pytest

from memscope.protocol import records
from memscope.protocol.wire import MEMORY_COLUMNS, WireError


def _columns(n):
    return {name: np.arange(n).astype(dt) for name, dt in MEMORY_COLUMNS.items()}


def test_cols1_round_trip():
    chunk = records.encode_cols1(7, _columns(5))
    decoded = records.decode_chunk(chunk)
    assert chunk["n"] == 5 and chunk["tid"] == 7
    assert decoded["address"].tolist() == [0, 1, 2, 3, 4]
    assert {k: v.dtype.str for k, v in decoded.items()} == {
        k: np.dtype(v).str for k, v in MEMORY_COLUMNS.items()
    }


def test_cols1_length_mismatch_is_rejected():
    chunk = records.encode_cols1(7, _columns(5))
    chunk["n"] = 6
    with pytest.raises(WireError, match="expected 6"):
        records.decode_chunk(chunk)


def test_unknown_encoding_is_rejected():
    with pytest.raises(WireError, match="unknown memory chunk encoding"):
        records.decode_chunk({"tid": 1, "n": 0, "enc": "zip9"})
