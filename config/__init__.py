"""memscope configuration: one frozen dataclass loaded from TOML and ``MEMSCOPE_*`` variables.

Precedence, lowest first: ``config/default.toml`` shipped with the package, the TOML file named
by ``MEMSCOPE_CONFIG``, then one environment variable per key (``MEMSCOPE_<KEY>``).
"""

from memscope.config.settings import Settings, SettingsError, load_settings

__all__ = ["Settings", "SettingsError", "load_settings"]
