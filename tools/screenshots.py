"""PNG screenshots of the dashboard (every panel) and both SVGs, for review.

    python tools/screenshots.py ANALYSIS_DIR OUT_DIR [--hostile]

ANALYSIS_DIR holds the six JSON files (when it has none, a synthetic set of 60 tracked
variables is written there first; with --hostile, one whose names are hostile strings); the
reports are written into OUT_DIR and captured with headless Chromium.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def main(argv: list[str]) -> int:
    """Write the reports and capture them."""
    import vl_convert
    from playwright.sync_api import sync_playwright

    from memscope.exporters import find_reports, write_reports
    from memscope.exporters.testing import HOSTILE_NAMES, write_sample_reports

    source, out = Path(argv[0]), Path(argv[1])
    if not find_reports(source):
        write_sample_reports(source, n_vars=60,
                             names=HOSTILE_NAMES if "--hostile" in argv else ())
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
    for name in ("memory_analysis.svg", "lifecycle_timeline.svg"):
        svg = (out / name).read_text("utf-8")
        (out / name.replace(".svg", ".png")).write_bytes(vl_convert.svg_to_png(svg))
    for path in sorted(out.glob("*.png")):
        print(path)
    print(f"{len(written)} reports in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
