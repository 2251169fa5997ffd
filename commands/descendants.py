"""Whether any process still runs that would trace into a given broker (Linux ``/proc``).

``memscope run`` waits, after its program ends, for the last batches of every traced process;
a process forked or started just before the end may not have announced itself yet, so it
used to wait at least two flush intervals. When no live process has the broker's address in
its environment, none can still announce itself, and that wait is skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The variable that makes a process trace into a broker (memscope.api.offline).
ADDRESS_ENV = b"MEMSCOPE_BROKER_ADDRESS="


def tracing_into(
    address: str, exclude: set[int] | None = None, proc: Path = Path("/proc")
) -> bool | None:
    """Whether a live process other than ``exclude`` (and this one) traces into ``address``.

    None when it cannot be told (no ``/proc``): the caller then waits as before. Processes
    of other users, and zombies (their environment reads empty), do not count.
    """
    try:
        entries = os.listdir(proc)
    except OSError:
        return None
    skip = {os.getpid(), *(exclude or ())}
    wanted = ADDRESS_ENV + address.encode()
    for name in entries:
        if not name.isdigit() or int(name) in skip:
            continue
        try:
            with open(proc / name / "environ", "rb") as fh:
                environ = fh.read()
        except OSError:  # gone, or not ours
            continue
        if wanted in environ.split(b"\0"):
            return True
    return False
