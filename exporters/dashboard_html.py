"""``dashboard.html``: one self-contained page that works offline.

The page inlines Vega, Vega-Lite and vega-embed (``vl_convert.javascript_bundle()``), its own
script and style, and the dashboard model (:mod:`memscope.exporters.dashboard_panels`) as JSON
in a ``<script type="application/json">`` element with ``<``, ``>``, ``&``, U+2028 and U+2029
escaped, so no traced string can end the element or be read as markup. The same page is served
by ``memscope dashboard --serve`` with ``live`` set, where it follows server-sent events.
"""

from __future__ import annotations

import functools
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

from memscope.exporters.dashboard_panels import build_model
from memscope.exporters.json_script import (  # noqa: F401 - finite, to_json: re-exported
    finite,
    script_json,
    to_json,
)
from memscope.exporters.report_files import Reports

_MARKER = re.compile(r"@@MEMSCOPE_(CSS|JS|BUNDLE|DATA|CONFIG|FLAMECSS|FLAMEJS)@@")


def _template(name: str) -> str:
    return (resources.files("memscope.exporters") / "templates" / name).read_text("utf-8")


def _cache_path(version: str) -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "memscope" / f"vega-bundle-{version}.js"


@functools.lru_cache(maxsize=1)
def javascript_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script, safe to inline.

    Building the bundle takes vl-convert over a second, so it is kept in
    ``$XDG_CACHE_HOME/memscope/`` per vl-convert version; without a writable cache it is
    simply built each time.
    """
    import vl_convert

    cache = _cache_path(getattr(vl_convert, "__version__", "unknown"))
    cached = _read_cache(cache)
    if cached is not None and "window.vegaEmbed" in cached:
        return cached
    bundle = str(vl_convert.javascript_bundle())  # type: ignore[call-arg]  # stub lacks default
    bundle = re.sub(r"</(script)", r"<\\/\1", bundle, flags=re.IGNORECASE)
    _write_cache(cache, bundle)
    return bundle


def _read_cache(path: Path) -> str | None:
    """The cached bundle, or None on a cache miss (absent or unreadable file)."""
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _write_cache(path: Path, bundle: str) -> bool:
    """Store the bundle atomically; False when the cache is not writable.

    An unwritable cache changes nothing but the time: the bundle is rebuilt next time.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(bundle, "utf-8")
        tmp.replace(path)
    except OSError:
        return False
    return True


def page(model: dict[str, Any], *, live: bool = False, api: str = "api") -> str:
    """The complete HTML page for ``model``; ``live`` makes it follow ``api + '/events'``."""
    parts = {
        "CSS": _template("dashboard.css"),
        "JS": _template("dashboard.js"),
        "FLAMECSS": _template("flame.css"),
        "FLAMEJS": _template("flame.js"),
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
