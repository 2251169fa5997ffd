"""The in-process capture: allocator hooks (native core) plus FFI audit events.

This module is the only interface to :mod:`memscope.producer._tracer`. The publisher calls
:func:`drain` periodically from its own thread (after :func:`ignore_current_thread`) and
ships what it returns. Modes:

``full``
    every allocator event of the RAW, MEM and OBJ domains and numpy's data memory.
``aggregated``
    allocations freed within one drain interval are folded into ``aggregates`` rows (per
    thread, stack and domain); longer-lived ones are sent as events, with their frees.
    ``producer_stats`` carries the exact current and peak bytes measured in-process.
``sampled``
    allocations sampled by byte volume (on average one per ``sample_bytes`` allocated; a
    larger block is more likely to be sampled); frees only of sampled blocks.
``hooks-only``
    records nothing: each allocation reads the clock and walks its stack as every mode
    does, then drops both. What the modes pay before storing anything (the floor of
    ``bench/bench_tracer.py``); not a mode of ``memscope run`` or ``init``.
"""

from __future__ import annotations

import warnings

from memscope.producer import _tracer, native_mode, numpy_watch
from memscope.producer.ffi_audit import FfiRecorder

TYPE_CHECKING = False  # not typing's: importing typing costs every traced program's GC

if TYPE_CHECKING:
    from typing import Any

MODES = {
    "full": _tracer.MODE_FULL,
    "aggregated": _tracer.MODE_AGGREGATED,
    "sampled": _tracer.MODE_SAMPLED,
    "hooks-only": _tracer.MODE_HOOKS_ONLY,
}
#: Upper bound of memory events in one drain (a batch must stay under MAX_BATCH_EVENTS).
DRAIN_MAX_EVENTS = 8_000_000

_ffi = FfiRecorder(
    lambda: _tracer.current_stack_id(2),  # minus the hook and this lambda
    _tracer.thread_id,
)


def start(
    mode: str = "full",
    sample_bytes: int = 65536,
    *,
    max_buffer_bytes: int = 512 << 20,
    numpy: bool = True,
    ffi: bool = True,
    native: bool = False,
    arena_dir: str | None = None,
) -> None:
    """Start recording this process's allocations.

    Args:
        mode: ``"full"``, ``"aggregated"``, ``"sampled"`` or ``"hooks-only"``.
        sample_bytes: mean bytes between samples in sampled mode.
        max_buffer_bytes: memory the per-thread buffers may hold before events are dropped
            (drops are counted in ``producer_stats``).
        numpy: also trace numpy array data (DOMAIN_NUMPY): now if numpy is imported, else
            from the moment the program imports it (numpy is never imported for this).
        ffi: record ctypes audit events as ``ffi`` rows.
        native: also record malloc/mmap of native code (the preloaded shim, or the shim
            loaded now with the loaded libraries patched: see
            :mod:`memscope.producer.native_mode`).
        arena_dir: keep the record buffers in a file of this directory, so that a harvester
            (:mod:`memscope.producer.harvest`) can ship what this process had not when it
            dies; None: anonymous memory. Only the first start of a process uses it.

    Raises:
        ValueError: unknown mode or out-of-range sizes.
        RuntimeError: capture is already started, or native mode is not possible here.
    """
    if mode not in MODES:
        raise ValueError(f"unknown capture mode {mode!r}; choose one of {sorted(MODES)}")
    # native events are stamped by the shim's own clock readings, which the stamp reuse of
    # the PyMem hooks does not see: every event reads the clock then
    numpy_now = numpy and numpy_watch.numpy_loaded()
    _tracer.start(
        MODES[mode], sample_bytes, max_buffer_bytes, numpy_now, not native, arena_dir or None
    )
    if numpy and not numpy_now:
        numpy_watch.arm(_numpy_imported)
    if native:  # native mode hook (memscope.producer.native_mode)
        try:
            native_mode.attach()
        except BaseException:
            numpy_watch.disarm()
            _tracer.stop()
            raise
    if ffi:
        _ffi.enable()


def stop() -> None:
    """Stop recording and restore the previous allocators (buffered events stay drainable)."""
    _ffi.disable()
    numpy_watch.disarm()
    _tracer.native_detach()  # native mode hook (no-op when not attached)
    _tracer.stop()


def _numpy_imported() -> None:
    """Trace numpy's data memory from now on: numpy was imported while capture runs."""
    try:
        _tracer.numpy_install()
    except (RuntimeError, ImportError, AttributeError, ValueError) as exc:  # never fail
        # the program's import of numpy
        warnings.warn(
            f"memscope: numpy array data is not traced: {exc}", RuntimeWarning, stacklevel=2
        )


def is_active() -> bool:
    """Whether allocations are being recorded."""
    return _tracer.is_active()


def drain(
    max_events: int = DRAIN_MAX_EVENTS,
    commit: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[Any]]]]:
    """Take everything recorded since the last drain.

    With ``commit`` false the drained buffers are kept until :func:`commit` says the batches
    holding their records are spooled (a crash harvest then still finds them).

    Returns:
        ``(mem_chunks, rare_tables)``: memory chunks (``rec1`` per thread, ``cols1`` for
        aggregated-mode promotions) and columnar rows of ``frames``, ``stacks``, ``ffi``,
        ``aggregates`` and ``producer_stats`` (only tables with rows).
    """
    ffi_rows = _ffi.take()  # first: the C drain then emits the stacks these rows reference
    chunks, rare = _tracer.drain(max_events, commit)
    if ffi_rows:
        native_rows = rare.get("ffi")  # native mode hook: the shim's findings come first
        if native_rows:
            ffi_rows = {k: native_rows[k] + ffi_rows[k] for k in ffi_rows}
        rare["ffi"] = ffi_rows
    return chunks, rare


def pending_bytes() -> int:
    """Bytes of the record buffers threads hold.

    Whole buffers: each thread has one, drained or not; what grows between drains is records
    waiting.
    """
    return _tracer.pending_bytes()


def commit(next_seq: int) -> bool:
    """The records drained so far are in spooled batches, the last before ``next_seq``.

    Their buffers are recycled, and a crash harvest starts after them. False (and nothing
    done) while a drain runs in another thread.
    """
    return _tracer.commit(next_seq)


def arena_path() -> str | None:
    """The file holding this process's record buffers (crash capture), or None."""
    return _tracer.arena_path()


def arena_identify(producer: str, spool: str, address: str) -> None:
    """Write who owns this process's arena and where its batches go, for a harvester."""
    _tracer.arena_identify(producer, spool, address)


def arena_close(remove: bool) -> None:
    """This process is done: with ``remove`` (all shipped), delete the arena's file."""
    _tracer.arena_close(remove)


def thread_id() -> int:
    """The calling thread's ``tid`` in the log: memscope's serial number of the thread.

    Unlike ``threading.get_ident()`` (and the native id), which CPython and the kernel reuse
    once a thread has ended, it is never reused within the process, so two threads run one
    after the other are two threads of the log.
    """
    return _tracer.thread_id()


def thread_id_of(ident: int) -> int:
    """:func:`thread_id` of the live thread whose ``threading`` ident is ``ident``.

    0 when that thread has not been seen by the tracer yet (it allocated nothing since
    capture started).
    """
    return _tracer.thread_id_of(ident)


def term_install(fd: int) -> bool:
    """On SIGTERM, write a byte to ``fd`` instead of dying, while its action is the default.

    False when the program has its own SIGTERM disposition (it stays). See ``tr_term.c``.
    """
    return _tracer.term_install(fd)


def term_pending() -> bool:
    """Whether a SIGTERM arrived since :func:`term_install`."""
    return _tracer.term_pending()


def term_uninstall() -> None:
    """SIGTERM's default action again (if the program did not set its own since)."""
    _tracer.term_uninstall()


def term_raise() -> None:
    """Die of SIGTERM, as the signal that arrived meant (call after the final batch)."""
    _tracer.term_raise()


def ignore_current_thread() -> None:
    """Never trace the calling thread's allocations (the publisher's own thread)."""
    _tracer.ignore_current_thread()


def current_stack_id(skip: int = 0) -> int:
    """Intern the caller's Python stack now and return its id (0 = no Python frame).

    The innermost frame is the caller of this function; ``skip`` drops that many more
    (a library helper passes 1 so that the stack starts at its own caller).
    """
    return _tracer.current_stack_id(skip + 1)


def block_address(obj: object) -> int:
    """The start of ``obj``'s allocation block (before its GC header and pre-header)."""
    return _tracer.block_address(obj)


def death_blocks(obj: object) -> list[int]:
    """Addresses whose free means ``obj`` has died: its own block first, then inner blocks.

    CPython parks dead lists, dicts, tuples and floats on free lists, so their object block
    is often not freed at death; a non-empty list's item array is (follow its realloc events
    when the list grows after this call).
    """
    return [_tracer.block_address(obj), *_tracer.inner_blocks(obj)]


def pin(obj: object) -> bool:
    """Make sure the death of ``obj`` (the free of its block) reaches the log in every mode.

    ``full`` records every free anyway. ``aggregated`` would fold a short-lived block into
    counters: a pinned block is sent as an alloc event at the next drain, so its free is
    recorded. ``sampled`` makes the block a sampled one now (an alloc event with the size
    ``sys.getsizeof(obj)``). ``track_var`` pins what it tracks.

    Returns:
        False when the block cannot be followed (it was allocated before tracing started,
        in aggregated mode; the mode is ``hooks-only``; or capture is not active).
    """
    import sys

    return _tracer.pin(_tracer.block_address(obj), sys.getsizeof(obj))


def after_fork_child() -> None:
    """Reset buffers, tables and pending FFI rows in a forked child.

    The native core already resets itself in a ``pthread_atfork`` child handler; calling
    this again is harmless.
    """
    _tracer.after_fork_child()
    _ffi.clear()


def stats() -> dict[str, int]:
    """Counters of the native core (events written, drops, pending buffer bytes, ...)."""
    return _tracer.stats()


def pause() -> int:
    """Stop recording the calling thread's events until :func:`resume` (pauses nest).

    memscope's own bookkeeping in the program's threads (``track_var``, scope rows) runs
    paused so that it never shows up as the program's memory. The token is a small int, so
    pausing allocates nothing.
    """
    return _tracer.pause_thread()


def resume(token: int) -> None:
    """End the pause that returned ``token``."""
    _tracer.resume_thread(token)
