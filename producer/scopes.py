"""Named scopes: ``with memscope.scope("load"):`` and ``@memscope.scope("load")``.

Each thread has its own stack of open scopes. Entering one queues a ``scopes`` row
(``enter``, a new ``scope_id``, the enclosing scope's id as ``parent_id`` or 0, the name);
leaving queues the matching ``exit`` row. Variables tracked inside a scope carry its name and
id. While tracing is off (before :func:`memscope.init`, after :func:`memscope.shutdown`, or
with ``MEMSCOPE_DISABLE=1``) a scope does nothing but keep its stack, so decorated functions
may be defined before ``init``.
"""

from __future__ import annotations

import itertools
import threading
import time

# Kept light: this module loads even when tracing is disabled (see memscope.producer.api).
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

_ids = itertools.count(1)
_local = threading.local()


def _stack() -> list[tuple[int, str]]:
    stack: list[tuple[int, str]] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def current() -> tuple[int, str] | None:
    """The innermost open scope of the calling thread as ``(scope_id, name)``, or None."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


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
        stack = _stack()
        scope_id = next(_ids)
        parent_id = stack[-1][0] if stack else 0
        stack.append((scope_id, self.name))
        rows = sink
        if rows is not None:
            rows.add(
                "scopes",
                tid=threading.get_ident(),
                ts_ns=time.monotonic_ns(),
                event="enter",
                scope_id=scope_id,
                parent_id=parent_id,
                name=self.name,
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not enabled:
            return
        stack = _stack()
        if not stack:
            return
        scope_id, name = stack.pop()
        rows = sink
        if rows is not None:
            rows.add(
                "scopes",
                tid=threading.get_ident(),
                ts_ns=time.monotonic_ns(),
                event="exit",
                scope_id=scope_id,
                parent_id=stack[-1][0] if stack else 0,
                name=name,
            )

    def __call__(self, func: F) -> F:
        """Decorate ``func`` so that every call runs inside this scope."""
        import functools

        name = self.name

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with scope(name):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
