"""What ``track_var`` records about one object: the ``variables`` row and a local registry.

The registry maps ``id(obj)`` to the var_id it was last tracked under, so that a later
tracked container can list the tracked objects it holds (``contains``). It holds no
reference to the objects:
an entry is dropped when a weak reference says the object died; objects that cannot be weakly
referenced (``list``, ``dict``, ``int`` ...) are matched by id *and* exact type, and an id
reused by a new object of the same type can be mistaken for the old one (their death is still
exact in the log, where it is the allocator's free of the block).

CPython 3.11 puts dead ``list``, ``dict`` and small ``tuple`` objects on per-type free lists
instead of freeing their blocks; ``track_var`` has :mod:`memscope.producer._deaths` make a
tracked one's death a real free. Floats are still recycled, so a tracked float can die
without any allocator event.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from dataclasses import dataclass
from types import FrameType
from typing import Any

from memscope.producer import scopes
from memscope.producer.callsite import argument_source
from memscope.producer.rows import RowBuffer
from memscope.producer.sizes import measure
from memscope.producer.typeinfo import type_name

#: The name recorded when the call site's argument expression cannot be read.
UNKNOWN_NAME = "<expr>"


@dataclass(frozen=True, slots=True)
class Tracked:
    """One tracked object as remembered in this process."""

    var_id: int
    name: str
    type_name: str
    size: int
    deep_size: int


class Registry:
    """The latest var_id of each tracked object, by ``id``; thread-safe.

    One small entry per tracked object (re-tracking an object replaces its entry), dropped
    when the object dies if it can be weakly referenced.
    """

    __slots__ = ("_lock", "_by_id", "_ids", "__weakref__")

    def __init__(self) -> None:
        # Re-entrant: an allocation under the lock can run the garbage collector, whose
        # weakref finalizers call forget() on this same thread.
        self._lock = threading.RLock()
        self._by_id: dict[int, tuple[int, type]] = {}
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        """A new var_id, unique in this process."""
        return next(self._ids)

    def lookup(self, obj: Any) -> int | None:
        """The var_id ``obj`` was last tracked under, or None."""
        entry = self._by_id.get(id(obj))
        if entry is None or entry[1] is not type(obj):
            return None
        return entry[0]

    def add(self, obj: Any, var_id: int) -> None:
        """Remember ``obj`` under ``var_id`` (dropped at its death when it has weakrefs)."""
        key = id(obj)
        with self._lock:
            known = key in self._by_id and self._by_id[key][1] is type(obj)
            self._by_id[key] = (var_id, type(obj))
        if known:
            return  # a finalizer is already registered (or the object has no weakrefs)
        try:
            weakref.finalize(obj, _forget, weakref.ref(self), key)
        except TypeError:
            pass  # not weakly referenceable: matched by id and type (see the module doc)

    def forget(self, key: int) -> None:
        """Drop the entry of a dead object."""
        with self._lock:
            self._by_id.pop(key, None)

    def __len__(self) -> int:
        return len(self._by_id)

    def clear(self) -> None:
        """Forget everything (a forked child starts its own registry)."""
        with self._lock:
            self._by_id.clear()


def _forget(registry_ref: weakref.ref[Registry], key: int) -> None:
    registry = registry_ref()
    if registry is not None:
        registry.forget(key)


def scope_of(frame: FrameType | None) -> tuple[str, int]:
    """The innermost ``memscope.scope`` of this thread, else the caller's function qualname."""
    open_scope = scopes.current()
    if open_scope is not None:
        return open_scope[1], open_scope[0]
    if frame is None:
        return "<unknown>", 0
    return frame.f_code.co_qualname, 0


def record(
    obj: Any,
    name: str | None,
    frame: FrameType | None,
    registry: Registry,
    rows: RowBuffer,
    address: int,
    stack_id: int,
) -> Tracked:
    """Describe ``obj`` and queue its ``variables`` row; return what the registry keeps."""
    ts_ns = time.monotonic_ns()
    if name is None and frame is not None:
        name = argument_source(frame, 0, "obj")
    if not name:
        name = UNKNOWN_NAME
    sizes = measure(obj, registry.lookup)
    tracked = Tracked(registry.next_id(), name, type_name(obj), sizes.size, sizes.deep_size)
    scope_name, scope_id = scope_of(frame)
    rows.add(
        "variables",
        tid=scopes.thread_id(),
        ts_ns=ts_ns,
        var_id=tracked.var_id,
        name=name,
        type_name=tracked.type_name,
        object_id=id(obj),
        address=address,
        size=sizes.size,
        deep_size=sizes.deep_size,
        scope=scope_name,
        scope_id=scope_id,
        stack_id=stack_id,
        contains=sorted(set(sizes.contains)),
    )
    registry.add(obj, tracked.var_id)
    return tracked
