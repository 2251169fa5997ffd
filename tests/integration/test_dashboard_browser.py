"""The static dashboard in headless Chromium: every panel, no errors, hostile names inert."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from _browser import PageWatch, browser, watched  # noqa: F401 - fixtures

from memscope.exporters import load_reports
from memscope.exporters.dashboard_html import DashboardHtml
from memscope.exporters.sample_reports import HOSTILE_NAMES, write_sample_reports

pytestmark = pytest.mark.browser
SAMPLE = Path(__file__).parents[1] / "data" / "analysis_sample"


def write_dashboard(directory: Path) -> tuple[Path, dict]:
    exporter = DashboardHtml()
    model = exporter.build(load_reports(directory))
    out = directory / "dashboard.html"
    with out.open("wb") as fh:
        exporter.render(model, fh)
    return out, model


def open_page(w: PageWatch, path: Path) -> None:
    def guard(route):
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            w.errors.append(f"network request attempted: {url}")
            route.abort()

    w.page.route("**/*", guard)
    w.page.goto(path.as_uri())
    w.page.wait_for_selector("body[data-ready='1']", timeout=20_000)


def visit_every_panel(w: PageWatch, model: dict) -> None:
    for panel in model["panels"]:
        w.page.click(f"#nav-{panel['id']}")
        section = f"#panel-{panel['id']}"
        w.page.wait_for_selector(f"{section}[data-ready='1']", timeout=20_000)
        charts = [i for i in panel["items"] if i["type"] == "chart"]
        tables = [i for i in panel["items"] if i["type"] == "table"]
        assert w.page.locator(f"{section} .chart svg.marks").count() == len(charts), panel["id"]
        assert w.page.locator(f"{section} .tablebox").count() == len(tables), panel["id"]
        assert w.page.locator(f"{section} .chart .error").count() == 0, panel["id"]
        title = w.page.locator(f"{section} h2").inner_text()
        assert title == panel["title"]


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    d = tmp_path_factory.mktemp("realistic")
    write_sample_reports(d, n_vars=60)
    return write_dashboard(d)


@pytest.mark.parametrize("source", ["synthetic", "analyzers-sample"])
def test_every_panel_renders_offline_without_errors(
    watched,  # noqa: F811
    realistic,
    source,  # noqa: F811
    tmp_path,
):
    if source == "synthetic":
        path, model = realistic
    else:
        shutil.copytree(SAMPLE, tmp_path / "sample")
        path, model = write_dashboard(tmp_path / "sample")
        assert model["problems"] == {}
    open_page(watched, path)
    visit_every_panel(watched, model)
    assert watched.errors == []
    assert [u for u in watched.requests if not u.startswith("file:")] == []
    # the headline numbers are on the overview, formatted
    watched.page.click("#nav-overview")
    cards = watched.page.locator("#panel-overview .card .value").all_inner_texts()
    stats = json.loads(next(path.parent.glob("*_memory_analysis.json")).read_text())
    from memscope.exporters.formatting import human_bytes

    assert human_bytes(stats["memory_stats"]["active_memory"]) in cards


TRACED_APP = """
import memscope
users = {f"user{i}": list(range(i * 10)) for i in range(50)}
memscope.track_var(users)
with memscope.scope("build"):
    blob = bytearray(100_000)
    memscope.track_var(blob)
    names = [str(i) * 5 for i in range(1000)]
    memscope.track_var(names)
del blob
"""


@pytest.mark.slow
def test_a_real_traced_run_renders_every_panel(watched, tmp_path):  # noqa: F811
    import subprocess
    import sys

    (tmp_path / "app.py").write_text(TRACED_APP)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "memscope",
            "run",
            "--out",
            str(tmp_path / "run"),
            str(tmp_path / "app.py"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    page_path = tmp_path / "run" / "dashboard.html"
    assert page_path.exists(), out.stderr
    model = DashboardHtml().build(load_reports(tmp_path / "run"))
    assert model["problems"] == {}
    open_page(watched, page_path)
    visit_every_panel(watched, model)
    cells = watched.page.locator("#table-variables tbody td").all_inner_texts()
    assert {"users", "blob", "names"} <= set(cells)
    assert watched.errors == []


def test_tables_sort_and_filter(watched, realistic):  # noqa: F811
    path, model = realistic
    open_page(watched, path)
    page = watched.page
    page.click("#nav-variables")
    page.wait_for_selector("#panel-variables[data-ready='1']")
    box = page.locator("#table-variables")
    assert box.locator(".count").inner_text() == "60 rows"
    box.locator("input").fill("var_1")
    page.wait_for_function(
        "document.querySelector('#table-variables .count').textContent.includes(' of ')"
    )
    names = box.locator("tbody tr td:first-child").all_inner_texts()
    assert names and all("var_1" in n for n in names)
    expected = sum(1 for i in range(60) if "var_1" in f"var_{i}")
    assert box.locator(".count").inner_text() == f"{expected} of 60 rows"
    with page.expect_download() as download:
        box.locator("button.csv").click()
    lines = Path(download.value.path()).read_text("utf-8").splitlines()
    assert lines[0].startswith("name,type,scope,size")
    assert len(lines) == 1 + expected
    assert all(line.split(",")[0].startswith("var_1") for line in lines[1:])
    box.locator("input").fill("")
    page.wait_for_function(
        "!document.querySelector('#table-variables .count').textContent.includes(' of ')"
    )
    # sort by name ascending, then descending
    header = box.locator("th button", has_text="name")
    header.click()
    first = box.locator("tbody tr td:first-child").first.inner_text()
    header.click()
    last = box.locator("tbody tr td:first-child").first.inner_text()
    names = sorted(f"var_{i}" for i in range(60))
    assert (first, last) == (names[0], names[-1])
    # clicking a treemap rectangle filters the type table by that type
    page.click("#nav-types")
    page.wait_for_selector("#panel-types[data-ready='1']")
    marks = page.locator("#chart-type-treemap g.mark-rect path")
    marks.nth(marks.count() - 1).click(force=True)
    page.wait_for_function(
        "document.querySelector('#table-types .count').textContent.includes(' of ')"
    )
    needle = page.locator("#table-types input").input_value()
    types = page.locator("#table-types tbody tr td:nth-child(3)").all_inner_texts()
    assert needle and types and all(needle.lower() in t.lower() for t in types)
    assert watched.errors == []


def test_hostile_names_are_shown_as_text_and_never_run(watched, tmp_path):  # noqa: F811
    write_sample_reports(tmp_path, n_vars=18, names=HOSTILE_NAMES)
    path, model = write_dashboard(tmp_path)
    html = path.read_text("utf-8")
    assert html.count("</script>") == 5  # only the page's own five script elements
    open_page(watched, path)
    watched.page.add_init_script("window.__pwned = false")
    visit_every_panel(watched, model)
    page = watched.page
    page.click("#nav-variables")
    cells = page.locator("#table-variables tbody td").all_inner_texts()
    for name in HOSTILE_NAMES[:4]:
        assert name in cells
    svg_text = page.locator("#chart-lifetimes svg").inner_html()
    assert "&lt;img src=x" in svg_text  # drawn as text by Vega
    # tooltips (vega-tooltip) show hostile names as text too
    page.click("#nav-types")
    marks = page.locator("#chart-type-treemap g.mark-rect path")
    tooltips = []
    for i in range(min(marks.count(), 20)):
        marks.nth(i).hover(force=True)
        tip = page.locator("#vg-tooltip-element")
        if tip.count() and tip.is_visible():
            tooltips.append(tip.inner_text())
    assert any("<img src=x onerror=alert(1)>" in t or "{{7*7}}" in t for t in tooltips), tooltips
    assert (
        page.locator("#vg-tooltip-element *").evaluate_all(
            "els => els.filter(e => ['IMG', 'SCRIPT', 'SVG'].includes(e.tagName)).length"
        )
        == 0
    )
    # a CSV of the variables defuses spreadsheet formulas and quotes what needs it
    page.click("#nav-variables")
    with page.expect_download() as download:
        page.locator("#table-variables button.csv").click()
    text = Path(download.value.path()).read_text("utf-8")
    assert "'=HYPERLINK(" in text and "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
    assert '"</script><script>alert(1)</script>"' not in text  # no needless quoting
    assert "</script><script>alert(1)</script>" in text
    header = page.locator("#run-info").inner_text()
    assert "app.py <img src=x onerror=alert(1)> </script><script>alert(1)</script>" in header
    # the flame graph panel draws the hostile function and file names as text
    page.click("#nav-flame")
    frames = page.locator("#panel-flame .msflame-frame")
    tips = []
    for i in range(frames.count()):
        frames.nth(i).hover()
        tips.append(page.locator("#panel-flame .msflame-tip").inner_text())
    assert any("</script><script>alert(1)</script>" in t for t in tips), tips
    assert (
        page.locator("#panel-flame .msflame-tip *").evaluate_all(
            "els => els.filter(e => ['IMG', 'SCRIPT', 'SVG'].includes(e.tagName)).length"
        )
        == 0
    )
    assert watched.dialogs == []
    assert page.locator("img, iframe, object, embed").count() == 0
    assert (
        page.evaluate(
            "[...document.querySelectorAll('*')].filter(e => [...e.attributes].some("
            "a => a.name.startsWith('on'))).length"
        )
        == 0
    )
    assert watched.errors == []


def test_missing_and_corrupt_files_get_their_own_message(watched, tmp_path):  # noqa: F811
    paths = write_sample_reports(tmp_path, n_vars=10)
    paths["security_violations"].unlink()
    paths["performance"].write_text("{ not json")
    path, model = write_dashboard(tmp_path)
    open_page(watched, path)
    visit_every_panel(watched, model)
    page = watched.page
    page.click("#nav-security")
    assert "no *_security_violations.json" in page.locator("#panel-security .problem").inner_text()
    page.click("#nav-performance")
    assert "not valid JSON" in page.locator("#panel-performance .problem").inner_text()
    page.click("#nav-types")
    assert page.locator("#panel-types .problem").count() == 0
    assert page.locator("#panel-types .chart svg.marks").count() == 1
    assert watched.errors == []


def test_embedded_json_round_trips(tmp_path):
    write_sample_reports(tmp_path, n_vars=8, names=HOSTILE_NAMES)
    exporter = DashboardHtml()
    model = exporter.build(load_reports(tmp_path))
    buf = io.BytesIO()
    exporter.render(model, buf)
    html = buf.getvalue().decode()
    start = html.index('<script type="application/json" id="memscope-data">') + 51
    blob = html[start : html.index("</script>", start)]
    assert "<" not in blob and ">" not in blob and "&" not in blob
    assert "\u2028" not in blob and "\u2029" not in blob
    assert json.loads(blob) == json.loads(json.dumps(model))
