"""What every exporter provides, and the shared SVG rendering step."""

from __future__ import annotations

from typing import Any, BinaryIO, Protocol

from memscope.exporters.report_files import Reports


class Exporter(Protocol):
    """One output file: ``build`` turns the reports into an object, ``render`` writes it."""

    #: Short name, used in messages.
    name: str
    #: The file name written by :func:`memscope.exporters.write_reports`.
    filename: str

    def build(self, reports: Reports) -> Any:
        """Everything the output shows, computed from the reports (no I/O)."""

    def render(self, obj: Any, fileobj: BinaryIO) -> None:
        """Write the built object to a binary file object."""


def render_vegalite_svg(spec: dict[str, Any]) -> str:
    """A Vega-Lite spec as an SVG string, without any network access."""
    import vl_convert

    return str(vl_convert.vegalite_to_svg(spec, allowed_base_urls=[]))
