"""Native mode: trace what C code asks libc for (malloc & co., mmap/munmap), per process.

How it works (details in ``producer/core/preload/ms_preload.c`` and
``producer/core/tr_native_mode.c``):

* ``memscope run --native`` starts the program with ``LD_PRELOAD`` naming memscope's allocator
  shim (:func:`library_path`) and ``MEMSCOPE_NATIVE=1``. The shim interposes malloc, calloc,
  realloc, free, posix_memalign, aligned_alloc, memalign, valloc, pvalloc, mmap and munmap
  (and dlsym, so that ``ctypes.CDLL("libc.so.6").malloc`` is caught too) in the program and in
  every child it starts, Python or not; a child that is not Python just runs with the shim
  forwarding its calls.
* When ``memscope.init()`` runs with ``native=True`` (``MEMSCOPE_NATIVE=1``), the capture
  connects to the shim (:func:`attach`). From then on, each intercepted call that is not made
  on behalf of a CPython allocator hook becomes an event in domain ``native`` (heap) or
  ``mmap``, with the Python stack when the calling thread holds the GIL, plus one native
  frame: the caller's library and symbol (``frames`` rows with ``lineno`` 0 and the library
  path as ``filename``).
* No double counting: malloc calls made by pymalloc, the RAW domain or numpy's data handler
  on behalf of a PyMem/numpy call are attributed once, to that domain (the tracer's
  reentrancy guard is up while those hooks run).
* The shim keeps the set of live heap blocks: a free (or realloc) of an address that is not
  live is NOT passed to libc -- the process survives a double free -- and is reported as an
  ``ffi`` row ``native.double_free``, ``native.invalid_free`` or ``native.invalid_realloc``.

Approximations: ``munmap`` is recorded as the end of the mapping that starts at its address
(a partial unmap ends it whole; a ``MAP_FIXED`` mapping over another one does not end the
older one); a thread that never ran Python code has no Python stack (its events keep their
native frame).

``init(native=True)`` in a process that was **not** started with the shim uses *late mode*:
the shim is loaded then (``dlopen``) and the global offset tables of every loaded library
(and of each library loaded later: ``dlopen`` itself is hooked) are patched to call its hooks.
What late mode cannot do, and why the launch-time preload is the default:

* blocks allocated before ``init`` are unknown to the shim, so a free of an unknown address is
  passed on (only double frees of blocks freed after ``init`` are blocked and reported);
* function pointers taken before ``init`` (a ctypes function looked up earlier, a library
  that saved ``&malloc``) still reach libc directly;
* ``dlopen``'s caller-relative search path (``$ORIGIN``, the caller's RUNPATH) sees the shim
  as the caller; ld.so's own allocations are never seen.

To get the full mode for a program that calls ``memscope.init(native=True)`` itself, start
it as ``LD_PRELOAD=$(python -m memscope.producer.native_mode --library) python prog.py``.
"""

from __future__ import annotations

import importlib.machinery
import os
from collections.abc import Mapping

from memscope.producer import _tracer

TYPE_CHECKING = False  # not typing's (see capture)
if TYPE_CHECKING:  # pathlib and argparse are imported where used: capture imports this module,
    # and every object it imports costs each full collection of the traced program
    from pathlib import Path

#: The shim's extension-module name (it is never imported: it has no PyInit).
LIBRARY_STEM = "_memscope_preload"
#: The environment variable that turns native mode on (a Settings key).
NATIVE_ENV = "MEMSCOPE_NATIVE"


def library_path() -> Path:
    """The preloadable shim shipped with this memscope.

    Raises:
        FileNotFoundError: this build has no shim (it was built without its C sources).
    """
    from pathlib import Path

    here = Path(__file__).resolve().parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"{LIBRARY_STEM}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"memscope's allocator shim ({LIBRARY_STEM}*.so) is not in {here}")


def preload_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` plus ``LD_PRELOAD`` (shim first, other preloads kept) and ``MEMSCOPE_NATIVE=1``."""
    out = dict(env)
    shim = str(library_path())
    others = [p for p in out.get("LD_PRELOAD", "").replace(":", " ").split() if p != shim]
    out["LD_PRELOAD"] = " ".join([shim, *others])
    out[NATIVE_ENV] = "1"
    return out


def is_preloaded() -> bool:
    """Whether the shim is loaded in this process (so :func:`attach` can work)."""
    return _tracer.native_stats() is not None


def attach(late: bool = True) -> None:
    """Send this process's native events to the running capture.

    With the shim preloaded, that is all. Otherwise, when ``late`` is true, the shim is
    loaded now and the loaded libraries are patched (late mode, with the limits in the
    module docstring).

    Raises:
        RuntimeError: no shim can be used (the message says how to start the program).
    """
    _tracer.native_attach(str(library_path()) if late else None)


def detach() -> None:
    """Stop receiving native events (the shim keeps forwarding, and keeps its live set)."""
    _tracer.native_detach()


def stats() -> dict[str, int | bool] | None:
    """The shim's counters (live blocks, blocked double/invalid frees, ...); None if absent."""
    return _tracer.native_stats()


def main(argv: list[str] | None = None) -> int:
    """``python -m memscope.producer.native_mode --library``: print the shim's path."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m memscope.producer.native_mode")
    parser.add_argument("--library", action="store_true", help="print the shim's path")
    args = parser.parse_args(argv)
    if args.library:
        print(library_path())
        return 0
    print(
        f"shim: {library_path()}; preloaded here: {is_preloaded()}; "
        f"{NATIVE_ENV}={os.environ.get(NATIVE_ENV, '')}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
