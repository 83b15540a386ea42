"""`%load_ext retracer`: %%retrace, %%rprofile, %rtimeit and %%rtimeit, run for real in
IPython's own InteractiveShell (IPython.testing.globalipapp), output captured with
IPython.utils.capture; plus Tracer(extra_scope=...), which puts the cells in scope."""
from __future__ import annotations

import os

import pytest

import retracer
import retracer.render
from retracer import Tracer
from retracer.tracefile import FLAG_IN_SCOPE, TraceReader

FIB_CELL = """
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
"""


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    pytest.importorskip("IPython", reason="IPython is not installed for this Python (pip install ipython)")
    from IPython.testing.globalipapp import get_ipython, start_ipython

    os.environ["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipython"))  # not the real home's profile

    ip = start_ipython() or get_ipython()  # once per process: another test module may have started it
    ip.run_line_magic("load_ext", "retracer")
    return ip


@pytest.fixture
def ip(shell, tmp_path, monkeypatch):
    """The shell, working in a fresh directory (the default scope) with fib defined."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))
    shell.run_cell(FIB_CELL)
    return shell


def run(ip, magic, line, cell=None):
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        if cell is None:
            result = ip.run_line_magic(magic, line)
        else:
            result = ip.run_cell_magic(magic, line, cell)
    return cap, result


def srcdoc(output: str) -> str:
    """The page inside the one sandboxed iframe the flame graph's output is."""
    import html
    import re
    m = re.fullmatch(r'<iframe [^>]*sandbox="allow-scripts"[^>]*srcdoc="([^"]*)"></iframe>', output)
    assert m, output[:300]
    return html.unescape(m.group(1))


def stats_by_name(path):
    with TraceReader(path) as r:
        return {r.functions[s.fid].qualname: (s, r.functions[s.fid]) for s in r.func_stats()}


def row(stdout, name):
    """The table row of a function, split in words: the calls are words[7], the
    replay column words[-3] (times are two words: '1.50 ms')."""
    for line in stdout.splitlines():
        words = line.split()
        if len(words) > 2 and words[-2] == name:
            return words
    raise AssertionError(f"no row for {name} in:\n{stdout}")


# ------------------------------------------------------------- the extension


def test_load_ext_registers_the_magics(ip):
    assert ip.find_cell_magic("retrace") is not None
    assert ip.find_cell_magic("rprofile") is not None
    assert ip.find_cell_magic("rtimeit") is not None
    assert ip.find_line_magic("rtimeit") is not None


def test_cell_scope_prefix():
    pytest.importorskip("IPython")
    from retracer.magics import cell_scope_prefix

    assert cell_scope_prefix("<ipython-input-3-0123456789ab>") == "<ipython-input-"
    assert cell_scope_prefix("/tmp/ipykernel_4242/123456.py") == "/tmp/ipykernel_4242/"


# ------------------------------------------------------------- %%retrace


def test_retrace_traces_the_cell_and_shows_the_ranking(ip, tmp_path):
    (tmp_path / "work" / "helper_mod.py").write_text("def double(x):\n    return 2 * x\n")
    out = str(tmp_path / "cell.trace")
    cap, _ = run(ip, "retrace", f"-o {out} --top 10", "import helper_mod\n"
                 "def g(x):\n    return [helper_mod.double(i) for i in range(x)]\n"
                 "for i in range(7):\n    g(3)\nfib(10)\n")
    st = stats_by_name(out)
    fib, fib_fn = st["fib"]
    assert (fib.calls, fib.prim_calls) == (177, 1)  # fib(10), defined in an earlier cell
    assert st["g"][0].calls == 7 and st["double"][0].calls == 21
    assert fib_fn.flags & FLAG_IN_SCOPE and st["g"][1].flags & FLAG_IN_SCOPE  # the cells are in scope
    assert fib_fn.filename.startswith("<ipython-input-")
    assert row(cap.stdout, "fib")[7] == "177/1"
    assert row(cap.stdout, "g")[7] == "7"
    # double lives in a file and was captured: replayable; the cell's functions cannot be re-found
    assert row(cap.stdout, "double")[-3] == "21"
    assert row(cap.stdout, "g")[-3] == "-"
    assert f"retracer: trace written to {out}" in cap.stdout
    with TraceReader(out) as r:
        assert r.meta["stopped_by"] == "end" and r.meta["command"] == ["%%retrace"]
        captured = {r.functions[c.fid].qualname for c in r.iter_captured()}
    assert {"g", "double", "fib"} <= captured


def test_retrace_default_output_in_the_current_directory(ip):
    cap, _ = run(ip, "retrace", "-q", "fib(4)")
    path = os.path.join(os.getcwd(), "retracer.trace")
    assert os.path.isfile(path)
    assert st_calls(path, "fib") == 9
    assert "saving" not in cap.stdout  # -q: no table
    assert f"trace written to {path}" in cap.stdout


def st_calls(path, name):
    return stats_by_name(path)[name][0].calls


def test_retrace_of_a_failing_cell_writes_the_trace_and_shows_the_error(ip, tmp_path):
    out = str(tmp_path / "fail.trace")
    cap, _ = run(ip, "retrace", f"-o {out}", "fib(5)\nraise ValueError('boom in cell')\n")
    assert st_calls(out, "fib") == 15
    with TraceReader(out) as r:
        assert r.meta["stopped_by"] == "exception"
    text = cap.stdout + cap.stderr
    assert "ValueError" in text and "boom in cell" in text
    assert "magics.py" not in text  # the traceback starts at the cell
    assert text.index("trace written") < text.index("boom in cell")


def test_retrace_of_a_cell_with_a_syntax_error_runs_nothing(ip, tmp_path):
    out = str(tmp_path / "syntax.trace")
    cap, _ = run(ip, "retrace", f"-o {out}", "x = = 1\n")
    assert "SyntaxError" in cap.stdout + cap.stderr
    assert not os.path.exists(out)


@pytest.mark.parametrize("line, needle", [("--sort fastest", "--sort"), ("--top 0", "--top"),
                                           ("--bogus", "unrecognized")])
def test_retrace_bad_options_are_usage_errors(ip, line, needle):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=needle):
        ip.run_cell_magic("retrace", line, "fib(3)")


# ------------------------------------------------------------- %%rprofile


def test_rprofile_shows_the_ranking_and_leaves_no_file(ip, monkeypatch, tmp_path):
    monkeypatch.setattr(retracer.render, "flamegraph_html", lambda path, **kw: "<div>flame</div>")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    cap, _ = run(ip, "rprofile", "--sort calls", "fib(8)\nsorted(range(5))\n")
    words = row(cap.stdout, "fib")
    assert words[7] == "67/1" and words[-3] == "-"  # no capture
    assert "ranked by calls" in cap.stdout
    assert [srcdoc(o.data.get("text/html")) for o in cap.outputs] == ["<div>flame</div>"]  # and no error
    assert cap.stderr == ""
    assert os.listdir(tmp) == [] and os.listdir(".") == []


def test_rprofile_shows_the_flame_graph_when_retracer_has_one(ip, monkeypatch):
    seen = []

    def flamegraph_html(path, embed=False, keep=None):
        assert embed and keep is not None  # the notebook's variant, the cell's threads only
        seen.append(st_calls(path, "fib"))
        return "<div class='flame'>fib</div>"

    monkeypatch.setattr(retracer.render, "flamegraph_html", flamegraph_html)
    cap, _ = run(ip, "rprofile", "", "fib(6)\n")
    assert seen == [25]  # it was given the cell's trace
    assert [srcdoc(o.data.get("text/html")) for o in cap.outputs] == ["<div class='flame'>fib</div>"]
    assert row(cap.stdout, "fib")[7] == "25/1"


def test_rprofile_survives_a_broken_flame_graph(ip, monkeypatch):
    def broken(path, **kw):
        raise RuntimeError("cannot draw")

    monkeypatch.setattr(retracer.render, "flamegraph_html", broken)
    cap, _ = run(ip, "rprofile", "", "fib(6)\n")
    assert row(cap.stdout, "fib")[7] == "25/1"
    assert cap.stderr.strip() == "retracer: no flame graph: RuntimeError: cannot draw"


def test_rprofile_keeps_the_trace_with_o(ip, tmp_path):
    out = str(tmp_path / "kept.trace")
    cap, _ = run(ip, "rprofile", f"-o {out}", "fib(7)\n")
    assert st_calls(out, "fib") == 41
    assert f"trace written to {out}" in cap.stdout


# ------------------------------------------------------------- %rtimeit


def test_rtimeit_line_runs_in_the_namespace_as_often_as_said(ip):
    ip.user_ns["calls"] = []
    cap, res = run(ip, "rtimeit", "-n 4 -r 3 -o calls.append(fib(3))")
    assert len(ip.user_ns["calls"]) == 1 + 3 * 4  # warm-up + repeats x loops
    assert res.number == 4 and res.repeat == 3 and not res.autoranged
    first = cap.stdout.splitlines()[0]
    assert first.startswith("min ") and " median " in first and " IQR " in first
    assert "3 repeats of 4 loops" in cap.stdout


def test_rtimeit_cell_setup_on_the_line(ip):
    ip.user_ns["log"] = []
    cap, res = run(ip, "rtimeit", "-n 2 -r 2 -q log.append('setup')", "log.append('stmt')\nfib(2)\n")
    log = ip.user_ns["log"]
    assert log.count("setup") == 1 + 2 and log.count("stmt") == 1 + 2 * 2
    assert cap.stdout == "" and res is None  # -q, no -o


def test_rtimeit_autoranges(ip):
    cap, res = run(ip, "rtimeit", "-r 2 -o -q fib(2)")
    assert res.autoranged and res.number >= 1 and res.number * res.min * 1.0 > 0


@pytest.mark.parametrize("line, needle", [
    ("x = = 1", "SyntaxError in the statement"),
    ("undefined_name_q + 1", "the statement raised NameError"),
    ("-n 0 pass", "-n must be 1 or more"),
    ("-n lots pass", "whole numbers"),
    ("-u weeks pass", "-u must be one of"),
])
def test_rtimeit_errors_are_one_line(ip, line, needle):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError) as info:
        ip.run_line_magic("rtimeit", line)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_rtimeit_error_in_a_cell_shows_one_line(ip):
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        ip.run_cell("%rtimeit undefined_name_r")
    text = (cap.stdout + cap.stderr).strip()
    assert "Traceback" not in text
    assert text.splitlines() == [
        "UsageError: retracer: the statement raised NameError: name 'undefined_name_r' is not defined "
        "(line 1: 'undefined_name_r')"]


# ------------------------------------------------------------- Tracer(extra_scope=...)


def test_extra_scope_puts_code_with_that_file_name_prefix_in_scope(tmp_path):
    src = "def cellfunc(x):\n    return x + 1\nfor i in range(3):\n    cellfunc(i)\n"
    for extra, in_scope in ((("<mycell-",), True), ((), False)):
        out = str(tmp_path / f"x{in_scope}.trace")
        code = compile(src, "<mycell-1>", "exec")
        with Tracer(output=out, extra_scope=extra, scope=str(tmp_path), handle_signals=False):
            exec(code, {})
        st, fn = stats_by_name(out)["cellfunc"]
        assert st.calls == 3
        assert bool(fn.flags & FLAG_IN_SCOPE) is in_scope
        with TraceReader(out) as r:
            assert r.meta["options"]["extra_scope"] == list(extra)
            n_captured = sum(1 for _ in r.iter_captured())
        assert n_captured == (3 if in_scope else 0)  # calls in scope are captured


def test_rprofile_shows_the_real_flame_graph(ip):
    """With retracer's own flame graph: one self-contained HTML output that
    names the cell's function."""
    cap, _ = run(ip, "rprofile", "", "fib(6)\n")
    (out,) = cap.outputs
    html = srcdoc(out.data["text/html"])
    assert "fib" in html and "<script" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    assert "<h1" not in html and 'class="embed"' in html  # no page title in a cell's output


THREAD_CELL = """
import threading
def spin(n):
    return sum(range(n))
ev = threading.Event()
waiter = threading.Thread(target=ev.wait, name="kernel-like-waiter")
waiter.start()
fib(12)
ev.set()
waiter.join()
"""


def test_rprofile_flame_graph_has_only_the_cells_threads(ip):
    """A thread that ran none of the cell's code (as ipykernel's own) is not drawn;
    with no filter (retracer profile --format flamegraph) every thread is."""
    import json
    import re
    from retracer.render.flamegraph import flamegraph_html
    cap, _ = run(ip, "rprofile", "-o cell.trace", THREAD_CELL)
    page = srcdoc(cap.outputs[0].data["text/html"])
    data = json.loads(re.search(r'id="rtf-data">(.*?)</script>', page, re.S).group(1))
    names = {f[0] for f in data["functions"]}
    assert "fib" in names and "Thread._bootstrap" not in names
    everything = json.loads(re.search(r'id="rtf-data">(.*?)</script>', flamegraph_html("cell.trace"), re.S).group(1))
    # the waiter thread's own frames: Thread._bootstrap (3.11+); on 3.9/3.10 the profile hook
    # starts inside the new thread, whose first frames seen are the calls it waits in
    only_waiter = {f[0] for f in everything["functions"]} - names
    assert only_waiter & {"Thread._bootstrap", "Event.wait"}, only_waiter
    assert data["total"] < everything["total"]


def test_rprofile_table_is_html_in_a_notebook(ip, monkeypatch):
    """In a kernel the table is an HTML table (and text for other front ends)."""
    from retracer.magics import RetracerMagics
    monkeypatch.setattr(RetracerMagics, "_html_front_end", lambda self: True)
    monkeypatch.setattr(retracer.render, "flamegraph_html", lambda path, **kw: "<div>flame</div>")
    cap, _ = run(ip, "rprofile", "", "fib(6)\n")
    table, flame = cap.outputs
    html = table.data["text/html"]
    assert html.startswith('<div class="retracer-table">') and "<table>" in html and "<b>fib</b>" in html
    assert "<h1" not in html and "<style" not in html
    assert row(table.data["text/plain"], "fib")[7] == "25/1"
    assert "saving" not in cap.stdout  # not printed as well
