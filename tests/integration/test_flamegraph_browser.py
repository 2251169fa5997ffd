"""The flame graph page and the dashboard's Flame graph panel in headless Chromium, offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from _browser import PageWatch, browser, watched  # noqa: F401 - fixtures
from test_dashboard_browser import open_page, write_dashboard
from test_flamegraph import HOSTILE, _log

from memscope.analyzers.flame import FlameOptions, build_flame
from memscope.analyzers.memstats import process_stats
from memscope.analyzers.runner import connect_tables_analyzed
from memscope.exporters.flame_html import flame_page
from memscope.exporters.sample_reports import HOSTILE_NAMES, write_sample_reports

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def flame(tmp_path_factory) -> tuple[Path, dict, dict]:
    b, _ = _log()
    con = connect_tables_analyzed(b.tables())
    model = build_flame(con, FlameOptions(temporal=True, slots=8))
    stats = process_stats(con)
    con.close()
    model["title"] = f"flame of {HOSTILE}"
    path = tmp_path_factory.mktemp("flame") / "flamegraph.html"
    path.write_text(flame_page(model), "utf-8")
    return path, model, stats


def node_of(model: dict, function: str) -> int:
    return next(
        i for i, f in enumerate(model["frame"]) if f >= 0 and model["frames"][f][0] == function
    )


def peak_bytes_of(model: dict, function: str) -> int:
    v = model["views"]["peak"]
    return sum(
        b
        for n, b in zip(v["node"], v["bytes"], strict=True)
        if model["frames"][model["frame"][n]][0] == function
    )


def assert_inert(w: PageWatch) -> None:
    page = w.page
    assert w.dialogs == [] and w.errors == []
    assert page.locator("img, iframe, object, embed").count() == 0
    assert page.evaluate("window.__pwned === undefined")
    assert (
        page.evaluate(
            "[...document.querySelectorAll('*')].filter(e => [...e.attributes].some("
            "a => a.name.startsWith('on'))).length"
        )
        == 0
    )
    assert [u for u in w.requests if not u.startswith("file:")] == []


def test_hover_zoom_search_invert(watched, flame):  # noqa: F811
    path, model, stats = flame
    open_page(watched, path)
    page = watched.page
    root = page.locator("#flame")
    assert page.title() == f"flame of {HOSTILE}"
    total = page.locator(".msflame-total")
    assert int(float(total.get_attribute("data-bytes"))) == stats["peak_memory"]
    # hover: the details and the tooltip name the frame, its file and its bytes, as text
    parse = node_of(model, "parse")
    page.locator(f".msflame-frame[data-node='{parse}']").hover()
    details = page.locator(".msflame-details").inner_text()
    assert "parse" in details and f"{HOSTILE}:9" in details
    assert f"{peak_bytes_of(model, 'parse')} B" in details or "KiB" in details
    tip = page.locator(".msflame-tip")
    assert tip.is_visible() and HOSTILE in tip.inner_text()
    # zoom: the clicked frame fills the width, frames outside it disappear
    load = node_of(model, "load")
    page.locator(f".msflame-frame[data-node='{load}']").click()
    assert root.get_attribute("data-zoom") == str(load)
    width = page.locator(".msflame-canvas").evaluate("e => e.clientWidth")
    box = page.locator(f".msflame-frame[data-node='{load}']").bounding_box()
    assert box["width"] >= width - 2
    assert page.locator(f".msflame-frame[data-node='{node_of(model, HOSTILE)}']").count() == 0
    page.locator(".msflame-reset").click()
    assert root.get_attribute("data-zoom") == "0"
    # search: matching frames are marked and their bytes summed
    page.locator(".msflame-search").fill("parse")
    assert page.locator(".msflame-frame.match").count() == 1
    assert int(float(page.locator(".msflame-match").get_attribute("data-bytes"))) == peak_bytes_of(
        model, "parse"
    )
    page.locator(".msflame-search").fill("")
    # inverted: the allocating frames hang off the root
    page.locator(".msflame-invert").click()
    assert root.get_attribute("data-inverted") == "1"
    top = page.evaluate("""() => [...document.querySelectorAll('.msflame-frame')]
        .filter(e => e.style.top === '18px').map(e => e.dataset.node)""")
    assert len(top) == sum(1 for f in ("load", "parse", HOSTILE) if peak_bytes_of(model, f))
    # flame orientation: the root at the bottom
    page.locator(".msflame-orient").click()
    tops = page.evaluate("""() => [...document.querySelectorAll('.msflame-frame')]
        .map(e => [e.dataset.node, parseFloat(e.style.top)])""")
    assert dict(tops)["0"] == max(t for _, t in tops) > 0
    assert_inert(watched)


def test_brushing_a_window_redraws_the_graph(watched, flame):  # noqa: F811
    path, model, _ = flame
    open_page(watched, path)
    page = watched.page
    t = model["temporal"]
    chart = page.locator(".msflame-brush").bounding_box()
    # drag from the middle of slot 1 to the middle of slot 4
    x0 = chart["x"] + chart["width"] * 1.5 / t["slots"]
    x1 = chart["x"] + chart["width"] * 4.5 / t["slots"]
    y = chart["y"] + chart["height"] / 2
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move(x1, y, steps=5)
    page.mouse.up()
    assert page.locator("#flame").get_attribute("data-window") == "1-4"
    assert page.locator("#flame").get_attribute("data-view") == "window"
    assert page.locator(".msflame-view").input_value() == "window"
    c = t["cells"]
    expected = sum(b for a, e, b in zip(c["a"], c["e"], c["bytes"], strict=True) if 1 <= a <= 4 < e)
    got = int(float(page.locator(".msflame-total").get_attribute("data-bytes")))
    assert got == expected
    assert "window +" in page.locator(".msflame-windowlabel").inner_text()
    # choosing a snapshot again leaves the window
    page.locator(".msflame-view").select_option("end")
    assert page.locator("#flame").get_attribute("data-view") == "end"
    assert page.locator("#flame").get_attribute("data-window") is None
    assert page.locator(".msflame-windowlabel").inner_text().startswith("whole run")
    assert_inert(watched)


def test_dashboard_flame_panel_with_hostile_names(watched, tmp_path):  # noqa: F811
    write_sample_reports(tmp_path, n_vars=8, names=HOSTILE_NAMES)
    path, model = write_dashboard(tmp_path)
    open_page(watched, path)
    page = watched.page
    page.add_init_script("window.__pwned = undefined")
    page.click("#nav-flame")
    frames = page.locator("#panel-flame .msflame-frame")
    assert frames.count() > 3
    texts = frames.all_inner_texts()
    assert "<img src=x onerror=alert(1)>" in texts
    for i in range(frames.count()):
        frames.nth(i).hover()
        shown = page.locator("#panel-flame .msflame-details").inner_text()
        assert shown
    flame = next(p for p in model["panels"] if p["id"] == "flame")["items"][-1]["model"]
    total = int(float(page.locator("#panel-flame .msflame-total").get_attribute("data-bytes")))
    assert total == sum(flame["views"]["peak"]["bytes"])
    assert_inert(watched)


def test_notebook_output_draws_the_graph_in_its_sandboxed_frame(
    watched,  # noqa: F811
    flame,  # noqa: F811
    tmp_path,
):
    from memscope.integrations.notebook import CellResult

    path, model, stats = flame
    result = CellResult(
        tmp_path / f"run-{HOSTILE}", "", f"peak memory {HOSTILE}", path.read_text("utf-8"), stats
    )
    out = tmp_path / "cell.html"
    out.write_text(f"<!DOCTYPE html><meta charset='utf-8'><body>{result._repr_html_()}", "utf-8")
    open_page_plain = watched.page
    open_page_plain.goto(out.as_uri())
    frame = open_page_plain.frame_locator("iframe")
    frame.locator("body[data-ready='1']").wait_for(timeout=20_000)
    assert frame.locator(".msflame-frame").count() >= 4
    total = frame.locator(".msflame-total").get_attribute("data-bytes")
    assert int(float(total)) == stats["peak_memory"]
    assert HOSTILE in open_page_plain.locator("pre").inner_text()
    assert open_page_plain.locator("img, object, embed").count() == 0
    assert open_page_plain.locator("iframe").count() == 1
    assert frame.locator("img, iframe, object, embed").count() == 0
    assert watched.dialogs == [] and watched.errors == []


def test_a_wide_graph_draws_a_bounded_number_of_frames(watched, tmp_path):  # noqa: F811
    # 300 sites, each a chain of 30 frames of its own: 9,000 frames of 4 px or more
    frames, parent, frame, leaves = [], [-1], [-1], []
    for s in range(300):
        node = 0
        for d in range(30):
            frames.append([f"s{s}_d{d}", "w.py", d])
            parent.append(node)
            frame.append(len(frames) - 1)
            node = len(parent) - 1
        leaves.append(node)
    model = {
        "format": 1,
        "frames": frames,
        "parent": parent,
        "frame": frame,
        "default": "peak",
        "views": {
            "peak": {
                "label": "peak",
                "node": leaves,
                "bytes": [1000] * 300,
                "blocks": [1] * 300,
                "total": 300_000,
            }
        },
    }
    path = tmp_path / "wide.html"
    path.write_text(flame_page(model), "utf-8")
    open_page(watched, path)
    page = watched.page
    drawn = int(page.locator("#flame").get_attribute("data-frames"))
    assert drawn <= 6000 and page.locator(".msflame-frame").count() == drawn
    assert drawn >= 5900  # level by level: the first 19 levels of every chain, and more
    # zooming into one site's chain draws all of it
    first = page.locator(".msflame-frame[data-node='1']")
    first.click()
    assert page.locator(".msflame-frame").count() == 31  # the root above, then 30 frames
    assert watched.errors == []
