"""Finding and loading the six analysis JSON files, one problem per file, never a crash.

A report set is a plain ``dict`` from kind (``memory_analysis``, ``lifetime``, ...) to the
parsed JSON object, or to a :class:`ReportProblem` saying why that file is unusable. Every
exporter takes such a dict, so one missing or corrupt file costs only the panels built from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The six analysis kinds, in the order the dashboard shows them.
KINDS: tuple[str, ...] = (
    "memory_analysis",
    "lifetime",
    "security_violations",
    "complex_types",
    "performance",
    "unsafe_ffi",
)

#: Larger files are refused with a message rather than exhausting memory.
MAX_REPORT_BYTES = 1 << 30


@dataclass(frozen=True)
class ReportProblem:
    """Why one analysis file could not be used (missing, unreadable, not JSON, wrong shape)."""

    kind: str
    message: str
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The problem as a JSON-ready dict."""
        return {"kind": self.kind, "message": self.message, "path": self.path}


Reports = dict[str, Any]


def _matches(name: str, kind: str) -> bool:
    return name == f"{kind}.json" or name.endswith(f"_{kind}.json")


def find_reports(directory: str | Path, *, symlinks: bool = True) -> dict[str, Path]:
    """Find the analysis files in ``directory`` by suffix (``*_memory_analysis.json``, ...).

    When several files share a suffix (several runs in one directory), the most recently
    modified one wins, ties broken by name so the choice is stable. ``symlinks=False``
    ignores symbolic links (the dashboard server follows none).
    """
    root = Path(directory)
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    candidates = sorted(
        p
        for p in root.iterdir()
        if p.suffix == ".json" and p.is_file() and (symlinks or not p.is_symlink())
    )
    for kind in KINDS:
        # "x_memory_analysis.json" must not also count as an "analysis" of another kind whose
        # name is its suffix; KINDS have no such overlap except by full suffix, checked here.
        matching = [p for p in candidates if _matches(p.name, kind)]
        if matching:
            found[kind] = max(matching, key=lambda p: (p.stat().st_mtime_ns, p.name))
    return found


def load_report(kind: str, path: Path) -> dict[str, Any] | ReportProblem:
    """Parse one analysis file; a :class:`ReportProblem` names what is wrong with it."""
    try:
        size = path.stat().st_size
        if size > MAX_REPORT_BYTES:
            return ReportProblem(kind, f"{path.name} is {size} bytes, over the limit", str(path))
        with path.open("rb") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return ReportProblem(kind, f"{path.name} disappeared while reading", str(path))
    except OSError as exc:
        return ReportProblem(kind, f"cannot read {path.name}: {exc.strerror or exc}", str(path))
    except UnicodeDecodeError as exc:
        return ReportProblem(kind, f"{path.name} is not UTF-8 text: {exc.reason}", str(path))
    except json.JSONDecodeError as exc:
        return ReportProblem(
            kind,
            f"{path.name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            str(path),
        )
    except RecursionError:
        return ReportProblem(kind, f"{path.name} is nested too deeply to read", str(path))
    if not isinstance(data, dict):
        return ReportProblem(
            kind, f"{path.name} holds a JSON {type(data).__name__}, not an object", str(path)
        )
    return data


def load_reports(directory: str | Path, *, symlinks: bool = True) -> Reports:
    """Load every kind found in ``directory``; absent kinds map to a :class:`ReportProblem`.

    ``symlinks=False`` ignores symbolic links, as :func:`find_reports` does.
    """
    found = find_reports(directory, symlinks=symlinks)
    reports: Reports = {}
    for kind in KINDS:
        path = found.get(kind)
        if path is None:
            reports[kind] = ReportProblem(
                kind,
                f"no *_{kind}.json in {directory}: run `memscope analyze LOG --out {directory}`",
            )
        else:
            reports[kind] = load_report(kind, path)
    return reports


def report(reports: Reports, kind: str) -> dict[str, Any]:
    """The parsed file of ``kind``, or ``{}`` when it is missing or unusable."""
    value = reports.get(kind)
    return value if isinstance(value, dict) else {}


def problems(reports: Reports) -> dict[str, ReportProblem]:
    """The kinds that could not be used, with why."""
    found = {k: v for k, v in reports.items() if isinstance(v, ReportProblem)}
    for kind in KINDS:
        if kind not in reports:
            found[kind] = ReportProblem(kind, f"no {kind} report given")
    return found
