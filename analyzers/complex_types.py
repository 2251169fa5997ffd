"""The complex-types analyzer: ``<base>_complex_types.json``.

Groups the tracked objects by their inferred type (``dict[str, list[int]]``): instance count,
shallow and deep size, nesting depth, type-parameter count, and the complexity score of
:func:`memscope.analyzers.type_names.complexity_score`
(``2 * nesting_depth + parameter_count + log2(deep_size / size)``, from the summed sizes).

Suggestions are made only from measured numbers, each carrying the evidence it rests on:

``slots``
    at least ``slots_min_instances`` tracked instances of one class (category Objects):
    ``__slots__`` (or ``@dataclass(slots=True)``) drops each instance's ``__dict__``.
``homogeneous_array``
    lists/tuples/deques of one numeric element type whose deep size adds up to at least
    ``homogeneous_min_bytes``: ``array.array`` or numpy stores each number unboxed.
``many_small_dicts``
    at least ``slots_min_instances`` dicts averaging under 1 KiB deep: a dataclass with
    slots or a named tuple stores the same fields without a hash table per record.
``deep_nesting``
    nesting depth of 3 or more: each level is another object header and pointer hop.
"""

from __future__ import annotations

from typing import Any

import duckdb

from memscope.analyzers import type_names
from memscope.analyzers.common import AnalyzerOptions, metadata, rows, write_report

KIND = "complex_types"
FILE_KIND = "complex_types"

#: Variable names listed per type (the count covers all of them).
MAX_NAMES = 20


def type_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """One row per inferred type name with counts and sizes."""
    return rows(
        con,
        """SELECT type_name, count(*) AS instance_count, sum(size) AS total_size_bytes,
                  sum(deep_size) AS total_deep_size_bytes, max(deep_size) AS max_deep_size_bytes,
                  list(DISTINCT name ORDER BY name) AS variable_names,
                  list(DISTINCT pid ORDER BY pid) AS pids
        FROM variables WHERE type_name IS NOT NULL
        GROUP BY type_name ORDER BY total_deep_size_bytes DESC, type_name""",
    )


def _suggestions(
    entry: dict[str, Any], shape: type_names.TypeShape, options: AnalyzerOptions
) -> list[dict[str, Any]]:
    count, size, deep = (
        entry["instance_count"],
        entry["total_size_bytes"],
        entry["total_deep_size_bytes"],
    )
    evidence = {"instance_count": count, "total_size_bytes": size, "total_deep_size_bytes": deep}
    out = []
    name = entry["type_name"]
    if entry["category"] == "Objects" and count >= options.slots_min_instances:
        out.append(
            {
                "kind": "slots",
                "evidence": evidence,
                "message": f"{count} tracked instances of {name} ({size} bytes shallow, "
                f"{deep} deep): if the class has no __slots__, defining them "
                f"(or @dataclass(slots=True)) removes each instance's __dict__.",
            }
        )
    if type_names.is_homogeneous_numeric_list(shape) and deep >= options.homogeneous_min_bytes:
        element = shape.params[0].name
        out.append(
            {
                "kind": "homogeneous_array",
                "evidence": evidence,
                "message": f"{count} {name} objects hold {deep} bytes of boxed {element} "
                f"values: array.array or a numpy array stores them unboxed.",
            }
        )
    if shape.name == "dict" and count >= options.slots_min_instances and deep / count < 1024:
        out.append(
            {
                "kind": "many_small_dicts",
                "evidence": evidence,
                "message": f"{count} small {name} objects (average {deep // count} bytes "
                f"deep): a slotted dataclass or a named tuple stores fixed "
                f"fields without a hash table per record.",
            }
        )
    if shape.depth >= 3:
        out.append(
            {
                "kind": "deep_nesting",
                "evidence": {**evidence, "nesting_depth": shape.depth},
                "message": f"{name} nests {shape.depth} levels deep: each level adds an "
                f"object header and a pointer hop; a flatter layout or a "
                f"columnar structure is smaller and faster to scan.",
            }
        )
    return out


def run(con: duckdb.DuckDBPyConnection, options: AnalyzerOptions) -> dict[str, Any]:
    """Build the complex-types report and write it; returns the report."""
    types = []
    for entry in type_rows(con):
        shape = type_names.parse(entry["type_name"])
        category, subcategory = type_names.classify(entry["type_name"])
        names = entry.pop("variable_names")
        entry.update(
            {
                "outer_type": shape.name,
                "type_parameters": [p.name for p in shape.params],
                "category": category,
                "subcategory": subcategory,
                "nesting_depth": shape.depth,
                "parameter_count": shape.parameter_count,
                "complexity_score": type_names.complexity_score(
                    shape, entry["total_size_bytes"], entry["total_deep_size_bytes"]
                ),
                "variable_names": names[:MAX_NAMES],
            }
        )
        entry["suggestions"] = _suggestions(entry, shape, options)
        types.append(entry)
    types.sort(key=lambda t: (-t["complexity_score"], -t["total_deep_size_bytes"], t["type_name"]))
    by_category: dict[str, dict[str, int]] = {}
    for t in types:
        c = by_category.setdefault(
            t["category"], {"types": 0, "instances": 0, "total_deep_size_bytes": 0}
        )
        c["types"] += 1
        c["instances"] += t["instance_count"]
        c["total_deep_size_bytes"] += t["total_deep_size_bytes"]
    report: dict[str, Any] = {
        "metadata": metadata(
            con,
            FILE_KIND,
            options,
            "Inferred generic types of tracked objects: sizes, nesting, complexity and suggestions",
        ),
        "summary": {
            "type_count": len(types),
            "instance_count": sum(t["instance_count"] for t in types),
            "generic_type_count": sum(1 for t in types if t["nesting_depth"] > 0),
            "max_nesting_depth": max((t["nesting_depth"] for t in types), default=0),
            "suggestion_count": sum(len(t["suggestions"]) for t in types),
            "complexity_score_formula": (
                "2 * nesting_depth + parameter_count + log2(max(1, deep_size / size))"
            ),
        },
        "complex_type_analysis": types,
        "by_category": {c: by_category[c] for c in type_names.CATEGORIES if c in by_category},
    }
    write_report(report, options, FILE_KIND)
    return report
