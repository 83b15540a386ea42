"""`retracer view`: pattern folding through the C binding on traced programs, the
text form, the page's data and escaping, serving, and input errors."""
from __future__ import annotations

import json
import os
import re
import signal
import sys
import textwrap
import urllib.request
from collections import Counter

import pytest

from retracer import _view
from retracer.render.view import captures, decode, text
from retracer.render.view import model as vmodel
from streamdecode import ENTER, ENTER_CONT, EXIT, EXIT_EXC, RESUME, SUSPEND, iter_events
from retracer.tracefile import FLAG_IMPORT_MACHINERY, TraceReader

from helpers import finish, kill_group, one_line_error, popen, retracer, trace


def write(tmp_path, name, source):
    p = tmp_path / name
    p.write_text(textwrap.dedent(source))
    return str(p)


def label(model, rec):
    return vmodel.func_label(model.functions.get(rec.fid)) if not rec.group else "group"


def child(model, th, rec, name):
    """The first item under `rec` that is a span of `name`."""
    for r in decode.iter_items(th.tree, rec):
        if not r.group and label(model, r) == name:
            return r
    raise AssertionError(f"no {name} under {label(model, rec)}: "
                         f"{[label(model, r) for r in decode.iter_items(th.tree, rec)]}")


def find(model, th, name, under=None):
    """The first span called `name`, breadth first from `under` (default: the root):
    the traced program's <module> is not always a root (3.9/3.10 record the runner's
    exec() around it)."""
    queue = [under or th.root]
    while queue:
        rec = queue.pop(0)
        for r in decode.iter_items(th.tree, rec):
            if not r.group and label(model, r) == name:
                return r
            if r.group or r.depth == 1:
                queue.append(r)
    raise AssertionError(f"no {name} in the tree")


def template(model, th, grp):
    return [("group", r.count) if r.group else label(model, r) for r in text._first_rep(th.tree, grp)]


# --------------------------------------------------------------------------- folding

def test_fib_is_one_recursive_node_with_every_call(tmp_path, workloads):
    t = str(tmp_path / "out.trace")
    trace(t, str(workloads / "calls_fib.py"), "25", cwd=tmp_path)
    m = vmodel.load(t)
    th = m.threads[0]
    main = child(m, th, find(m, th, "<module>"), "main")
    fibs = [r for r in decode.iter_items(th.tree, main) if not r.group and label(m, r) == "fib"]
    assert len(fibs) == 1
    fib = fibs[0]
    assert fib.calls == 242_785
    assert fib.depth == 25
    # the same number from the profile: every fib call is inside that one node
    with TraceReader(t) as r:
        stat = {s.fid: s for s in r.func_stats()}[fib.fid]
    assert stat.calls == 242_785
    # the text form prints it as one line, not its re-entries
    out = retracer("view", t, "--text", cwd=tmp_path, check=True).stdout
    lines = [ln for ln in out.splitlines() if "── fib " in ln]
    assert len(lines) == 1, out
    assert "recursion depth 25, 242,785 calls" in lines[0]


def _children_fids(t, parent_fid):
    """The fids of the direct children of the first call of parent_fid, from the raw
    stream (independent of the folder)."""
    with TraceReader(t) as r:
        depth = 0
        inside = None
        seq = []
        for tag, x, _ in iter_events(r, 0):
            if tag in (ENTER, ENTER_CONT, RESUME):
                depth += 1
                if inside is None and tag == ENTER and x == parent_fid:
                    inside = depth
                elif inside is not None and depth == inside + 1:
                    seq.append(x if tag != RESUME else ("resume", x))
            elif tag in (EXIT, EXIT_EXC, SUSPEND):
                if inside is not None and depth == inside:
                    break
                depth -= 1
        return seq


def _calls_inside_children(t, parent_fid, child_fid):
    """Calls (ENTER events) made inside the child_fid calls directly under the first
    call of parent_fid, the child calls included, from the raw stream."""
    with TraceReader(t) as r:
        depth = 0
        inside = None
        counting = False
        n = 0
        for tag, x, _ in iter_events(r, 0):
            if tag in (ENTER, ENTER_CONT, RESUME):
                depth += 1
                if inside is None and tag == ENTER and x == parent_fid:
                    inside = depth
                elif inside is not None and depth == inside + 1:
                    counting = tag == ENTER and x == child_fid
                if counting and tag != RESUME:
                    n += 1
            elif tag in (EXIT, EXIT_EXC, SUSPEND):
                if inside is not None and depth == inside:
                    break
                depth -= 1
        return n


def test_oop_sim_per_step_loop_is_one_group(tmp_path, workloads):
    t = str(tmp_path / "out.trace")
    trace(t, str(workloads / "oop_sim.py"), cwd=tmp_path)  # 200 particles x 100 steps
    m = vmodel.load(t)
    th = m.threads[0]
    sim = child(m, th, child(m, th, find(m, th, "<module>"), "main"), "simulate")
    groups = [r for r in decode.iter_items(th.tree, sim) if r.group]
    steps = [g for g in groups if template(m, th, g) == ["Particle.step"]]
    assert len(steps) == 1
    g = steps[0]
    assert g.count == 20_000 and g.period == 1
    # independent check from the raw stream: 20,000 step calls in a row under simulate
    step_fid = next(f for f, fn in m.functions.items() if fn.qualname == "Particle.step")
    sim_fid = next(f for f, fn in m.functions.items() if fn.qualname == "simulate")
    seq = _children_fids(t, sim_fid)
    assert Counter(seq)[step_fid] == 20_000
    first = seq.index(step_fid)
    assert seq[first:first + 20_000] == [step_fid] * 20_000
    # the group's calls: every call made inside those 20,000 steps, counted on the raw stream
    assert g.calls == _calls_inside_children(t, sim_fid, step_fid)
    # every repetition can still be opened: 20,000 step spans, each with its own callees
    reps = list(decode.iter_items(th.tree, g))
    assert len(reps) == 20_000 and all(label(m, r) == "Particle.step" for r in reps)
    assert sum(r.calls for r in reps) == g.calls
    assert sum(r.dur for r in reps) == g.dur_sum


LOOPS = """
    def a(): pass
    def b(): pass
    def c(): pass
    def p(): pass
    def g(): pass
    def f(): pass
    def l(): pass

    def loop3():
        for _ in range(50):
            a(); b(); c()

    def nested():
        for _ in range(6):
            p(); g()
            for _ in range(2):
                f(); l()

    def aperiodic():
        for ch in "abcacbabcbac":
            {"a": a, "b": b, "c": c}[ch]()

    def main():
        loop3(); nested(); aperiodic()

    if __name__ == "__main__":
        main()
"""


def test_sequences_nesting_and_no_false_groups(tmp_path):
    prog = write(tmp_path, "loops.py", LOOPS)
    t = str(tmp_path / "out.trace")
    trace(t, prog, cwd=tmp_path, opts=["--no-c-calls"])
    m = vmodel.load(t)
    th = m.threads[0]
    main = child(m, th, find(m, th, "<module>"), "main")
    loop3 = child(m, th, main, "loop3")
    items = list(decode.iter_items(th.tree, loop3))
    assert len(items) == 1 and items[0].group
    assert (items[0].period, items[0].count) == (3, 50)
    assert template(m, th, items[0]) == ["a", "b", "c"]
    assert items[0].calls == 150
    nested = child(m, th, main, "nested")
    items = list(decode.iter_items(th.tree, nested))
    assert len(items) == 1 and items[0].group and items[0].count == 6
    tmpl = list(text._first_rep(th.tree, items[0]))
    assert template(m, th, items[0]) == ["p", "g", ("group", 2)]
    assert template(m, th, tmpl[2]) == ["f", "l"]
    assert items[0].calls == 6 * 6
    # a sequence with no block repeated back to back folds nothing
    ap = child(m, th, main, "aperiodic")
    assert not any(r.group for r in decode.iter_items(th.tree, ap))
    assert [label(m, r) for r in decode.iter_items(th.tree, ap)] == list("abcacbabcbac")
    # the reference console look: the nested pattern under its parent
    out = retracer("view", t, "--text", cwd=tmp_path, check=True).stdout
    assert re.search(r"6× \[p, g, 2× \[f, l\]\]  \(calls #\d+–#\d+, total: 36 calls", out), out
    assert re.search(r"2× \[f, l\]  \(in each repetition; over all 6: 24 calls", out), out
    assert re.search(r"50× \[a, b, c\]  \(calls #\d+–#\d+, total: 150 calls", out), out
    # --no-patterns: the same tree, unfolded
    flat = retracer("view", t, "--text", "--no-patterns", cwd=tmp_path, check=True).stdout
    assert "×" not in flat.replace("recursion", "")
    assert sum(1 for ln in flat.splitlines() if re.search(r"── a  ", ln)) == 50 + 4


def test_fold_binding_errors_and_options(tmp_path):
    with pytest.raises(ValueError, match="malformed call stream"):
        _view.fold([b"\x80\x80"])
    with pytest.raises(ValueError, match="max_period"):
        _view.fold([], max_period=0)
    tree, paths, info = _view.fold([])
    assert info["calls"] == 0 and decode.decode_root(tree).nitems == 0
    prog = write(tmp_path, "loops.py", LOOPS)
    t = str(tmp_path / "out.trace")
    trace(t, prog, cwd=tmp_path, opts=["--no-c-calls"])
    with TraceReader(t) as r:
        chunks = list(r.iter_chunks(0))
    tree1, _, info1 = _view.fold(chunks)
    tree0, _, info0 = _view.fold(chunks, patterns=False)
    assert info1["groups"] > 0 and info0["groups"] == 0
    assert info1["calls"] == info0["calls"]
    _, _, small = _view.fold(chunks, max_period=2)  # (a, b, c) has period 3
    assert small["groups"] < info1["groups"]


def test_generators_threads_and_exceptions_fold(tmp_path, workloads):
    t = str(tmp_path / "out.trace")
    trace(t, str(workloads / "threads_work.py"), "400", cwd=tmp_path)
    m = vmodel.load(t)
    assert len(m.threads) >= 2
    with TraceReader(t) as r:
        assert sum(th.info["calls"] for th in m.threads) == r.meta["stream_calls"]
    t = str(tmp_path / "exc.trace")
    trace(t, str(workloads / "exceptions_deep.py"), "100", cwd=tmp_path)
    m = vmodel.load(t)
    th = m.threads[0]
    main = child(m, th, find(m, th, "<module>"), "main")
    # safe(r % 40) and first(r % 10): each round calls the same two functions
    groups = [r for r in decode.iter_items(th.tree, main) if r.group]
    # (where C calls are recorded, len() of first's result is part of each round)
    c_fns = {label(m, r) for r in decode.iter_items(th.tree, main) if not r.group
             and m.functions[r.fid].kind == "c"} | {"len"}
    assert any(template(m, th, g)[:2] == ["safe", "first"] and set(template(m, th, g)[2:]) <= c_fns
               and g.count == 100 for g in groups), [(template(m, th, g), g.count) for g in groups]
    out = retracer("view", t, "--text", cwd=tmp_path, check=True).stdout
    assert "raised" in out and "check" in out


# --------------------------------------------------------------------------- captured calls

def test_captured_calls_show_their_own_arguments(tmp_path, workloads):
    t = str(tmp_path / "out.trace")
    trace(t, str(workloads / "calls_fib.py"), "12", cwd=tmp_path)
    m = vmodel.load(t)
    th = m.threads[0]
    fib = child(m, th, child(m, th, find(m, th, "<module>"), "main"), "fib")
    entry = m.captured[f"{th.idx}:{fib.call_no}"]
    assert entry["args"] == [["n", "12"]]
    assert entry["returned"] == "144"
    # the calls inside, each with its own argument: fib(12) calls [fib]x2 = fib(11),
    # fib(10); fib(11) calls fib(10), fib(9) ...
    node = fib
    for n in range(11, 5, -1):
        g = next(r for r in decode.iter_items(th.tree, node))
        assert g.group and g.count == 2
        a, b = decode.iter_items(th.tree, g)
        assert m.captured[f"0:{a.call_no}"]["args"] == [["n", str(n)]]
        assert a.call_no == node.call_no + 1
        node = a
    # the stream numbering agrees with the capture order of fib's calls
    with TraceReader(t) as r:
        rows = [c for c in r.iter_captured() if c.fid == fib.fid]
    assert len(rows) >= 50
    placed = {e["id"]: e for e in m.captured.values()}
    assert all(c.call_id in placed for c in rows)  # every captured call found its node
    assert sorted(int(placed[c.call_id]["args"][0][1]) for c in rows)[-1] == 12
    # the tracer's own stream number (info.stream_call, when it records it) and the
    # folder's match by function and start time agree
    with TraceReader(t) as r:
        rows = list(r.iter_captured())
        _, _, info = _view.fold(r.iter_chunks(0), captures=[(c.fid, c.t_start_ns) for c in rows])
    by_time = info["captures"]
    assert None not in by_time
    recorded = [captures.stream_call_of(c) for c in rows]
    assert all(a == b for a, b in zip(recorded, by_time) if a is not None)


def test_unloadable_values_and_script_classes_are_shown_safely(tmp_path):
    from retracer.tracefile import CapturedCall
    row = CapturedCall(1, 1, 0, 0, 0, 10, "ok", b"not a pickle", None, None, None,
                       json.dumps({"outcome": "return"}))
    e = captures.describe_capture(row, None)
    assert e["args_error"].startswith("<not loadable: ")
    row = CapturedCall(1, 1, 0, 0, 0, 10, "unpicklable", None, None, None, None,
                       json.dumps({"outcome": "return", "error": "cannot pickle 'generator' object"}))
    assert captures.describe_capture(row, None)["args_error"] == "<not recorded: cannot pickle 'generator' object>"
    # a class of the traced script is not imported: its objects show their state
    prog = write(tmp_path, "shapes.py", """
        class Box:
            def __init__(self, w, h):
                self.w, self.h = w, h
        def area(box):
            return box.w * box.h
        if __name__ == "__main__":
            print(area(Box(2, 3)))
            raise SystemExit(0)
    """)
    t = str(tmp_path / "out.trace")
    trace(t, prog, cwd=tmp_path)
    m = vmodel.load(t)
    areas = [e for e in m.captured.values() if e.get("args") and e["args"][0][0] == "box"]
    assert areas and areas[0]["args"][0][1] == "Box(w=2, h=3)"
    assert areas[0]["returned"] == "6"
    assert "shapes" not in sys.modules


# --------------------------------------------------------------------------- page

EVIL = """
    def show(text):
        return text

    def main():
        show("<script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>")
        f = lambda s: s
        f("</script>&amp;")

    if __name__ == "__main__":
        main()
"""


def test_page_is_self_contained_and_escaped(tmp_path):
    prog = write(tmp_path, "evil.py", EVIL)
    t = str(tmp_path / "out.trace")
    trace(t, prog, cwd=tmp_path)
    page = tmp_path / "page.html"
    p = retracer("view", t, "-o", str(page), cwd=tmp_path, check=True)
    assert "page written to" in p.stderr
    html = page.read_text(encoding="utf-8")
    assert "<script>window.__pwned" not in html
    assert "<img src=x" not in html
    # exactly our two script elements, no external resource at all
    assert html.count("<script") == 2 and html.count("</script>") == 2
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "default-src 'none'" in html
    data = json.loads(re.search(r'<script type="application/json" id="rt-data">(.*?)</script>', html, re.S)
                      .group(1))
    reprs = [v for e in data["captured"].values() for _, v in e.get("args", [])]
    assert any("<script>window.__pwned = 1</script>" in r for r in reprs)
    names = [f[0] for f in data["functions"].values()]
    assert "main.<locals>.<lambda>" in names
    assert data["initial"] == {"patterns": True, "hideImports": False}
    # the folded tree in the page decodes to the same tree the binding gives
    import base64
    import zlib
    m = vmodel.load(t)
    assert zlib.decompress(base64.b64decode(data["threads"][0]["tree"])) == m.threads[0].tree
    # initial state from the options
    retracer("view", t, "-o", str(page), "--no-patterns", "--hide-imports", cwd=tmp_path, check=True)
    data = json.loads(re.search(r'id="rt-data">(.*?)</script>', page.read_text(), re.S).group(1))
    assert data["initial"] == {"patterns": False, "hideImports": True}


def test_default_output_name_and_statistics(tmp_path, workloads):
    t = str(tmp_path / "fib.trace")
    trace(t, str(workloads / "calls_fib.py"), "15", cwd=tmp_path)
    p = retracer("view", t, cwd=tmp_path, check=True)
    page = tmp_path / "fib.html"
    assert page.exists() and str(page.name) in p.stderr
    data = json.loads(re.search(r'id="rt-data">(.*?)</script>', page.read_text(), re.S).group(1))
    s = data["stats"]
    with TraceReader(t) as r:
        assert s["calls"] == r.meta["calls_total"]
        assert s["threads"] == len(r.threads)
        top = max(r.func_stats(), key=lambda x: x.own_ns)
    assert s["top"][0][0] == top.fid
    assert s["functions"] >= 3


IMPORTS = """
    import helper_mod

    def main():
        return helper_mod.twice(21)

    if __name__ == "__main__":
        print(main())
"""


def test_hide_imports_in_text(tmp_path):
    write(tmp_path, "helper_mod.py", "def twice(x):\n    return 2 * x\n")
    prog = write(tmp_path, "imp.py", IMPORTS)
    t = str(tmp_path / "out.trace")
    trace(t, prog, cwd=tmp_path)
    m = vmodel.load(t)
    if not any(fn.flags & FLAG_IMPORT_MACHINERY for fn in m.functions.values()):
        pytest.skip("this Python records no import machinery for the import")
    out = retracer("view", t, "--text", cwd=tmp_path, check=True).stdout
    hidden = retracer("view", t, "--text", "--hide-imports", cwd=tmp_path, check=True).stdout
    assert "_find_and_load" in out
    assert "<module>  [helper_mod.py" in out
    assert "_find_and_load" not in hidden and "<module>  [helper_mod.py" not in hidden
    assert "twice" in hidden and "main" in hidden


def test_trace_print_shows_the_folded_tree(tmp_path):
    prog = write(tmp_path, "loops.py", LOOPS)
    p = trace(tmp_path / "x.trace", prog, cwd=tmp_path, opts=["--print"])
    assert "Thread MainThread" in p.stdout
    assert re.search(r"50× \[a, b, c\]", p.stdout), p.stdout
    assert p.stdout.index("main") < p.stdout.index("loop3")
    text = retracer("view", str(tmp_path / "x.trace"), "--text", cwd=tmp_path, check=True).stdout
    assert text in p.stdout


def test_max_depth_and_ascii_output(tmp_path):
    prog = write(tmp_path, "loops.py", LOOPS)
    t = str(tmp_path / "out.trace")
    trace(t, prog, cwd=tmp_path)
    full = retracer("view", t, "--text", cwd=tmp_path, check=True).stdout
    out = retracer("view", t, "--text", "--max-depth", "2", cwd=tmp_path, check=True).stdout

    def levels(text):
        return [len(re.match(r"^((?:[│ ]   )*)", ln).group(1)) // 4 + 1 for ln in text.splitlines()[1:]]
    assert max(levels(out)) == 2 and max(levels(full)) > 2
    assert out.splitlines()[:2] == full.splitlines()[:2]
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    out = retracer("view", t, "--text", cwd=tmp_path, check=True, env=env).stdout
    assert "@ 50x [a, b, c]" in out and "|-- " in out and "`-- " in out


def test_serve_on_localhost_and_stop_cleanly(tmp_path, workloads):
    t = str(tmp_path / "out.trace")
    trace(t, str(workloads / "calls_fib.py"), "10", cwd=tmp_path)
    proc = popen([sys.executable, "-m", "retracer", "view", t, "--serve", "0"], cwd=tmp_path)
    try:
        line = proc.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        with urllib.request.urlopen(m.group(0), timeout=30) as resp:
            body = resp.read().decode()
        assert 'id="rt-data"' in body and resp.headers["Content-Type"].startswith("text/html")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(m.group(0) + "etc/passwd", timeout=30)
    except BaseException:
        kill_group(proc)
        raise
    proc.send_signal(signal.SIGINT)
    cp = finish(proc)
    assert cp.returncode == 0, cp.stderr
    assert "Traceback" not in cp.stderr and "stopped serving" in cp.stderr


# --------------------------------------------------------------------------- input errors

def test_bad_input_is_one_line_exit_2(tmp_path, workloads):
    one_line_error(retracer("view", str(tmp_path / "missing.trace"), cwd=tmp_path),
                    "missing.trace", "does not exist")
    junk = tmp_path / "junk.trace"
    junk.write_bytes(b"hello, not a trace")
    one_line_error(retracer("view", str(junk), cwd=tmp_path), "junk.trace", "not a retracer trace")
    t = str(tmp_path / "out.trace")
    trace(t, str(workloads / "calls_fib.py"), "5", cwd=tmp_path)
    one_line_error(retracer("view", t, "-o", str(tmp_path / "nodir" / "p.html"), cwd=tmp_path),
                    "nodir", "-o")
    one_line_error(retracer("view", t, "-o", str(tmp_path), cwd=tmp_path), "directory")
    one_line_error(retracer("view", t, "--max-period", "0", cwd=tmp_path), "--max-period")
    one_line_error(retracer("view", t, "--text", "-o", "x.html", cwd=tmp_path), "--text")
    one_line_error(retracer("view", t, "-o", "x.html", "--serve", cwd=tmp_path), "--serve")
    p = retracer("view", t, "--serve", "abc", cwd=tmp_path)
    assert p.returncode == 2 and "invalid port" in p.stderr and "Traceback" not in p.stderr
    # a trace signed by someone else is refused unless --trust
    other = dict(os.environ, RETRACER_CONFIG_DIR=str(tmp_path / "other"))
    p = retracer("view", t, "--text", cwd=tmp_path, env=other)
    one_line_error(p, "--trust")
    assert retracer("view", t, "--text", "--trust", cwd=tmp_path, check=True, env=other).returncode == 0
    # a corrupt call stream: one line naming the file
    import sqlite3
    bad = tmp_path / "bad.trace"
    bad.write_bytes(open(t, "rb").read())
    con = sqlite3.connect(str(bad))
    con.execute("UPDATE chunks SET data = ?, codec = 'raw', raw_size = 2", (b"\x80\x80",))
    con.commit()
    con.close()
    one_line_error(retracer("view", str(bad), "--trust", "--text", cwd=tmp_path),
                    "bad.trace", "corrupt", "trace the program again")


def test_page_title_that_looks_like_a_placeholder_is_left_alone(tmp_path):
    """The page template is filled in one pass: a command line holding
    '{{CSS}}' or '{{JS}}' stays text in the title."""
    import re
    prog = write(tmp_path, "p.py", "import sys\nprint(sys.argv[1:])\n")
    out = str(tmp_path / "out.trace")
    trace(out, prog, "{{CSS}}", "{{JS}}", cwd=tmp_path)
    retracer("view", out, "-o", str(tmp_path / "page.html"), cwd=tmp_path, check=True)
    page = (tmp_path / "page.html").read_text()
    (title,) = re.findall(r"<title>(.*?)</title>", page, re.S)
    assert "{{CSS}}" in title and "{{JS}}" in title and len(title) < 500, title[:500]


def test_text_names_a_generator_resumed_many_times(tmp_path):
    """A generator consumed by a builtin is resumed once per value: the folded
    group says it is one call in that many slices, not that many calls."""
    prog = write(tmp_path, "g.py", """
        def gen(n):
            for i in range(n):
                yield i

        def main():
            return sum(gen(500))

        if __name__ == "__main__":
            main()
        """)
    out = str(tmp_path / "out.trace")
    trace(out, prog, cwd=tmp_path)
    p = retracer("view", out, "--text", cwd=tmp_path, check=True)
    line = next(l for l in p.stdout.splitlines() if "× [gen]" in l)
    assert "total: 1 call in 501 resumed slices" in line, p.stdout
