"""The one flame graph renderer (assets/flame.js) and the timeline, in a real browser
(headless Debian Chromium driven by Playwright, as test_view_browser.py): on the
standalone page of `retracer profile --format flamegraph` and on the view page's
tabs; and the notebook's output of %%rprofile inside a host page.

Checked: search highlights the matching frames and says their share of the total;
the time axis is there and follows zoom; the sandwich view shows callers and
callees of the selected function; the width follows the window; arrow keys move
the selection; the timeline's ruler follows zoom, lanes are named, a drag on the
ruler measures; the side panel follows the tab; numbers in the side panel stay on
one line; the notebook output changes nothing of its host page. Marked `once`.
"""
from __future__ import annotations

import html as htmlmod
import json
import re
from pathlib import Path

import pytest

from helpers import WORKLOAD_ARGS, retracer, trace as run_trace

pytestmark = pytest.mark.once
TIMEOUT = 60_000


@pytest.fixture(scope="module")
def workdir(module_config_dir, tmp_path_factory):
    return tmp_path_factory.mktemp("flameview")


def traced(workdir: Path, workloads: Path, script: str) -> Path:
    out = workdir / (script.replace(".py", "") + ".trace")
    if not out.exists():
        run_trace(out, workloads / script, *WORKLOAD_ARGS[script], cwd=workdir, opts=["--no-capture"])
    return out


def flame_page(workdir, workloads, script) -> Path:
    t = traced(workdir, workloads, script)
    out = t.with_suffix(".flame.html")
    if not out.exists():
        retracer("profile", t, "--format", "flamegraph", "-o", out, cwd=workdir, check=True)
    return out


def view_page(workdir, workloads, script) -> Path:
    t = traced(workdir, workloads, script)
    out = t.with_suffix(".view.html")
    if not out.exists():
        retracer("view", t, "-o", out, cwd=workdir, check=True)
    return out


def open_page(browser, path: Path, width=1400, height=900):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT)
    errors, requests = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=TIMEOUT)
    page.errors, page.requests = errors, requests
    return page


FL = "window.__rtFlame"


def click_frame(page, api: str, name: str, canvas: str = "#rtf-root .rtf-wrap canvas"):
    f = next(f for f in page.evaluate(f"{api}.debug.frames()") if f["name"] == name)
    box = page.locator(canvas).bounding_box()
    page.mouse.click(box["x"] + f["x"] + min(f["w"] / 2, 20), box["y"] + f["y"] + 8)
    return f


# ------------------------------------------------------------ the standalone flame graph

def test_flame_search_highlights_and_shows_the_share(browser, workdir, workloads):
    page = open_page(browser, flame_page(workdir, workloads, "oop_sim.py"))
    assert page.evaluate(f"{FL}.debug.hits()") == []
    page.fill(".rtf-search", "Vec.")
    page.wait_for_function(f"() => {FL}.debug.info() !== ''")
    hits = page.evaluate(f"{FL}.debug.hits()")
    assert hits and all(h.startswith("Vec.") for h in hits)
    info = page.evaluate(f"{FL}.debug.info()")
    m = re.search(r"(\d[\d,]*) frames? match · (\d+\.\d)% of the total", info)
    assert m, info
    share = float(m.group(2))
    assert 0 < share < 100
    # the share is of the outermost matches only: a narrower search has a smaller one
    page.fill(".rtf-search", "Vec.scale")
    page.wait_for_function(f"() => {FL}.debug.info() !== {info!r}")
    narrower = float(re.search(r"(\d+\.\d)% of the total", page.evaluate(f"{FL}.debug.info()")).group(1))
    assert narrower < share
    # the legend says what the highlight means
    assert "search match" in page.locator(".rtf-legend").inner_text()
    page.fill(".rtf-search", "zzz-nothing")
    page.wait_for_function(f"() => {FL}.debug.info() === 'no frame matches'")
    assert not page.errors


def test_flame_axis_follows_zoom(browser, workdir, workloads):
    page = open_page(browser, flame_page(workdir, workloads, "calls_fib.py"))
    before = page.evaluate(f"{FL}.debug.axis()")
    assert before[0] == "0" and len(before) >= 4
    assert all(re.fullmatch(r"\d+(\.\d+)?\u00a0(ns|µs|ms|s)", t) for t in before[1:]), before
    fibs = [f for f in page.evaluate(f"{FL}.debug.frames()") if f["name"] == "fib"]
    # a frame inside the recursion that is a fraction of the time (but wide enough to click)
    width = page.evaluate(f"{FL}.debug.width()")
    target = next(f for f in sorted(fibs, key=lambda f: -f["w"]) if 20 < f["w"] < 0.5 * width)
    after = before
    for _ in range(3):  # a click while the page is still laying out (a loaded machine) can be lost
        box = page.locator("#rtf-root .rtf-wrap canvas").bounding_box()
        page.mouse.click(box["x"] + target["x"] + 2, box["y"] + target["y"] + 8)
        try:
            page.wait_for_function(f"JSON.stringify({FL}.debug.axis()) !== JSON.stringify({json.dumps(before)})",
                                   timeout=3000)
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: click again
            continue
        after = page.evaluate(f"{FL}.debug.axis()")
        break
    assert after != before and after[0] == "0"
    zoomed = next(f for f in page.evaluate(f"{FL}.debug.frames()") if f["i"] == target["i"])
    assert zoomed["x"] == 0 and zoomed["w"] == pytest.approx(page.evaluate(f"{FL}.debug.width()"))
    page.keyboard.press("Escape")
    assert page.evaluate(f"{FL}.debug.axis()") == before
    assert not page.errors


def test_flame_sandwich_shows_callers_and_callees(browser, workdir, workloads):
    page = open_page(browser, flame_page(workdir, workloads, "oop_sim.py"))
    click_frame(page, FL, "Particle.step")
    page.click(".rtf-mode[data-mode=sandwich]")
    sw = page.evaluate(f"{FL}.debug.sandwich()")
    assert sw["name"] == "Particle.step"
    assert sw["callers"][0] == "Particle.step" and "simulate" in sw["callers"]
    assert sw["callees"][0] == "Particle.step" and any(n.startswith("Vec.") for n in sw["callees"])
    assert "simulate" not in sw["callees"] and sw["callersTotal"] == sw["calleesTotal"] > 0
    assert page.locator(".rtf-wrap").is_hidden() and page.locator(".rtf-sandwich").is_visible()
    # back to the flame graph
    page.click(".rtf-mode[data-mode=flame]")
    assert page.evaluate(f"{FL}.debug.sandwich()") is None
    assert not page.errors


def test_flame_width_follows_the_window(browser, workdir, workloads):
    path = flame_page(workdir, workloads, "oop_sim.py")
    widths = []
    for w in (900, 1600):
        page = open_page(browser, path, width=w)
        widths.append(page.evaluate(f"{FL}.debug.width()"))
        root = max(f["w"] for f in page.evaluate(f"{FL}.debug.frames()"))
        assert root == pytest.approx(widths[-1])
        assert page.locator("#rtf-root canvas").first.bounding_box()["width"] == pytest.approx(widths[-1], abs=1)
        page.close()
    assert widths[0] < 900 and widths[1] > 1400
    # resizing redraws at the new width
    page = open_page(browser, path, width=1000)
    w0 = page.evaluate(f"{FL}.debug.width()")
    page.set_viewport_size({"width": 1300, "height": 900})
    page.wait_for_function(f"() => {FL}.debug.width() !== {w0}")
    assert page.evaluate(f"{FL}.debug.width()") > w0
    assert not page.errors


def test_flame_keyboard_navigation(browser, workdir, workloads):
    page = open_page(browser, flame_page(workdir, workloads, "oop_sim.py"))
    frames = page.evaluate(f"{FL}.debug.frames()")
    page.locator("#rtf-root .rtf-wrap canvas").focus()
    page.keyboard.press("ArrowDown")  # from the root: its heaviest callee
    first = page.evaluate(f"{FL}.debug.selected()")
    assert first > 0
    page.keyboard.press("ArrowDown")
    second = page.evaluate(f"{FL}.debug.selected()")
    assert second != first
    page.keyboard.press("ArrowUp")
    assert page.evaluate(f"{FL}.debug.selected()") == first
    page.keyboard.press("Enter")  # zoom into the selection
    assert page.evaluate(f"{FL}.debug.path()").endswith(next(f["name"] for f in frames if f["i"] == first))
    page.keyboard.press("Escape")
    assert page.evaluate(f"{FL}.debug.path()") == "all"
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.classList.contains('rtf-search')")
    assert not page.errors
    assert page.requests == [flame_page(workdir, workloads, "oop_sim.py").resolve().as_uri()]


# ------------------------------------------------------------ the view page

def test_view_timeline_axis_follows_zoom_and_lanes_are_named(browser, workdir, workloads):
    page = open_page(browser, view_page(workdir, workloads, "threads_work.py"))
    page.click("button[data-tab=timeline]")
    lanes = page.evaluate("window.__rtDebug.timelineLanes()")
    assert lanes[0]["label"] == "Thread MainThread" and len(lanes) >= 2
    assert len({l["id"] for l in lanes}) == len(lanes)
    assert all(a["top"] < b["top"] for a, b in zip(lanes, lanes[1:]))
    before = page.evaluate("window.__rtDebug.timelineAxis()")
    assert before[0] == "0" and len(before) >= 4
    tl = page.locator("#timeline").bounding_box()
    for _ in range(8):
        page.mouse.move(tl["x"] + tl["width"] * 0.5, tl["y"] + 80)
        page.mouse.wheel(0, -300)
    zoomed = page.evaluate("window.__rtDebug.timelineAxis()")
    assert zoomed != before
    # a pan moves the ruler too
    page.mouse.move(tl["x"] + 400, tl["y"] + 80)
    page.mouse.down()
    page.mouse.move(tl["x"] + 150, tl["y"] + 80, steps=4)
    page.mouse.up()
    assert page.evaluate("window.__rtDebug.timelineAxis()") != zoomed
    # a drag on the ruler measures: the selection's duration is shown
    page.click("#tl-reset")
    page.mouse.move(tl["x"] + 100, tl["y"] + 8)
    page.mouse.down()
    page.mouse.move(tl["x"] + 600, tl["y"] + 8, steps=5)
    page.mouse.up()
    sel = page.evaluate("window.__rtDebug.timelineSelection()")
    assert re.match(r"selection: \d+\.\d+\u00a0(ns|µs|ms|s) \(from \+", sel), sel
    assert page.locator("#tl-zoomsel").is_visible()
    page.click("#tl-zoomsel")
    assert page.evaluate("window.__rtDebug.timelineSelection()") == ""
    assert not page.errors


def test_view_side_panel_follows_the_tab(browser, workdir, workloads):
    page = open_page(browser, view_page(workdir, workloads, "oop_sim.py"))
    page.locator("#tree .row[data-kind=span][data-name='main'] .name").first.click()
    assert page.locator("#details h3").text_content() == "main"
    page.click("button[data-tab=flame]")
    # the tree's selection is not shown on the flame graph's tab
    assert page.locator("#details h3").count() == 0
    assert "Click a frame" in page.locator("#details").inner_text()
    x, y, w, h = page.evaluate("window.__rtDebug.flameRect('Particle.step')")
    box = page.locator("#flame").bounding_box()
    page.mouse.click(box["x"] + x + 3, box["y"] + y + h / 2)
    assert page.locator("#details h3").text_content() == "Particle.step"
    page.click("button[data-tab=stats]")
    assert page.locator("#details h3").count() == 0
    page.click("button[data-tab=tree]")
    assert page.locator("#details h3").text_content() == "main"  # each tab keeps its own
    page.click("button[data-tab=flame]")
    assert page.locator("#details h3").text_content() == "Particle.step"
    assert not page.errors


def test_view_numbers_never_break_mid_word(browser, workdir, workloads):
    page = open_page(browser, view_page(workdir, workloads, "oop_sim.py"))
    page.set_viewport_size({"width": 700, "height": 900})  # a narrow side panel
    page.locator("#tree .row[data-kind=span][data-name='main'] .name").first.click()
    cells = page.locator("#details td.num")
    assert cells.count() >= 2
    for i in range(cells.count()):
        c = cells.nth(i)
        style = c.evaluate("e => [getComputedStyle(e).wordBreak, getComputedStyle(e).whiteSpace]")
        assert style[0] != "break-all" and style[1] == "nowrap", style
        # on one line: as tall as one line of text
        lines = c.evaluate("e => { const r = document.createRange(); r.selectNodeContents(e); return r.getClientRects().length; }")
        assert lines == 1, c.text_content()
    for sel in ("#details td", "#details h3", "#details pre"):
        for wb in page.eval_on_selector_all(sel, "els => els.map(e => getComputedStyle(e).wordBreak)"):
            assert wb != "break-all"
    assert not page.errors


# ------------------------------------------------------------ the notebook's output

HOST = """<!DOCTYPE html><html><head><style>
body { margin: 37px; font-family: Georgia, serif; font-size: 19px; color: rgb(10, 20, 30); }
</style></head><body><div id="cell"></div><p id="after">host text</p></body></html>"""


def test_notebook_output_leaves_the_host_page_alone(browser, workdir, tmp_path, monkeypatch):
    """The HTML %%rprofile displays, put into a host page with its own styles (as a
    notebook front end does): the host's body margin and font are unchanged, no
    heading was added, and the flame graph runs inside its frame."""
    pytest.importorskip("IPython")
    from IPython.testing.globalipapp import get_ipython, start_ipython
    from IPython.utils.capture import capture_output

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.chdir(tmp_path)
    ip = start_ipython() or get_ipython()  # once per process: test_magics may have started it
    ip.run_line_magic("load_ext", "retracer")
    ip.run_cell("def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n")
    with capture_output() as cap:
        ip.run_cell_magic("rprofile", "", "fib(15)\n")
    (out,) = cap.outputs
    output = out.data["text/html"]
    host = tmp_path / "host.html"
    host.write_text(HOST)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(host.as_uri())
    style = "() => { const s = getComputedStyle(document.body); return [s.margin, s.fontFamily, s.fontSize, s.color]; }"
    before = page.evaluate(style)
    page.evaluate("(h) => { document.getElementById('cell').innerHTML = h; }", output)
    frame = page.frame_locator("#cell iframe")
    frame.locator("body[data-ready='1']").wait_for(timeout=TIMEOUT)
    assert page.evaluate(style) == before == ["37px", "Georgia, serif", "19px", "rgb(10, 20, 30)"]
    assert page.evaluate("getComputedStyle(document.getElementById('after')).fontFamily") == "Georgia, serif"
    assert page.locator("h1").count() == 0 and page.locator("style").count() == 1
    assert frame.locator("h1").count() == 0
    assert frame.locator(".rtf-title").is_hidden()  # no page title inside either
    # the cell's flame graph, drawn inside the frame at the frame's width
    names = page.frames[1].evaluate(f"{FL}.debug.frames().map(f => f.name)")
    assert "fib" in names and not any("Event.wait" in n or "_bootstrap" in n for n in names)
    width = page.frames[1].evaluate(f"{FL}.debug.width()")
    assert 900 < width <= page.locator("#cell iframe").bounding_box()["width"]
    assert not errors


def test_one_module_is_coloured_by_own_time_and_wide_frames_say_their_time(browser, workdir, workloads):
    """Taken from pyinstrument's HTML tree (docs/flamegraph-comparison.md): a frame wide
    enough for it shows its time beside its name; and when one module has nearly all
    the own time (a script's own code), colour by module would paint every frame alike,
    so the graph starts coloured by own time (the user can switch back)."""
    page = open_page(browser, flame_page(workdir, workloads, "oop_sim.py"))
    assert page.evaluate(f"{FL}.debug.color()") == "own"
    assert page.locator(".rtf-color").input_value() == "own"
    assert "own time / total" in page.locator(".rtf-legend").inner_text()
    frames = page.evaluate(f"{FL}.debug.frames()")
    step = next(f for f in frames if f["name"] == "Particle.step")
    assert re.fullmatch(r"Particle\.step  [\d.]+\s?(ns|µs|us|ms|s)", step["text"]), step
    narrow = [f for f in frames if 0 < f["w"] < 100 and f["text"]]
    assert all(not re.search(r"\d\s?(ns|µs|ms|s)$", f["text"]) for f in narrow), narrow
    # back to module colours on request
    page.select_option(".rtf-color", "module")
    assert page.evaluate(f"{FL}.debug.color()") == "module"
    assert "module (own time)" in page.locator(".rtf-legend").inner_text()
    assert not page.errors
