"""An embedded broker started on a thread, so its start-up overlaps with the program's work.

``memscope.init()`` starts its embedded broker and waits until it answers (about half a
second: a new interpreter importing pyarrow and pyzmq). A caller that controls the session
(the pytest plugin) can instead pick the broker's address, start it here in the background and
call ``memscope.init(broker_address=...)`` at once: the tracer's batches wait in the ZeroMQ
queue (a PUSH socket connects before its peer binds) until the broker is up. The caller then
owns the broker: :meth:`EarlyBroker.ready` before anything that needs its answers or before
``memscope.shutdown()``, and :meth:`EarlyBroker.stop` after it.

The starting thread is memscope's own (named ``memscope-...``, its allocations untraced).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from memscope.producer.threadwatch import OWN_THREAD_PREFIX

#: Seconds :meth:`EarlyBroker.ready` waits for the broker.
READY_TIMEOUT_S = 60.0


class EarlyBroker:
    """An embedded broker starting in the background (see the module docstring)."""

    def __init__(self, log_dir: str | Path, settings: Any) -> None:
        self._runtime = Path(tempfile.mkdtemp(prefix="memscope-"))
        #: Where the broker will listen (private ``ipc://`` in a fresh directory).
        self.address = f"ipc://{self._runtime}/b-{uuid.uuid4().hex[:8]}"
        self._log_dir = Path(log_dir)
        self._settings = settings
        self._broker: Any = None
        self._error: str | None = None
        self._thread = threading.Thread(
            target=self._start, daemon=True, name=f"{OWN_THREAD_PREFIX}broker-start"
        )
        self._thread.start()

    def _start(self) -> None:
        from memscope.producer import _tracer

        _tracer.ignore_current_thread()  # starting the broker is memscope's work
        from memscope.broker import start_embedded

        try:
            self._broker = start_embedded(self._log_dir, bind=self.address, settings=self._settings)
        except (RuntimeError, OSError) as exc:  # reported by ready()
            self._error = str(exc)

    def ready(self) -> Any:
        """The running EmbeddedBroker, once it answers.

        Raises:
            RuntimeError: it did not start (the message says why).
        """
        self._thread.join(READY_TIMEOUT_S)
        if self._broker is None:
            raise RuntimeError(
                f"the embedded broker did not start: {self._error}"
                if self._error
                else f"the embedded broker did not start in {READY_TIMEOUT_S:.0f} s"
            )
        return self._broker

    def stop(self) -> None:
        """Stop the broker (it writes the rest of the log) and remove its socket directory."""
        self._thread.join(READY_TIMEOUT_S)
        if self._broker is not None:
            self._broker.stop()
        shutil.rmtree(self._runtime, ignore_errors=True)
