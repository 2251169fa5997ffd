"""``dashboard.html``: one self-contained page that works offline.

The page inlines Vega, Vega-Lite and vega-embed (``vl_convert.javascript_bundle()``), its own
script and style, and the dashboard model (:mod:`memscope.exporters._dashboard_panels`) as JSON
in a ``<script type="application/json">`` element with ``<``, ``>``, ``&``, U+2028 and U+2029
escaped, so no traced string can end the element or be read as markup. The same page is served
by ``memscope dashboard --serve`` with ``live`` set, where it follows server-sent events.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any, BinaryIO

from memscope.exporters._dashboard_panels import build_model
from memscope.exporters._reports import Reports

_MARKER = re.compile(r"@@MEMSCOPE_(CSS|JS|BUNDLE|DATA|CONFIG)@@")
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                 "\u2029": "\\u2029"}
_JSON_UNSAFE = re.compile("[<>&\u2028\u2029]")


def script_json(value: Any) -> str:
    """JSON that is safe inside an HTML ``<script>`` element (and still valid JSON)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _JSON_UNSAFE.sub(lambda m: _JSON_ESCAPES[m.group(0)], text)


def _template(name: str) -> str:
    return (resources.files("memscope.exporters") / "templates" / name).read_text("utf-8")


@functools.lru_cache(maxsize=1)
def javascript_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script, safe to inline."""
    import vl_convert

    bundle = str(vl_convert.javascript_bundle())  # type: ignore[call-arg]  # stub lacks default
    return re.sub(r"</(script)", r"<\\/\1", bundle, flags=re.IGNORECASE)


def page(model: dict[str, Any], *, live: bool = False, api: str = "api") -> str:
    """The complete HTML page for ``model``; ``live`` makes it follow ``api + '/events'``."""
    parts = {
        "CSS": _template("dashboard.css"),
        "JS": _template("dashboard.js"),
        "BUNDLE": javascript_bundle(),
        "DATA": script_json(model),
        "CONFIG": script_json({"live": live, "api": api}),
    }
    # One pass: text substituted in is never scanned again for markers.
    return _MARKER.sub(lambda m: parts[m.group(1)], _template("dashboard.html"))


class DashboardHtml:
    """Exporter of ``dashboard.html``."""

    name = "dashboard HTML"
    filename = "dashboard.html"

    def build(self, reports: Reports) -> dict[str, Any]:
        """The dashboard model (JSON-ready)."""
        return build_model(reports)

    def render(self, obj: dict[str, Any], fileobj: BinaryIO) -> None:
        """Write the static page."""
        fileobj.write(page(obj).encode("utf-8"))
