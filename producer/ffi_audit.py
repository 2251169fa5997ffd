"""FFI boundary events: CPython's ``ctypes.*`` audit events as ``ffi`` rows.

One audit hook is installed per process (audit hooks cannot be removed) the first time
:func:`enable` runs; it does nothing while disabled. The hook only reads its arguments,
appends a row and never calls into ctypes, so it cannot re-trigger itself; a thread-local
flag guards against any recursion anyway.

What CPython 3.11 lets us see (checked with ``sys.addaudithook`` on 3.11.7), and therefore
what the rows hold:

* ``ctypes.dlopen`` (``name``): each library load (``CDLL(path)``, ``cdll.LoadLibrary``).
* ``ctypes.dlsym`` (``library``, ``name``): each symbol resolution. ``library`` is the
  library's path as given to ``CDLL`` (``None`` for ``CDLL(None)``, the main program), never
  the object's repr. It fires on the FIRST ``lib.strlen`` attribute access of a library object
  (CDLL caches the function object as an attribute, so later ``lib.strlen`` accesses and
  calls raise nothing) and on EVERY ``lib["strlen"]`` item access. ``ctypes.dlsym/handle``
  is the same for a raw handle.
* ``ctypes.call_function`` (``func_pointer``, ``arguments``): ONLY for calls made through the
  private helper ``_ctypes.call_function(address, args)``. Ordinary foreign calls --
  ``lib.strlen(b"abc")``, ``CFUNCTYPE(...)(address)(...)``, ``PyDLL``/``pythonapi`` functions
  -- raise no audit event at all on 3.11, so they are NOT recorded: an ``ffi`` row never
  counts calls. Which native functions a program reached is known from their ``dlsym`` rows
  (library and symbol, with the Python stack that resolved them); how often, and what they
  allocated, is not -- native mode (``memscope run --native``) records the allocations
  themselves.
* buffers and raw memory access: ``ctypes.create_string_buffer``,
  ``create_unicode_buffer``, ``string_at``, ``wstring_at``, ``cdata``, ``cdata/buffer``,
  ``addressof``, ``PyObj_FromPtr`` and the errno accessors, with their arguments (text and
  bytes cut to 200 characters, other objects as ``<TypeName>``).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable

TYPE_CHECKING = False  # not typing's: importing typing costs every traced program's GC

if TYPE_CHECKING:
    from typing import Any

#: Argument names of the ctypes audit events (CPython's audit events table).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "ctypes.dlopen": ("name",),
    "ctypes.dlsym": ("library", "name"),
    "ctypes.dlsym/handle": ("handle", "name"),
    "ctypes.call_function": ("func_pointer", "arguments"),
    "ctypes.create_string_buffer": ("init", "size"),
    "ctypes.create_unicode_buffer": ("init", "size"),
    "ctypes.string_at": ("address", "size"),
    "ctypes.wstring_at": ("address", "size"),
    "ctypes.cdata": ("address",),
    "ctypes.cdata/buffer": ("pointer", "size", "offset"),
    "ctypes.addressof": ("obj",),
    "ctypes.set_errno": ("errno",),
    "ctypes.get_errno": (),
    "ctypes.set_last_error": ("error",),
    "ctypes.get_last_error": (),
    "ctypes.PyObj_FromPtr": ("obj",),
    "ctypes.seh_exception": ("code",),
    "ctypes.call_function/ret": ("func_pointer", "arguments", "result"),
}

_MAX_TEXT = 200
_MISSING = object()
_COLUMNS = ("tid", "ts_ns", "event", "details", "stack_id")


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, bounded rendering of an audit argument (never calls into ctypes)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, bytes | bytearray):
        return bytes(value[:_MAX_TEXT]).decode("latin-1")
    if isinstance(value, tuple | list) and depth < 2:
        return [_plain(item, depth + 1) for item in value[:32]]
    return f"<{type(value).__qualname__}>"


def _library_name(library: Any) -> Any:
    """The path a ``CDLL`` was opened with, read from its instance dict.

    ``vars()`` reads the dict without going through ``CDLL.__getattr__`` (which would resolve
    a symbol, and audit it); anything else is rendered as ``<TypeName>``.
    """
    try:
        name = vars(library).get("_name", _MISSING)
    except TypeError:
        name = _MISSING
    if name is None or isinstance(name, str):
        return _plain(name)
    return _plain(library)


class FfiRecorder:
    """Collects ctypes audit events while enabled; :meth:`take` hands them over as columns."""

    def __init__(
        self, stack_id: Callable[[], int], thread_id: Callable[[], int] = threading.get_ident
    ) -> None:
        self._stack_id = stack_id
        self._thread_id = thread_id
        self._enabled = False
        self._installed = False
        self._rows: list[tuple[int, int, str, str, int]] = []
        self._lock = threading.Lock()
        self._local = threading.local()

    def enable(self) -> None:
        """Start recording (installs the audit hook on first use)."""
        if not self._installed:
            sys.addaudithook(self._hook)
            self._installed = True
        self._enabled = True

    def disable(self) -> None:
        """Stop recording; the hook stays installed but returns at once."""
        self._enabled = False

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self._enabled or not event.startswith("ctypes."):
            return
        local = self._local
        if getattr(local, "busy", False):
            return
        local.busy = True
        try:
            names = EVENT_FIELDS.get(event)
            if names is not None and len(names) == len(args):
                details = {name: _plain(arg) for name, arg in zip(names, args, strict=True)}
                if event == "ctypes.dlsym":
                    details["library"] = _library_name(args[0])
            else:
                details = {"args": _plain(list(args))}
            row = (
                self._thread_id(),
                time.monotonic_ns(),
                event,
                json.dumps(details, sort_keys=True),
                self._stack_id(),
            )
            with self._lock:
                self._rows.append(row)
        finally:
            local.busy = False

    def take(self) -> dict[str, list[Any]]:
        """Remove and return the recorded rows as ``ffi`` columns (empty dict when none)."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return {}
        return {name: [row[i] for row in rows] for i, name in enumerate(_COLUMNS)}

    def clear(self) -> None:
        """Forget rows not yet taken (a forked child's copy of its parent's)."""
        with self._lock:
            self._rows = []
