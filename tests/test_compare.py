"""`retracer compare`: worktree-isolated before/after benchmarks of two git revisions.

Every test builds its own small git repository. Timing verdicts are asserted only
where they are robust on a loaded 2-core machine: a change that makes a function
tens of times faster or slower is `faster` / `slower` with an interval excluding
1; identical code and untouched functions are `same` under a wide --min-effect
(noise here can reach 40% per round, and a `same` must not depend on luck).
Rounds are few and short (--round-time 0.01); no wall-clock asserts.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from retracer.analysis import stats
from retracer.compare.changes import find_changes, parse_functions_spec, select_functions
from retracer.compare.git import Repo
from retracer.errors import RetracerError

FAST = ["--rounds", "5", "--max-rounds", "12", "--trace-rounds", "5", "--warmup", "0", "--round-time", "0.01",
        "--timeout", "120"]
SAME = ["--min-effect", "30"]

SLOW_SUM = '''
def total(n):
    s = 0
    for i in range(n):
        s += i * i
    return s
'''
FAST_SUM = '''
def total(n):
    return (n - 1) * n * (2 * n - 1) // 6
'''
STEADY = '''

def steady(n):
    out = []
    for i in range(n):
        out.append(i % 7)
    return len(out)
'''
# steady() runs before any total(): on a loaded machine a process that has already run
# for a while is preempted more often, which would make an unchanged function look
# slower on the side whose changed function is slower (a wall-clock effect, not code)
BENCH = '''
import lib
for _ in range(5):
    lib.steady(3000)
for _ in range(5):
    lib.total(100000)
'''


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                                   GIT_COMMITTER_EMAIL="t@t")).stdout


def write(root, files):
    for name, text in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text).lstrip("\n"))


def commit(root, files, message="change"):
    write(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def tmp(tmp_path, monkeypatch):
    """A private TMPDIR, so that what compare leaves behind can be checked."""
    t = tmp_path / "tmp"
    t.mkdir()
    monkeypatch.setenv("TMPDIR", str(t))
    return t


@pytest.fixture
def repo(tmp_path, tmp):
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q")
    commit(root, {"lib.py": SLOW_SUM + STEADY, "bench.py": BENCH}, "base")
    return root


def compare(root, *args):
    return subprocess.run([sys.executable, "-m", "retracer", "compare", *args], cwd=root, capture_output=True,
                          text=True, timeout=300)


def report(p):
    assert p.returncode == 0, (p.stdout, p.stderr)
    return json.loads(p.stdout)


def no_leftovers(root, tmp):
    """Every worktree compare made is gone, and its temporary directory too."""
    listed = git(root, "worktree", "list", "--porcelain")
    assert listed.count("worktree ") == 1, listed
    assert not [n for n in os.listdir(tmp) if n.startswith("retracer-compare-") and os.path.isdir(tmp / n)]
    assert git(root, "stash", "list") == ""


def fn(rep, name):
    rows = [r for r in rep["functions"] if r["name"] == name]
    assert rows, [r["name"] for r in rep["functions"]]
    return rows[0]


# --------------------------------------------------------------------- end to end


def test_faster_function_and_untouched_function(repo, tmp):
    commit(repo, {"lib.py": FAST_SUM + STEADY}, "fast total")
    out = repo / "report.md"
    # 7 traced rounds, as in test_working_tree_with_uncommitted_change_is_head: a loaded
    # CI run once gave total() "same" with 5 (p above 0.01 for a 1000x change)
    p = compare(repo, "HEAD~1", "HEAD", "--functions", "lib.py::total,steady", "--json", "-o", str(out), *FAST,
                "--trace-rounds", "7", *SAME, "--", "python", "bench.py")
    rep = report(p)
    assert p.stderr == ""  # no progress when stderr is not a terminal
    e = rep["end_to_end"]
    assert e["verdict"] == "faster" and e["speedup"] > 1 and e["ci"][0] > 1 and e["p"] < 0.01, e
    for side in ("base", "head"):
        assert set(e[side]) >= {"min", "median", "mean", "iqr", "rounds"} and e[side]["rounds"] >= 5
    assert rep["rounds"]["traced_per_side"] == 7
    total = fn(rep, "total")
    assert total["verdict"] == "faster" and total["ci"][0] > 1 and total["file"] == "lib.py"
    assert total["base"]["calls"] == total["head"]["calls"] == 5
    assert 0 < total["share"] <= 1
    steady = fn(rep, "steady")
    assert steady["verdict"] == "same" and steady["base"]["calls"] == 5
    assert rep["base"]["label"].startswith("HEAD~1") and not rep["head"]["working_tree"]
    md = out.read_text()
    assert "## End to end" in md and "## Per function" in md and "| total |" in md
    no_leftovers(repo, tmp)


def test_identical_code_is_same(repo, tmp):
    p = compare(repo, "HEAD", "HEAD", *FAST, *SAME, "--max-rounds", "5", "--trace-rounds", "0", "--", "python",
                "bench.py")
    assert p.returncode == 0, p.stderr
    assert "End to end" in p.stdout and "SAME" in p.stdout and "no function changed" in p.stdout
    no_leftovers(repo, tmp)


def test_regression_and_unchanged_function_that_got_slower(repo, tmp):
    # HEAD: total() 40x slower; driver() (changed) now gives steady() (unchanged) 20x the work
    base = {"lib.py": FAST_SUM + STEADY + "\n\ndef driver():\n    return steady(300)\n",
            "bench.py": "import lib\nfor _ in range(5):\n    lib.total(100000)\n    lib.driver()\n"}
    commit(repo, base, "fast")
    commit(repo, {"lib.py": SLOW_SUM + STEADY + "\n\ndef driver():\n    return steady(300 * 20)\n"}, "slow")
    # 9 traced rounds: the regression test is Holm-adjusted over every function tested, and
    # with 7 one overlapping round on a loaded machine could lift steady's p over the line
    p = compare(repo, "HEAD~1", "HEAD", "--json", "--fail-on-regression", "5", *FAST, "--trace-rounds", "9", "--",
                "python", "bench.py")
    assert p.returncode == 1, p.stderr  # --fail-on-regression: HEAD is slower
    assert "slower than BASE by more than 5%" in p.stderr
    rep = json.loads(p.stdout)
    assert rep["end_to_end"]["verdict"] == "slower" and rep["end_to_end"]["ci"][1] < 1
    assert fn(rep, "total")["verdict"] == "slower"
    assert {r["name"] for r in rep["functions"]} == {"total", "driver"}
    regs = {r["name"]: r for r in rep["regressions"]}
    assert "steady" in regs and regs["steady"]["speedup"] < 1 and regs["steady"]["file"] == "lib.py"
    no_leftovers(repo, tmp)


def test_methods_and_nested_functions_timed_by_qualified_name(repo, tmp):
    slow = '''
        class Box:
            def __init__(self, n):
                self.n = n

            def total(self):
                def square(k):
                    s = 0
                    for _ in range(k):
                        s += k
                    return s
                return sum(square(i) for i in range(self.n))

            @property
            def size(self):
                return self.n
        '''
    fast = slow.replace("""                    s = 0
                    for _ in range(k):
                        s += k
                    return s""", """                    return k * k""")
    bench = "import shapes\nfor _ in range(3):\n    b = shapes.Box(800)\n    b.total(); b.size\n"
    commit(repo, {"shapes.py": slow, "bench.py": bench}, "box")
    commit(repo, {"shapes.py": fast}, "fast square")
    ch = find_changes(Repo(str(repo)), git(repo, "rev-parse", "HEAD~1").strip(), git(repo, "rev-parse", "HEAD").strip())
    assert [c.name for c in ch.functions] == ["Box.total.square"]  # the nested function, not the method around it
    # timed by qualified name: the nested function, the method around it, the property
    p = compare(repo, "HEAD~1", "HEAD", "--json", "--functions", "shapes.py::Box.total.square,Box.total,Box.size",
                *FAST, *SAME, "--", "python", "bench.py")
    rep = report(p)
    assert [r["name"] for r in rep["functions"]] == ["Box.total.square", "Box.total", "Box.size"]
    sq = fn(rep, "Box.total.square")
    assert sq["qualname"] == "Box.total.<locals>.square" and sq["verdict"] == "faster" and sq["ci"][0] > 1
    assert sq["base"]["calls"] == sq["head"]["calls"] == 2400
    total = fn(rep, "Box.total")
    assert total["verdict"] == "faster" and total["base"]["calls"] == 3
    assert total["base"]["own_ns"] < total["base"]["total_ns"]  # own and inclusive apart
    assert fn(rep, "Box.size")["base"]["calls"] == 3 and fn(rep, "Box.size")["kind"] == "property"
    # nested changed functions counted once: together = the method's inclusive time, not method + square
    tog = rep["changed_together"]
    assert tog["base_ns"] < total["base"]["total_ns"] + sq["base"]["total_ns"]
    no_leftovers(repo, tmp)


def test_working_tree_with_uncommitted_change_is_head(repo, tmp):
    write(repo, {"lib.py": FAST_SUM + STEADY, "extra.py": "X = 1\n"})  # uncommitted, and an untracked file
    status = git(repo, "status", "--porcelain")
    # 7 traced rounds: with 5 a tie or one outlier round on a loaded machine puts p
    # above 0.01 even for a 1000x change (the verdict was once "same" on CI)
    p = compare(repo, "HEAD", "--json", *FAST, "--trace-rounds", "7", "--", "python", "bench.py")
    rep = report(p)
    assert rep["head"]["working_tree"] and rep["head"]["uncommitted_changes"]
    assert "uncommitted" in rep["head"]["label"]
    assert rep["end_to_end"]["verdict"] == "faster"
    assert [r["name"] for r in rep["functions"]] == ["total"] and fn(rep, "total")["verdict"] == "faster"
    assert git(repo, "status", "--porcelain") == status  # the user's tree and index untouched
    assert git(repo, "log", "--oneline").count("\n") == 1
    no_leftovers(repo, tmp)


def test_pytest_benchmarks_root(repo, tmp):
    files = {
        "pyproject.toml": '[tool.retracer]\nbenchmarks-root = "benchmarks"\n',
        "benchmarks/test_perf.py": '''
            import lib

            def test_total(benchmark):
                assert benchmark(lib.total, 20000) > 0

            def test_steady():
                assert lib.steady(2000) == 2000

            def test_pedantic(benchmark):
                benchmark.pedantic(lib.steady, setup=lambda: ((500,), {}), rounds=3)
            ''',
    }
    commit(repo, files, "benchmarks")
    commit(repo, {"lib.py": FAST_SUM + STEADY}, "fast")
    # rounds of 20 ms at least: 5 ms rounds on a loaded machine let one scheduler hiccup decide
    p = compare(repo, "HEAD~1", "HEAD", "--json", "--rounds", "5", "--max-rounds", "5", "--trace-rounds", "2",
                "--warmup", "0", "--round-time", "0.02", *SAME)
    rep = report(p)
    assert rep["benchmark"]["kind"] == "pytest"
    b = {r["name"]: r for r in rep["benchmarks"]}
    assert set(b) == {"benchmarks/test_perf.py::test_total", "benchmarks/test_perf.py::test_steady",
                      "benchmarks/test_perf.py::test_pedantic"}
    assert b["benchmarks/test_perf.py::test_total"]["verdict"] == "faster"
    assert b["benchmarks/test_perf.py::test_total"]["ci"][0] > 1
    assert b["benchmarks/test_perf.py::test_steady"]["verdict"] == "same"
    total = fn(rep, "total")
    assert total["base"]["calls"] >= 1 and total["speedup"] > 1
    no_leftovers(repo, tmp)


def test_replayed_recorded_calls(repo, tmp):
    trace = repo.parent / "run.trace"
    t = subprocess.run([sys.executable, "-m", "retracer", "trace", "-q", "--no-stability-check", "-o", str(trace),
                        "bench.py"], cwd=repo, capture_output=True, text=True, timeout=120)
    assert t.returncode == 0, t.stderr
    commit(repo, {"lib.py": FAST_SUM + STEADY}, "fast")
    p = compare(repo, "HEAD~1", "HEAD", "--json", "--trace", str(trace), *FAST, "--max-rounds", "5")
    rep = report(p)
    assert rep["benchmark"]["kind"] == "replay"
    total = fn(rep, "total")
    assert total["verdict"] == "faster" and total["ci"][0] > 1 and total["base"]["calls"] == 5
    no_leftovers(repo, tmp)


# --------------------------------------------------------------------- errors


def one_line_error(p, *needles):
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_benchmark_failing_on_one_side(repo, tmp):
    commit(repo, {"lib.py": "def total(n):\n    raise ValueError('total is broken in head')\n" + STEADY}, "broken")
    p = compare(repo, "HEAD~1", "HEAD", *FAST, "--", "python", "bench.py")
    line = one_line_error(p, "failed on HEAD", "ValueError: total is broken in head", "exit status 1")
    log = line.rsplit("its output is in ", 1)[1]
    assert "Traceback" in open(log).read()  # the side's whole output
    os.unlink(log)
    no_leftovers(repo, tmp)


def test_timeout_kills_the_round_and_removes_the_worktrees(repo, tmp):
    commit(repo, {"bench.py": "import time\ntime.sleep(60)\n"}, "hangs")
    p = compare(repo, "HEAD~1", "HEAD", "--timeout", "4", "--", "python", "bench.py")
    one_line_error(p, "timed out", "--timeout")
    no_leftovers(repo, tmp)


def test_ctrl_c_and_sigterm_remove_the_worktrees(repo, tmp):
    import signal
    import time

    commit(repo, {"bench.py": "import time\ntime.sleep(60)\n"}, "hangs")
    for sig in (signal.SIGINT, signal.SIGTERM):
        p = subprocess.Popen([sys.executable, "-m", "retracer", "compare", "HEAD~1", "HEAD", "--", "python", "bench.py"],
                             cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while git(repo, "worktree", "list").count("\n") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # both worktrees exist: the rounds are starting
        time.sleep(0.5)
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        assert p.returncode == 130 and err.strip().splitlines()[-1] == "retracer: interrupted", err
        no_leftovers(repo, tmp)


def test_usage_errors_are_one_line(repo, tmp):
    one_line_error(compare(repo, "no-such-ref", "--", "python", "bench.py"), "unknown git ref 'no-such-ref'")
    one_line_error(compare(repo, "HEAD", "HEAD", "--functions", "lib.py::nope", "--", "python", "bench.py"),
                   "no function 'nope' in lib.py")
    one_line_error(compare(repo, "HEAD", "HEAD"), "nothing to benchmark")
    one_line_error(compare(repo, "HEAD", "--min-effect", "x", "--", "python", "bench.py"), "--min-effect")
    one_line_error(compare(repo.parent, "HEAD", "--", "python", "bench.py"), "not inside a git repository")
    no_leftovers(repo, tmp)


# --------------------------------------------------------------------- changed functions


def test_changed_functions_methods_nested_properties_renames(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    git(root, "init", "-q")
    before = '''
        import os

        class A:
            @property
            def x(self):
                return 1

            @x.setter
            def x(self, v):
                pass

            def m(self):
                return 2

        def outer():
            def inner():
                return 1
            return inner()

        def old_name(a, b):
            s = 0
            for i in range(a):
                s += i * b
            return s

        def gone():
            return 5

        def moved():
            return 6
        '''
    after = '''
        import os

        class A:
            @property
            def x(self):
                return 1

            @x.setter
            def x(self, v):
                self._v = v

            def m(self):
                return 2

        def moved():
            return 6

        def outer():
            def inner():
                return 2
            return inner()

        def new_name(a, b):
            s = 0
            for i in range(a):
                s += i * b
            return s

        def fresh():
            return 1
        '''
    base = commit(root, {"m.py": before, "other.txt": "a"}, "base")
    head = commit(root, {"m.py": after, "other.txt": "b"}, "head")
    r = Repo(str(root))
    ch = find_changes(r, base, head)
    got = {(c.status, c.label) for c in ch.functions}
    assert got == {("modified", "A.x (setter)"), ("modified", "outer.inner"), ("renamed", "old_name -> new_name"),
                   ("added", "fresh"), ("removed", "gone")}, got
    assert ch.other_files == ["other.txt"]
    # each side's own lines: the setter starts at the same line on both sides, inner does not
    inner = [c for c in ch.functions if c.label == "outer.inner"][0]
    assert inner.base.qualname == "outer.<locals>.inner" and inner.base.start != inner.head.start
    sel = select_functions(r, base, head, "m.py::A.m,outer.inner;A.x (setter)", str(root))
    assert [(c.status, c.name) for c in sel] == [("selected", "A.m"), ("selected", "outer.inner"),
                                                 ("selected", "A.x (setter)")]
    assert [(c.status, c.name) for c in select_functions(r, base, head, "fresh", str(root))] == [("added", "fresh")]
    with pytest.raises(RetracerError, match="no function 'nope'"):
        select_functions(r, base, head, "m.py::nope", str(root))
    assert parse_functions_spec("pkg/mod.py::f,Class.method;other.py::g") == [
        ("pkg/mod.py", "f"), ("pkg/mod.py", "Class.method"), ("other.py", "g")]


def test_working_tree_snapshot_leaves_the_repository_alone(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    git(root, "init", "-q")
    base = commit(root, {"a.py": "def f():\n    return 1\n"}, "base")
    r = Repo(str(root))
    snap, dirty = r.snapshot_working_tree(str(tmp_path))
    assert snap == base and not dirty
    write(root, {"a.py": "def f():\n    return 2\n", "new.py": "def g():\n    pass\n"})
    git(root, "add", "a.py")  # staged; new.py untracked
    status = git(root, "status", "--porcelain")
    snap, dirty = r.snapshot_working_tree(str(tmp_path))
    assert dirty and snap != base
    assert {(c.status, c.label) for c in find_changes(r, base, snap).functions} == {("modified", "f"), ("added", "g")}
    assert git(root, "status", "--porcelain") == status
    assert git(root, "rev-parse", "HEAD").strip() == base


# --------------------------------------------------------------------- statistics


def test_mann_whitney_exact_and_normal():
    assert stats.mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == (0.0, 2 / 252)
    assert stats.mann_whitney_u([1, 2, 3, 4], [5, 6, 7, 8])[1] == pytest.approx(2 / 70)
    _, p = stats.mann_whitney_u([1, 2, 3], [1, 2, 3])
    assert p == 1.0
    a = [float(i) for i in range(30)]
    u, p = stats.mann_whitney_u(a, [x + 100 for x in a])  # normal approximation
    assert u == 0 and p < 1e-9


def test_bootstrap_intervals_and_verdict():
    base = [1.00, 1.10, 0.95, 1.05, 1.02, 0.98, 1.07, 0.99, 1.03, 1.01]
    head = [x / 2 for x in base]
    c = stats.compare_samples(base, head, 0.02)
    assert c.speedup == pytest.approx(2.0) and c.ci[0] > 1.5 and c.verdict == "faster"
    assert c.paired_speedup == pytest.approx(2.0) and c.paired_ci == (pytest.approx(2.0), pytest.approx(2.0))
    same = stats.compare_samples(base, list(reversed(base)), 0.02)
    assert same.verdict == "same" and same.ci[0] <= 1 <= same.ci[1]
    assert stats.compare_samples(head, base, 0.02).verdict == "slower"
    # the interval excludes 1 and p is small, but the effect is below --min-effect
    tiny = stats.compare_samples(base, [x / 1.01 for x in base], 0.02)
    assert tiny.verdict == "same"
    assert stats.decide(1.5, (1.1, 2.0), 0.02, 0.02) == "same"  # p not below 0.01


def test_rounds_needed_as_in_the_notes():
    assert stats.rounds_needed(0.05, 0.05, alpha=0.05) == 16
    assert stats.rounds_needed(0.10, 0.05, alpha=0.05) == 63
    assert stats.rounds_needed(0.05, 0.02, alpha=0.05) == 99
    assert stats.rounds_needed(0.05, 0.05) > 16  # the verdict's own alpha, 0.01


def test_holm():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


# --------------------------------------------------------------------- environments


def test_which_projects_are_installed_and_their_build_products(tmp_path):
    from retracer.compare.sides import _complete_tree, needs_build

    plain = tmp_path / "plain"
    write(plain, {"pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n', "pkg/__init__.py": ""})
    assert not needs_build(str(plain))
    ext = tmp_path / "ext"
    write(ext, {"setup.py": "from setuptools import Extension, setup\nsetup(ext_modules=[Extension('p._f', ['f.c'])])\n"})
    assert needs_build(str(ext))
    meson = tmp_path / "meson"
    write(meson, {"pyproject.toml": '[build-system]\nbuild-backend = "mesonpy"\nrequires = ["meson-python"]\n'})
    assert needs_build(str(meson))
    # what pip --target built goes beside the sources in the worktree; sources stay as they are
    installed, tree = tmp_path / "inst", tmp_path / "tree"
    write(installed, {"pkg/__init__.py": "INSTALLED = 1\n", "pkg/_f.cpython-311-x86_64-linux-gnu.so": "elf",
                      "pkg/_version.py": "v = '1'\n", "pkg-1.dist-info/RECORD": "", "bin/tool": ""})
    write(tree, {"src/pkg/__init__.py": "SOURCE = 1\n"})
    _complete_tree(str(installed), str(tree))
    assert sorted(os.listdir(tree / "src" / "pkg")) == ["__init__.py", "_f.cpython-311-x86_64-linux-gnu.so",
                                                         "_version.py"]
    assert (tree / "src" / "pkg" / "__init__.py").read_text() == "SOURCE = 1\n"
    assert sorted(os.listdir(tree)) == ["src"]
