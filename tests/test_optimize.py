"""`retracer optimize`: trace, rank, verify candidates on the recorded calls, time them, keep
what is identical and faster -- through the CLI, on small git projects made by the tests.

Speed verdicts come from quadratic against linear code on inputs large enough that the
gap is tens of times (robust on a loaded machine); "not faster" from a candidate that is
the same algorithm. No test asserts a wall-clock limit. The rounds are kept few
(``FAST``) so each test takes seconds.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import retracer, show

# few, short rounds: the "accepted" verdicts asserted here are tens of times above the floor
FAST = ["--rounds", "3", "--max-rounds", "6", "--round-time", "0.02"]
# "not faster" (the same algorithm) needs more rounds: with 5 per side, an interval wholly
# above +5% for identical code would need every original round slower than every candidate's
SURE = ["--rounds", "5", "--max-rounds", "8", "--round-time", "0.02"]

APP = '''
def dedupe(items):
    out = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def summarize(items):
    d = dedupe(items)
    return len(d), d[:3]


def main():
    data = [(i * 7) % 900 for i in range(3000)]
    for _ in range(3):
        print(summarize(data))


if __name__ == "__main__":
    main()
'''

FAST_DEDUPE = '''
def dedupe(items):
    seen = set()
    out = []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out
'''

UNORDERED = '''
def dedupe(items):
    return sorted(set(items))
'''

SAME = '''
def dedupe(items):
    out = []
    for x in items:
        if not (x in out):
            out.append(x)
    return out
'''


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                                   GIT_COMMITTER_EMAIL="t@t")).stdout


def write(root: Path, files):
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q")
    write(root, {"app.py": APP, ".gitignore": "*.trace\ntest_*__replay_test_*.py\n"})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    cands = tmp_path / "cands"
    write(cands, {"fast.py": FAST_DEDUPE, "unordered.py": UNORDERED, "same.py": SAME})
    return root


def add_tests(project: Path, files) -> None:
    """Commit test files under tests/, with a conftest that puts the project first on sys.path."""
    write(project, dict(files, **{"tests/conftest.py": """
        import os, sys
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    """}))
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "tests")


def optimize(root, *args):
    cp = retracer("optimize", *args, cwd=root)
    assert "Traceback" not in cp.stderr and "internal error" not in cp.stderr, show(cp)
    return cp


def report(cp):
    assert cp.returncode == 0, show(cp)
    return json.loads(cp.stdout)


def fn(rep, name):
    rows = [f for f in rep["functions"] if f["name"] == name]
    assert rows, rep
    return rows[0]


def verdicts(row):
    return {os.path.basename(c["file"]): c["verdict"] for c in row["candidates"]}


def branches(root):
    return [b.strip(" *") for b in git(root, "branch", "--list", "retracer/*").splitlines()]


def test_three_candidates_fastest_committed_on_a_branch(project, tmp_path):
    before = (project / "app.py").read_text()
    cp = optimize(project, "--candidates", tmp_path / "cands", "--functions", "dedupe", "--no-builtin",
                  "--no-end-to-end", "--json", "-o", tmp_path / "report.md", *SURE, "app.py")
    rep = report(cp)
    row = fn(rep, "dedupe")
    assert verdicts(row) == {"fast.py": "accepted", "unordered.py": "mismatch", "same.py": "not-faster"}, rep
    by = {os.path.basename(c["file"]): c for c in row["candidates"]}
    assert by["fast.py"]["ci"][0] > 1.05 and by["fast.py"]["speedup"] > 1.05
    assert "differs" in by["unordered.py"]["message"]          # the first difference
    assert by["same.py"]["ci"][0] <= 1.05 and by["same.py"]["speedup"] is not None
    assert row["accepted"].endswith("fast.py")
    assert row["calls_verified"] == 3 and row["before_per_call_ns"] > row["after_per_call_ns"]
    # applied: a branch with one commit, the user's tree as it was
    assert (project / "app.py").read_text() == before
    assert git(project, "status", "--porcelain").strip() == ""
    (branch,) = branches(project)
    assert rep["applied"]["branch"] == branch
    log = git(project, "log", "--format=%B", "-1", branch)
    assert "dedupe" in log and "95% CI" in log and "3 real recorded calls" in log
    assert git(project, "rev-list", "--count", f"HEAD..{branch}").strip() == "1"
    assert "seen = set()" in git(project, "show", f"{branch}:app.py")
    md = (tmp_path / "report.md").read_text()     # -o report.md, with --json
    assert "| dedupe |" in md and "not-faster" in md and "mismatch" in md and "95% CI" in md
    assert "retracer optimize:" in cp.stderr   # progress


def test_no_pr_writes_the_working_tree_and_measures_end_to_end(project, tmp_path):
    cands = tmp_path / "only"
    write(cands, {"fast.py": FAST_DEDUPE})
    rep = report(optimize(project, "--candidates", cands, "--functions", "dedupe", "--no-builtin", "--no-pr",
                          "--json", *FAST, "app.py"))
    assert fn(rep, "dedupe")["accepted"].endswith("fast.py")
    assert "seen = set()" in (project / "app.py").read_text()
    assert branches(project) == []
    assert git(project, "rev-list", "--count", "HEAD").strip() == "1"   # nothing committed
    assert rep["applied"]["mode"] == "working-tree"
    e2e = rep["end_to_end"]
    assert e2e and e2e.get("speedup") and len(e2e["ci"]) == 2, e2e
    # the program still works
    out = subprocess.run([sys.executable, "app.py"], cwd=project, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.count("(900, [0, 7, 14])") == 3, out


# faster on every recorded call, but its definition costs half a second whenever the
# program starts (a default computed at import): the workflow itself gets slower
SLOW_START = '''
def dedupe(items, _pause=__import__("time").sleep(0.5)):
    seen = set()
    out = []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out
'''


def test_a_change_that_makes_the_workflow_slower_end_to_end_is_not_applied(project, tmp_path):
    cands = tmp_path / "slowstart"
    write(cands, {"slow_start.py": SLOW_START})
    rep = report(optimize(project, "--candidates", cands, "--functions", "dedupe", "--no-builtin", "--no-pr",
                          "--json", *FAST, "app.py"))
    assert fn(rep, "dedupe")["accepted"].endswith("slow_start.py")  # faster on the recorded calls
    e2e = rep["end_to_end"]
    assert e2e["verdict"] == "slower", e2e
    assert rep["applied"] is None
    assert any("nothing was applied" in w for w in rep["warnings"]), rep["warnings"]
    assert "sleep" not in (project / "app.py").read_text()  # the user's file is untouched
    assert branches(project) == []


CALLER_APP = '''
def unique(items):
    out = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def tagged(items):
    u = unique(items)
    u.append("end")
    return len(items), len(u)


if __name__ == "__main__":
    for n in (1500, 2000):
        print(tagged(list(range(n))))
'''

# identical on unique's own calls (an equal list, the argument unchanged) but it
# hands back its argument: tagged then changes its own input
ALIASING = '''
def unique(items):
    if len(set(items)) == len(items):
        return items
    out = []
    for x in items:
        if x not in out:
            out.append(x)
    return out
'''


def test_a_candidate_that_breaks_a_caller(project, tmp_path):
    write(project, {"app.py": CALLER_APP})
    git(project, "commit", "-qam", "caller")
    cands = tmp_path / "alias"
    write(cands, {"alias.py": ALIASING})
    rep = report(optimize(project, "--candidates", cands, "--functions", "unique", "--no-builtin",
                          "--no-end-to-end", "--json", *FAST, "app.py"))
    row = fn(rep, "unique")
    (c,) = row["candidates"]
    assert c["verdict"] == "mismatch", rep
    assert c["message"].startswith("tagged"), c      # the caller's call, not unique's
    assert row["callers"] == ["tagged"] and row["caller_calls_verified"] == 2
    assert row["accepted"] is None and branches(project) == []


GENERATOR = '''
import json, sys
req = json.load(sys.stdin)
with open(sys.argv[1], "w") as f:
    json.dump(req, f)
good = """
def dedupe(items):
    return list(dict.fromkeys(items))
"""
bad = """
def dedupe(items):
    return list(set(items))[::-1]
"""
broken = """
def dedupe(items)
    return items
"""
print(good + "\\n# --- candidate ---\\n" + bad + "\\n# --- candidate ---\\n" + broken)
'''


def test_generator_good_bad_and_broken(project, tmp_path):
    gen = tmp_path / "gen.py"
    gen.write_text(GENERATOR)
    req = tmp_path / "request.json"
    rep = report(optimize(project, "--generator", f"{sys.executable} {gen} {req}", "--functions", "dedupe",
                          "--no-builtin", "--no-end-to-end", "--no-pr", "--json", *FAST, "app.py"))
    row = fn(rep, "dedupe")
    assert [(c["file"], c["verdict"]) for c in row["candidates"]] == [
        ("generator#1", "accepted"), ("generator#2", "mismatch"), ("generator#3", "error")], rep
    assert "SyntaxError" in row["candidates"][2]["message"]
    assert "dict.fromkeys" in (project / "app.py").read_text()
    sent = json.loads(req.read_text())
    assert sent["function"] == "dedupe" and "def dedupe(items):" in sent["source"] and sent["file"] == "app.py"
    assert sent["profile"]["calls"] == 3 and sent["examples"] and "args" in sent["examples"][0]
    assert all(len(e["args"]) < 400 for e in sent["examples"])    # bounded reprs


def test_trace_only_then_replay_test(project, tmp_path):
    cp = optimize(project, "--trace-only", "app.py")
    assert cp.returncode == 0, show(cp)
    tests = sorted(project.glob("test_app__replay_test_*.py"))
    assert len(tests) == 1 and (project / "retracer.trace").is_file(), show(cp)
    assert "replay tests written to" in cp.stderr and "--trace-only" in cp.stderr
    assert cp.stdout.count("(900, [0, 7, 14])") == 3    # the program's own output, nothing else
    # the form of the documents: retracer --replay-test FILE
    cands = tmp_path / "only"
    write(cands, {"fast.py": FAST_DEDUPE})
    cp = retracer("--replay-test", tests[0].name, "--candidates", cands, "--functions", "dedupe", "--no-builtin",
                  "--no-end-to-end", "--no-pr", "--json", *FAST, cwd=project)
    rep = report(cp)
    assert fn(rep, "dedupe")["accepted"].endswith("fast.py"), rep
    assert "tracing" not in cp.stderr
    assert "seen = set()" in (project / "app.py").read_text()


def test_from_ref(project):
    # the fast version lives on another branch; HEAD is the slow one
    git(project, "switch", "-q", "-c", "fast")
    (project / "app.py").write_text(textwrap.dedent(APP).lstrip("\n").replace(
        textwrap.dedent(APP).lstrip("\n").split("\n\n\n")[0], FAST_DEDUPE.strip()))
    git(project, "commit", "-qam", "fast dedupe")
    git(project, "switch", "-q", "-")
    cp = optimize(project, "--from-ref", "fast", "--functions", "dedupe", "--no-builtin", "--no-end-to-end",
                  *FAST, "app.py")
    assert cp.returncode == 0, show(cp)
    # the terminal table
    line = next(ln for ln in cp.stdout.splitlines() if ln.strip().startswith("ref:fast"))
    assert line.split()[1] == "accepted", cp.stdout
    assert "branch retracer/optimize-" in cp.stdout and "your working tree is unchanged" in cp.stdout


VOWELS = '''
def count_marks(words):
    n = 0
    for w in words:
        for ch in w:
            if ch in ["a", "e", "i", "o", "u", "y", "A", "E", "I", "O", "U", "Y", ".", ",", ";", ":", "!", "?",
                      "-", "(", ")", "[", "]", "{", "}", "'", '"', "0", "1", "2", "3", "4", "5", "6", "7"]:
                n += 1
    return n


if __name__ == "__main__":
    words = ["bcdfghjklmnpqrstvwxz" * 3] * 300
    print(count_marks(words))
'''


def test_builtin_rewrite_found_and_verified(project):
    write(project, {"marks.py": VOWELS})
    git(project, "add", "-A")
    git(project, "commit", "-qm", "marks")
    rep = report(optimize(project, "--functions", "count_marks", "--no-end-to-end", "--no-pr", "--json", *FAST,
                          "marks.py"))
    row = fn(rep, "count_marks")
    assert verdicts(row).get("builtin:set-membership") == "accepted", rep
    text = (project / "marks.py").read_text()
    assert 'if ch in {"a", "e"' in text
    out = subprocess.run([sys.executable, "marks.py"], cwd=project, capture_output=True, text=True)
    assert out.stdout.strip() == "0"


def test_nothing_accepted_leaves_the_tree_untouched(project, tmp_path):
    cands = tmp_path / "losers"
    write(cands, {"unordered.py": UNORDERED, "same.py": SAME})
    before = (project / "app.py").read_text()
    status = git(project, "status", "--porcelain")
    rep = report(optimize(project, "--candidates", cands, "--functions", "dedupe", "--no-builtin", "--no-pr",
                          "--json", *SURE, "app.py"))
    assert verdicts(fn(rep, "dedupe")) == {"unordered.py": "mismatch", "same.py": "not-faster"}, rep
    assert rep["applied"] is None and rep["end_to_end"] is None
    assert (project / "app.py").read_text() == before
    assert git(project, "status", "--porcelain") == status and branches(project) == []
    assert git(project, "worktree", "list").count("\n") == 1    # its copies are gone


def test_errors_are_one_line(project):
    cp = optimize(project, "--replay-test", "nope.py")
    assert cp.returncode == 2 and "does not exist" in cp.stderr and len(cp.stderr.strip().splitlines()) == 1
    cp = optimize(project)
    assert cp.returncode == 2 and "nothing to optimize" in cp.stderr


def test_unit_tests_are_the_ones_a_traced_pytest_run_saw_call_the_function(project, tmp_path):
    """The unit tests that judge a candidate are found by a traced pytest run of the
    tests root: a test that reaches the function through a helper of another name is
    one of them, a test that only names it in a comment is not. A candidate that passes
    the recorded calls but fails such a test is a mismatch."""
    add_tests(project, {
        "tests/test_reach.py": """
            import app

            def test_through_summarize():
                n, first = app.summarize([3, 1, 3, 2, 1])
                assert (n, first) == (3, [3, 1, 2])
        """,
        "tests/test_mentions.py": """
            # dedupe is mentioned here, never called
            def test_nothing():
                assert True
        """,
    })
    # faster, the same on every recorded input (lists of ints), but wrong on short lists
    short = FAST_DEDUPE.replace("def dedupe(items):\n",
                                "def dedupe(items):\n    if len(items) < 10:\n        return sorted(set(items))\n")
    write(tmp_path / "cands2", {"fast.py": FAST_DEDUPE, "short.py": short})
    cp = optimize(project, "--candidates", tmp_path / "cands2", "--functions", "dedupe", "--no-builtin",
                  "--no-end-to-end", "--no-pr", "--json", *FAST, "app.py")
    rep = report(cp)
    assert rep["unit_tests_found_by"] == "a traced pytest run", rep
    row = fn(rep, "dedupe")
    assert row["unit_tests"] == ["tests/test_reach.py"], row
    v = verdicts(row)
    assert v["fast.py"] == "accepted" and v["short.py"] == "mismatch", row
    short = next(c for c in row["candidates"] if os.path.basename(c["file"]) == "short.py")
    assert "unit tests fail" in short["message"], short


def test_a_pytest_workflow_is_traced_and_optimized(project, tmp_path):
    """`retracer optimize -m pytest tests/`: the workflow is the test suite; its calls are
    recorded from the tests, the candidates verified on them, and the suite's own trace
    says which test files exercise the function."""
    add_tests(project, {
        "tests/test_app.py": """
            import app

            def test_summarize_big():
                data = [(i * 7) % 900 for i in range(3000)]
                for _ in range(3):
                    assert app.summarize(data)[0] == 900
        """,
    })
    cp = optimize(project, "--candidates", tmp_path / "cands", "--functions", "dedupe", "--no-builtin",
                  "--no-end-to-end", "--no-pr", "--json", *SURE, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                  "tests")
    rep = report(cp)
    row = fn(rep, "dedupe")
    assert row["recorded_calls"] >= 3 and row["calls_verified"] >= 3, row
    assert verdicts(row) == {"fast.py": "accepted", "unordered.py": "mismatch", "same.py": "not-faster"}, rep
    assert rep["unit_tests_found_by"] == "a traced pytest run" and row["unit_tests"] == ["tests/test_app.py"], row
    assert "seen = set()" in (project / "app.py").read_text()  # --no-pr: written to the working tree
