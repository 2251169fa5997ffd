"""What ``track_var`` records about one object: the ``variables`` row and a local registry.

The registry maps ``id(obj)`` to the var_id it was tracked under, so that a later tracked
container can list the tracked objects it holds (``contains``) and so that
``get_memory_by_type`` can be answered without the log. It holds no reference to the objects:
an entry is dropped when a weak reference says the object died; objects that cannot be weakly
referenced (``list``, ``dict``, ``int`` ...) are matched by id *and* exact type, and an id
reused by a new object of the same type can be mistaken for the old one (their death is still
exact in the log, where it is the allocator's free of the block).
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
    """Tracked objects of this process by ``id``; thread-safe."""

    __slots__ = ("_lock", "_by_id", "_types", "_ids", "__weakref__")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, list[Tracked]] = {}
        self._types: dict[int, type] = {}
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        """A new var_id, unique in this process."""
        return next(self._ids)

    def lookup(self, obj: Any) -> int | None:
        """The var_id ``obj`` was last tracked under, or None."""
        key = id(obj)
        entries = self._by_id.get(key)
        if not entries or self._types.get(key) is not type(obj):
            return None
        return entries[-1].var_id

    def add(self, obj: Any, tracked: Tracked) -> None:
        """Remember ``obj`` (weakly when it can be)."""
        key = id(obj)
        with self._lock:
            if self._types.get(key) is not type(obj):
                self._by_id.pop(key, None)
            self._by_id.setdefault(key, []).append(tracked)
            self._types[key] = type(obj)
        try:
            weakref.finalize(obj, _forget, weakref.ref(self), key)
        except TypeError:
            pass  # not weakly referenceable: matched by id and type (see the module doc)

    def forget(self, key: int) -> None:
        """Drop the entries of a dead object."""
        with self._lock:
            self._by_id.pop(key, None)
            self._types.pop(key, None)

    def alive(self) -> list[Tracked]:
        """Every remembered tracked object (see the module doc on objects without weakrefs)."""
        with self._lock:
            return [t for entries in self._by_id.values() for t in entries]

    def clear(self) -> None:
        """Forget everything (a forked child starts its own registry)."""
        with self._lock:
            self._by_id.clear()
            self._types.clear()


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
        tid=threading.get_ident(),
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
    registry.add(obj, tracked)
    return tracked
