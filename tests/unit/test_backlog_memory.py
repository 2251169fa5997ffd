"""The backlog's memory: a view of a drained buffer keeps the whole buffer, counted once."""

from memscope.producer import backlog as backlog_module
from memscope.producer.backlog import Backlog
from memscope.protocol import wire


def test_views_of_one_buffer_are_charged_the_whole_buffer_once(tmp_path):
    backlog = Backlog(tmp_path / "p.spool")
    drained = bytes(1000)  # one drain's buffer, shipped as two batches' views
    first, second = memoryview(drained)[:400], memoryview(drained)[400:]
    backlog.add(0, 1, [b"env0", first], to_disk=False)
    assert backlog.memory_bytes == 4 + 1000  # the view keeps all of it alive
    backlog.add(1, 1, [b"env1", second], to_disk=False)
    assert backlog.memory_bytes == 4 + 1000 + 4  # the buffer once, each envelope
    assert backlog.release(0) == 1
    assert backlog.memory_bytes == 1000 + 4  # the second batch still holds the buffer
    assert backlog.release(1) == 1
    assert backlog.memory_bytes == 0
    backlog.close()


def test_a_batch_whose_buffer_would_pass_the_cap_goes_to_the_spool(tmp_path, monkeypatch):
    monkeypatch.setattr(backlog_module, "MEMORY_CAP", 1500)
    backlog = Backlog(tmp_path / "p.spool")
    big = bytes(2000)
    chunk = {"tid": 1, "n": 0, "enc": "rec1", "data": 1, "off": 0, "len": 100}
    envelope = wire.encode_batch("h:1:1", 1, 0, [chunk], {})
    entry = backlog.add(0, 0, [envelope, memoryview(big)[:100]], to_disk=False)
    assert entry.payload is None and entry.on_disk  # 100 bytes sent, 2000 kept: spooled
    assert backlog.memory_bytes == 0
    [spooled] = backlog.payload(entry)
    assert wire.decode_envelope(spooled).mem[0]["data"] == bytes(100)
    backlog.close()
