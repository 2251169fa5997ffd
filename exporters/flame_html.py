"""The flame graph as one self-contained HTML page (no network, works from ``file://``).

The page inlines its script (``templates/flame.js``, memscope's own renderer: no third-party
code), its style and the flame model (:mod:`memscope.analyzers.flame`) as escaped JSON in a
``<script type="application/json">`` element; a Content-Security-Policy forbids any fetch.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from memscope.exporters.json_script import script_json

_MARKER = re.compile(r"@@MEMSCOPE_(CSS|JS|DATA)@@")


def template(name: str) -> str:
    """A file of ``exporters/templates``."""
    return (resources.files("memscope.exporters") / "templates" / name).read_text("utf-8")


def flame_script() -> str:
    """The renderer (``window.MemscopeFlame.mount(container, model)``), safe to inline."""
    return template("flame.js")


def flame_page(model: dict[str, Any]) -> str:
    """The complete page for a flame model (``title`` and ``subtitle`` keys are shown)."""
    parts = {"CSS": template("flame.css"), "JS": flame_script(), "DATA": script_json(model)}
    # One pass: text substituted in is never scanned again for markers.
    return _MARKER.sub(lambda m: parts[m.group(1)], template("flame.html"))
