"""ctypes FFI: calls into the C library, ctypes buffers, and native memory.

    memscope run examples/ctypes_ffi.py             # ctypes calls and buffers
    memscope run --native examples/ctypes_ffi.py    # plus libc malloc/free made through ctypes
    python examples/ctypes_ffi.py [--size 10]

The counterpart of memscope-rs's unsafe/FFI tracking. CPython's audit events for ctypes
(loading a library, looking up and calling a function, creating buffers) become ``ffi``
rows, and the unsafe-FFI report lists them with their Python stacks. ctypes buffers are
allocated through CPython's allocator and are traced like any object. Memory that C code
takes from ``malloc`` directly is traced only in native mode (``--native``): there, the block
this example never frees shows up as a native leak.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from _example import finish, parse_args, print_stats

import memscope


def load_libc() -> ctypes.CDLL:
    """The C library, with the prototypes this example calls."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.restype = None
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.restype = ctypes.c_void_p
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    libc.strlen.restype = ctypes.c_size_t
    libc.strlen.argtypes = [ctypes.c_char_p]
    libc.qsort.restype = None
    return libc


def sort_with_qsort(libc: ctypes.CDLL, values: list[int]) -> list[int]:
    """Sort ints with libc's qsort and a Python comparison callback."""
    array_type = ctypes.c_int * len(values)
    c_array = array_type(*values)  # a ctypes buffer: traced as a Python allocation
    memscope.track_var(c_array)

    compare_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)
    )

    def compare(a: ctypes._Pointer, b: ctypes._Pointer) -> int:  # type: ignore[type-arg]
        return int(a[0] > b[0]) - int(a[0] < b[0])

    libc.qsort(c_array, len(values), ctypes.sizeof(ctypes.c_int), compare_type(compare))
    return list(c_array)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    memscope.init()
    libc = load_libc()

    # A C string buffer, measured by C code.
    c_buffer = ctypes.create_string_buffer(b"memscope " * 100 * args.size)
    memscope.track_var(c_buffer)
    print(f"strlen(c_buffer) = {libc.strlen(c_buffer)}")

    # Native blocks from libc's malloc: one freed, one deliberately leaked.
    block_size = 256 * 1024 * args.size
    freed_block = libc.malloc(block_size)
    libc.memset(freed_block, 0, block_size)
    libc.free(freed_block)
    leaked_block = libc.malloc(block_size // 4)  # never freed: a native leak
    libc.memset(leaked_block, 1, block_size // 4)
    print(
        f"malloc'd {block_size:,} bytes (freed) and {block_size // 4:,} bytes (leaked) "
        f"at {leaked_block:#x}"
    )

    values = [(i * 7919) % 1000 for i in range(200 * args.size)]
    ordered = sort_with_qsort(libc, values)
    assert ordered == sorted(values)
    print(f"qsort sorted {len(ordered)} ints through a Python callback")

    print_stats("FFI example memory usage")
    finish("ffi", args)


if __name__ == "__main__":
    main()
