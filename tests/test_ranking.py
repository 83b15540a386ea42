"""`retracer profile`: the ranking by possible saving (retracer.ranking).

Exact numbers on hand-made traces (the formula), then end to end through the CLI
on real programs: call counts, hidden runner/import frames, the replayable marker,
--sort/--top/--json/--all and one-line errors."""
from __future__ import annotations

import json
import os
import textwrap

import pytest

from retracer import MECHANISM
from retracer.analysis import ranking
from retracer.tracefile import TraceReader, TraceWriter

from helpers import one_line_error, retracer, trace

C_CALLS_RECORDED = MECHANISM != "pep523"


# ------------------------------------------------------------- hand-made traces

SCOPE = "/proj"
SITE = "/venv/lib/python3.11/site-packages"


def fn(fid, name, module, filename, flags=0, kind="py", line=1):
    return (fid, kind, name.rsplit(".", 1)[-1], name, module, filename, line, flags)


def make_trace(path, functions, stats, edges, captured=()):
    """stats: fid -> (calls, prim_calls, own, cum); edges: (caller, callee, calls, cum)."""
    with TraceWriter(str(path)) as w:
        for k, v in {"cwd": SCOPE, "scope": SCOPE, "hook": "test", "duration_ns": 1000,
                     "calls_total": sum(s[0] for s in stats.values())}.items():
            w.set_meta(k, v)
        w.add_functions(functions)
        w.add_threads([(0, 1, 1, "MainThread", 0)])
        w.add_func_stats([(fid, *s) for fid, s in stats.items()])
        w.add_edge_stats([(a, b, n, n, 0, c) for a, b, n, c in edges])
        w.add_captured([(i, fid, 0, i, 0, 1, status, None, None, None, None, "{}")
                        for i, (fid, status) in enumerate(captured)])
    return str(path)


def ranked(path, **kw):
    with TraceReader(path) as r:
        return ranking.rank(r, **kw)


def by_name(rk):
    return {r.name: r for r in rk.functions}


@pytest.fixture
def sample(tmp_path):
    """pytest -> test_f -> f; f calls sorted (C) which calls back keyf, a stdlib
    decoder which calls back g, and the import machinery; plus a retracer frame."""
    functions = [
        fn(0, "pytest_pyfunc_call", "_pytest.python", f"{SITE}/_pytest/python.py"),
        fn(1, "test_f", "tests.test_x", f"{SCOPE}/tests/test_x.py", flags=1),
        fn(2, "f", "app", f"{SCOPE}/app.py", flags=1, line=10),
        fn(3, "<built-in method builtins.sorted>", "", "~", kind="c", line=0),
        fn(4, "keyf", "app", f"{SCOPE}/app.py", flags=1, line=20),
        fn(5, "JSONDecoder.decode", "json.decoder", "/usr/lib/python3.11/json/decoder.py"),
        fn(6, "g", "app", f"{SCOPE}/app.py", flags=1, line=30),
        fn(7, "_find_and_load", "", "<frozen importlib._bootstrap>", flags=2),
        fn(8, "run_program", "retracer.runner", "/somewhere/retracer/runner.py"),
    ]
    stats = {0: (1, 1, 10, 1000), 1: (1, 1, 90, 990), 2: (2, 2, 200, 900), 3: (2, 2, 300, 400),
             4: (100, 100, 100, 100), 5: (2, 2, 150, 200), 6: (2, 2, 50, 50), 7: (1, 1, 100, 100),
             8: (1, 1, 5, 5)}
    edges = [(-1, 0, 1, 1000), (0, 1, 1, 990), (1, 2, 2, 900), (2, 3, 2, 400), (3, 4, 100, 100),
             (2, 5, 2, 200), (5, 6, 2, 50), (2, 7, 1, 100), (-1, 8, 1, 5)]
    captured = [(2, "ok"), (2, "ok"), (4, "unpicklable"), (6, "ok"), (6, "unstable")]
    return make_trace(tmp_path / "s.trace", functions, stats, edges, captured)


def test_saving_is_own_time_plus_the_time_of_code_outside_yours(sample):
    rk = ranked(sample)
    rows = by_name(rk)
    assert list(rows) == ["f", "keyf", "test_f", "g"]  # by saving
    f = rows["f"]
    # 200 own + sorted 400*(1 - 100/400) + decoder 200*(1 - 50/200) + import 100
    assert f.own_ns == 200 and f.callees_ns == pytest.approx(550) and f.saving_ns == pytest.approx(750)
    assert f.calls == 2 and f.cum_ns == 900
    assert rows["test_f"].saving_ns == 90  # its only callee is your code, ranked on its own
    assert rows["keyf"].saving_ns == 100 and rows["g"].saving_ns == 50
    # the savings of your functions do not overlap: they add up to test_f's cumulative time
    assert sum(r.saving_ns for r in rk.functions) == pytest.approx(990)
    assert rk.total_ns == 1005
    assert rk.hidden == {"test-runner": 1, "import": 1, "retracer": 1, "outside-your-code": 2}
    assert not rk.scope_fallback


def test_replayable_marks_functions_with_ok_captured_calls(sample):
    rows = by_name(ranked(sample))
    assert rows["f"].replayable and rows["f"].captured_ok == 2
    assert not rows["keyf"].replayable and rows["keyf"].captured_total == 1  # unpicklable
    assert rows["g"].captured_ok == 1 and rows["g"].captured_total == 2  # one unstable
    assert not rows["test_f"].replayable and rows["test_f"].captured_total == 0


def test_all_lists_code_outside_yours_but_never_runner_import_or_retracer(sample):
    rows = by_name(ranked(sample, include_all=True))
    assert set(rows) == {"f", "keyf", "test_f", "g", "<built-in method builtins.sorted>",
                         "JSONDecoder.decode"}
    assert rows["<built-in method builtins.sorted>"].saving_ns == 300  # its callee keyf is yours
    assert not rows["JSONDecoder.decode"].in_scope and rows["f"].in_scope


@pytest.mark.parametrize("sort, order", [
    ("saving", ["f", "keyf", "test_f", "g"]),
    ("own", ["f", "keyf", "test_f", "g"]),
    ("cumulative", ["test_f", "f", "keyf", "g"]),
    ("cum", ["test_f", "f", "keyf", "g"]),
    ("calls", ["keyf", "f", "g", "test_f"]),
    ("per-call", ["f", "test_f", "g", "keyf"]),  # 375, 90, 25, 1 per call
    ("name", ["f", "g", "keyf", "test_f"]),
])
def test_sort_keys(sample, sort, order):
    assert [r.name for r in ranked(sample, sort=sort).functions] == order


def test_recursion_through_code_outside_yours_is_counted_once(tmp_path):
    # f -> A -> B -> A (recursion through two library functions) and B -> m (yours)
    functions = [fn(0, "f", "app", f"{SCOPE}/app.py", flags=1),
                 fn(1, "A", "lib", f"{SITE}/lib/a.py"), fn(2, "B", "lib", f"{SITE}/lib/b.py"),
                 fn(3, "m", "app", f"{SCOPE}/app.py", flags=1, line=5)]
    stats = {0: (1, 1, 10, 1010), 1: (5, 1, 500, 1000), 2: (5, 1, 400, 1000), 3: (5, 5, 100, 100)}
    edges = [(-1, 0, 1, 1010), (0, 1, 1, 1000), (1, 2, 5, 1000), (2, 1, 4, 900), (2, 3, 5, 100)]
    rows = by_name(ranked(make_trace(tmp_path / "r.trace", functions, stats, edges)))
    assert rows["f"].saving_ns == pytest.approx(10 + 900)  # all of A's time but m's
    assert rows["m"].saving_ns == 100


def test_no_function_in_scope_ranks_every_python_function(tmp_path):
    functions = [fn(0, "main", "tool", "/elsewhere/tool.py"), fn(1, "len", "", "~", kind="c"),
                 fn(2, "helper", "tool", "/elsewhere/tool.py", line=9)]
    stats = {0: (1, 1, 50, 100), 1: (10, 10, 20, 20), 2: (3, 3, 30, 30)}
    edges = [(-1, 0, 1, 100), (0, 1, 10, 20), (0, 2, 3, 30)]
    rk = ranked(make_trace(tmp_path / "n.trace", functions, stats, edges))
    assert rk.scope_fallback
    rows = by_name(rk)
    assert set(rows) == {"main", "helper"}
    assert rows["main"].saving_ns == 70  # len's time belongs to main
    assert rk.hidden == {"outside-your-code": 1}


def test_json_structure_is_documented_and_stable(sample):
    p = retracer("profile", sample, "--json", "--top", "2")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["retracer_ranking"] == 1 and data["sort"] == "saving" and data["ranked"] == 4
    assert data["total_ns"] == 1005 and data["hidden"]["test-runner"] == 1
    assert [r["name"] for r in data["functions"]] == ["f", "keyf"]
    f = data["functions"][0]
    assert set(f) == {"rank", "name", "module", "file", "line", "kind", "your_code", "saving_ns", "share",
                      "own_ns", "callees_ns", "cumulative_ns", "calls", "primitive_calls",
                      "saving_per_call_ns", "own_per_call_ns", "captured_calls", "replayable_calls",
                      "replayable"}
    assert (f["rank"], f["saving_ns"], f["own_ns"], f["callees_ns"], f["calls"]) == (1, 750, 200, 550, 2)
    assert f["share"] == pytest.approx(750 / 1005) and f["saving_per_call_ns"] == 375
    assert f["file"] == f"{SCOPE}/app.py" and f["line"] == 10 and f["replayable"] is True
    # the README documents every key
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    for key in list(data) + list(f):
        assert f"`{key}`" in readme, key


def test_table(sample):
    p = retracer("profile", sample, "--top", "3")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "ranked by saving" in lines[0]
    assert lines[1].split()[:3] == ["saving", "share", "own"] and "replay" in lines[1]
    f = lines[2].split()
    assert f[:4] == ["750", "ns", "74.6%", "200"] and f[-2:] == ["f", "(app.py:10)"]
    assert f[-3] == "2"  # replayable captured calls
    assert lines[3].split()[-3:] == ["-", "keyf", "(app.py:20)"]  # captured, but not replayable
    assert "... 1 more functions" in p.stdout
    assert "not ranked: 1 test-runner, 1 import-machinery, 1 retracer, 2 outside your code" in p.stdout


def test_bad_sort_and_conflicting_options_are_one_line_errors(sample):
    one_line_error(retracer("profile", sample, "--sort", "fastest"), "--sort", "fastest", "saving")
    one_line_error(retracer("profile", sample, "--json", "--format", "pstats"), "--json")
    one_line_error(retracer("profile", sample, "--top", "0"), "--top")


# ------------------------------------------------------------- real programs


def profile_json(out, *extra):
    p = retracer("profile", out, "--json", "--top", "1000000", *extra)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


PROGRAM = """
    import threading

    def keyf(x):
        return -x

    def work(n):
        return sorted(range(n), key=keyf)

    def takes_lock(lock):
        return 1

    def main():
        for _ in range(20):
            work(50)
        lock = threading.Lock()
        for _ in range(3):
            takes_lock(lock)

    if __name__ == "__main__":
        main()
"""


def test_real_program_counts_savings_and_replayable(tmp_path):
    (tmp_path / "prog.py").write_text(textwrap.dedent(PROGRAM))
    out = str(tmp_path / "out.trace")
    trace(out, "prog.py", cwd=tmp_path)
    data = profile_json(out)
    rows = {r["name"]: r for r in data["functions"]}
    assert {"keyf", "work", "takes_lock", "main", "<module>"} <= set(rows)
    assert all(r["your_code"] for r in rows.values())
    assert (rows["work"]["calls"], rows["keyf"]["calls"], rows["takes_lock"]["calls"]) == (20, 1000, 3)
    assert rows["work"]["replayable"] and rows["work"]["replayable_calls"] == 20
    # --max-function-count 100: the first 75 calls, then only calls with a new input
    # shape (keyf sees 0 and positive ints, both among its first calls)
    assert rows["keyf"]["replayable_calls"] == 75
    assert rows["takes_lock"]["captured_calls"] == 3 and not rows["takes_lock"]["replayable"]
    # sorted (a builtin) is not your code: its time goes to work, without keyf's
    work, keyf = rows["work"], rows["keyf"]
    assert work["saving_ns"] == work["own_ns"] + work["callees_ns"]
    assert abs(work["saving_ns"] + keyf["saving_ns"] - work["cumulative_ns"]) <= 2
    if C_CALLS_RECORDED:
        assert work["callees_ns"] > 0
        assert "<built-in method builtins.sorted>" not in rows
        everything = {r["name"]: r for r in profile_json(out, "--all")["functions"]}
        assert everything["<built-in method builtins.sorted>"]["calls"] == 20
        assert not everything["<built-in method builtins.sorted>"]["your_code"]
    # the table shows the same, with the replay column
    p = retracer("profile", out, "--top", "50")
    line = next(l for l in p.stdout.splitlines() if l.endswith("(prog.py:7)"))
    assert line.split()[-3:] == ["20", "work", "(prog.py:7)"]
    line = next(l for l in p.stdout.splitlines() if l.endswith("(prog.py:10)"))
    assert line.split()[-3:] == ["-", "takes_lock", "(prog.py:10)"]


def test_pytest_session_hides_the_test_runner(tmp_path):
    proj = tmp_path / "proj"
    (proj / "tests").mkdir(parents=True)
    (proj / "app.py").write_text("def double(x):\n    return 2 * x\n")
    (proj / "tests" / "test_app.py").write_text(textwrap.dedent("""
        from app import double

        def test_double():
            for i in range(7):
                assert double(i) == 2 * i
    """))
    out = str(tmp_path / "out.trace")
    trace(out, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=proj, opts=["--no-capture"])
    data = profile_json(out, "--all")
    assert len(data["functions"]) == data["ranked"]
    rows = {r["name"]: r for r in data["functions"]}
    assert rows["double"]["calls"] == 7 and rows["test_double"]["calls"] == 1
    assert data["hidden"]["test-runner"] > 50 and data["hidden"]["import"] > 0
    for r in data["functions"]:
        assert not r["module"].split(".")[0] in ("pytest", "_pytest", "pluggy", "importlib"), r
        assert "/_pytest/" not in r["file"] and "/pluggy/" not in r["file"], r
    mine = profile_json(out)["functions"]
    assert {r["name"] for r in mine} == {"double", "test_double", "<module>"}


def test_replayable_needs_a_function_replay_can_find_again(tmp_path):
    functions = [fn(0, "top", "app", f"{SCOPE}/app.py", flags=1),
                 fn(1, "top.<locals>.inner", "app", f"{SCOPE}/app.py", flags=1, line=3),
                 fn(2, "cellfunc", "", "<ipython-input-1-abcdef>", flags=1)]
    stats = {0: (1, 1, 10, 30), 1: (1, 1, 10, 10), 2: (1, 1, 10, 10)}
    edges = [(-1, 0, 1, 30), (0, 1, 1, 10), (0, 2, 1, 10)]
    rows = by_name(ranked(make_trace(tmp_path / "f.trace", functions, stats, edges,
                                     [(0, "ok"), (1, "ok"), (2, "ok")])))
    assert rows["top"].replayable
    for name in ("top.<locals>.inner", "cellfunc"):
        assert not rows[name].replayable and rows[name].captured_total == 1
