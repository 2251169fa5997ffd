"""The source text of a call's argument, read from the caller's frame.

``track_var(data)`` names the variable ``"data"`` without being told: the caller's frame says
which instruction is running (``f_lasti``), its code object maps that instruction to a source
span (``co_positions()``: the whole call expression), and the caller's source file, parsed
once per file, has exactly one call expression ending there. Its argument's expression,
unparsed, is the name (``data``, ``self.items``, ``rows[0]``).

Whenever this cannot be done (no source, as for ``python -c``; code compiled from a string; a
``*args`` argument; a file edited since it was loaded), the result is ``None`` and the caller
decides the fallback.
"""

from __future__ import annotations

import ast
import itertools
import linecache
import threading
from types import FrameType

_lock = threading.Lock()
# filename -> (the linecache list it was parsed from, {(end_lineno, end_col): ast.Call})
_calls_by_file: dict[str, tuple[list[str], dict[tuple[int, int], ast.Call]]] = {}
_MAX_FILES = 256


def after_fork_child() -> None:
    """In a forked child: a new lock (another thread of the parent may have held this one)."""
    global _lock
    _lock = threading.Lock()


def _calls_ending_at(filename: str, globals_: dict[str, object]) -> dict[tuple[int, int], ast.Call]:
    lines = linecache.getlines(filename, globals_)
    if not lines:
        return {}
    with _lock:
        cached = _calls_by_file.get(filename)
        if cached is not None and cached[0] is lines:
            return cached[1]
    try:
        tree = ast.parse("".join(lines), filename)
    except (SyntaxError, ValueError):
        calls: dict[tuple[int, int], ast.Call] = {}
    else:
        calls = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.end_lineno is not None:
                key = (node.end_lineno, node.end_col_offset or 0)
                previous = calls.get(key)
                if previous is None or (node.lineno, node.col_offset) > (
                    previous.lineno,
                    previous.col_offset,
                ):
                    calls[key] = node
    with _lock:
        if len(_calls_by_file) >= _MAX_FILES:
            _calls_by_file.clear()
        _calls_by_file[filename] = (lines, calls)
    return calls


def _current_call(frame: FrameType) -> ast.Call | None:
    code = frame.f_code
    if frame.f_lasti < 0:
        return None
    position = next(itertools.islice(code.co_positions(), frame.f_lasti // 2, None), None)
    if position is None:
        return None
    end_line, end_col = position[1], position[3]
    if end_line is None or end_col is None:
        return None
    calls = _calls_ending_at(code.co_filename, frame.f_globals)
    return calls.get((end_line, end_col))


def argument_source(frame: FrameType, position: int = 0, keyword: str | None = None) -> str | None:
    """The expression passed as argument ``position`` (or ``keyword=``) in the running call.

    Args:
        frame: the frame that is making the call (for example ``sys._getframe(1)`` inside the
            called function).
        position: index of the positional argument.
        keyword: the parameter's name, looked up when fewer positional arguments were given.

    Returns:
        The argument's source expression on one line, or ``None`` when it cannot be known.
    """
    call = _current_call(frame)
    if call is None:
        return None
    node: ast.expr | None = None
    positional = call.args[: position + 1]
    if any(isinstance(a, ast.Starred) for a in positional):
        return None
    if len(call.args) > position:
        node = call.args[position]
    elif keyword is not None:
        node = next((k.value for k in call.keywords if k.arg == keyword), None)
    if node is None:
        return None
    return ast.unparse(node)
