"""Load :class:`Settings` from the packaged defaults, an optional TOML file and the environment."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_DEFAULTS_FILE = Path(__file__).with_name("default.toml")
_ENV_PREFIX = "MEMSCOPE_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    """Every tunable of memscope. Field docs live in ``config/default.toml``."""

    broker_address: str = ""
    log_dir: str = ""
    mode: str = "full"
    sample_bytes: int = 65536
    send_hwm: int = 8
    batch_max_events: int = 262_144
    flush_interval_s: float = 0.2
    spool_dir: str = ""
    arena_dir: str = ""
    send_timeout_s: float = 1.0
    segment_max_bytes: int = 256 * 1024 * 1024
    segment_max_age_s: float = 300.0
    log_flush_interval_s: float = 1.0
    log_compression: str = "zstd"
    log_memory: str = "chunks"
    log_chunk_compression: str = "lz4"
    curve_server_secret_key: str = ""
    curve_server_public_key: str = ""
    curve_client_secret_key: str = ""
    curve_authorized_clients: str = ""
    disable: bool = False
    native: bool = False
    analysis_memory_mb: int = 1000
    metrics_top_sites: int = 20
    log_retention_bytes: int = 0
    log_retention_age: str = ""
    log_retention_dataset: str = ""

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied (validated like loaded values)."""
        merged = dataclasses.asdict(self) | changes
        return _build(merged, source="Settings.replace()")


_MODES = ("full", "aggregated", "sampled")
_COMPRESSIONS = ("zstd", "lz4", "none")
_LOG_MEMORY = ("chunks", "columns")
#: Environment variables earlier versions read directly -> the setting that replaced them.
_RENAMED = {
    "MEMSCOPE_DUCKDB_MEMORY": "analysis_memory_mb",
    "MEMSCOPE_ANALYZE_MEMORY_MB": "analysis_memory_mb",
}


#: What a number means, for the error message of a value that is not one.
_UNITS = {"analysis_memory_mb": " of megabytes (e.g. 2000)"}


class SettingsError(ValueError):
    """A bad setting; the message names the key, its source and what is accepted."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number with an optional unit s, m, h, d or w (``""``: 0).

    Raises:
        ValueError: anything else.
    """
    if not text.strip():
        return 0.0
    match = _DURATION.match(text.lower())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (examples: 3600, 90m, 36h, 7d, 2w)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _coerce(name: str, raw: Any, target: type, source: str) -> Any:
    if target is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise SettingsError(f"{source}: {name} must be true or false, not {raw!r}")
    try:
        return target(raw)
    except (TypeError, ValueError):
        raise SettingsError(
            f"{source}: {name} must be a {target.__name__}{_UNITS.get(name, '')}, not {raw!r}"
        ) from None


def _build(values: Mapping[str, Any], source: str) -> Settings:
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise SettingsError(f"{source}: unknown setting(s) {', '.join(unknown)}")
    types = {"str": str, "int": int, "float": float, "bool": bool}
    kwargs = {
        name: _coerce(name, value, types[str(fields[name].type)], source)
        for name, value in values.items()
    }
    settings = Settings(**kwargs)
    if settings.mode not in _MODES:
        raise SettingsError(
            f"{source}: mode must be one of {', '.join(_MODES)}, not {settings.mode!r}"
        )
    if settings.log_compression not in _COMPRESSIONS:
        raise SettingsError(
            f"{source}: log_compression must be one of {', '.join(_COMPRESSIONS)}, "
            f"not {settings.log_compression!r}"
        )
    if settings.log_chunk_compression not in _COMPRESSIONS:
        raise SettingsError(
            f"{source}: log_chunk_compression must be one of {', '.join(_COMPRESSIONS)}, "
            f"not {settings.log_chunk_compression!r}"
        )
    if settings.log_memory not in _LOG_MEMORY:
        raise SettingsError(
            f"{source}: log_memory must be one of {', '.join(_LOG_MEMORY)}, "
            f"not {settings.log_memory!r}"
        )
    try:
        parse_duration(settings.log_retention_age)
    except ValueError as exc:
        raise SettingsError(f"{source}: log_retention_age: {exc}") from None
    if settings.log_retention_bytes < 0 or 0 < settings.log_retention_bytes < (
        2 * settings.segment_max_bytes
    ):
        raise SettingsError(
            f"{source}: log_retention_bytes must be 0 (no bound) or at least twice "
            f"segment_max_bytes ({2 * settings.segment_max_bytes}), not "
            f"{settings.log_retention_bytes}"
        )
    for name in ("analysis_memory_mb", "metrics_top_sites"):
        if getattr(settings, name) < 1:
            raise SettingsError(
                f"{source}: {name} must be a positive integer, not {getattr(settings, name)}"
            )
    return settings


#: The variable that turns tracing off (the ``disable`` setting), set for memscope's own
#: helper processes so that they are never traced.
DISABLE_ENV = "MEMSCOPE_DISABLE"


def disabled_by_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``MEMSCOPE_DISABLE`` turns tracing off, without loading any file (cheap).

    :func:`load_settings` reads the same variable into ``Settings.disable``.
    """
    env = os.environ if environ is None else environ
    return env.get(DISABLE_ENV, "").strip().lower() in _TRUE


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read defaults, then ``$MEMSCOPE_CONFIG`` (a TOML file), then ``MEMSCOPE_<KEY>`` variables."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = tomllib.loads(_DEFAULTS_FILE.read_text())
    source = str(_DEFAULTS_FILE)
    extra = env.get(_ENV_PREFIX + "CONFIG")
    if extra:
        path = Path(extra)
        try:
            values.update(tomllib.loads(path.read_text()))
        except OSError as exc:
            raise SettingsError(
                f"MEMSCOPE_CONFIG={extra}: cannot read it ({exc.strerror})"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"MEMSCOPE_CONFIG={extra}: not valid TOML ({exc})") from None
        source = extra
    for old, new in _RENAMED.items():
        if old in env:
            raise SettingsError(
                f"{old} is no longer read: set {_ENV_PREFIX + new.upper()} instead "
                f"(the {new} setting, in megabytes; see config/default.toml)"
            )
    for name in (f.name for f in dataclasses.fields(Settings)):
        key = _ENV_PREFIX + name.upper()
        if key in env:
            values[name] = env[key]
            source = f"{source} + environment"
    return _build(values, source)
