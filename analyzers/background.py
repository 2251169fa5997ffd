"""Fold a log's memory events on a thread while its broker still writes it.

``memscope run`` would otherwise fold the whole log after the program ends (about a second
for 5 M events), on the path between the program's exit and its reports. A
:class:`BackgroundFold` follows the growing log instead, every :data:`INTERVAL_S` seconds,
with the same hold-back as ``analyze --follow`` (each process's latest
:data:`memscope.analyzers.state.HOLD_BACK_NS` wait for the next round, so events are folded
in the same order as a fold of the finished log). :meth:`BackgroundFold.finish`, once the
log is closed, folds the rest and writes the checkpoint that ``run_all`` then starts from:
the files are the ones a fold of the finished log gives.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

from memscope.analyzers.fold import FoldParams
from memscope.analyzers.state import AnalysisState, state_dir
from memscope.analyzers.views import open_reader
from memscope.timings import mark

#: Seconds between two rounds of the background fold.
INTERVAL_S = 0.25


class BackgroundFold:
    """The analysis state of a log being written, kept folded on a daemon thread."""

    def __init__(
        self, log: str | Path, params: FoldParams | None = None, interval: float = INTERVAL_S
    ) -> None:
        self.log = Path(log)
        self.params = params or FoldParams()
        self.interval = interval
        self.state: AnalysisState | None = None
        #: Why the thread stopped folding (then :meth:`finish` writes no checkpoint).
        self.error: BaseException | None = None
        self.rounds = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="memscope-background-fold", daemon=True
        )

    def start(self) -> BackgroundFold:
        """Start following the log."""
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self.interval)
                self._wake.clear()
                if not self._stop.is_set():
                    self._round(final=False)
        except Exception as exc:  # noqa: BLE001 -- finish() says so; run_all folds it all
            self.error = exc

    def _round(self, final: bool, on_events: Callable[[int], None] | None = None) -> None:
        if not (self.log / "manifest.json").exists():
            return  # the broker has not created the log yet
        reader = open_reader(self.log)
        if self.state is None:
            self.state = AnalysisState(self.params, log_id=reader.log_id)
        mark(f"fold round {self.rounds + 1} starts at {self.state.events} events")
        self.state.update(reader, on_events, final=final)
        self.rounds += 1
        mark(f"fold round {self.rounds} ends at {self.state.events} events")

    def nudge(self) -> None:
        """Start the next round now (e.g. the program ended: its last events are in)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread (the state stays as folded so far)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def finish(
        self, background_save: bool = False, on_events: Callable[[int], None] | None = None
    ) -> AnalysisState | None:
        """After the log was closed: fold the rest and write the checkpoint; the state.

        With ``background_save`` the checkpoint is written on a thread while the caller
        reads the state (``state.wait_saved()`` waits for it). ``on_events`` is called with
        the memory events folded so far, during the last fold and once at its end. None
        when the background fold failed (the message is printed; the reports then fold the
        log from its start, as without this).
        """
        self.stop()
        mark("background fold stopped")
        if self.error is None:
            try:
                self._round(final=True, on_events=on_events)
                if on_events is not None and self.state is not None:
                    on_events(self.state.events)
                if self.state is not None:
                    directory = state_dir(open_reader(self.log))
                    if background_save:
                        self.state.save_in_background(directory)
                    else:
                        self.state.save(directory)
            except Exception as exc:  # noqa: BLE001 -- reported, the reports fold it all
                self.error = exc
        if self.error is not None:
            print(
                f"memscope: the background fold failed ({type(self.error).__name__}: "
                f"{self.error}); folding the log after the program",
                file=sys.stderr,
            )
            return None
        return self.state
