"""The view page in a real browser: headless Chromium from Debian (never a downloaded
one) driven by Playwright for Python, on pages made from the shared workloads.

scripts/test.sh installs chromium (scripts/deps-browser.sh) and sets
RETRACER_REQUIRE_BROWSER=1: then a missing browser FAILS these tests. Run by hand
without it, they are skipped when chromium is not there. The `browser` fixture is in conftest.py.

What is checked here is the page's script in the browser, the same on every Python
version (the page's data from each version's traces is checked by test_view.py on each):
these tests are marked `once`.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from helpers import retracer, trace

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - depends on the interpreter
    expect = None

pytestmark = pytest.mark.once


@pytest.fixture(scope="module")
def workdir(module_config_dir, tmp_path_factory):
    return tmp_path_factory.mktemp("viewpages")


def make_page(workdir, name, script, *args, view_args=()):
    t = workdir / f"{name}.trace"
    html = str(workdir / f"{name}.html")
    if not t.exists():
        trace(t, script, *args, cwd=workdir)
    retracer("view", t, "-o", html, *view_args, cwd=workdir, check=True)
    return html


def open_page(browser, html):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(Path(html).as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    page.errors = errors
    return page


def rows(page, selector=""):
    return page.locator(f"#tree .row{selector}")


def names(page):
    return page.eval_on_selector_all("#tree .row[data-kind=span]", "els => els.map(e => e.dataset.name)")


def twisty(row):
    row.locator(".tw").click()


# --------------------------------------------------------------------------- workloads

def test_fib_page_one_recursive_node(browser, workdir, workloads):
    page = open_page(browser, make_page(workdir, "fib", workloads / "calls_fib.py", "25"))
    fib = rows(page, "[data-name='fib']")
    assert fib.count() == 1
    assert fib.get_attribute("data-calls") == "242785"
    assert fib.get_attribute("data-depth") == "25"
    assert "recursion depth 25 · 242,785 calls" in fib.inner_text()
    # expanding shows its own calls: fib(24) and fib(23), one 2x group
    twisty(fib)
    grp = rows(page, "[data-kind=group][data-name='fib']")
    assert grp.count() == 1 and grp.get_attribute("data-count") == "2"
    twisty(grp)
    inner = rows(page, "[data-kind=span][data-name='fib']")
    assert inner.count() == 3
    assert [inner.nth(i).get_attribute("data-calls") for i in (1, 2)] == ["150049", "92735"]
    assert not page.errors


def test_oop_sim_page_step_loop_is_one_group_and_expands(browser, workdir, workloads):
    page = open_page(browser, make_page(workdir, "oop", workloads / "oop_sim.py"))
    step = rows(page, "[data-kind=group][data-name='Particle.step']")
    assert step.count() == 1
    assert step.get_attribute("data-count") == "20000"
    assert "20,000×" in step.inner_text()
    assert rows(page, "[data-kind=span][data-name='Particle.step']").count() == 0
    twisty(step)
    reps = rows(page, "[data-kind=span][data-name='Particle.step']")
    assert reps.count() == 200  # one page of repetitions
    assert reps.first.locator(".num").first.inner_text() == "#1"
    more = rows(page, "[data-kind=more]")
    more.last.click()
    assert reps.count() == 400
    # a repetition opens to its own calls
    twisty(reps.nth(1))
    assert rows(page, "[data-name='Particle.gravity']").count() == 1
    # collapsing hides them again
    twisty(step)
    assert rows(page, "[data-kind=span][data-name='Particle.step']").count() == 0
    assert not page.errors


def test_captured_call_shows_its_own_arguments(browser, workdir, workloads):
    page = open_page(browser, make_page(workdir, "fib", workloads / "calls_fib.py", "25"))
    fib = rows(page, "[data-name='fib']")
    assert fib.get_attribute("data-args") == "1"
    fib.locator(".name").click()
    args = page.locator("#details table.args")
    assert args.locator("tr").first.inner_text().split() == ["n", "25"]
    assert "75025" in page.locator("#details").inner_text()  # its return value
    twisty(fib)
    twisty(rows(page, "[data-kind=group][data-name='fib']"))
    second = rows(page, "[data-kind=span][data-name='fib']").nth(2)  # fib(23), the second call of the pair
    first = rows(page, "[data-kind=span][data-name='fib']").nth(1)
    first.locator(".name").click()
    assert page.locator("#details table.args tr").first.inner_text().split() == ["n", "24"]
    assert second.get_attribute("data-args") is None  # not among the first 100 calls
    second.locator(".name").click()
    assert page.locator("#details table.args").count() == 0
    assert "not captured" in page.locator("#details").inner_text()


FILTERS = """
    import heapq
    import time
    import helper_mod

    def keyfn(x):
        return -x

    def alpha():
        return 1

    def beta():
        return alpha()

    def slow():
        time.sleep(0.03)

    def main():
        for _ in range(3):
            beta()
        heapq.nsmallest(2, [3, 1, 2], key=keyfn)
        slow()
        helper_mod.twice(2)

    if __name__ == "__main__":
        main()
"""


@pytest.fixture(scope="module")
def filters_page(workdir):
    (workdir / "helper_mod.py").write_text("def twice(x):\n    return 2 * x\n")
    (workdir / "filters.py").write_text(textwrap.dedent(FILTERS))
    return make_page(workdir, "filters", str(workdir / "filters.py"))


def test_filters_work(browser, filters_page):
    page = open_page(browser, filters_page)
    main = rows(page, "[data-name='main']")
    assert main.count() == 1
    # fold patterns: three beta calls are one group; unchecked, three rows
    assert rows(page, "[data-kind=group][data-name='beta']").get_attribute("data-count") == "3"
    page.uncheck("#f-patterns")
    assert rows(page, "[data-kind=group]").count() == 0
    assert rows(page, "[data-kind=span][data-name='beta']").count() == 3
    page.check("#f-patterns")
    # hide outside scope: heapq.nsmallest goes, the callback it made stays, lifted under main
    assert "nsmallest" in names(page)
    n_key = rows(page, "[data-name='keyfn']").count()
    page.check("#f-external")
    assert "nsmallest" not in names(page)
    assert rows(page, "[data-name='keyfn']").count() + rows(page, "[data-kind=group][data-name='keyfn']").count() >= 1
    assert "main" in names(page) and "slow" in names(page)
    page.uncheck("#f-external")
    assert "nsmallest" in names(page) and rows(page, "[data-name='keyfn']").count() == n_key
    # hide imports: the import machinery (and the module body it ran) disappears
    before = names(page)
    imports = [n for n in before if n.startswith("_find_and_load") or n.startswith("_handle_fromlist")]
    if imports:
        page.check("#f-imports")
        after = names(page)
        assert not [n for n in after if n.startswith("_find_and_load")]
        assert "main" in after
        page.uncheck("#f-imports")
    # minimum duration: only what took 10 ms or more
    page.fill("#f-mindur", "10")
    page.dispatch_event("#f-mindur", "change")
    after = names(page)
    assert "slow" in after and "main" in after
    assert "alpha" not in after and "keyfn" not in after
    assert rows(page, "[data-kind=group][data-name='beta']").count() == 0
    page.fill("#f-mindur", "")
    page.dispatch_event("#f-mindur", "change")
    # search: only the paths to the matches, opened, matches marked
    page.fill("#f-search", "alpha")
    expect(page.locator("#search-info")).to_have_text("3 matching calls")
    after = names(page)
    assert "slow" not in after and "keyfn" not in after and "nsmallest" not in after
    assert "alpha" in after and "main" in after
    assert page.locator("#tree .row.hit[data-name='alpha']").count() >= 1
    page.fill("#f-search", "zzz-nothing")
    expect(page.locator("#search-info")).to_have_text("no call matches")
    assert names(page) == []
    page.fill("#f-search", "")
    expect(page.locator("#search-info")).to_have_text("")
    assert "slow" in names(page)
    assert not page.errors


def test_initial_state_from_options(browser, workdir, filters_page):
    html = make_page(workdir, "filters", str(workdir / "filters.py"), view_args=("--no-patterns", "--hide-imports"))
    page = open_page(browser, html)
    assert not page.is_checked("#f-patterns") and page.is_checked("#f-imports")
    assert rows(page, "[data-kind=group]").count() == 0
    assert rows(page, "[data-kind=span][data-name='beta']").count() == 3
    assert not [n for n in names(page) if n.startswith("_find_and_load")]
    assert "helper_mod" not in " ".join(page.eval_on_selector_all(
        "#tree .row[data-name='<module>'] .where", "els => els.map(e => e.textContent)"))


EVIL = """
    def show(text):
        return text

    def main():
        show("<script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>")

    if __name__ == "__main__":
        main()
"""


def test_text_is_escaped_everywhere(browser, workdir):
    (workdir / "evil.py").write_text(textwrap.dedent(EVIL))
    page = open_page(browser, make_page(workdir, "evil", str(workdir / "evil.py")))
    show = rows(page, "[data-name='show']")
    show.locator(".name").click()
    details = page.locator("#details")
    assert "<script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>" in details.inner_text()
    assert page.locator("#details script, #details img").count() == 0
    page.click("button[data-tab=flame]")
    page.click("button[data-tab=timeline]")
    assert page.evaluate("window.__pwned") is None
    assert not page.errors


def test_flame_graph_and_timeline(browser, workdir, workloads):
    page = open_page(browser, make_page(workdir, "oop", workloads / "oop_sim.py"))
    page.click("button[data-tab=flame]")
    frames = page.evaluate("window.__rtDebug.flameFrames()")
    assert "Particle.step" in frames and "simulate" in frames and "Thread MainThread" in frames
    x, y, w, h = page.evaluate("window.__rtDebug.flameRect('Particle.step')")
    box = page.locator("#flame").bounding_box()
    page.mouse.click(box["x"] + x + w / 2, box["y"] + y + h / 2)
    assert page.evaluate("window.__rtDebug.flamePath()").endswith("simulate › Particle.step")
    zoomed = page.evaluate("window.__rtDebug.flameFrames()")
    assert "Particle.at_rest" not in zoomed and "Vec.scale" in zoomed
    page.click("#flame-reset")
    assert "Particle.at_rest" in page.evaluate("window.__rtDebug.flameFrames()")
    # the timeline draws the 20,000 steps as one block until zoomed in
    page.click("button[data-tab=timeline]")
    blocks = page.evaluate("window.__rtDebug.timelineBlocks()")
    assert "20000×" in blocks and "Particle.step" not in blocks
    tl = page.locator("#timeline").bounding_box()
    for _ in range(40):
        page.mouse.move(tl["x"] + tl["width"] * 0.6, tl["y"] + 60)
        page.mouse.wheel(0, -300)
    blocks = page.evaluate("window.__rtDebug.timelineBlocks()")
    assert "Particle.step" in blocks
    assert not page.errors


def test_statistics_panel(browser, workdir, workloads):
    page = open_page(browser, make_page(workdir, "oop", workloads / "oop_sim.py"))
    page.click("button[data-tab=stats]")
    text = page.locator("#stats").inner_text()
    assert "distinct functions" in text and "calls (profile)" in text
    top = page.eval_on_selector_all("#stats table.top tr td:first-child", "els => els.map(e => e.textContent)")
    assert "Particle.step" in top or "Vec.__init__" in top


POOL = """
    import multiprocessing as mp

    def sq(x):
        return x * x

    if __name__ == "__main__":
        with mp.get_context("fork").Pool(2) as pool:
            print(sum(pool.map(sq, range(21))))
"""


def test_processes_are_a_level_of_the_tree_the_flame_graph_and_the_timeline(browser, workdir):
    """A multi-process trace: the tree has a row per process above its threads (it folds
    them away), the flame graph a frame per process between the root and the threads,
    and the timeline its lanes grouped under each process."""
    prog = workdir / "pool.py"
    prog.write_text(textwrap.dedent(POOL))
    page = open_page(browser, make_page(workdir, "pool", prog, view_args=("--no-patterns",)))
    procs = rows(page, "[data-kind=process]")
    n = procs.count()
    assert n >= 2, page.content()[:2000]
    labels = [procs.nth(i).locator(".name").inner_text() for i in range(n)]
    assert all(lb.startswith("process ") and "pool.py" in lb for lb in labels), labels
    # every thread row sits inside its process's node
    inside = page.eval_on_selector_all(
        "#tree .row[data-kind=thread]",
        "els => els.map(e => !!e.parentElement.parentElement.closest('.node') && "
        "e.parentElement.parentElement.closest('.node').firstChild.dataset.kind === 'process')")
    assert inside and all(inside), inside
    # a worker's calls of sq are under a worker process, and folding a process hides them
    worker = next(i for i in range(n) if "sq" in page.locator("#tree > .node").nth(i).inner_text())
    assert worker > 0
    twisty(procs.nth(worker))
    assert not page.locator("#tree > .node").nth(worker).locator(".row[data-kind=thread]").is_visible()
    page.click("button[data-tab=flame]")
    nodes = page.evaluate("window.__rtDebug.flameNodes()")  # drawn or not (a short process is too narrow)
    assert sorted(f for f in nodes if f.startswith("process ")) == sorted(labels), nodes[:20]
    frames = page.evaluate("window.__rtDebug.flameFrames()")
    assert any(f.startswith("process ") for f in frames), frames
    # nothing of retracer's own is in the workers' profiles (its fork handlers' calls)
    assert not any("sigmask" in f or "retracer" in f for f in frames), frames
    page.click("button[data-tab=timeline]")
    lanes = page.evaluate("window.__rtDebug.timelineLanes()")
    assert {L["group"] for L in lanes} == set(labels), (lanes, labels)
    assert not page.errors
