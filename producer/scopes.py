"""Named scopes: ``with memscope.scope("load"):`` and ``@memscope.scope("load")``.

Open scopes form a stack per thread and per asyncio task (a context variable holds it, so
two tasks interleaving on one thread keep separate stacks). Entering a scope queues a
``scopes`` row (``enter``, a new ``scope_id``, the enclosing scope's id as ``parent_id`` or 0,
the name, the thread); leaving queues the matching ``exit`` row. Variables tracked inside a
scope carry its name and id. The decorator works on plain and ``async`` functions (the scope
spans the coroutine's execution, not its creation).

While tracing is off (before :func:`memscope.init`, after :func:`memscope.shutdown`) a scope
only keeps its stack, so decorated functions may be defined before ``init``; with
``MEMSCOPE_DISABLE=1`` it does nothing at all.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import time

# Kept light: this module loads even when tracing is disabled (see memscope.api.tracker).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Any, TypeVar

    from memscope.producer.rows import RowBuffer

    F = TypeVar("F", bound=Callable[..., Any])

#: Where rows go while tracing; set by the session, None while tracing is off.
sink: RowBuffer | None = None
#: False once tracing is disabled for the process (MEMSCOPE_DISABLE): scopes do nothing.
enabled = True
#: The capture's pause/resume, set by the session: a scope's own work is never traced.
pause: Callable[[], int] | None = None
#: The calling thread's id in the log (the session sets the tracer's; see capture.thread_id).
thread_id: Callable[[], int] = threading.get_ident
resume: Callable[[int], None] | None = None

_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect
_ids = itertools.count(1)
_open: contextvars.ContextVar[tuple[tuple[int, str], ...]] = contextvars.ContextVar(
    "memscope_scopes", default=()
)


def current() -> tuple[int, str] | None:
    """The innermost open scope of this thread or task as ``(scope_id, name)``, or None."""
    stack = _open.get()
    return stack[-1] if stack else None


def _row(rows: RowBuffer, event: str, scope_id: int, parent_id: int, name: str) -> None:
    rows.add(
        "scopes",
        tid=thread_id(),
        ts_ns=time.monotonic_ns(),
        event=event,
        scope_id=scope_id,
        parent_id=parent_id,
        name=name,
    )


class scope:  # noqa: N801 -- used like a function: memscope.scope("name")
    """A named scope; a context manager (re-entrant, thread-safe) and a decorator."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"memscope.scope() needs a non-empty name string, not {name!r}")
        self.name = name

    def __enter__(self) -> scope:
        if not enabled:
            return self
        rows, pause_, resume_ = sink, pause, resume
        token = pause_() if rows is not None and pause_ is not None else -1
        try:
            stack = _open.get()
            scope_id = next(_ids)
            _open.set((*stack, (scope_id, self.name)))
            if rows is not None:
                _row(rows, "enter", scope_id, stack[-1][0] if stack else 0, self.name)
        finally:
            if token != -1 and resume_ is not None:
                resume_(token)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not enabled:
            return
        rows, pause_, resume_ = sink, pause, resume
        token = pause_() if rows is not None and pause_ is not None else -1
        try:
            stack = _open.get()
            if not stack:
                return
            scope_id, name = stack[-1]
            rest = stack[:-1]
            _open.set(rest)
            if rows is not None:
                _row(rows, "exit", scope_id, rest[-1][0] if rest else 0, name)
        finally:
            if token != -1 and resume_ is not None:
                resume_(token)

    def __call__(self, func: F) -> F:
        """Decorate ``func`` so that every call (or every await of it) runs in this scope."""
        import functools

        name = self.name
        code = getattr(func, "__code__", None)
        if code is not None and code.co_flags & _CO_COROUTINE:

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with scope(name):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with scope(name):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
