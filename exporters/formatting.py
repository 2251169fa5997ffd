"""Human-readable numbers shared by every exporter (sizes, durations, rates, percentages)."""

from __future__ import annotations

import math

from memscope.units import human_bytes

__all__ = ["human_bytes", "human_count", "human_duration_ns"]


def human_count(value: float | None) -> str:
    """``1234567`` -> ``"1,234,567"``; floats keep one decimal."""
    if value is None:
        return "not measured"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def human_duration_ns(value: float | None) -> str:
    """A duration in nanoseconds as ``"850 ns"``, ``"12.5 ms"``, ``"3.2 s"``, ``"4 min 5 s"``."""
    if value is None:
        return "not measured"
    ns = float(value)
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.1f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.1f} ms"
    seconds = ns / 1e9
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes = math.floor(seconds / 60)
    return f"{minutes} min {seconds - 60 * minutes:.0f} s"


def human_percent(fraction: float | None) -> str:
    """``0.7234`` -> ``"72.3%"``."""
    if fraction is None:
        return "not measured"
    return f"{100 * float(fraction):.1f}%"


def human_rate(per_second: float | None, unit: str = "/s") -> str:
    """``12345.6`` -> ``"12,346/s"``."""
    if per_second is None:
        return "not measured"
    return f"{per_second:,.0f}{unit}" if per_second >= 10 else f"{per_second:.2f}{unit}"


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters with an ellipsis in the middle of long names."""
    if len(text) <= limit:
        return text
    if limit < 5:
        return text[:limit]
    head = (limit - 1) * 2 // 3
    tail = limit - 1 - head
    return text[:head] + "…" + text[len(text) - tail :]
