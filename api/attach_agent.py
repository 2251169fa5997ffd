"""The side of ``memscope attach`` that runs inside the traced process when it detaches.

Called by the line :mod:`memscope.commands.attach` injects (short, because its own
compiled code is traced until the hooks come off). It never raises: the
outcome (``ok`` or ``error: ...``) goes to a status file that ``memscope attach`` reads, and
nothing is done once ``cancelled`` exists (``memscope attach`` gave up waiting).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable


def _outcome(status: str, cancelled: str, work: Callable[[], None]) -> None:
    if os.path.exists(cancelled):
        return
    try:
        work()
        text = "ok"
    except BaseException as exc:  # noqa: BLE001 -- reported to memscope attach, never raised
        text = "error: " + "".join(traceback.format_exception_only(exc)).strip()
    with open(status, "w") as fh:
        fh.write(text)


def stop(status: str, cancelled: str) -> None:
    """Stop tracing: the final batch goes out, the hooks come off, the program runs on."""
    from memscope.api.tracker import shutdown

    _outcome(status, cancelled, shutdown)
