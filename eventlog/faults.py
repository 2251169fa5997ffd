"""A full disk on demand, for tests: ``MEMSCOPE_TEST_FULL_DISK=PATH`` in the broker's environment.

While ``PATH`` exists, every write of the log (segment batches, checksum records, the journal,
the manifest) fails with ``ENOSPC`` as a full disk would: a segment batch after its bytes
reached the file (a torn write the broker must cut back), the others before. Removing ``PATH``
is the space coming back. Unset (always, outside tests), :func:`check` costs one dict lookup.
"""

from __future__ import annotations

import errno
import os

ENV = "MEMSCOPE_TEST_FULL_DISK"


def check() -> None:
    """Raise ``OSError(ENOSPC)`` while the fault is on."""
    path = os.environ.get(ENV)
    if path and os.path.exists(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
