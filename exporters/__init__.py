"""Exporters: SVG reports, the snapshot JSON and the HTML dashboard, from the six JSON files."""
