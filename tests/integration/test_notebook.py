"""``%load_ext memscope`` and ``%%memscope`` in a notebook executed headless (nbclient)."""

from __future__ import annotations

import html
import json
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

CELL = """%%memscope --out {run}
blocks = [bytearray(200_000) for _ in range(25)]
print("hello from the cell", len(blocks))
"""


def test_magic_shows_stats_and_flame_graph(tmp_path):
    run = tmp_path / "run"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext memscope"),
        nbformat.v4.new_code_cell(CELL.format(run=run)),
        nbformat.v4.new_code_cell("%%memscope --at later\nx = 1"),
        nbformat.v4.new_code_cell("'blocks' in globals()"),
    ]
    client = nbclient.NotebookClient(
        nb,
        timeout=240,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = nb.cells[1].outputs
    stream = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "hello from the cell 25" in stream
    (result,) = [o for o in outputs if o.output_type == "execute_result"]
    text, page = result.data["text/plain"], result.data["text/html"]
    assert "peak memory" in text and "active memory" in text
    assert '<iframe sandbox="allow-scripts"' in page
    # the inline flame graph is the flamegraph page; its root at the peak is stats' peak
    srcdoc = html.unescape(re.search(r'srcdoc="([^"]*)"', page).group(1))
    assert srcdoc == (run / "flamegraph.html").read_text("utf-8")
    start = srcdoc.index('id="memscope-flame">') + len('id="memscope-flame">')
    model = json.loads(srcdoc[start : srcdoc.index("</script>", start)])
    peak = model["stats"]["peak_memory"]
    assert abs(model["views"]["peak"]["total"] - peak) <= 0.001 * peak
    assert peak >= 25 * 200_000
    assert any(f[0] == "<module>" and f[1].endswith("cell.py") for f in model["frames"])
    # a bad option is a one-line usage error; the cell ran in a child, not in the kernel
    shown = "".join(o.get("text", "") + o.get("evalue", "") for o in nb.cells[2].outputs)
    assert "UsageError" in shown and "expected peak, end or seconds" in shown
    assert "Traceback" not in shown and len(shown.strip().splitlines()) == 1
    assert nb.cells[3].outputs[0].data["text/plain"] == "False"
