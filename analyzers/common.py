"""What every analyzer shares: options, the metadata block, small SQL helpers, the JSON writer."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from memscope.analyzers.stacks import resolver

#: Version of the six files' layout (their JSON Schemas carry the same number).
FORMAT_VERSION = "1.0"


@dataclass(frozen=True)
class AnalyzerOptions:
    """What an analyzer run needs besides the connection.

    Attributes:
        out_dir: where ``<base>_<kind>.json`` is written (None: nothing is written).
        base: file name prefix.
        log_id: the source log's id (from its manifest), recorded in ``metadata``.
        generated_at: ISO-8601 UTC time recorded in ``metadata`` (None: now). ``run_all``
            passes the log's last write time from its manifest, so the same log always gives
            byte-identical files.
        log_problems: problems the log reader reported (damaged segments), copied into
            ``metadata`` so a report says what it could not read.
        detail_window: when retention retired old memory segments, the window still kept
            in full detail (:func:`memscope.eventlog.retention.detail_window`), copied into
            ``metadata``: the figures cover the whole run, the raw events this window.
        top_n: length of every "top sites" list.
        time_buckets: points of every time series.
        temporary_ns: an allocation freed within this many ns is "temporary".
        oversized_bytes: a single allocation at least this large is a finding.
        leak_checkpoints: checkpoints of the leak growth test.
        slots_min_instances: instances of one class before ``__slots__`` is suggested.
        homogeneous_min_bytes: deep size of a numeric list before ``array``/numpy is suggested.
    """

    out_dir: Path | None = None
    base: str = "snapshot"
    log_id: str | None = None
    generated_at: str | None = None
    log_problems: Sequence[str] = field(default_factory=tuple)
    detail_window: dict[str, Any] | None = None
    top_n: int = 20
    time_buckets: int = 100
    temporary_ns: int = 1_000_000
    oversized_bytes: int = 100 * 1024 * 1024
    leak_checkpoints: int = 8
    slots_min_instances: int = 10
    homogeneous_min_bytes: int = 64 * 1024


def now_iso() -> str:
    """The current UTC time as ISO-8601 with a ``Z`` suffix, to the second."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def iso_from_ns(wall_ns: int) -> str:
    """A wall-clock time in ns as ISO-8601 UTC with a ``Z`` suffix, to the second."""
    when = _dt.datetime.fromtimestamp(wall_ns / 1e9, _dt.UTC).replace(microsecond=0)
    return when.isoformat().replace("+00:00", "Z")


def log_time(manifest: dict[str, Any] | None) -> str | None:
    """When the log was last written, from its manifest (None when it does not say).

    Used as ``generated_at`` so that the same log always gives byte-identical files.
    """
    if not manifest:
        return None
    times = [int(manifest["created_ns"])] if isinstance(manifest.get("created_ns"), int) else []
    for segment in manifest.get("segments", []):
        for key in ("closed_ns", "created_ns"):
            if isinstance(segment.get(key), int):
                times.append(int(segment[key]))
    return iso_from_ns(max(times)) if times else None


def process_ids(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Every pid the log has process rows or allocator events for, ascending."""
    rows = con.execute("SELECT pid FROM _pids ORDER BY pid").fetchall()
    return [int(r[0]) for r in rows]


def metadata(
    con: duckdb.DuckDBPyConnection, kind: str, options: AnalyzerOptions, description: str
) -> dict[str, Any]:
    """The ``metadata`` object every file starts with."""
    from memscope.version import __version__

    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "analyzer": kind,
        "description": description,
        "generated_at": options.generated_at or now_iso(),
        "generator": f"memscope {__version__}",
        "source_log_id": options.log_id,
        "processes": process_ids(con),
        "modes": {
            str(pid): mode
            for pid, mode in con.execute(
                "SELECT pid, mode FROM processes WHERE mode IS NOT NULL ORDER BY pid"
            ).fetchall()
        },
    }
    sampled = con.execute(
        "SELECT pid, sample_bytes FROM processes WHERE mode = 'sampled' ORDER BY pid"
    ).fetchall()
    if sampled:
        # Counts and bytes of these processes in this file are of samples, not totals.
        meta["sampled"] = {
            str(pid): {"sample_bytes": rate, "figures_are": "samples"} for pid, rate in sampled
        }
    if options.log_problems:
        meta["log_problems"] = list(options.log_problems)
    if options.detail_window:
        meta["detail_window"] = dict(options.detail_window)
    return meta


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict]:
    """Run ``sql`` with bound ``params``; each row as a dict of JSON-ready values."""
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [{n: jsonable(v) for n, v in zip(names, r, strict=True)} for r in cur.fetchall()]


def one(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> dict:
    """The single row of ``sql`` as a dict."""
    result = rows(con, sql, params)
    if len(result) != 1:
        raise RuntimeError(f"expected one row, got {len(result)}")
    return result[0]


def jsonable(value: Any) -> Any:
    """DuckDB values as plain JSON values (ints stay ints; NaN becomes None)."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if hasattr(value, "is_integer") and not isinstance(value, int):  # Decimal
        return int(value) if value == int(value) else float(value)
    return value


def drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    """``mapping`` without the keys whose value was not measured (None)."""
    return {k: v for k, v in mapping.items() if v is not None}


def pct(part: float, whole: float) -> float | None:
    """``part`` as a percentage of ``whole`` to 2 decimals; None when ``whole`` is 0."""
    return round(100.0 * part / whole, 2) if whole else None


def file_name(base: str, kind_file: str) -> str:
    """``<base>_<kind>.json``."""
    return f"{base}_{kind_file}.json"


def write_report(report: dict[str, Any], options: AnalyzerOptions, kind_file: str) -> Path | None:
    """Write ``report`` atomically as ``<base>_<kind>.json`` in ``options.out_dir``."""
    if options.out_dir is None:
        return None
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / file_name(options.base, kind_file)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2, sort_keys=False, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def time_span(con: duckdb.DuckDBPyConnection, pid: int | None = None) -> tuple[int, int] | None:
    """(first, last) ts_ns of the memory events (of one pid), or None without events."""
    cond, params = ("pid = ?", [pid]) if pid is not None else ("TRUE", [])
    row = con.execute(
        f"SELECT min(first_ts_ns), max(last_ts_ns) FROM state_processes WHERE {cond}",
        params,
    ).fetchall()[0]
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


def stack_info(con: duckdb.DuckDBPyConnection, pid: int, stack_id: int) -> dict[str, Any]:
    """The resolved stack (innermost first) of one stack id; empty trace when unknown."""
    stacks = resolver(con)
    return {
        "stack_id": stack_id,
        "location": stacks.location(pid, stack_id),
        "trace": stacks.trace(pid, stack_id),
    }


def rebucket(
    fine: list[dict[str, Any]], lo: int, hi: int, buckets: int, start_of: Any
) -> tuple[int, dict[int, list[dict[str, Any]]]]:
    """Group fine time buckets into ``buckets`` equal coarse ones over ``[lo, hi]``.

    ``start_of(row)`` is a fine bucket's start time; it belongs to the coarse bucket that
    holds its start. Returns (coarse width, coarse index -> its fine rows in order).
    """
    width = max(1, (hi - lo) // max(1, buckets) + 1)
    out: dict[int, list[dict[str, Any]]] = {}
    for row in fine:
        index = min(max(0, (int(start_of(row)) - lo) // width), max(0, buckets - 1))
        out.setdefault(index, []).append(row)
    return width, out


def load_schema(file_kind: str) -> dict[str, Any]:
    """The JSON Schema of ``<base>_<file_kind>.json`` (shipped in ``schemas/``)."""
    from importlib.resources import files

    text = files("memscope.analyzers").joinpath("schemas", f"{file_kind}.schema.json")
    loaded: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return loaded
