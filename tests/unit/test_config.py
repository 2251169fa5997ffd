import pytest

from memscope.config import load_settings


def test_defaults_load():
    settings = load_settings({})
    assert settings.mode == "full" and settings.send_hwm > 0


def test_environment_overrides_and_validates():
    assert load_settings({"MEMSCOPE_MODE": "sampled"}).mode == "sampled"
    assert load_settings({"MEMSCOPE_DISABLE": "1"}).disable is True
    with pytest.raises(ValueError, match="mode must be one of"):
        load_settings({"MEMSCOPE_MODE": "bogus"})
    with pytest.raises(ValueError, match="send_hwm must be a int"):
        load_settings({"MEMSCOPE_SEND_HWM": "lots"})
