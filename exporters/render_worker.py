"""The vl-convert SVG, rendered by a child process started (and warmed up) ahead of time.

``memory_analysis.svg`` is the one report vl-convert renders, and vl-convert's first call in
a process starts its JavaScript engine: about half a second before any drawing. ``memscope
run`` starts a :class:`SvgRenderer` with the program, so the engine is ready when the
analyses are; the SVG is then drawn beside the other reports.

The child (``python -m memscope.exporters.render_worker``) warms vl-convert with a one-text
chart (:data:`WARM_UP`: it creates no clip path, so the SVG's ids are those of a cold
render and the bytes do not depend on the warm-up; a richer warm-up chart was measured to
save under a tenth of a second of the render for half a second more of work while the
program runs, on the cores the program and the fold need). It then reads one JSON line
``{"source": DIR, "out": DIR}`` from stdin, writes the SVG with
:func:`memscope.exporters.write_reports` and answers one JSON line
``{"written": [paths]}`` or ``{"error": message}``, and exits at once (``os._exit``: the
interpreter's teardown would take a few tenths of a second, holding ``memscope run``'s
stderr open meanwhile); the parent does not wait for its exit. End of input before a
request makes it exit too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

#: The reports this worker writes (the ones vl-convert renders).
FILES = ("memory_analysis.svg",)

#: The warm-up chart: one text mark, which makes no clip path (vega numbers the clip paths of
#: all of a process's renders: one made here would shift the ids in the real SVG).
WARM_UP: dict[str, Any] = {
    "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
    "data": {"values": [{"t": "memscope"}]},
    "mark": "text",
    "encoding": {"text": {"field": "t", "type": "nominal"}},
}


class SvgRenderer:
    """A child process that renders :data:`FILES` on request."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = subprocess.Popen(
            [sys.executable, "-m", "memscope.exporters.render_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def submit(self, source: Path, out: Path) -> None:
        """Ask for the SVG of the analysis files in ``source``, written into ``out``."""
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("the SVG renderer is closed")
        self._proc.stdin.write(json.dumps({"source": str(source), "out": str(out)}) + "\n")
        self._proc.stdin.flush()

    def result(self) -> list[Path]:
        """The files written (waits for them).

        Raises:
            RuntimeError: the child failed (its message) or died.
        """
        if self._proc is None or self._proc.stdout is None:
            raise RuntimeError("the SVG renderer is closed")
        line = self._proc.stdout.readline()
        self.close(wait=False)
        try:
            answer = json.loads(line)
        except ValueError:
            raise RuntimeError("the SVG renderer exited without an answer") from None
        if "error" in answer:
            raise RuntimeError(str(answer["error"]))
        return [Path(p) for p in answer.get("written", [])]

    def close(self, wait: bool = True) -> None:
        """End the child: it exits at the end of its input (at once when never asked).

        With ``wait`` (the default), until it has exited; without, it is left to exit
        (after its answer: only its interpreter's teardown is left).
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.stdout is not None:
            proc.stdout.close()
        if not wait:  # reaped by a thread, whenever its teardown is over
            threading.Thread(target=proc.wait, name="memscope-renderer-reaper", daemon=True).start()
            return
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def warm_up() -> str:
    """Import the exporters and draw :data:`WARM_UP`; its SVG ("" when something failed).

    Never raises: the real render reports any real problem.
    """
    from memscope.exporters import EXPORTERS, exporter

    try:
        for module, cls in EXPORTERS:  # write_reports makes each one: imported now
            exporter(module, cls)
        import vl_convert

        return str(vl_convert.vegalite_to_svg(WARM_UP, allowed_base_urls=[]))
    except Exception:  # noqa: BLE001 -- the real render reports any real problem
        return ""


def _serve() -> int:
    from memscope.exporters import write_reports
    from memscope.timings import mark

    mark("renderer started")
    warm_up()
    mark("renderer warm")
    line = sys.stdin.readline()
    if not line:
        return 0
    mark("renderer asked")
    try:
        request = json.loads(line)
        written = write_reports(Path(request["source"]), Path(request["out"]), only=FILES)
        answer: dict[str, object] = {"written": [str(p) for p in written]}
    except Exception as exc:  # noqa: BLE001 -- sent back as one line, raised by the parent
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    mark("renderer wrote")
    print(json.dumps(answer), flush=True)
    sys.stderr.flush()
    # Nothing is left to do: no interpreter teardown (a few tenths of a second of freeing
    # Altair's and vl-convert's objects while it still holds the terminal's stderr).
    os._exit(0)


if __name__ == "__main__":
    sys.exit(_serve())
