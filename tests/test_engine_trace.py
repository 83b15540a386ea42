"""What the engine records, checked through `retracer trace` on real programs:
call counts equal to cProfile's, threads, asyncio, generators, exceptions,
recursion, the call stream and its filters, the pstats export."""
from __future__ import annotations

import os
import pstats
import textwrap
from collections import Counter

import pytest

from retracer import MECHANISM
from streamdecode import ENTER, ENTER_CONT, EXIT, EXIT_EXC, RESUME, SUSPEND, TIME, iter_events
from retracer.tracefile import FLAG_GENERATOR, TraceReader

from helpers import WORKLOAD_ARGS, retracer, run_python, trace

C_CALLS_RECORDED = MECHANISM != "pep523"


def cprofile_counts(tmp_path, args, cwd=None):
    prof = str(tmp_path / "c.prof")
    run_python(["-m", "cProfile", "-o", prof, *args], cwd=cwd, check=True)
    st = pstats.Stats(prof).stats
    return {k: v[1] for k, v in st.items()}


def our_counts(path):
    with TraceReader(path) as r:
        fns = r.functions
        out = Counter()
        for s in r.func_stats():
            f = fns[s.fid]
            out[(f.filename, f.firstlineno, f.name)] += s.calls
        return out


def by_name(path, filename=None):
    with TraceReader(path) as r:
        fns = r.functions
        out = Counter()
        for s in r.func_stats():
            f = fns[s.fid]
            if filename is None or f.filename == filename:
                out[f.qualname] += s.calls
        return out


def write(tmp_path, name, src):
    p = tmp_path / name
    p.write_text(textwrap.dedent(src))
    return str(p)


# ------------------------------------------------------------------ counts


def test_fib_call_count_is_exact(tmp_path, workloads):
    script = str(workloads / "calls_fib.py")
    out = str(tmp_path / "out.trace")
    p = trace(out, script, "25", cwd=tmp_path)
    assert p.stdout == "fib(25) = 75025\n"
    counts = by_name(out, script)
    assert counts["fib"] == 242785
    assert counts["main"] == 1


@pytest.mark.parametrize("workload", ["calls_fib.py", "oop_sim.py", "exceptions_deep.py",
                                      "json_roundtrip.py", "threads_work.py", "text_pipeline.py"])
def test_python_call_counts_equal_cprofile(tmp_path, workloads, workload):
    script = str(workloads / workload)
    args = [script, *WORKLOAD_ARGS[workload]]
    out = str(tmp_path / "out.trace")
    trace(out, *args, cwd=tmp_path)
    ours = our_counts(out)
    theirs = cprofile_counts(tmp_path, args)
    gens = set()
    with TraceReader(out) as r:
        for f in r.functions.values():
            if f.flags & FLAG_GENERATOR:
                gens.add((f.filename, f.firstlineno, f.name))
    compared = 0
    for key, n in theirs.items():
        if key[0] != script or key in gens:
            continue  # the workload's own functions; generators differ by design
        assert ours[key] == n, f"{key}: retracer {ours[key]} != cProfile {n}"
        compared += 1
    assert compared >= 2


def test_generator_is_one_call_however_often_resumed(tmp_path):
    script = write(tmp_path, "gen.py", """
        def count(n):
            for i in range(n):
                yield i

        def closed_early():
            it = count(100)
            for x in it:
                if x == 5:
                    break
            it.close()

        def main():
            total = 0
            for _ in range(3):
                total += sum(count(10))
            closed_early()
            print(total)

        main()
    """)
    out = str(tmp_path / "out.trace")
    p = trace(out, script, cwd=tmp_path)
    assert p.stdout == "135\n"
    counts = by_name(out, script)
    assert counts["count"] == 4  # three full generators and one closed early
    assert counts["closed_early"] == 1
    # in the stream: each generator is ENTER, (SUSPEND, RESUME)*, EXIT
    with TraceReader(out) as r:
        fid = next(f.fid for f in r.functions.values() if f.name == "count")
        evs = list(iter_events(r, 0))
    enters = [e for e in evs if e[0] == ENTER and e[1] == fid]
    assert len(enters) == 4
    assert sum(1 for e in evs if e[0] == SUSPEND) >= 30
    assert sum(1 for e in evs if e[0] == RESUME) >= 30


def test_generator_time_is_sum_of_active_slices(tmp_path):
    script = write(tmp_path, "slices.py", """
        import time

        def slow_gen():
            for i in range(5):
                t = time.perf_counter()
                while time.perf_counter() - t < 0.002:
                    pass
                yield i

        def main():
            g = slow_gen()
            for x in g:
                t = time.perf_counter()
                while time.perf_counter() - t < 0.01:  # consumer time, not the generator's
                    pass

        main()
    """)
    out = str(tmp_path / "out.trace")
    trace(out, script, cwd=tmp_path)
    with TraceReader(out) as r:
        fid = next(f.fid for f in r.functions.values() if f.name == "slow_gen")
        st = next(s for s in r.func_stats() if s.fid == fid)
        main_fid = next(f.fid for f in r.functions.values() if f.name == "main")
        main = next(s for s in r.func_stats() if s.fid == main_fid)
    assert st.calls == 1
    # 5 slices of >= 2 ms each; the consumer's 50 ms are not counted
    assert 10_000_000 <= st.cum_ns < main.cum_ns / 2


def test_asyncio_coroutines_counted_once(tmp_path, workloads):
    script = str(workloads / "async_jobs.py")
    out = str(tmp_path / "out.trace")
    p = trace(out, script, "200", cwd=tmp_path)
    plain = run_python([script, "200"])
    assert p.stdout == plain.stdout
    counts = by_name(out, script)
    assert counts["fetch"] == 200
    assert counts["worker"] == 4
    assert counts["ticker"] == 1
    assert counts["run"] == 1


def test_threads_have_their_own_stacks(tmp_path, workloads):
    script = str(workloads / "threads_work.py")
    out = str(tmp_path / "out.trace")
    trace(out, script, "400", cwd=tmp_path)
    counts = by_name(out, script)
    assert counts["task"] == 400 and counts["digest"] == 400 and counts["record"] == 400
    with TraceReader(out) as r:
        assert len(r.threads) >= 2
        names = {t.name for t in r.threads}
        assert "MainThread" in names
        assert any(n.startswith("ThreadPoolExecutor") for n in names), names
        task_fid = next(f.fid for f in r.functions.values() if f.name == "task" and f.filename == script)
        per_thread = {}
        for t in r.threads:
            evs = list(iter_events(r, t.thread_idx))
            assert_balanced(evs)
            per_thread[t.thread_idx] = sum(1 for e in evs if e[0] == ENTER and e[1] == task_fid)
        # tasks ran in worker threads, not in the main thread
        main_idx = next(t.thread_idx for t in r.threads if t.name == "MainThread")
        assert per_thread[main_idx] == 0
        assert sum(per_thread.values()) == 400


def test_exceptions_close_calls(tmp_path, workloads):
    script = str(workloads / "exceptions_deep.py")
    out = str(tmp_path / "out.trace")
    trace(out, script, "100", cwd=tmp_path)
    with TraceReader(out) as r:
        fid = next(f.fid for f in r.functions.values() if f.name == "check")
        evs = list(iter_events(r, 0))
    assert_balanced(evs)
    # every raise of Invalid unwinds through check frames: EXIT_EXC events
    assert sum(1 for e in evs if e[0] == EXIT_EXC) > 100


def test_recursion_near_the_limit(tmp_path):
    script = write(tmp_path, "deep.py", """
        import sys

        def down(n):
            return 0 if n == 0 else 1 + down(n - 1)

        depth = sys.getrecursionlimit() - 60
        print(down(depth) == depth, depth)
    """)
    out = str(tmp_path / "out.trace")
    p = trace(out, script, cwd=tmp_path)
    ok, depth = p.stdout.split()
    assert ok == "True" and int(depth) >= 900
    counts = by_name(out, script)
    with TraceReader(out) as r:
        st = {r.functions[s.fid].name: s for s in r.func_stats()}
    assert counts["down"] == int(depth) + 1
    assert st["down"].prim_calls == 1
    assert st["down"].cum_ns <= st["<module>"].cum_ns


def test_recursion_error_is_like_plain_python(tmp_path):
    script = write(tmp_path, "boom.py", """
        def down(n):
            return down(n + 1)

        try:
            down(0)
        except RecursionError:
            print("caught")
    """)
    out = str(tmp_path / "out.trace")
    p = trace(out, script, cwd=tmp_path)
    assert p.stdout == "caught\n"
    with TraceReader(out) as r:
        evs = list(iter_events(r, 0))
    assert_balanced(evs)


# ------------------------------------------------------------- the stream


def assert_balanced(evs):
    """ENTER/EXIT nest properly; generators suspend and resume; nothing left open."""
    depth = 0
    suspended = 0
    for tag, x, t in evs:
        if tag in (ENTER, ENTER_CONT):
            depth += 1
        elif tag in (EXIT, EXIT_EXC):
            depth -= 1
        elif tag == SUSPEND:
            depth -= 1
            suspended += 1
        elif tag == RESUME:
            depth += 1
            suspended -= 1
        assert depth >= 0
    assert depth == 0
    times = [t for _, _, t in evs]
    assert times == sorted(times)


def test_stream_matches_profile(tmp_path, workloads):
    script = str(workloads / "oop_sim.py")
    out = str(tmp_path / "out.trace")
    trace(out, script, "20", "10", cwd=tmp_path)
    with TraceReader(out) as r:
        evs = list(iter_events(r, 0))
        assert evs[0][0] == TIME
        assert_balanced(evs)
        enters = Counter(x for tag, x, _ in evs if tag == ENTER)
        calls = {s.fid: s.calls for s in r.func_stats()}
        step = next(f.fid for f in r.functions.values() if f.qualname == "Particle.step")
        assert enters[step] == calls[step] == 200
        assert r.meta["stream_calls"] == sum(1 for e in evs if e[0] in (ENTER, ENTER_CONT))
        assert r.meta["calls_total"] == sum(calls.values())


def test_trace_is_compact(tmp_path, workloads):
    script = str(workloads / "calls_fib.py")
    out = str(tmp_path / "out.trace")
    trace(out, script, "25", cwd=tmp_path)
    with TraceReader(out) as r:
        calls = r.meta["stream_calls"]
        raw = sum(len(c) for c in r.iter_chunks(0))
    assert calls >= 242785
    assert raw / calls < 8, raw / calls  # bytes per recorded call, before compression
    assert os.path.getsize(out) / calls < 8


def _stream_names(path, thread=0):
    with TraceReader(path) as r:
        fns = r.functions
        return Counter(fns[x].qualname for tag, x, _ in iter_events(r, thread) if tag == ENTER)


def _profile_names(path):
    with TraceReader(path) as r:
        return Counter({r.functions[s.fid].qualname: s.calls for s in r.func_stats()})


def _scoped_program(tmp_path):
    pkg = tmp_path / "app"
    pkg.mkdir()
    (pkg / "helpers.py").write_text("import json\n\ndef encode(x):\n    return json.dumps(x)\n")
    return write(pkg, "main.py", """
        import textwrap
        from helpers import encode

        def mine(i):
            return encode({"i": i})

        def wrap():
            return textwrap.dedent("  a\\n  b\\n")

        for i in range(5):
            mine(i)
        wrap()
        print("ok")
    """)


def test_external_calls_are_boundaries(tmp_path):
    script = _scoped_program(tmp_path)
    out = str(tmp_path / "out.trace")
    trace(out, script, cwd=tmp_path)
    names = _stream_names(out)
    assert names["mine"] == 5 and names["encode"] == 5
    assert names["dumps"] == 5          # called from scope: recorded
    assert names["dedent"] == 1
    assert "JSONEncoder.encode" not in names  # inside json: not in the stream
    prof = _profile_names(out)
    assert prof["JSONEncoder.encode"] == 5  # ...but in the profile


def test_no_external_calls(tmp_path):
    script = _scoped_program(tmp_path)
    out = str(tmp_path / "out.trace")
    trace(out, script, cwd=tmp_path, opts=["--no-external-calls"])
    names = _stream_names(out)
    assert names["mine"] == 5 and names["encode"] == 5
    assert "dumps" not in names and "dedent" not in names
    assert _profile_names(out)["dumps"] == 5


def test_no_imports(tmp_path):
    script = _scoped_program(tmp_path)
    out_all = str(tmp_path / "out.trace")
    trace(out_all, script, cwd=tmp_path)
    names_all = _stream_names(out_all)
    assert names_all["<module>"] >= 2  # main.py and helpers.py module bodies
    out = str(tmp_path / "out.trace")
    trace(out, script, cwd=tmp_path, opts=["--no-imports"])
    names = _stream_names(out)
    assert "<module>" not in names
    assert not any(n.startswith("_find_and_load") for n in names)
    assert names["mine"] == 5


def test_only_functions(tmp_path):
    script = _scoped_program(tmp_path)
    out = str(tmp_path / "out.trace")
    trace(out, script, cwd=tmp_path, opts=["--only-functions", "mine"])
    names = _stream_names(out)
    assert names["mine"] == 5 and names["encode"] == 5  # and what it calls
    assert "wrap" not in names and "<module>" not in names
    assert _profile_names(out)["wrap"] == 1


def test_scope_option(tmp_path):
    script = _scoped_program(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    out = str(tmp_path / "out.trace")
    trace(out, script, cwd=tmp_path, opts=["--scope", other, "--no-external-calls"])
    assert "mine" not in _stream_names(out)


@pytest.mark.skipif(not C_CALLS_RECORDED, reason="the PEP 523 hook (3.11) does not see C functions")
def test_c_functions_recorded_and_switchable(tmp_path):
    script = write(tmp_path, "c.py", """
        def f(xs):
            return len(xs) + sum(xs)

        for i in range(7):
            f([1, 2, i])
    """)
    out = str(tmp_path / "out.trace")
    trace(out, script, cwd=tmp_path)
    prof = _profile_names(out)
    assert prof["<built-in method builtins.len>"] == 7
    assert prof["<built-in method builtins.sum>"] == 7
    out2 = str(tmp_path / "out.trace")
    trace(out2, script, cwd=tmp_path, opts=["--no-c-calls"])
    assert "<built-in method builtins.len>" not in _profile_names(out2)


@pytest.mark.skipif(C_CALLS_RECORDED, reason="only the PEP 523 hook misses C functions")
def test_pep523_records_no_c_functions(tmp_path):
    script = write(tmp_path, "c.py", "print(len([1, 2]))\n")
    out = str(tmp_path / "out.trace")
    trace(out, script, cwd=tmp_path)
    assert not any(n.startswith("<built-in") for n in _profile_names(out))


# ------------------------------------------------------------ the profile


def test_pstats_export_opens_in_pstats(tmp_path, workloads):
    script = str(workloads / "calls_fib.py")
    out = str(tmp_path / "out.trace")
    trace(out, script, "20", cwd=tmp_path)
    prof = str(tmp_path / "out.prof")
    p = retracer("profile", out, "--format", "pstats", "-o", prof)
    assert p.returncode == 0, p.stderr
    st = pstats.Stats(prof)
    entry = {k: v for k, v in st.stats.items() if k[2] == "fib"}
    (key, (cc, nc, tt, ct, callers)), = entry.items()
    assert nc == 21891 and cc == 1
    assert ct >= tt > 0
    assert sum(v[0] for v in callers.values()) == nc  # callers' call counts add up
    main_key = next(k for k in callers if k[2] == "main")
    assert callers[main_key][0] == 1
    assert callers[key][0] == nc - 1  # fib -> fib
    # the cumulative time of the whole program is at least fib's
    mod = next(v for k, v in st.stats.items() if k[2] == "<module>" and k[0] == script)
    assert mod[3] >= ct


def test_profile_table(tmp_path, workloads):
    script = str(workloads / "calls_fib.py")
    out = str(tmp_path / "out.trace")
    trace(out, script, "20", cwd=tmp_path)
    # ranked by calls: by time (the default) the first row depends on how busy the
    # machine is (main's print can take longer than fib(20) when the process waits)
    p = retracer("profile", out, "--top", "3", "--sort", "calls")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "own" in lines[1] and "cumulative" in lines[1] and "calls" in lines[1]
    assert "fib" in lines[2] and "21891/1" in lines[2]
    assert len([l for l in lines if "%" in l]) == 3


def test_cumulative_time_under_mutual_recursion(tmp_path):
    script = write(tmp_path, "mutual.py", """
        def even(n):
            return True if n == 0 else odd(n - 1)

        def odd(n):
            return False if n == 0 else even(n - 1)

        for _ in range(50):
            even(300)
    """)
    out = str(tmp_path / "out.trace")
    trace(out, script, cwd=tmp_path)
    with TraceReader(out) as r:
        st = {r.functions[s.fid].name: s for s in r.func_stats()}
    mod = st["<module>"]
    assert st["even"].calls == 50 * 151 and st["even"].prim_calls == 50
    assert st["odd"].calls == 50 * 150 and st["odd"].prim_calls == 0 or st["odd"].prim_calls <= 50
    # cumulative time counted once per outermost call: never more than the program
    assert st["even"].cum_ns <= mod.cum_ns
    assert st["even"].own_ns + st["odd"].own_ns <= mod.cum_ns


def test_threads_already_running_are_traced_where_possible(tmp_path):
    script = write(tmp_path, "running.py", """
        import sys, threading, time
        from retracer import Tracer

        stop = threading.Event()
        started = threading.Event()

        def work(i):
            return i * 2

        def loop():
            i = 0
            started.set()
            while not stop.is_set():
                work(i)
                i += 1
                time.sleep(0.001)

        t = threading.Thread(target=loop, name="early-bird")
        t.start()
        started.wait()
        with Tracer(output=sys.argv[1]):
            time.sleep(0.3)
            work(-1)
        stop.set()
        t.join()
    """)
    out = str(tmp_path / "running.trace")
    p = run_python([script, out])
    assert p.returncode == 0, p.stderr
    with TraceReader(out) as r:
        calls = sum(s.calls for s in r.func_stats() if r.functions[s.fid].name == "work")
        names = {t.name for t in r.threads}
    if MECHANISM == "setprofile":
        assert calls == 1  # documented: threads already running are not traced before 3.11
    else:
        assert calls > 10
        assert "early-bird" in names


def test_scope_from_config_wins_over_the_scripts_directory(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.retracer]\nscope = "."\n')
    app = tmp_path / "app"
    app.mkdir()
    script = write(app, "main.py", "print('hi')\n")
    out = str(tmp_path / "out.trace")
    trace(out, script, cwd=tmp_path)
    with TraceReader(out) as r:
        assert r.meta["scope"] == str(tmp_path)
    out2 = str(tmp_path / "out.trace")
    trace(out2, script, cwd=tmp_path, opts=["--scope", app])
    with TraceReader(out2) as r:
        assert r.meta["scope"] == str(app)


def test_runner_own_c_calls_are_not_recorded(tmp_path):
    """The program's <module> is the first call of the stream: the C calls the
    runner makes to start it (exec, sys._getframe) are retracer's, not the
    program's (the profile hook of 3.9/3.10 reports them)."""
    prog = write(tmp_path, "p.py", """
        def f():
            return len([1])
        if __name__ == "__main__":
            f()
        """)
    out = str(tmp_path / "out.trace")
    trace(out, prog, cwd=tmp_path)
    with TraceReader(out) as r:
        fns = r.functions
        first = next(x for tag, x, _ in iter_events(r, 0) if tag == ENTER)
        names = {fns[s.fid].qualname for s in r.func_stats()}
    assert fns[first].qualname == "<module>", fns[first]
    assert "exec" not in names and "_getframe" not in names, names


def test_deep_recursion_traced_as_deep_as_untraced(tmp_path):
    """The frame-evaluation hook runs each Python frame in a C call of its own, which
    3.12+ count against the C recursion limit (3.12 stops at ~750): a traced program
    still recurses as deep as it would untraced, to just below the default recursion
    limit (1000), also with the limit raised and in a thread."""
    script = write(tmp_path, "deep.py", """
        import sys, threading

        def down(n):
            return 0 if n == 0 else 1 + down(n - 1)

        def gen_down(n):
            if n:
                yield from gen_down(n - 1)
            yield n

        print(down(950), sum(gen_down(300)))
        sys.setrecursionlimit(4000)
        print(down(3500))
        out = []
        t = threading.Thread(target=lambda: out.append(down(900)))
        t.start(); t.join()
        print(out)
    """)
    out = str(tmp_path / "out.trace")
    cp = trace(out, script, cwd=tmp_path)
    assert cp.stdout.split() == ["950", "45150", "3500", "[900]"], cp.stderr
    assert _profile_names(out)["down"] == 951 + 3501 + 901


@pytest.mark.parametrize("opts", [[], ["--no-c-calls"]], ids=["c-calls", "no-c-calls"])
def test_every_init_of_a_class_call_is_recorded(tmp_path, opts):
    """3.13 specialises a class call site that sys.monitoring no longer instruments and
    then runs __init__ past the frame-evaluation hook: every call must still count."""
    script = write(tmp_path, "cls.py", """
        class P:
            def __init__(self, x):
                self.x = x

        def make(n):
            return [P(i) for i in range(n)]

        make(100)
    """)
    out = str(tmp_path / "out.trace")
    trace(out, script, cwd=tmp_path, opts=opts)
    assert _profile_names(out)["P.__init__"] == 100


def test_the_call_stream_decodes_to_every_event(tmp_path):
    """The spool writer (csrc/rt_spool.c) stores each finished chunk, compressed in
    its thread: on a generator-heavy run (a RESUME and a SUSPEND per item) every
    chunk decodes to the events it says it holds, with the whole profile intact."""
    import sqlite3

    from helpers import trace as trace_cli
    from retracer.tracefile import TraceReader
    from retracer import _engine

    prog = tmp_path / "gens.py"
    prog.write_text(
        "def numbers(n):\n"
        "    for i in range(n):\n"
        "        yield i\n"
        "def evens(it):\n"
        "    for x in it:\n"
        "        if x % 2 == 0:\n"
        "            yield x\n"
        "print(sum(evens(numbers(400000))))\n")
    out = tmp_path / "g.trace"
    trace_cli(out, str(prog), cwd=tmp_path, opts=["--no-capture"])
    conn = sqlite3.connect(str(out))
    rows = conn.execute("SELECT codec, length(data), raw_size, n_events FROM chunks").fetchall()
    conn.close()
    assert rows and {r[0] for r in rows} <= {"raw", "zlib"}, rows
    assert all(r[1] == r[2] for r in rows if r[0] == "raw"), rows
    assert any(r[0] == "zlib" and r[1] < r[2] / 1.5 for r in rows), rows  # the stream compresses
    reader = TraceReader(str(out))
    events = 0
    for t in reader.threads:
        for chunk in reader.iter_chunks(t.thread_idx):
            events += len(list(_engine.decode(chunk)))
    assert events == sum(r[3] for r in rows)
    calls = {reader.functions[s.fid].name: s.calls for s in reader.func_stats()}
    assert calls.get("numbers") == 1 and calls.get("evens") == 1, calls


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads the threads' signal masks in /proc")
def test_tracing_starts_no_thread_that_takes_signals(tmp_path):
    """A thread of retracer's own blocks every signal, so a process-directed SIGTERM
    always reaches a thread Python runs its handlers in (delivered to the spool
    writer's thread, it left a pool worker blocked in a semaphore wait for ever).
    The writer's thread is the only one tracing starts."""
    from helpers import trace as trace_cli

    prog = tmp_path / "masks.py"
    prog.write_text(
        "import os, threading\n"
        "me = threading.get_native_id()\n"
        "for t in sorted(os.listdir('/proc/self/task')):\n"
        "    status = open(f'/proc/self/task/{t}/status').read()\n"
        "    blk = [ln.split()[1] for ln in status.splitlines() if ln.startswith('SigBlk:')][0]\n"
        "    print('main' if int(t) == me else 'other', int(blk, 16) & (1 << 14) != 0)\n")  # bit 14: SIGTERM
    cp = trace_cli(tmp_path / "m.trace", str(prog), cwd=tmp_path)
    lines = cp.stdout.split("\n")
    assert "main False" in lines, cp.stdout
    others = [ln for ln in lines if ln.startswith("other")]
    assert others == ["other True"], cp.stdout  # the spool writer's thread


FORKS = """
    import os, sys, warnings

    def threads():
        with open("/proc/self/status") as f:
            return [int(ln.split()[1]) for ln in f if ln.startswith("Threads:")][0]

    def work(n):
        return sum(i * i for i in range(n))

    warnings.simplefilter("always")  # (as "error", CPython would swallow the fork warning)
    print("before", threads())
    for i in range(3):
        work(20000)
        pid = os.fork()
        if pid == 0:
            work(1000)
            os._exit(0)
        os.waitpid(pid, 0)
        print("after", threads())
    print(work(30000))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts the process's threads in /proc")
@pytest.mark.parametrize("opts", [[], ["--no-follow"]], ids=["follow", "no-follow"])
def test_the_spool_writers_thread_is_stopped_across_a_fork(tmp_path, opts):
    """The program forks as the single-threaded process it is without retracer: the
    writer's thread is stopped before each os.fork() and started again in the parent
    with the next chunk (3.13 counts the threads after the parent's fork handlers).
    On 3.12+ CPython would otherwise warn "This process is multi-threaded, use of
    fork() may lead to deadlocks". Every chunk, before and after the forks, is in the
    trace."""
    from helpers import trace as trace_cli

    prog = tmp_path / "forks.py"
    prog.write_text(textwrap.dedent(FORKS))
    cp = trace_cli(tmp_path / "f.trace", str(prog), cwd=tmp_path, opts=["--no-capture"] + opts)
    want = sum(i * i for i in range(30000))
    # the writer's thread runs before the forks; after each, it starts again with the next
    # chunk the program fills (csrc/tests/test_spool.c checks that it does)
    lines = cp.stdout.split("\n")
    assert lines[0] == "before 2" and lines[4:] == [f"{want}", ""], cp.stdout + cp.stderr
    assert all(ln in ("after 1", "after 2") for ln in lines[1:4]), cp.stdout
    assert "multi-threaded" not in cp.stderr and "Warning" not in cp.stderr, cp.stderr
    with TraceReader(str(tmp_path / "f.trace")) as r:
        procs = {p.pid for p in r.processes}
        calls = {}
        for st in r.func_stats([r.processes[0].proc_idx]):
            name = r.functions[st.fid].name
            calls[name] = calls.get(name, 0) + st.calls
        assert calls.get("work") == 4 and calls.get("threads") == 4, calls
        assert len(procs) == (4 if not opts else 1), procs
