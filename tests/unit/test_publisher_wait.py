"""The publisher's wait: it ends early when the tracer holds a busy cycle's worth of records."""

import time

from memscope.config import Settings
from memscope.producer import publisher as publisher_module
from memscope.producer.publisher import BUSY_CYCLE_BYTES, BUSY_INTERVAL_S, Publisher


def _publisher(tmp_path):
    settings = Settings().replace(spool_dir=str(tmp_path), flush_interval_s=5.0)
    return Publisher("ipc:///nowhere", "h:1:1", 1, lambda: ([], {}), settings)


def test_a_filling_buffer_ends_the_wait_long_before_the_interval(tmp_path):
    publisher = _publisher(tmp_path)
    looks = []

    def pending():
        looks.append(time.monotonic())
        return BUSY_CYCLE_BYTES if len(looks) >= 3 else 0

    publisher.pending = pending
    start = time.monotonic()
    publisher._wait(5.0)  # (the baseline is 0: nothing drained yet)
    took = time.monotonic() - start
    assert len(looks) == 3  # looked every BUSY_INTERVAL_S until the buffers held enough
    assert 2 * BUSY_INTERVAL_S * 0.9 <= took < 1.0


def test_an_idle_tracer_waits_the_whole_interval_and_a_wake_ends_it(tmp_path):
    """Many threads each hold a buffer, drained or not: only growth since the drain counts."""
    publisher = _publisher(tmp_path)
    held = 20 * 64 * 1024  # 20 idle threads' buffers: more than a busy cycle's worth
    assert held > BUSY_CYCLE_BYTES
    publisher.pending = lambda: held
    publisher._note_drained()  # as a drain does
    start = time.monotonic()
    publisher._wait(0.3)
    assert 0.29 <= time.monotonic() - start < 2.0
    publisher.wake()
    start = time.monotonic()
    publisher._wait(5.0)
    assert time.monotonic() - start < 1.0


def test_without_a_pending_probe_the_wait_is_one_sleep(tmp_path, monkeypatch):
    publisher = _publisher(tmp_path)
    waits = []
    monkeypatch.setattr(publisher, "_wait_for_wake", lambda timeout: waits.append(timeout))
    publisher._wait(0.5)
    assert len(waits) == 1 and 0.45 < waits[0] <= 0.5
    assert publisher_module.BUSY_INTERVAL_S < 0.5


def test_a_failing_look_does_not_end_the_wait_early_or_the_thread(tmp_path):
    publisher = _publisher(tmp_path)

    def broken():
        raise RuntimeError("no tracer")

    publisher.pending = broken
    start = time.monotonic()
    publisher._wait(0.2)
    assert 0.19 <= time.monotonic() - start < 2.0
