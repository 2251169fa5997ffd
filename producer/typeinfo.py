"""Qualified type names with element types inferred from a bounded sample of the contents.

``type_name([1, 2, 3])`` is ``"list[int]"``, ``type_name({"a": [1]})`` is
``"dict[str, list[int]]"``, a float numpy array is ``"numpy.ndarray[float64]"`` and a mixed
list is ``"list[int | str]"``.

Bounds (so that naming a huge or deep object stays cheap): at most :data:`SAMPLE` elements of
each container are looked at (spread evenly over sequences, the first ones of other iterables),
and element types are inferred :data:`MAX_DEPTH` levels deep; deeper containers keep their bare
name. Element types are the union of the sampled ones, sorted by name (``None`` last), so the
same contents always give the same name. An empty container has no element type (``list``).
Nothing is imported to name an object: numpy arrays are recognized by their type's module.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable
from typing import Any

#: Elements of one container looked at to infer its element types.
SAMPLE = 8
#: Container levels whose element types are inferred.
MAX_DEPTH = 3

_SEQUENCES: tuple[type, ...] = (list, tuple, collections.deque)
_MAPPINGS: tuple[type, ...] = (dict, collections.OrderedDict, collections.defaultdict)


def base_name(tp: type) -> str:
    """The qualified name of a type: builtins bare (``int``), others ``module.qualname``."""
    module = getattr(tp, "__module__", None) or ""
    qualname = getattr(tp, "__qualname__", None) or getattr(tp, "__name__", "?")
    if module in ("builtins", ""):
        return str(qualname)
    if module.startswith("numpy") and qualname == "ndarray":
        return "numpy.ndarray"
    return f"{module}.{qualname}"


def type_name(obj: Any, depth: int = MAX_DEPTH) -> str:
    """The qualified type of ``obj`` with inferred element types (see the module docstring)."""
    if obj is None:
        return "None"
    tp = type(obj)
    name = base_name(tp)
    if name == "numpy.ndarray":
        dtype = getattr(obj, "dtype", None)
        return f"{name}[{dtype}]" if dtype is not None else name
    if depth <= 0:
        return name
    try:
        if isinstance(obj, _MAPPINGS):
            return _mapping_name(name, obj, depth)
        if isinstance(obj, tuple) and tp is tuple:
            return _tuple_name(obj, depth)
        if isinstance(obj, _SEQUENCES):
            return _with_params(name, [_union(_sample_sequence(obj), depth)])
        if isinstance(obj, set | frozenset):
            return _with_params(name, [_union(itertools.islice(obj, SAMPLE), depth)])
    except RuntimeError:  # the container changed size while sampled (another thread)
        return name
    return name


def _with_params(name: str, params: list[str]) -> str:
    if not params or not all(params):
        return name
    return f"{name}[{', '.join(params)}]"


def _union(elements: Iterable[Any], depth: int) -> str:
    names = {type_name(e, depth - 1) for e in elements}
    return " | ".join(sorted(names, key=lambda n: (n == "None", n)))


def _sample_sequence(seq: Any) -> list[Any]:
    n = len(seq)
    if n <= SAMPLE:
        return list(seq)
    step = n / SAMPLE
    return [seq[int(i * step)] for i in range(SAMPLE)]


def _mapping_name(name: str, mapping: Any, depth: int) -> str:
    items = list(itertools.islice(mapping.items(), SAMPLE))
    if not items:
        return name
    keys = _union((k for k, _ in items), depth)
    values = _union((v for _, v in items), depth)
    return _with_params(name, [keys, values])


def _tuple_name(tup: tuple[Any, ...], depth: int) -> str:
    if not tup:
        return "tuple[()]"
    if len(tup) <= SAMPLE:
        parts = [type_name(e, depth - 1) for e in tup]
        if len(set(parts)) > 1 or len(tup) <= 3:
            return f"tuple[{', '.join(parts)}]"
        return f"tuple[{parts[0]}, ...]"
    return f"tuple[{_union(_sample_sequence(tup), depth)}, ...]"
