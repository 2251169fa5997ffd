"""Python type names: parsing inferred generics, the category hierarchy, the complexity score.

Type names are those ``track_var`` records: a qualified name with inferred element types in
brackets, e.g. ``dict[str, list[int]]``, ``numpy.ndarray[float64]``, ``myapp.models.User``.

Hierarchy (category -> subcategory), decided by the outermost type's name:

=================  ==========================================================================
Collections        Lists (list, deque), Dicts (dict and its collections subclasses),
                   Sets (set, frozenset), Tuples (tuple)
Text               Strings (str), Bytes (bytes)
Numbers            Integers (int, bool), Floats (float), Complex (complex),
                   Decimals (decimal.Decimal, fractions.Fraction)
Arrays/Buffers     NumPy arrays (numpy.*), Arrays (array.array), Buffers (bytearray, memoryview),
                   Native buffers (ctypes.* / cffi)
Callables          Functions (function, lambda, builtin function, method, partial),
                   Classes (type)
Modules and Code   Modules (module), Code (code, frame)
Objects            Instances (any other class, named by its qualified name)
Other              None and anything not named
=================  ==========================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_SUBCATEGORY: dict[str, tuple[str, str]] = {}


def _register(category: str, subcategory: str, names: str) -> None:
    for name in names.split():
        _SUBCATEGORY[name] = (category, subcategory)


_register("Collections", "Lists", "list collections.deque deque")
_register(
    "Collections",
    "Dicts",
    "dict collections.OrderedDict collections.defaultdict "
    "collections.Counter collections.ChainMap types.MappingProxyType mappingproxy",
)
_register("Collections", "Sets", "set frozenset")
_register("Collections", "Tuples", "tuple")
_register("Text", "Strings", "str")
_register("Text", "Bytes", "bytes")
_register("Numbers", "Integers", "int bool")
_register("Numbers", "Floats", "float")
_register("Numbers", "Complex", "complex")
_register("Numbers", "Decimals", "decimal.Decimal fractions.Fraction")
_register("Arrays/Buffers", "Arrays", "array.array")
_register("Arrays/Buffers", "Buffers", "bytearray memoryview mmap.mmap")
_register(
    "Callables",
    "Functions",
    "function builtin_function_or_method method "
    "functools.partial method-wrapper classmethod staticmethod",
)
_register("Callables", "Classes", "type")
_register("Modules and Code", "Modules", "module")
_register("Modules and Code", "Code", "code frame")
_register("Other", "None", "NoneType None")

#: The category names, in report order.
CATEGORIES = (
    "Collections",
    "Text",
    "Numbers",
    "Objects",
    "Arrays/Buffers",
    "Callables",
    "Modules and Code",
    "Other",
)


@dataclass(frozen=True)
class TypeShape:
    """A parsed type name: its outer name, parameters (parsed) and nesting depth."""

    name: str
    params: tuple[TypeShape, ...] = ()

    @property
    def depth(self) -> int:
        """Levels of generic nesting: ``int`` 0, ``list[int]`` 1, ``dict[str, list[int]]`` 2."""
        return 1 + max(p.depth for p in self.params) if self.params else 0

    @property
    def parameter_count(self) -> int:
        """Type parameters counted recursively (``dict[str, list[int]]`` has 3)."""
        return sum(1 + p.parameter_count for p in self.params)


def parse(type_name: str) -> TypeShape:
    """Parse ``a.b[c, d[e]]``; an unbalanced name is taken whole as a plain name."""
    text = type_name.strip()
    shape, rest = _parse_at(text, 0)
    if shape is None or rest != len(text):
        return TypeShape(text)
    return shape


def _parse_at(text: str, i: int) -> tuple[TypeShape | None, int]:
    start = i
    while i < len(text) and text[i] not in "[],":
        i += 1
    name = text[start:i].strip()
    if not name:
        return None, i
    if i < len(text) and text[i] == "[":
        params: list[TypeShape] = []
        i += 1
        while True:
            param, i = _parse_at(text, i)
            if param is None or i >= len(text):
                return None, i
            params.append(param)
            if text[i] == ",":
                i += 1
                while i < len(text) and text[i] == " ":
                    i += 1
                continue
            if text[i] == "]":
                i += 1
                break
            return None, i
        return TypeShape(name, tuple(params)), i
    return TypeShape(name), i


def classify(type_name: str | None) -> tuple[str, str]:
    """``(category, subcategory)`` of a type name."""
    if not type_name:
        return "Other", "Unknown"
    outer = parse(type_name).name
    found = _SUBCATEGORY.get(outer) or _SUBCATEGORY.get(outer.removeprefix("builtins."))
    if found:
        return found
    root = outer.split(".", 1)[0]
    if root == "numpy":
        return "Arrays/Buffers", "NumPy arrays"
    if root in ("ctypes", "_ctypes", "cffi", "_cffi_backend"):
        return "Arrays/Buffers", "Native buffers"
    if root in ("pandas", "pyarrow", "torch"):
        return "Arrays/Buffers", "Data frames and tensors"
    return "Objects", "Instances"


def complexity_score(shape: TypeShape, size: int, deep_size: int) -> float:
    """A documented complexity score of one inferred type.

    ``score = 2 * nesting_depth + parameter_count + log2(max(1, deep_size / size))``

    * ``nesting_depth``: how deeply generics nest (each level is another hop to reach data);
    * ``parameter_count``: type parameters counted recursively (how heterogeneous it is);
    * the last term: how much memory hangs off the object beyond its own header, in doublings
      (measured: ``deep_size`` over ``size`` of the tracked objects).

    ``int`` scores 0; ``list[int]`` whose elements double its size scores 2 + 1 + 1 = 4.
    """
    ratio = deep_size / size if size > 0 else 1.0
    return round(2 * shape.depth + shape.parameter_count + math.log2(max(1.0, ratio)), 3)


NUMERIC_ELEMENTS = frozenset({"int", "float", "bool", "complex"})


def is_homogeneous_numeric_list(shape: TypeShape) -> bool:
    """``list[int]``/``list[float]``: a list of one numeric element type."""
    return (
        shape.name in ("list", "collections.deque", "tuple")
        and len(shape.params) == 1
        and shape.params[0].name in NUMERIC_ELEMENTS
    )
