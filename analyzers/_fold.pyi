"""The streaming fold in C: the fast twin of :class:`memscope.analyzers.fold.PyFold`."""

from collections.abc import Iterable
from typing import Any

import numpy as np

from memscope.analyzers.fold import FoldParams

class Fold:
    """The streaming fold's state (see :mod:`memscope.analyzers.fold` for every rule).

    Not thread-safe: one Fold per thread, or the caller serializes its calls; ``feed`` runs
    without the GIL and another call meanwhile raises RuntimeError.
    """

    def __init__(self, **params: int) -> None: ...
    @property
    def params(self) -> FoldParams: ...
    def set_sampling(self, pid: int, sample_bytes: int) -> None: ...
    def watch(self, pid: int, address: int, ts_ns: int) -> None: ...
    def feed(
        self,
        pid: Any,
        tid: Any,
        seq: Any,
        ts_ns: Any,
        kind: Any,
        domain: Any,
        address: Any,
        old_address: Any,
        size: Any,
        stack_id: Any,
    ) -> None:
        """Fold events: C-contiguous 1-D buffers of u4, u8, u8, i8, u1, u1, u8, u8, u8, u4."""
    def export(self, tables: Iterable[str] | None = None) -> dict[str, dict[str, np.ndarray]]: ...
    @classmethod
    def restore(cls, params: dict[str, int], tables: dict[str, dict[str, np.ndarray]]) -> Fold: ...
