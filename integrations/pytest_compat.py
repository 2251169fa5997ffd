"""What memscope's pytest plugin shares with pytest-memray: marker keywords, options, stacks.

With ``pytest --memscope`` the markers accept pytest-memray's keywords with its meaning, and
its options (``--most-allocations``, ``--stacks``, ``--fail-on-increase``) are read from
wherever they are declared: by pytest-memray when it is installed (declaring them twice is an
error in pytest, which would break pytest-memray), else by memscope (:func:`add_options`).
``filter_fn`` receives a :class:`Stack`, shaped like pytest-memray's.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

#: The keywords each marker accepts (pytest-memray's), and their defaults.
MARKER_KEYWORDS: dict[str, dict[str, Any]] = {
    "limit_memory": {"current_thread_only": False},
    "limit_leaks": {"current_thread_only": False, "filter_fn": None},
}
#: pytest-memray's options that memscope reads: (flag, dest, default).
SHARED_OPTIONS = (
    ("--most-allocations", "most_allocations", 5),
    ("--stacks", "stacks", 1),
    ("--fail-on-increase", "fail_on_increase", False),
)


@dataclass(frozen=True)
class StackFrame:
    """One frame of an allocation's stack (pytest-memray's ``StackFrame``)."""

    function: str
    filename: str
    lineno: int


@dataclass(frozen=True)
class Stack:
    """An allocation's stack, most recent frame first (pytest-memray's ``Stack``)."""

    frames: tuple[StackFrame, ...]


def stack(frames: Sequence[Sequence[Any]]) -> Stack:
    """A :class:`Stack` from ``[function, filename, lineno]`` lists."""
    return Stack(tuple(StackFrame(str(f), str(n), int(line)) for f, n, line in frames))


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def add_options(group: Any, pluginmanager: Any) -> None:
    """Declare pytest-memray's shared options unless pytest-memray will."""
    memray_loads = importlib.util.find_spec(
        "pytest_memray"
    ) is not None and not pluginmanager.is_blocked("memray")
    if memray_loads:
        return
    group.addoption(
        "--most-allocations",
        type=int,
        default=5,
        dest="most_allocations",
        help="with --memscope: show the N marked tests that allocated most (0: all)",
    )
    group.addoption(
        "--stacks",
        type=_positive,
        default=1,
        dest="stacks",
        help="with --memscope: frames shown per allocation site in failures",
    )
    group.addoption(
        "--fail-on-increase",
        action="store_true",
        default=False,
        dest="fail_on_increase",
        help="with --memscope: fail a limit_memory test whose peak grew since its last run",
    )


def option(config: pytest.Config, dest: str) -> Any:
    """A shared option's value (its default when no plugin declared it)."""
    default = next(d for _, name, d in SHARED_OPTIONS if name == dest)
    value = config.getoption(dest, default)
    return default if value is None else value


def marker_keywords(nodeid: str, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The marker's keywords with defaults filled in; a usage error for an unknown one."""
    allowed = MARKER_KEYWORDS[name]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise pytest.UsageError(
            f"{nodeid}: @pytest.mark.{name} does not take {', '.join(unknown)} "
            f"(it takes a size and {', '.join(allowed)})"
        )
    filter_fn = kwargs.get("filter_fn")
    if filter_fn is not None and not callable(filter_fn):
        raise pytest.UsageError(f"{nodeid}: filter_fn of @pytest.mark.{name} must be callable")
    return {**allowed, **kwargs}


def passes(filter_fn: Callable[[Stack], bool] | None, frames: Sequence[Sequence[Any]]) -> bool:
    """Whether a leak group counts: pytest-memray's ``filter_fn`` said so (or there is none)."""
    return filter_fn is None or bool(filter_fn(stack(frames)))
