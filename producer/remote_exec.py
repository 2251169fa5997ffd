"""Run a few lines of Python inside another, running CPython process (``memscope attach``).

Two ways, chosen by :func:`inject`:

* **``sys.remote_exec``** (CPython 3.14+, PEP 768): the script is written to a file and the
  target's main thread runs it at its next safe point.
* **gdb** (3.11-3.13, and wherever ``sys.remote_exec`` is missing): gdb stops the process
  for a moment and queues the code with ``Py_AddPendingCall(PyRun_SimpleString, code)``;
  the main thread runs it, holding the GIL, at its next check of the eval loop -- the same
  safe point ``sys.remote_exec`` uses, never in the middle of an allocator or a bytecode.

Either way the code runs only once the main thread executes Python bytecode again (a main
thread blocked in a long ``time.sleep`` or ``input()`` runs it when it wakes). The code is
passed base64-encoded, so no quoting reaches gdb, and must never raise: a pending call that
fails without an exception set would become a ``SystemError`` in the program
(:func:`payload` catches everything and writes its outcome to a status file instead).

Both need the right to trace the process: the same user and a ``kernel.yama.ptrace_scope``
of 0 (or 1 for a descendant), or ``CAP_SYS_PTRACE`` (root): see :func:`ptrace_hint`.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: Where Yama's ptrace policy is read.
PTRACE_SCOPE = Path("/proc/sys/kernel/yama/ptrace_scope")
#: Seconds gdb may take to attach, queue the call and detach.
GDB_TIMEOUT_S = 60.0

_PAYLOAD = """\
import os as _os
import sys as _sys
import traceback as _tb


def _run(status, cancelled):
    if _os.path.exists(cancelled):  # memscope attach gave up waiting: do nothing
        return
    try:
{body}
        outcome = "ok"
    except BaseException as exc:  # reported to memscope attach, never raised into the program
        outcome = "error: " + "".join(_tb.format_exception_only(exc)).strip()
    with open(status, "w") as fh:
        fh.write(outcome)


_run({status!r}, {cancelled!r})
"""


class AttachError(RuntimeError):
    """The code could not be sent to the process (the message says why and what to do)."""


def ptrace_hint() -> str:
    """What the system's ptrace policy allows, for an error message."""
    try:
        scope = PTRACE_SCOPE.read_text().strip()
    except OSError:
        scope = None
    if os.geteuid() == 0:
        return "running as root"
    if scope in (None, "0"):
        return "ptrace is allowed for processes of the same user"
    if scope == "1":
        return (
            f"{PTRACE_SCOPE} is 1: only a parent may trace its children; run as root, "
            "or `sudo sysctl kernel.yama.ptrace_scope=0`"
        )
    return f"{PTRACE_SCOPE} is {scope}: only root (2) or nobody (3) may trace processes"


def payload(body: str, status: Path, cancelled: Path) -> str:
    """A script running ``body`` (statements) that reports ``ok`` or the error to ``status``."""
    indented = "\n".join("        " + line for line in body.strip().splitlines())
    return _PAYLOAD.format(body=indented, status=str(status), cancelled=str(cancelled))


def _one_liner(script: str) -> str:
    """``script`` as one line of Python without quotes that need escaping in gdb."""
    if "\n" not in script.strip() and '"' not in script and "\\" not in script:
        return script.strip()  # already one line gdb can carry as it is
    encoded = base64.b64encode(script.encode()).decode("ascii")
    return (
        f"exec(__import__('base64').b64decode('{encoded}').decode(), "
        "{'__name__': '__memscope_attach__'})"
    )


def gdb_command(pid: int, script: str, gdb: str) -> list[str]:
    """The gdb command line that queues ``script`` as a pending call of process ``pid``."""
    code = _one_liner(script)
    # No debug symbols are needed: the functions' types are given by the casts.
    call = (
        "call ((int (*)(int (*)(void *), void *))Py_AddPendingCall)"
        f'((int (*)(void *))PyRun_SimpleString, (void *)"{code}")'
    )
    return [
        gdb,
        "-p",
        str(pid),
        "-batch",
        "-nx",
        "-q",
        "-iex",
        "set debuginfod enabled off",
        "-iex",
        "set auto-load off",
        "-ex",
        "set confirm off",
        "-ex",
        call,
    ]


def via_gdb(pid: int, script: str, gdb: str | None = None) -> None:
    """Queue ``script`` in process ``pid`` through gdb.

    Raises:
        AttachError: gdb is missing, could not attach, or the call failed.
    """
    gdb = gdb or shutil.which("gdb") or ("/usr/bin/gdb" if Path("/usr/bin/gdb").exists() else None)
    if gdb is None:
        raise AttachError(
            "gdb is not installed (apt-get install gdb); it is needed to "
            "attach to CPython before 3.14"
        )
    try:
        done = subprocess.run(
            gdb_command(pid, script, gdb),
            capture_output=True,
            text=True,
            timeout=GDB_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AttachError(
            f"gdb did not finish attaching to {pid} within {GDB_TIMEOUT_S:.0f} s"
        ) from None
    out = done.stdout + done.stderr
    if "Operation not permitted" in out or "ptrace:" in out:
        raise AttachError(f"not allowed to trace process {pid} ({ptrace_hint()})")
    if "No symbol" in out:
        raise AttachError(
            f"process {pid} is not a CPython interpreter gdb can find "
            "Py_AddPendingCall in (a static or stripped build?)"
        )
    result = [line for line in out.splitlines() if line.startswith("$1 = ")]
    if not result or result[0].strip() != "$1 = 0":
        last = result or [line for line in out.splitlines() if line.strip()][-1:] or ["?"]
        raise AttachError(f"gdb could not queue the call in process {pid}: {last[0]}")


def via_remote_exec(pid: int, script: str, directory: Path) -> None:
    """Run ``script`` in process ``pid`` with ``sys.remote_exec`` (CPython 3.14+).

    Raises:
        AttachError: this Python has no ``sys.remote_exec``, or it refused.
    """
    remote_exec = getattr(sys, "remote_exec", None)
    if remote_exec is None:
        raise AttachError("sys.remote_exec needs CPython 3.14 or later")
    path = directory / f"attach-{os.getpid()}-{len(list(directory.iterdir()))}.py"
    path.write_text(script)
    path.chmod(0o644)  # the target may run as another user
    try:
        remote_exec(pid, str(path))
    except (OSError, RuntimeError, ValueError) as exc:
        raise AttachError(f"sys.remote_exec({pid}) failed: {exc} ({ptrace_hint()})") from None


def inject(pid: int, script: str, directory: Path, method: str = "auto") -> str:
    """Run ``script`` in process ``pid``; the method used (``remote_exec`` or ``gdb``).

    ``method``: ``auto`` uses ``sys.remote_exec`` where this Python has it, else gdb.
    """
    if method == "remote_exec" or (method == "auto" and hasattr(sys, "remote_exec")):
        via_remote_exec(pid, script, directory)
        return "remote_exec"
    via_gdb(pid, script)
    return "gdb"


def process_uid(pid: int) -> int:
    """The owner of process ``pid``.

    Raises:
        AttachError: there is no such process.
    """
    try:
        return Path(f"/proc/{pid}").stat().st_uid
    except FileNotFoundError:
        raise AttachError(f"no process {pid}") from None


def work_dir(target_uid: int) -> Path:
    """A private directory for the status files, owned by the target's user (it writes there)."""
    path = Path(tempfile.mkdtemp(prefix="memscope-attach-"))
    if target_uid != os.geteuid():
        os.chown(path, target_uid, -1)  # (only root gets here: tracing needs it)
    return path
