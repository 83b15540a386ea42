"""The flame graph of `retracer profile TRACE --format flamegraph -o flame.html` (and
its .svg variant) in a real browser: headless Chromium from Debian (never a
downloaded one) driven by Playwright for Python, on flame graphs made from real
traces of the shared workloads and of programs whose names need escaping.

Checked: the page makes no network request and logs no error; hovering a frame shows
its function, file:line, time and calls, and these agree with the trace's func_stats;
clicking a frame zooms into it (full width, the rest of the graph hidden, its
ancestors kept above it) and "Reset zoom" or Escape gives back the first picture;
names with HTML special characters stay text; the SVG variant is XML with a title
per frame and works on its own.

The `browser` fixture is in conftest.py (scripts/test.sh sets RETRACER_REQUIRE_BROWSER=1:
then a missing browser fails these tests instead of skipping them).

What is checked here is the page's script and SVG in the browser, the same on every
Python version (the flame graph's data from each version's traces is checked by
test_export.py on each): these tests are marked `once`.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from retracer.render.stream import short_path
from retracer.units import fmt_ns
from retracer.tracefile import FLAG_IN_SCOPE, TraceReader

from helpers import WORKLOAD_ARGS, retracer, trace as run_trace

pytestmark = pytest.mark.once
WIDTH, PAD = 1200, 10            # retracer.flamegraph's layout
FULL = WIDTH - 2 * PAD           # the width of a frame zoomed into
TIMEOUT = 60_000                 # ms: generous, for slow machines
SVG_NS = "{http://www.w3.org/2000/svg}"


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def workdir(module_config_dir, tmp_path_factory):
    return tmp_path_factory.mktemp("flamepages")


def trace(workdir: Path, name: str, script, *args, trace_name: str = "out.trace") -> Path:
    """A trace of `script args` (made once per module), in workdir/name/."""
    d = workdir / name
    d.mkdir(exist_ok=True)
    out = d / trace_name
    if not out.exists():
        run_trace(out, script, *args, cwd=d, opts=["--no-capture"])
    return out


def flamegraph(trace_path: Path, suffix: str = ".svg") -> Path:
    """`retracer profile TRACE --format flamegraph -o flame.html` (or .svg)."""
    out = trace_path.with_name(trace_path.stem + "-flame" + suffix)
    retracer("profile", trace_path, "--format", "flamegraph", "-o", out, cwd=trace_path.parent, check=True)
    return out


def workload(workdir: Path, workloads: Path, script: str, suffix: str = ".svg"):
    """(trace, flame graph) of one of the shared workloads at its small size."""
    t = trace(workdir, script.replace(".py", ""), workloads / script, *WORKLOAD_ARGS[script])
    return t, flamegraph(t, suffix)


def frames_of(path: Path) -> list:
    """F, the frames' [x, width, depth] (ns) the page's script was given; frame i is <g id="f<i>">."""
    return json.loads(re.search(r"var F = (\[.*?\]\]);", path.read_text(encoding="utf-8")).group(1))


def parents(F: list) -> list:
    """The parent frame of each frame (None for "all")."""
    out = [None] * len(F)
    for i, (x, w, d) in enumerate(F):
        for j, (xj, wj, dj) in enumerate(F):
            if dj == d - 1 and xj <= x and x + w <= xj + wj:
                out[i] = j
                break
    return out


def open_page(browser, path: Path):
    """The page, with .requests (every URL asked for) and .errors (console errors and
    uncaught exceptions) recorded from the start."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT)
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.goto(path.resolve().as_uri(), wait_until="load", timeout=TIMEOUT)
    page.wait_for_selector("#f0, body[data-ready='1']", state="attached")
    page.requests, page.errors = requests, errors
    return page


def assert_clean(page, path: Path):
    """Nothing but the file itself was loaded, and nothing went wrong."""
    assert page.requests == [path.resolve().as_uri()]
    assert page.errors == []


STATE_JS = """() => [...document.querySelectorAll('g.rt-f')].map(g => {
    const r = g.querySelector('rect'), t = g.querySelector('text'), tt = g.querySelector('title');
    return {id: g.id, label: g.getAttribute('data-label'), title: tt ? tt.textContent : null,
            text: t ? t.textContent : null, shown: getComputedStyle(g).display !== 'none',
            parent: g.classList.contains('rt-parent'), x: parseFloat(r.getAttribute('x')) * 12, y: +r.getAttribute('y'),
            w: parseFloat(r.getAttribute('width')) * 12, textw: t && t.textContent ? t.getComputedTextLength() : 0,
            k: document.querySelector('svg').getBoundingClientRect().width / 1200};
})"""


def state(page) -> list:
    return page.evaluate(STATE_JS)


def frame_by_label(page, label: str, nth: int = 0) -> str:
    """The id of the nth frame (in document order) whose label is exactly `label`."""
    ids = page.evaluate("(l) => [...document.querySelectorAll('g.rt-f')]"
                        ".filter(g => g.getAttribute('data-label') === l).map(g => g.id)", label)
    assert len(ids) > nth, f"no frame {label!r} (#{nth})"
    return ids[nth]


def details(page) -> str:
    return page.locator("#rt-details").text_content()


def hover(page, fid: str) -> str:
    """Hover frame `fid`; the details line it shows."""
    page.locator(f"#{fid} rect").hover()
    page.wait_for_function("() => document.getElementById('rt-details').textContent.trim() !== ''",
                           timeout=TIMEOUT)
    return details(page)


def parse_ns(text: str) -> float:
    """A time as fmt_ns writes it ("1.234 ms") in nanoseconds."""
    value, unit = text.split()
    return float(value) * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]


def fib_levels(n: int) -> list:
    """How many calls calls_fib.fib(n) makes at each depth of the recursion."""
    levels, todo = [], [n]
    while todo:
        levels.append(len(todo))
        todo = [m for k in todo if k >= 2 for m in (k - 1, k - 2)]
    return levels


def stats_by_qualname(trace_path: Path):
    with TraceReader(str(trace_path)) as r:
        functions = dict(r.functions)
        stats = {s.fid: s for s in r.func_stats()}
        cwd = r.meta.get("cwd")
    return functions, stats, cwd


def check_layout(st: list, F: list):
    """Every frame shown, inside the graph and inside its parent; labels fit their frames."""
    assert [s["id"] for s in st] == [f"f{i}" for i in range(len(F))]
    par = parents(F)
    for i, s in enumerate(st):
        assert s["shown"] and not s["parent"], s
        assert PAD - 0.01 <= s["x"] and s["x"] + s["w"] <= WIDTH - PAD + 0.11, s
        if i:
            p = st[par[i]]
            assert par[i] is not None, s
            assert p["x"] - 0.01 <= s["x"] and s["x"] + s["w"] <= p["x"] + p["w"] + 0.11, (s, p)
            assert s["y"] > p["y"]
        assert not s["text"] or s["textw"] + 3 <= s["w"] * s["k"] + 0.5, f"label {s['text']!r} overflows its frame ({s})"
        if s["text"]:
            assert s["text"] == s["label"] or (s["text"].endswith("..") and s["label"].startswith(s["text"][:-2]))


# --------------------------------------------------------------- the workloads

@pytest.mark.parametrize("script", sorted(WORKLOAD_ARGS))
def test_page_loads_offline_without_errors(browser, workdir, workloads, script):
    t, html = workload(workdir, workloads, script)
    page = open_page(browser, html)
    F = frames_of(html)
    st = state(page)
    check_layout(st, F)
    functions, stats, _ = stats_by_qualname(t)
    total = sum(s.own_ns for s in stats.values())
    assert F[0][1] == total
    assert st[0]["label"] == "all" and st[0]["title"].startswith(f"all: {fmt_ns(total)} traced")
    # every function of the program (in scope: all its calls are in the call stream)
    # with a noticeable share of the time has a frame
    shown = {s["label"] for s in st}
    big = {functions[fid].qualname for fid, s in stats.items()
           if (functions[fid].flags or 0) & FLAG_IN_SCOPE and s.cum_ns >= total * 0.02}
    assert big and big <= shown, big - shown
    # hovering and clicking load nothing either
    hover(page, max(st[1:], key=lambda s: (s["w"] >= 5, s["y"]))["id"])
    page.locator(f"#{st[-1]['id']} rect").click(force=True)
    page.keyboard.press("Escape")
    assert_clean(page, html)
    page.close()


def test_hover_on_fib_shows_what_func_stats_says(browser, workdir, workloads):
    t, html = workload(workdir, workloads, "calls_fib.py")
    functions, stats, cwd = stats_by_qualname(t)
    fid = next(f for f, fn in functions.items() if fn.qualname == "fib")
    fn, fs = functions[fid], stats[fid]
    total = sum(s.own_ns for s in stats.values())
    where = f"{short_path(fn.filename, cwd)}:{fn.firstlineno}"
    assert where.endswith("calls_fib.py:5")
    page = open_page(browser, html)
    assert details(page).strip() == ""
    # the outermost fib: its one (primitive) call and the whole recursion's time
    top = frame_by_label(page, "fib")
    shown = hover(page, top)
    assert shown == (f"fib ({where})\ntotal {fmt_ns(fs.cum_ns)} ({100.0 * fs.cum_ns / total:.2f}%), "
                     f"own {shown.split(', own ')[1].split(',')[0]}, {fs.prim_calls:,} call")
    assert fs.prim_calls == 1
    # the tooltip where scripts do not run (<title>) says the same
    assert page.locator(f"#{top} > title").text_content() == shown
    # moving away clears the line
    page.mouse.move(5, 5)
    page.wait_for_function("() => document.getElementById('rt-details').textContent.trim() === ''", timeout=TIMEOUT)
    # one frame per recursion level, each with the calls made at that depth; together
    # they make every call of fib in func_stats (the deepest levels, too narrow to
    # draw, may be left out: then their calls are missing, no more)
    levels = fib_levels(18)
    assert sum(levels) == fs.calls == 8361
    st = state(page)
    fibs = [s for s in st if s["label"] == "fib"]
    assert 12 <= len(fibs) <= len(levels)
    counts = []
    for s in fibs:
        m = re.fullmatch(rf"fib \({re.escape(where)}\)\ntotal .+ \(\d+\.\d\d%\), own .+, ([\d,]+) calls?", s["title"])
        assert m, s["title"]
        counts.append(int(m.group(1).replace(",", "")))
    assert counts == levels[:len(fibs)]
    if len(fibs) == len(levels):
        owns = [parse_ns(re.search(r", own (.+?), ", s["title"]).group(1)) for s in fibs]
        assert sum(owns) == pytest.approx(fs.own_ns, rel=1e-3)
    # a deeper level: hovering it shows its own numbers
    third = fibs[2]
    assert hover(page, third["id"]) == third["title"] and third["title"].endswith(", 4 calls")
    main = frame_by_label(page, "main")
    mfn = next(f for f, fn in functions.items() if fn.qualname == "main")
    assert hover(page, main).startswith(f"main ({short_path(functions[mfn].filename, cwd)}:11)\n"
                                        f"total {fmt_ns(stats[mfn].cum_ns)} (")
    assert hover(page, main).endswith(", 1 call")
    assert_clean(page, html)


def check_zoomed(st: list, F: list, k: int, before: list):
    """The state after zooming into frame k: k full width, its subtree scaled to it,
    its ancestors full width above it (marked), everything else hidden."""
    par = parents(F)
    anc, a = set(), par[k]
    while a is not None:
        anc.add(a)
        a = par[a]
    x0, span, d = F[k]

    def inside(i):
        while i is not None and i != k:
            i = par[i]
        return i == k
    assert st[k]["shown"] and abs(st[k]["x"] - PAD) < 0.01 and abs(st[k]["w"] - FULL) < 0.01
    scale = FULL / before[k]["w"]
    for i, s in enumerate(st):
        if i in anc:
            assert s["shown"] and s["parent"] and abs(s["x"] - PAD) < 0.01 and abs(s["w"] - FULL) < 0.01, s
        elif inside(i):
            assert s["shown"] and not s["parent"], s
            assert PAD - 0.01 <= s["x"] and s["x"] + s["w"] <= WIDTH - PAD + 0.11, s
            if i != k and before[i]["w"] >= 1:
                assert s["w"] == pytest.approx(before[i]["w"] * scale, rel=0.01, abs=0.05), s
        else:
            assert not s["shown"], s


def test_click_zooms_and_reset_restores(browser, workdir, workloads):
    _, html = workload(workdir, workloads, "oop_sim.py")
    F = frames_of(html)
    par = parents(F)
    page = open_page(browser, html)
    unzoom = page.locator("#rt-unzoom")
    assert not unzoom.is_visible()
    before = state(page)
    # the widest Particle.step: it has siblings (under simulate), children, ancestors
    step = max((s for s in before if s["label"] == "Particle.step"), key=lambda s: s["w"])
    k = int(step["id"][1:])
    siblings = [i for i in range(len(F)) if par[i] == par[k] and i != k]
    assert siblings and any(par[i] == k for i in range(len(F)))
    page.locator(f"#{step['id']} rect").click()
    page.wait_for_function(f"() => Math.abs(parseFloat(document.querySelector('#{step['id']} rect')"
                           f".getAttribute('width')) * 12 - {FULL}) < 0.01", timeout=TIMEOUT)
    zoomed = state(page)
    check_zoomed(zoomed, F, k, before)
    assert all(not zoomed[i]["shown"] for i in siblings)
    assert zoomed[k]["text"] == "Particle.step"
    assert unzoom.is_visible()
    # "Reset zoom" gives back exactly the first picture
    unzoom.click()
    page.wait_for_function("() => getComputedStyle(document.getElementById('rt-unzoom')).display === 'none'",
                           timeout=TIMEOUT)
    assert state(page) == before
    # zoom into a child, then click an ancestor (drawn above it): zooms out to that one
    child = next(i for i in range(len(F)) if par[i] == k)
    page.locator(f"#f{child} rect").click()
    check_zoomed(state(page), F, child, before)
    page.locator(f"#f{par[k]} rect").click()
    check_zoomed(state(page), F, par[k], before)
    assert all(state(page)[i]["shown"] for i in siblings)
    # Escape resets too
    page.keyboard.press("Escape")
    page.wait_for_function("() => getComputedStyle(document.getElementById('rt-unzoom')).display === 'none'",
                           timeout=TIMEOUT)
    assert state(page) == before
    assert_clean(page, html)


def test_click_zooms_into_a_fib_level(browser, workdir, workloads):
    _, html = workload(workdir, workloads, "calls_fib.py")
    F = frames_of(html)
    page = open_page(browser, html)
    before = state(page)
    fibs = [s for s in before if s["label"] == "fib"]
    # the first level noticeably narrower than the graph; it has levels below it
    target = next(s for s in fibs if s["w"] < FULL * 0.8)
    assert fibs.index(target) < len(fibs) - 2
    page.locator(f"#{target['id']} rect").click()
    k = int(target["id"][1:])
    page.wait_for_function(f"() => Math.abs(parseFloat(document.querySelector('#{target['id']} rect')"
                           f".getAttribute('width')) * 12 - {FULL}) < 0.01", timeout=TIMEOUT)
    check_zoomed(state(page), F, k, before)
    page.locator("#rt-unzoom").click()
    page.wait_for_function("() => getComputedStyle(document.getElementById('rt-unzoom')).display === 'none'",
                           timeout=TIMEOUT)
    assert state(page) == before
    assert_clean(page, html)


# ------------------------------------------------------------------ escaping

# A function and a class method whose names, and the directory of whose file, hold
# markup; names set on the code object (3.11+) and on the function (before 3.11).
EVIL_FUNC = "<img src=x onerror=window.__pwned=1>&amp;<b>f</b>"
EVIL_CLASS = "<b onmouseover=window.__pwned=2>K&lt;"
EVIL_DIR = "<img src=y onerror=window.__pwned=3>&amp;<i>"
EVIL_TRACE = "<i>t&amp;.trace"
EVIL_SRC = f"""\
import types

def rename(f, qualname):
    code = f.__code__.replace(co_name=qualname.rpartition(".")[2])
    if hasattr(code, "co_qualname"):
        code = code.replace(co_qualname=qualname)
    g = types.FunctionType(code, f.__globals__, code.co_name, f.__defaults__)
    g.__qualname__ = qualname
    return g

def work(self=None):
    return sum(range(20000))

evil = rename(work, {EVIL_FUNC!r})
Klass = type({EVIL_CLASS!r}, (), {{"run": rename(work, {EVIL_CLASS!r} + ".run")}})

if __name__ == "__main__":
    for _ in range(3):
        evil()
        Klass().run()
"""


@pytest.fixture(scope="module")
def evil_trace(workdir):
    d = workdir / "evil" / EVIL_DIR
    d.mkdir(parents=True)
    (d / "prog.py").write_text(EVIL_SRC)
    return trace(workdir, "evil", d / "prog.py", trace_name=EVIL_TRACE)


def check_escaped(page, trace_path: Path, html: bool):
    functions, stats, cwd = stats_by_qualname(trace_path)
    evil = [fn for fid, fn in functions.items() if fid in stats and "<" in (fn.qualname or "")]
    assert {fn.qualname for fn in evil} >= {EVIL_FUNC, EVIL_CLASS + ".run"}
    evil = [fn for fn in evil if fn.qualname in (EVIL_FUNC, EVIL_CLASS + ".run")]
    # nothing was made an element, nothing ran
    assert page.evaluate("() => document.querySelectorAll('img, b, i, image, foreignObject').length") == 0
    assert page.evaluate("() => document.querySelectorAll('script').length") == 1
    assert page.evaluate("() => window.__pwned") is None
    for fn in evil:
        where = f"{short_path(fn.filename, cwd)}:{fn.firstlineno}"
        assert EVIL_DIR in where
        fid = frame_by_label(page, fn.qualname)
        title = page.locator(f"#{fid} > title").text_content()
        assert title.startswith(f"{fn.qualname} ({where})\ntotal ") and title.endswith(", 3 calls")
        text = page.locator(f"#{fid} > text").text_content()
        assert fn.qualname.startswith(text.rstrip("."))
        assert hover(page, fid) == title
        page.locator(f"#{fid} rect").click()
        assert abs(float(page.locator(f"#{fid} rect").get_attribute("width").rstrip("%")) * 12 - FULL) < 0.01
        page.keyboard.press("Escape")
    title = f"Flame graph of {EVIL_TRACE}"
    if html:
        assert page.title() == title
        assert page.locator("h1").text_content() == title
    else:
        assert page.locator("svg > text").first.text_content() == title
    assert page.evaluate("() => window.__pwned") is None


def test_names_with_html_special_characters_are_escaped(browser, evil_trace):
    """The HTML page (flame.js on a canvas): names stay text, in the legend, the
    details line, the sandwich's titles and the search."""
    html = flamegraph(evil_trace, ".html")
    page = open_page(browser, html)
    functions, stats, cwd = stats_by_qualname(evil_trace)
    assert page.evaluate("() => document.querySelectorAll('img, b, i, image, foreignObject').length") == 0
    api = "window.__rtFlame"
    frames = page.evaluate(f"{api}.debug.frames()")
    names = {f["name"] for f in frames}
    assert EVIL_FUNC in names and EVIL_CLASS + ".run" in names
    box = page.locator("#rtf-root canvas.rtf-canvas").first.bounding_box()
    f = next(f for f in frames if f["name"] == EVIL_FUNC)
    page.mouse.click(box["x"] + f["x"] + f["w"] / 2, box["y"] + f["y"] + 8)
    assert page.evaluate(f"{api}.debug.details()").startswith(EVIL_FUNC + " (")
    page.keyboard.press("s")
    assert page.evaluate(f"{api}.debug.sandwich()")["name"] == EVIL_FUNC
    page.fill(".rtf-search", "<img")
    page.wait_for_function(f"() => {api}.debug.info().includes('match')", timeout=TIMEOUT)
    assert page.evaluate("() => document.querySelectorAll('img, b, i').length") == 0
    assert page.evaluate("() => window.__pwned") is None
    assert page.title() == f"Flame graph of {EVIL_TRACE}"
    assert page.locator(".rtf-title").text_content() == f"Flame graph of {EVIL_TRACE}"
    assert page.locator("h1").count() == 0
    assert_clean(page, html)  # an <img src=x> that got through would have asked for x


def test_names_with_html_special_characters_svg(browser, evil_trace):
    svg = flamegraph(evil_trace, ".svg")
    ET.parse(str(svg))
    page = open_page(browser, svg)
    check_escaped(page, evil_trace, html=False)
    assert_clean(page, svg)


# Names that look like the placeholders of the page's template (__TITLE__, __SVG__,
# __SCRIPT__ in templates/flamegraph.html), in functions and in the trace's file name.
PLACEHOLDER_SRC = """\
def __SCRIPT__():
    return sum(range(20000))

def __SVG__():
    return sum(range(20000))

def __TITLE__():
    return sum(range(20000))

if __name__ == "__main__":
    for _ in range(3):
        __SCRIPT__()
        __SVG__()
        __TITLE__()
"""


def test_names_like_template_placeholders_are_left_alone(browser, workdir):
    d = workdir / "placeholders"
    d.mkdir()
    (d / "prog.py").write_text(PLACEHOLDER_SRC)
    name = "__SCRIPT__ __SVG__ __TITLE__.trace"
    t = trace(workdir, "placeholders", d / "prog.py", trace_name=name)
    page = open_page(browser, flamegraph(t, ".html"))
    assert page.evaluate("() => document.querySelectorAll('script').length") == 2  # the data and the code
    assert page.title() == f"Flame graph of {name}"
    assert page.locator(".rtf-title").text_content() == f"Flame graph of {name}"
    assert {"__SCRIPT__", "__SVG__", "__TITLE__"} <= {f["name"] for f in page.evaluate("window.__rtFlame.debug.frames()")}
    page.close()
    html = flamegraph(t)
    page = open_page(browser, html)
    F = frames_of(html)
    st = state(page)
    check_layout(st, F)
    for fn in ("__SCRIPT__", "__SVG__", "__TITLE__"):
        fid = frame_by_label(page, fn)
        assert hover(page, fid).startswith(f"{fn} (prog.py:")
        assert hover(page, fid).endswith(", 3 calls")
    assert_clean(page, html)


# ------------------------------------------------------------------ the SVG variant

@pytest.mark.parametrize("script", ["oop_sim.py", "calls_fib.py", "threads_work.py"])
def test_svg_is_xml_with_a_title_per_frame_and_works_alone(browser, workdir, workloads, script):
    t, svg = workload(workdir, workloads, script, ".svg")
    root = ET.parse(str(svg)).getroot()
    assert root.tag == SVG_NS + "svg"
    groups = [g for g in root.iter(SVG_NS + "g") if "rt-f" in (g.get("class") or "").split()]
    F = frames_of(svg)
    assert [g.get("id") for g in groups] == [f"f{i}" for i in range(len(F))]
    functions, stats, cwd = stats_by_qualname(t)
    seen = Counter(fn.qualname for fn in functions.values())
    where = {fn.qualname: f"{short_path(fn.filename, cwd)}:{fn.firstlineno}" for fn in functions.values()
             if fn.kind == "py" and seen[fn.qualname] == 1}
    for g in groups:
        titles = g.findall(SVG_NS + "title")
        assert len(titles) == 1 and titles[0].text, g.get("id")
        label = g.get("data-label")
        if label != "all":
            assert titles[0].text.startswith(label)
            if label in where:  # a Python function: name (file:line); a builtin: its name
                assert titles[0].text.startswith(f"{label} ({where[label]})\n")
            assert re.search(r"\ntotal .+ \(\d+\.\d\d%\), own .+, [\d,]+ calls?$", titles[0].text), titles[0].text
    assert len(root.findall(SVG_NS + "script")) == 1
    # opened on its own in the browser: hover and zoom work there too
    page = open_page(browser, svg)
    before = state(page)
    check_layout(before, F)
    k = max(range(1, len(F)), key=lambda i: (F[i][2] >= 2 and before[i]["w"] < FULL * 0.9, before[i]["w"]))
    assert hover(page, f"f{k}") == before[k]["title"]
    page.locator(f"#f{k} rect").click()
    check_zoomed(state(page), F, k, before)
    page.keyboard.press("Escape")
    page.wait_for_function("() => getComputedStyle(document.getElementById('rt-unzoom')).display === 'none'",
                           timeout=TIMEOUT)
    assert state(page) == before
    assert_clean(page, svg)
