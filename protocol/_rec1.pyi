"""The rec1 record codec (``protocol/rec1.h``, ``rec1_codec.c``)."""

from typing import Any

KIND_ALLOC: int
KIND_CALLOC: int
KIND_REALLOC: int
KIND_FREE: int
DOMAIN_RAW: int
DOMAIN_MEM: int
DOMAIN_OBJ: int
DOMAIN_NUMPY: int
DOMAIN_NATIVE: int
DOMAIN_MMAP: int
DOMAIN_MAX: int
REC1_HEADER: int

def decode_rec1(
    data: bytes, n: int
) -> tuple[bytearray, bytearray, bytearray, bytearray, bytearray, bytearray, bytearray]: ...
def validate_rec1(data: bytes | bytearray | memoryview, n: int) -> None: ...
def decode_rec1_into(
    data: bytes | memoryview,
    n: int,
    ts_ns: Any,
    kind: Any,
    domain: Any,
    address: Any,
    old_address: Any,
    size: Any,
    stack_id: Any,
    row: int,
) -> int: ...
def encode_rec1(
    ts_ns: Any, kind: Any, domain: Any, address: Any, old_address: Any, size: Any, stack_id: Any
) -> bytes: ...
