"""Strict JSON for HTML pages: no NaN/Infinity, and safe inside a ``<script>`` element.

Kept apart from :mod:`memscope.exporters.dashboard_html` (which imports the chart library)
so that the flame graph page, which needs only this, starts fast.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_JSON_UNSAFE = re.compile("[<>&\u2028\u2029]")


def finite(value: Any) -> Any:
    """``value`` with every infinite or NaN float replaced by None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def to_json(value: Any) -> str:
    """Strict JSON (no NaN/Infinity) of ``value``, UTF-8 characters kept."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:  # an overflowed number somewhere: drop the non-finite values
        return json.dumps(finite(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def script_json(value: Any) -> str:
    """JSON that is safe inside an HTML ``<script>`` element (and still valid JSON)."""
    text = to_json(value)
    return _JSON_UNSAFE.sub(lambda m: _JSON_ESCAPES[m.group(0)], text)
