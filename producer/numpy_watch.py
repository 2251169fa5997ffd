"""Trace numpy's data memory from the moment numpy is imported, without importing it first.

Importing numpy at ``capture.start`` would cost a program that never uses numpy tens of
thousands of extra objects for every full garbage collection to visit (and OpenBLAS
threads), so :func:`arm` instead puts a finder at the front of ``sys.meta_path`` that waits
for numpy's core extension module. When that module has been loaded (before numpy's own
package code goes on to make any array), the native core patches numpy's default
data-memory handler, exactly as ``capture.start`` does when numpy is already imported.
Arrays made before that (there are none while the watcher is armed) would read as frees of
blocks never seen, which readers tolerate.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence

TYPE_CHECKING = False  # not typing's: importing typing costs every traced program's GC

if TYPE_CHECKING:  # (importlib.abc alone is ~2000 objects)
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

#: numpy's core extension module (numpy 2 name first, then numpy 1's).
CORE_MODULES = ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath")


def numpy_loaded() -> bool:
    """Whether numpy's core extension module is already imported."""
    return any(name in sys.modules for name in CORE_MODULES)


class _Loader:
    """A loader that runs the real one, then calls ``on_loaded`` (attributes delegate)."""

    def __init__(self, loader: Any, on_loaded: Callable[[], None]) -> None:
        self._loader = loader
        self._on_loaded = on_loaded

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._on_loaded()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _Finder:
    """A ``sys.meta_path`` finder that only wraps the loader of numpy's core module."""

    def __init__(self, on_loaded: Callable[[], None]) -> None:
        self._on_loaded = on_loaded
        self._local = threading.local()

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in CORE_MODULES or getattr(self._local, "busy", False):
            return None
        self._local.busy = True  # the other finders may import; never recurse into us
        try:
            spec = _find_with_others(self, name, path, target)
        finally:
            self._local.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader, self._on_loaded)  # type: ignore[assignment]
        return spec


def _find_with_others(
    skip: object, name: str, path: Sequence[str] | None, target: ModuleType | None
) -> ModuleSpec | None:
    for finder in list(sys.meta_path):
        find = getattr(finder, "find_spec", None)
        if finder is skip or find is None:
            continue
        spec = find(name, path, target)
        if spec is not None:
            return spec
    return None


_finder: _Finder | None = None


def arm(on_loaded: Callable[[], None]) -> None:
    """Call ``on_loaded()`` once numpy's core module is imported (now, if it already is)."""
    global _finder
    disarm()
    if numpy_loaded():
        on_loaded()
        return
    _finder = _Finder(on_loaded)
    sys.meta_path.insert(0, _finder)


def disarm() -> None:
    """Forget the watcher (``capture.stop``); a no-op when none is armed."""
    global _finder
    if _finder is not None:
        try:
            sys.meta_path.remove(_finder)
        except ValueError:
            pass
        _finder = None
