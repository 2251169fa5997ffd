"""Shallow and deep sizes of an object, and the tracked objects reachable from it.

The deep size is the sum of ``sys.getsizeof`` over the object and everything reachable from
it through ``gc.get_referents`` (what the garbage collector sees as its references; a numpy
view also reaches its ``base``), each object counted once however often it is shared.

Not followed (they belong to the program, not to the value): types and classes, modules,
functions and methods, code objects and frames, and the singletons ``None``, ``True``,
``False``, ``Ellipsis`` and ``NotImplemented``.

Bounds: the traversal stops after :data:`MAX_OBJECTS` distinct objects; the result then says
``truncated=True`` and the deep size is a lower bound.
"""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Distinct objects visited at most by one deep-size traversal.
MAX_OBJECTS = 100_000

_SKIP_TYPES: tuple[type, ...] = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
    types.MappingProxyType,
)
_SINGLETONS = (None, True, False, Ellipsis, NotImplemented)


@dataclass(frozen=True, slots=True)
class DeepSize:
    """The result of :func:`measure`."""

    size: int
    """``sys.getsizeof(obj)``: the object itself."""
    deep_size: int
    """The object and everything reachable from it, each counted once."""
    objects: int
    """Distinct objects counted in ``deep_size``."""
    truncated: bool
    """True when :data:`MAX_OBJECTS` stopped the traversal (``deep_size`` is a lower bound)."""
    contains: tuple[int, ...]
    """What ``lookup`` returned for the reachable objects (not the root), in visit order."""


def _skipped(obj: Any) -> bool:
    return isinstance(obj, _SKIP_TYPES) or any(obj is s for s in _SINGLETONS)


def _referents(obj: Any) -> list[Any]:
    refs = gc.get_referents(obj)
    if isinstance(obj, dict):
        refs.extend(obj)  # a dict with only str keys does not report its keys to the gc
    base = getattr(obj, "base", None) if type(obj).__name__ == "ndarray" else None
    if base is not None:
        refs.append(base)
    return refs


def measure(
    obj: Any,
    lookup: Callable[[Any], int | None] | None = None,
    max_objects: int = MAX_OBJECTS,
) -> DeepSize:
    """Shallow and deep size of ``obj``; ``lookup(o)`` names tracked objects reachable from it.

    Args:
        obj: any object.
        lookup: called for every reachable object other than ``obj``; a non-None result is
            collected into ``contains`` (used to find tracked variables inside ``obj``).
        max_objects: stop after this many distinct objects.
    """
    shallow = sys.getsizeof(obj)
    seen = {id(obj)}
    stack = [obj]
    total = 0
    contains: list[int] = []
    truncated = False
    while stack:
        current = stack.pop()
        total += sys.getsizeof(current)
        if current is not obj and lookup is not None:
            found = lookup(current)
            if found is not None:
                contains.append(found)
        if current is obj and _skipped(obj):
            continue  # a tracked function or class: its own size only
        for ref in _referents(current):
            if id(ref) in seen or _skipped(ref):
                continue
            if len(seen) >= max_objects:
                truncated = True
                break
            seen.add(id(ref))
            stack.append(ref)
    return DeepSize(shallow, total, len(seen), truncated, tuple(contains))
