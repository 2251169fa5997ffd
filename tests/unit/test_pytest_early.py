"""pytest_early: the broker of ``pytest --memscope`` started when pytest loads the plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from memscope.integrations import pytest_early


class FakeBroker:
    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_options_are_read_in_both_spellings() -> None:
    assert pytest_early._option(["--memscope", "--memscope-dir", "a"], "--memscope-dir") == "a"
    assert pytest_early._option(["--memscope-dir=b", "-q"], "--memscope-dir") == "b"
    assert pytest_early._option(["--memscope"], "--memscope-dir") is None


@pytest.mark.parametrize(
    "env", [{}, {"MEMSCOPE_DISABLE": "1"}, {"MEMSCOPE_BROKER_ADDRESS": "tcp://127.0.0.1:9"}]
)
def test_nothing_starts_unless_the_plugin_would_start_a_broker(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    started = []
    monkeypatch.setattr(
        "memscope.integrations.early_broker.EarlyBroker",
        lambda *a: started.append(a) or FakeBroker(),
    )
    pytest_early.start_from_argv(["-q"] if not env else ["--memscope"])
    pytest_early.start_from_argv(None)  # this process is not the pytest command
    assert not started and pytest_early.run_dir() is None


def test_a_broker_for_another_log_is_stopped_and_its_new_directory_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEMSCOPE_DISABLE", raising=False)
    monkeypatch.delenv("MEMSCOPE_BROKER_ADDRESS", raising=False)
    brokers: list[FakeBroker] = []

    def fake(events: str, settings: object) -> FakeBroker:
        Path(events).mkdir(parents=True)
        brokers.append(FakeBroker())
        return brokers[-1]

    monkeypatch.setattr("memscope.integrations.early_broker.EarlyBroker", fake)
    run = tmp_path / "run"
    pytest_early.start_from_argv(["--memscope", "--memscope-dir", str(run)])
    assert pytest_early.run_dir() == run
    assert pytest_early.take(str(run.resolve() / "events")) is brokers[0]  # the caller's now
    assert pytest_early.run_dir() is None and not brokers[0].stopped
    pytest_early.start_from_argv([f"--memscope-dir={tmp_path / 'other'}", "--memscope"])
    assert pytest_early.take(str(run.resolve() / "events")) is None
    assert brokers[1].stopped and not (tmp_path / "other").exists() and tmp_path.exists()
    pytest_early.discard()  # nothing left: nothing to do
