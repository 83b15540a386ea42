"""Capture that tells the truth and whose cost is bounded (issue 10), through the CLI:
pickling stops at the size cap, failures are not repeated, values are stored once,
identity survives, the budgets cut capture and the trace says so, Ctrl-C and
warnings behave as without retracer."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path


from helpers import one_line
from retracer.tracefile import FLAG_IN_SCOPE, TraceReader

TIMEOUT = 300


def run(args, cwd, **kw):
    return subprocess.run([sys.executable, *args], cwd=str(cwd), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, errors="replace", timeout=TIMEOUT, **kw)


def trace(tmp_path: Path, src: str, *opts: str, out: str = "t.trace", ok: bool = True, env=None):
    (tmp_path / "prog.py").write_text(textwrap.dedent(src).lstrip())
    r = run(["-m", "retracer", "trace", "-q", "--no-stability-check", *opts, "-o", out, "prog.py"], tmp_path,
            env=env)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def captured(path: Path, name: str):
    with TraceReader(str(path)) as r:
        fids = {fid for fid, f in r.functions.items() if f.name == name}
        return [c for c in r.iter_captured() if c.fid in fids]


def info(c) -> dict:
    return json.loads(c.info or "{}")


def test_pickling_stops_at_the_size_cap(tmp_path):
    # each element counts its own pickling: far fewer than 100,000 are pickled
    # before the 10,000-byte cap stops the pickler
    trace(tmp_path, """
        import sys
        class Counted:
            n = 0
            def __reduce__(self):
                Counted.n += 1
                return (Counted, ())
        def f(items):
            return len(items)
        if __name__ == "__main__":
            f([Counted() for _ in range(100_000)])
            print(Counted.n, file=sys.stderr)
    """, "--max-value-bytes", "10000")
    (c,) = captured(tmp_path / "t.trace", "f")
    assert c.status == "too_large" and "over 10000 bytes" in info(c)["error"]


def test_a_failing_value_is_not_pickled_again_and_again(tmp_path):
    r = trace(tmp_path, """
        import sys
        class Stubborn:
            tries = 0
            def __reduce__(self):
                Stubborn.tries += 1
                raise TypeError("no")
        def f(x, n):
            # about a millisecond: the per-function cost rule (capture far dearer than the
            # call) must not stop capturing it on a loaded machine
            return n + 0 * sum(range(30_000))
        if __name__ == "__main__":
            s = Stubborn()
            for i in range(50):
                f(s, i)
            print("tries", Stubborn.tries, file=sys.stderr)
    """)
    calls = captured(tmp_path / "t.trace", "f")
    assert len(calls) >= 50 and all(c.status == "unpicklable" for c in calls)
    tries = int(r.stderr.split("tries")[1].split()[0])
    assert tries <= 4, tries  # plain pickle and cloudpickle once each (+ the after-state once)


def test_files_sockets_locks_are_refused_at_once_and_modules_kept_by_reference(tmp_path):
    trace(tmp_path, """
        import json, socket, threading
        def uses_file(f):
            return f.name
        def uses_lock(lock, n):
            return n
        def uses_module(mod, text):
            return mod.loads(text)
        if __name__ == "__main__":
            with open(__file__) as fh:
                uses_file(fh)
            uses_lock(threading.Lock(), 1)
            uses_module(json, "[1, 2]")
    """)
    (f,) = captured(tmp_path / "t.trace", "uses_file")
    assert f.status == "unpicklable" and "TextIOWrapper cannot be kept" in info(f)["error"]
    (lk,) = captured(tmp_path / "t.trace", "uses_lock")
    assert lk.status == "unpicklable" and "lock" in info(lk)["error"].lower()
    (m,) = captured(tmp_path / "t.trace", "uses_module")
    assert m.status == "ok"
    r = run(["-m", "retracer", "replay", "t.trace", "--functions", "uses_module"], tmp_path)
    assert r.returncode == 0 and "1 match" in r.stderr, r.stderr


def test_a_large_string_passed_to_many_calls_is_stored_once(tmp_path):
    trace(tmp_path, """
        def count(text, ch):
            return text.count(ch)
        if __name__ == "__main__":
            big = "abcdefghij" * 30_000   # 300 KB
            for ch in "abcdefghijklmnopqrstuvwxyz" * 4:
                count(big, ch)
    """, "--capture-share", "1")
    path = tmp_path / "t.trace"
    calls = captured(path, "count")  # the first 3/4 of --max-function-count: one shape
    assert len(calls) == 75 and all(c.status == "ok" for c in calls)
    with TraceReader(str(path)) as r:
        sizes = [row[0] for row in r._rows("SELECT size FROM blobs")]
    assert sum(1 for s in sizes if s >= 300_000) == 1, sorted(sizes)[-5:]
    assert path.stat().st_size < 1_000_000  # 75 calls x 2 x 300 KB would be 45 MB
    r = run(["-m", "retracer", "replay", "t.trace"], tmp_path)
    assert r.returncode == 0 and "75 match" in r.stderr, r.stderr


IDENTITY = """
    import enum
    _marker = object()
    class _TokenType(tuple):
        def __getattr__(self, name):
            new = _TokenType(self + (name,))
            setattr(self, name, new)
            return new
    Token = _TokenType()
    Keyword = Token.Keyword
    Name = Token.Name
    Builtin = Name.Builtin
    class Color(enum.Enum):
        RED = 1
        BLUE = 2
    square = lambda v: v * v

    def first(items, default=_marker):
        for x in items:
            return x
        if default is _marker:
            raise ValueError("empty")
        return default

    def is_keyword(ttype):
        return ttype is Keyword

    def is_builtin(ttype):
        return ttype is Name.Builtin

    def warm(c):
        return c is Color.RED

    def apply(fn, v):
        return fn(v)

    if __name__ == "__main__":
        first([3])
        try:
            first([])
        except ValueError:
            pass
        first([], None)
        is_keyword(Keyword)
        is_keyword(Name)
        is_builtin(Name.Builtin)
        warm(Color.RED)
        apply(square, 4)
        apply(len, "abc")
"""


def test_identity_survives_replay(tmp_path):
    trace(tmp_path, IDENTITY)
    # (_TokenType.__getattr__ is left out: replaying it replaces Token.Keyword)
    only = ["--functions", "first,is_keyword,is_builtin,warm,apply"]
    r = run(["-m", "retracer", "replay", "t.trace", *only], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 mismatch, 0 error, 0 skipped" in r.stderr and "9 match" in r.stderr, r.stderr
    for name in ("first", "is_keyword", "is_builtin", "warm", "apply"):
        assert all(c.status == "ok" for c in captured(tmp_path / "t.trace", name)), name
    # and a change is still caught: the sentinel test inverted
    p = tmp_path / "prog.py"
    p.write_text(p.read_text().replace("if default is _marker:", "if default is not _marker:"))
    r = run(["-m", "retracer", "replay", "t.trace", *only], tmp_path)
    assert r.returncode == 1 and "MISMATCH first" in r.stdout, r.stdout


def test_the_time_budget_skips_calls_until_the_run_catches_up(tmp_path):
    # twenty functions called once each with a large dict: none is stopped by the
    # per-function rule (it needs two or three costly calls in a row), so only the
    # time budget can skip them, however fast the machine pickles.
    defs = "".join(f"def keep{k}(d):\n    return len(d)\n" for k in range(20))
    calls = "".join(f"    keep{k}(d)\n" for k in range(20))
    trace(tmp_path, defs + "def late(i):\n    return i\n"
          "def work():\n    return sum(i * i for i in range(3_000_000))\n"
          "if __name__ == '__main__':\n"
          "    d = {i: str(i) * 20 for i in range(100_000)}\n" + calls +
          "    work()\n"
          "    for i in range(5):\n        late(i)\n",
          "--capture-share", "0.01", "--max-value-bytes", "100000000",
          env=dict(os.environ, RETRACER_CAPTURE_GRACE_MS="50"))  # the default (conftest.py sets 1000)
    with TraceReader(str(tmp_path / "t.trace")) as r:
        cap = r.meta["capture"]
    assert cap["cut"] is None, cap
    thr = cap["throttled"]
    assert thr is not None and thr["calls"] >= 1 and "--capture-share" in thr["reason"], cap
    kept = sum(len(captured(tmp_path / "t.trace", f"keep{k}")) for k in range(20))
    assert kept < 20
    # whether late() is captured again depends on how fast this machine pickles the
    # dicts against how long work() runs; that capture resumes once the run has caught
    # up, without spending the functions' budgets, is the policy's C test
    # (csrc/tests/test_capture.c, test_capture_time_budget)
    r = run(["-m", "retracer", "profile", "t.trace"], tmp_path)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("capture:")]
    assert len(lines) == 1 and "not captured, the first after" in lines[0] and "--capture-share" in lines[0], \
        r.stdout


def test_a_bad_grace_in_the_environment_is_one_warning_line(tmp_path):
    r = trace(tmp_path, """
        def f(i):
            return i
        if __name__ == "__main__":
            f(1)
            print("done")
    """, env=dict(os.environ, RETRACER_CAPTURE_GRACE_MS="soon"))
    assert r.stdout == "done\n"
    assert r.stderr == ("retracer: warning: RETRACER_CAPTURE_GRACE_MS='soon' is not a number of milliseconds "
                        "(0 or more); using 50\n"), r.stderr
    assert len(captured(tmp_path / "t.trace", "f")) == 1


def test_the_size_budget_cuts_capture(tmp_path):
    trace(tmp_path, """
        def f(s):
            # work of its own, so that the per-function cost rule never stops it
            # first on a loaded machine (its capture must not cost 10x the call)
            return len(s) + sum(1 for _ in range(20_000))
        if __name__ == "__main__":
            for i in range(100):
                f(str(i) * 5000)
    """, "--max-capture-bytes", "100000", "--capture-share", "1")
    with TraceReader(str(tmp_path / "t.trace")) as r:
        cut = r.meta["capture"]["cut"]
        stored = sum(row[0] for row in r._rows("SELECT size FROM blobs"))
    assert cut["kind"] == "size" and "--max-capture-bytes" in cut["reason"]
    assert stored < 100_000 + 2 * 10 * 5000 * 3  # at most the value that crossed the line more


def test_a_function_whose_capture_costs_far_more_stops_being_captured(tmp_path):
    trace(tmp_path, """
        def tiny(tree, i):
            return i
        def fine(i):
            # a call of about a millisecond: its capture (an int) stays far below 10x that
            # even when a loaded machine stretches it past the rule's 200 us floor
            return sum(range(30_000)) + i * 2
        if __name__ == "__main__":
            tree = {i: [str(i)] * 10 for i in range(50_000)}
            for i in range(40):
                tiny(tree, i)
                fine(i)
    """, "--max-value-bytes", "100000000", "--capture-share", "1")
    path = tmp_path / "t.trace"
    assert len(captured(path, "tiny")) == 3
    assert len(captured(path, "fine")) == 40
    with TraceReader(str(path)) as r:
        fids = {f.name: fid for fid, f in r.functions.items()}
        stats = {s.fid: s for s in r.capture_stats()}
        assert r.meta["capture"]["functions_stopped"] == 1
    st = stats[fids["tiny"]]
    assert st.kept == 3 and "more than 10x the call itself" in st.stopped and st.bytes > 100_000
    assert stats[fids["fine"]].stopped is None


def test_the_per_function_rule_three_costly_calls_in_a_row(tmp_path):
    # the rule itself, on made-up costs (no clock involved)
    from retracer.record import capture as cap_mod

    c = cap_mod.Capturer(str(tmp_path / "c.spool"), max_value_bytes=1 << 20, redact=())
    try:
        def account(fid, cost_us, call_us):
            st = c._stats.setdefault(fid, cap_mod._FnStats())
            p = cap_mod._Pending(fid, st.kept, 0, (), (), 1_000_000)
            p.cost_ns = cost_us * 1000
            c._account(p, 1_000_000 + call_us * 1000)
            return st.stopped

        # 500 us for a 10 us call: costly -- the third in a row stops it
        assert account(1, 500, 10) is None and account(1, 500, 10) is None
        assert "more than 10x the call itself" in account(1, 500, 10)
        # a cheap call in between starts the count again
        assert account(2, 500, 10) is None and account(2, 500, 10) is None
        assert account(2, 50, 10) is None and account(2, 500, 10) is None and account(2, 500, 10) is None
        assert account(2, 500, 10) is not None
        # 30 ms for a 10 us call: still three (a first call pays one-time costs, and a
        # loaded machine can make two cheap captures in a row take milliseconds)
        assert account(3, 30000, 10) is None and account(3, 30000, 10) is None
        assert "30,000 us per call" in account(3, 30000, 10)
        # 3 ms for a 1 ms call: not 10x the call, never stopped
        assert all(account(4, 3000, 1000) is None for _ in range(10))
    finally:
        c.close()


def test_ctrl_c_while_capturing_reaches_the_program(tmp_path):
    (tmp_path / "prog.py").write_text(textwrap.dedent("""
        import os, signal
        class Slow:
            def __reduce__(self):
                os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C arrives while capture pickles this
                x = 0
                for i in range(200_000):
                    x += i
                return (Slow, ())
        def f(v):
            return 1
        if __name__ == "__main__":
            f(Slow())
            for i in range(10**9):   # only Ctrl-C ends this loop
                pass
    """).lstrip())
    r = run(["-m", "retracer", "trace", "-q", "--no-stability-check", "-o", "t.trace", "prog.py"], tmp_path)
    assert r.returncode in (-signal.SIGINT, 130), (r.returncode, r.stderr)
    assert "KeyboardInterrupt" in r.stderr
    assert (tmp_path / "t.trace").is_file()


def test_warnings_raised_while_capturing_do_not_reach_the_program(tmp_path):
    src = """
        import warnings, sys
        warnings.simplefilter("error")            # like a test suite that turns warnings into errors
        class Noisy:
            def __reduce__(self):
                warnings.warn("pickled", DeprecationWarning)
                return (Noisy, ())
        def f(v):
            return 1
        def g():
            warnings.warn("g warns once", UserWarning)
        if __name__ == "__main__":
            f(Noisy())
            warnings.simplefilter("default")
            for _ in range(3):
                g()
            print("done")
    """
    (tmp_path / "plain.py").write_text(textwrap.dedent(src).lstrip())
    plain = run(["plain.py"], tmp_path)
    r = trace(tmp_path, src)
    assert r.stdout == plain.stdout == "done\n"
    assert r.stderr == plain.stderr.replace("plain.py", "prog.py"), (r.stderr, plain.stderr)
    assert captured(tmp_path / "t.trace", "f")[0].status == "ok"


def test_no_such_module_leaves_the_trace_untouched(tmp_path):
    trace(tmp_path, "print('hi')\n")
    before = (tmp_path / "t.trace").read_bytes()
    r = run(["-m", "retracer", "trace", "-q", "-o", "t.trace", "-m", "nosuchmodule_xyz"], tmp_path)
    plain = run(["-m", "nosuchmodule_xyz"], tmp_path)
    assert r.returncode == plain.returncode == 1
    assert "No module named nosuchmodule_xyz" in r.stderr and "No module named" in plain.stderr
    assert (tmp_path / "t.trace").read_bytes() == before


def test_scope_in_site_packages_and_several_scopes(tmp_path):
    lib = tmp_path / "venvlib" / "site-packages"
    (lib / "mylib").mkdir(parents=True)
    (lib / "mylib" / "__init__.py").write_text("def helper(x):\n    return x + 1\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "util.py").write_text("def twice(x):\n    return 2 * x\n")
    (tmp_path / "prog.py").write_text("import mylib, util\nprint(mylib.helper(util.twice(1)))\n")
    env = dict(os.environ, PYTHONPATH=f"{lib}{os.pathsep}{other}")
    r = run(["-m", "retracer", "trace", "-q", "--no-stability-check", "--scope", str(lib / "mylib"),
             "--scope", str(other), "-o", "t.trace", "prog.py"], tmp_path, env=env)
    assert r.returncode == 0 and r.stdout == "3\n", r.stderr
    assert len(captured(tmp_path / "t.trace", "helper")) == 1
    assert len(captured(tmp_path / "t.trace", "twice")) == 1
    with TraceReader(str(tmp_path / "t.trace")) as rd:
        in_scope = {f.name for f in rd.functions.values() if f.flags & FLAG_IN_SCOPE}
    assert {"helper", "twice"} <= in_scope


STREAM_PROG = """
    import threading
    def f(i):
        return i + 1
    def g(n):
        s = 0
        for i in range(n):
            s += f(i)
        return s
    if __name__ == "__main__":
        t = threading.Thread(target=g, args=(150_000,))
        t.start()
        g(150_000)
        t.join()
        print("done")
"""


def test_the_stream_size_cap_ends_the_timeline_not_the_profile(tmp_path):
    import streamdecode

    (tmp_path / "prog.py").write_text(textwrap.dedent(STREAM_PROG).lstrip())
    r = run(["-m", "retracer", "trace", "--no-stability-check", "--max-stream-bytes", "20000", "-o", "t.trace",
             "prog.py"], tmp_path)
    assert r.returncode == 0 and r.stdout == "done\n", r.stderr
    summary = [ln for ln in r.stderr.splitlines() if "calls traced" in ln]
    assert len(summary) == 1 and "which stopped after" in summary[0] and "--max-stream-bytes" in summary[0], \
        r.stderr
    path = tmp_path / "t.trace"
    with TraceReader(str(path)) as rd:
        cut = rd.meta["stream_cut"]
        assert "--max-stream-bytes" in cut["reason"] and cut["bytes"] == 20000 and cut["after_s"] >= 0
        # the profile counts every call to the end
        f = [fid for fid, fn in rd.functions.items() if fn.name == "f"]
        assert [s.calls for s in rd.func_stats() if s.fid in f] == [300_000]
        # the stream holds far fewer, and says how many
        enters = 0
        for t in rd.threads:
            events = list(streamdecode.iter_events(rd, t.thread_idx))
            assert t.n_events == len(events)
            enters += sum(1 for e in events if e[0] in (streamdecode.ENTER, streamdecode.ENTER_CONT))
        assert enters == rd.meta["stream_calls"] < rd.meta["calls_total"] * 0.9  # 3.12: about half
        stored = sum(row[0] for row in rd._rows("SELECT length(data) FROM chunks"))
        # the writer compresses a few chunks behind: the cap is passed by those at most
        assert stored < 20000 + 6 * 256 * 1024
        # a captured call past the stream's end does not point into it
        per_thread = {t.thread_idx: sum(1 for e in streamdecode.iter_events(rd, t.thread_idx)
                                        if e[0] in (streamdecode.ENTER, streamdecode.ENTER_CONT))
                      for t in rd.threads}
        for c in rd.iter_captured(values=False):
            sc = json.loads(c.info).get("stream_call")
            assert sc is None or sc < per_thread[c.thread_idx]
    prof = run(["-m", "retracer", "profile", "t.trace"], tmp_path)
    assert prof.returncode == 0, prof.stderr
    assert "call stream: stopped after" in prof.stdout and "the profile above counts every call" in prof.stdout
    # the readers of the stream take a timeline that ends with calls still open
    for fmt in ("chrome", "speedscope", "folded"):
        ex = run(["-m", "retracer", "profile", "t.trace", "--format", fmt, "-o", f"out.{fmt}"], tmp_path)
        assert ex.returncode == 0 and one_line(ex.stderr).startswith(f"retracer: {fmt} export written"), ex.stderr
        assert "the call stream stopped after" in ex.stderr
    view = run(["-m", "retracer", "view", "t.trace", "--text"], tmp_path)
    assert view.returncode == 0 and "Traceback" not in view.stderr, view.stderr
    assert view.stdout.startswith("(the call stream stopped after "), view.stdout[:200]
    page = run(["-m", "retracer", "view", "t.trace", "-o", "page.html"], tmp_path)
    assert page.returncode == 0, page.stderr
    assert '"stream_cut":{"after_s"' in (tmp_path / "page.html").read_text()
    rep = run(["-m", "retracer", "replay", "t.trace"], tmp_path)
    assert rep.returncode == 0, rep.stdout + rep.stderr


def test_without_a_stream_cap_every_call_is_in_the_stream(tmp_path):
    trace(tmp_path, STREAM_PROG, "--max-stream-bytes", "0")
    with TraceReader(str(tmp_path / "t.trace")) as rd:
        assert rd.meta["stream_cut"] is None
        f = [fid for fid, fn in rd.functions.items() if fn.name == "f"]
        assert [s.calls for s in rd.func_stats() if s.fid in f] == [300_000]
        assert rd.meta["stream_calls"] >= 300_000
