"""Byte sizes for people: the one formatter and the one parser every layer uses.

It sits below every package (it imports nothing of memscope), so the exporters, the terminal
reporters and the pytest plugin print a size the same way.
"""

from __future__ import annotations

import re

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_PARSE_UNITS = {
    "": 1,
    "B": 1,
    "K": 1024,
    "KB": 1024,
    "KIB": 1024,
    "M": 1024**2,
    "MB": 1024**2,
    "MIB": 1024**2,
    "G": 1024**3,
    "GB": 1024**3,
    "GIB": 1024**3,
    "T": 1024**4,
    "TB": 1024**4,
    "TIB": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")


def human_bytes(value: float | None, none: str = "not measured") -> str:
    """``1536`` -> ``"1.5 KiB"``, ``123456789`` -> ``"118 MiB"``; ``None`` -> ``none``.

    Whole bytes below 1 KiB; one decimal below 100 of a unit, none from 100 on (three
    significant figures at most). Units are powers of 1024.
    """
    if value is None:
        return none
    n = float(value)
    sign = "-" if n < 0 else ""
    n = abs(n)
    unit = 0
    while n >= 1024 and unit < len(_UNITS) - 1:
        n /= 1024
        unit += 1
    if unit == 0:
        return f"{sign}{int(n)} B"
    return f"{sign}{n:.1f} {_UNITS[unit]}" if n < 100 else f"{sign}{n:.0f} {_UNITS[unit]}"


def parse_size(value: object) -> int:
    """Bytes from ``"24 MB"``, ``"1.5GiB"``, ``"512"`` or an int (units are powers of 1024).

    Raises:
        ValueError: not a size (the message says what a size looks like).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _PARSE_UNITS:
        raise ValueError(
            f"memscope: {value!r} is not a memory size; write a number and a unit, "
            "like '24 MB', '512 KiB' or '1GB'"
        )
    return int(float(match.group(1)) * _PARSE_UNITS[unit])
