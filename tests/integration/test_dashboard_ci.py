"""Browser tests fail (not skip) under CI=true when Chromium is missing."""

from __future__ import annotations

import _browser
import pytest


def test_missing_chromium_fails_under_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(_browser, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="make browser-deps"):
        _browser.require_chromium()


def test_missing_chromium_skips_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setattr(_browser, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        _browser.require_chromium()
