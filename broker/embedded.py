"""A broker in a child process, for ``memscope.init()`` and ``memscope run``.

The child is a fresh interpreter (``python -m memscope broker``), never a fork of the traced
process, and runs with ``MEMSCOPE_DISABLE=1`` so it is not traced itself. Its own messages go
to ``<log>/_broker/broker.log``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from memscope.config import Settings
from memscope.config.settings import DISABLE_ENV
from memscope.protocol import addresses
from memscope.protocol.control_client import BrokerClient, BrokerError


class EmbeddedBroker:
    """Handle of a broker child process."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        address: str,
        log_dir: Path,
        settings: Settings,
        runtime_dir: Path | None,
    ) -> None:
        self.process = process
        self.address = address
        self.control_address = addresses.control_address(address)
        self.feed_address = addresses.feed_address(address)
        self.log_dir = log_dir
        self.settings = settings
        self._runtime_dir = runtime_dir

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def client(self, timeout_s: float = 10.0) -> BrokerClient:
        """A control client for this broker (close it when done)."""
        return BrokerClient(self.control_address, self.settings, timeout_s)

    def alive(self) -> bool:
        """True while the child runs."""
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the broker (it flushes and closes the log); SIGKILL after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            # A blocking wait (Popen.wait(timeout) polls every 50 ms), killed after timeout.
            killer = threading.Timer(timeout, self._kill)
            killer.daemon = True
            killer.start()
            try:
                self.process.wait()
            finally:
                killer.cancel()
        if self._runtime_dir is not None:
            for path in self._runtime_dir.iterdir():
                path.unlink(missing_ok=True)
            self._runtime_dir.rmdir()
            self._runtime_dir = None
        return int(self.process.returncode)

    def _kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MEMSCOPE_CONFIG", None)
    for name, value in dataclasses.asdict(settings).items():
        env["MEMSCOPE_" + name.upper()] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    env[DISABLE_ENV] = "1"
    # pyarrow loads numpy, whose BLAS would start a thread per core that spins for a while:
    # the broker does no linear algebra, and those cores belong to the traced program
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, "1")
    return env


def start_embedded(
    log_dir: str | os.PathLike[str],
    bind: str | None = None,
    settings: Settings | None = None,
    timeout: float = 30.0,
) -> EmbeddedBroker:
    """Start a broker child writing ``log_dir``; return once it answers on its control socket.

    ``bind`` defaults to an ipc:// address in a fresh private temporary directory.

    Raises:
        RuntimeError: the child exited or did not answer within ``timeout`` (the message
            carries the end of its log).
    """
    settings = settings or Settings()
    log_path = Path(log_dir)
    log_path.mkdir(parents=True, exist_ok=True)
    runtime_dir = None
    if bind is None:
        runtime_dir = Path(tempfile.mkdtemp(prefix="memscope-"))
        bind = f"ipc://{runtime_dir}/b-{uuid.uuid4().hex[:8]}"
    (log_path / "_broker").mkdir(exist_ok=True)
    output = open(log_path / "_broker" / "broker.log", "ab")
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "memscope",
                "broker",
                "--bind",
                bind,
                "--log",
                str(log_path),
                "--exit-with-parent",
            ],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env=_child_env(settings),
            start_new_session=True,
        )
    finally:
        output.close()
    broker = EmbeddedBroker(process, bind, log_path, settings, runtime_dir)
    _wait_ready(broker, timeout)
    return broker


def _wait_ready(broker: EmbeddedBroker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with broker.client() as client:
        while time.monotonic() < deadline:
            if not broker.alive():
                break
            try:
                client.ping(timeout_s=0.5)
                return
            except BrokerError:
                continue
    tail = _log_tail(broker.log_dir / "_broker" / "broker.log")
    broker.stop(timeout=5.0)
    raise RuntimeError(f"the embedded broker did not start: {tail or 'no output'}")


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
