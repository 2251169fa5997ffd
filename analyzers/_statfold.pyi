"""The streaming fold's per-process running totals alone (see ``analyzers/_statfold.c``)."""

from typing import Any

class StatsFold:
    """Counters of each pid, folded like :class:`memscope.analyzers._fold.Fold` folds them.

    Not thread-safe: the caller serializes its calls; ``feed`` runs without the GIL.
    """

    def __init__(self) -> None: ...
    def feed(
        self, pid: Any, ts_ns: Any, kind: Any, address: Any, old_address: Any, size: Any
    ) -> None:
        """Fold events (C-contiguous 1-D buffers of u4, i8, u1, u8, u8, u8).

        The columns are :data:`memscope.analyzers.live_totals.FEED_COLUMNS`.
        """
    def set_sampling(self, pid: int, sample_bytes: int) -> None: ...
    def watch(self, pid: int, address: int, ts_ns: int) -> None: ...
    def totals(self, pid: int) -> dict[str, int] | None: ...
    def pids(self) -> list[int]: ...
