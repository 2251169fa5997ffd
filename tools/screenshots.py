"""PNG screenshots of the dashboard (every panel), the SVGs and the flame graph, for review.

    python tools/screenshots.py ANALYSIS_DIR OUT_DIR [--hostile] [--search TEXT]

ANALYSIS_DIR holds the six JSON files (when it has none, a synthetic set of 60 tracked
variables is written there first; with --hostile, one whose names are hostile strings); the
reports are written into OUT_DIR and captured with headless Chromium. When ANALYSIS_DIR is
a run directory (it holds the log, ``events/``), the interactive flame graph
(``memscope flamegraph --temporal``) is captured too (``flame-*.png``): at the peak with a
frame hovered, searched for TEXT (default: the hovered frame's function), inverted, and with
a time window brushed on its chart.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def main(argv: list[str]) -> int:
    """Write the reports and capture them."""
    import vl_convert
    from playwright.sync_api import sync_playwright

    from memscope.exporters import find_reports, write_reports
    from memscope.exporters.sample_reports import HOSTILE_NAMES, write_sample_reports

    source, out = Path(argv[0]), Path(argv[1])
    if not find_reports(source):
        write_sample_reports(source, n_vars=60, names=HOSTILE_NAMES if "--hostile" in argv else ())
    out.mkdir(parents=True, exist_ok=True)
    written = write_reports(source, out)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto((out / "dashboard.html").resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']")
        for button in page.query_selector_all("nav button"):
            panel = (button.get_attribute("id") or "panel").removeprefix("nav-")
            button.click()
            page.wait_for_timeout(400)
            page.screenshot(path=str(out / f"dashboard-{panel}.png"), full_page=True)
        browser.close()
    if (source / "events" / "manifest.json").is_file():
        flame_shots(source, out, argv)
    for name in ("memory_analysis.svg", "lifecycle_timeline.svg", "flamegraph.svg"):
        svg = (out / name).read_text("utf-8")
        (out / name.replace(".svg", ".png")).write_bytes(vl_convert.svg_to_png(svg))
    for path in sorted(out.glob("*.png")):
        print(path)
    print(f"{len(written)} reports in {out}")
    return 0


def flame_shots(run: Path, out: Path, argv: list[str]) -> None:
    """Capture ``memscope flamegraph RUN --temporal`` in four states (see the module doc)."""
    import subprocess

    from playwright.sync_api import sync_playwright

    page_path = out / "flamegraph.html"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "memscope",
            "flamegraph",
            str(run),
            "--temporal",
            "-o",
            str(page_path),
        ],
        check=True,
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 820})
        page.goto(page_path.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']")
        frames = page.locator(".msflame-frame")
        # hover the widest frame below the root's first two levels: its tooltip is shown
        widths = frames.evaluate_all(
            "els => els.map(e => [parseFloat(e.style.width), "
            "parseFloat(e.style.top), e.textContent])"
        )
        deep = [i for i, (w, top, _) in enumerate(widths) if top >= 54 and w > 40] or [0]
        target = max(deep, key=lambda i: widths[i][0] * 0.5 + widths[i][1])
        frames.nth(target).hover()
        page.screenshot(path=str(out / "flame-peak.png"), full_page=True)
        term = (
            argv[argv.index("--search") + 1]
            if "--search" in argv
            else (widths[target][2] or "main")
        )
        page.locator(".msflame-search").fill(term)
        page.screenshot(path=str(out / "flame-search.png"), full_page=True)
        page.locator(".msflame-search").fill("")
        page.locator(".msflame-invert").click()
        page.screenshot(path=str(out / "flame-inverted.png"), full_page=True)
        page.locator(".msflame-invert").click()
        box = page.locator(".msflame-brush").bounding_box()
        if box:
            y = box["y"] + box["height"] / 2
            page.mouse.move(box["x"] + box["width"] * 0.25, y)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.55, y, steps=4)
            page.mouse.up()
            page.mouse.move(0, 0)
            page.screenshot(path=str(out / "flame-temporal.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
