"""The screenshots in docs/ (docs/view.png, docs/flamegraph.png, docs/timeline.png):
the view page and the flame graph of a shared workload's trace, at 1400x900, in
headless Debian Chromium driven by Playwright (never a downloaded browser).

    python scripts/screenshots.py [WORKLOADS_DIR]   (default ../shared/workloads)
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "workloads"
CHROMIUM = os.environ.get("RETRACER_CHROMIUM", "/usr/bin/chromium")


def run(*args, cwd):
    subprocess.run([sys.executable, "-m", "retracer", *map(str, args)], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    docs = ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp) / "oop_sim.trace"
        run("trace", "-q", "--no-capture", "-o", t, WORKLOADS / "oop_sim.py", cwd=tmp)
        run("view", t, "-o", Path(tmp) / "view.html", cwd=tmp)
        run("profile", t, "--format", "flamegraph", "-o", Path(tmp) / "flame.html", cwd=tmp)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = b.new_page(viewport={"width": 1400, "height": 900})
            page.goto((Path(tmp) / "view.html").as_uri())
            page.wait_for_selector("body[data-ready='1']")
            page.locator("#tree .row[data-kind=group]").first.click()
            page.screenshot(path=str(docs / "view.png"))
            page.click("button[data-tab=timeline]")
            box = page.locator("#timeline").bounding_box()
            page.mouse.move(box["x"] + 300, box["y"] + 8)
            page.mouse.down()
            page.mouse.move(box["x"] + 700, box["y"] + 8, steps=5)
            page.mouse.up()
            page.screenshot(path=str(docs / "timeline.png"))
            page = b.new_page(viewport={"width": 1400, "height": 900})
            page.goto((Path(tmp) / "flame.html").as_uri())
            page.wait_for_selector("body[data-ready='1']")
            page.fill(".rtf-search", "Vec.")
            page.wait_for_timeout(400)
            page.screenshot(path=str(docs / "flamegraph.png"))
            b.close()
    print("written:", ", ".join(str(docs / n) for n in ("view.png", "timeline.png", "flamegraph.png")))


if __name__ == "__main__":
    main()
