"""Replay end to end (SPEC items 1-2): trace a small program, edit it, replay.

Every test drives the command line in a subprocess as a user would:

1. write a small program into ``tmp_path``;
2. ``python -m retracer trace -q -o t.trace prog.py`` (cwd ``tmp_path``), which
   records the first calls of each function and writes a replay test file next
   to the trace (or into ``tests/`` when that directory exists); tracing runs
   none of the program's functions again unless asked: the tests of the opt-in
   stability check (``--check-stable``: replaying the calls twice, isolated,
   right after tracing to mark the unstable ones) pass ``stability_check=True``;
3. edit the program: a behaviour-changing edit must make
   ``python -m retracer replay t.trace`` exit 1 and name the function with the
   expected and the new value on stdout; a behaviour-preserving edit must keep
   it at exit 0.

Marked `once`: the report's layout, the bench table, where the test file goes, and the
float and numpy rules and most container kinds end to end (the comparator's rules
are tested on every version in test_comparator).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import List, Optional, Sequence

import pytest

import helpers
from helpers import one_line, retracer, run_python as run


# ---------------------------------------------------------------------- helpers


def write(path: Path, src: str) -> Path:
    path.write_text(textwrap.dedent(src).lstrip())
    return path


def trace(tmp_path: Path, src: Optional[str] = None, args: Sequence[str] = (), prog: str = "prog.py",
          opts: Sequence[str] = (), out: str = "t.trace", quiet: bool = True,
          stability_check: bool = False) -> subprocess.CompletedProcess:
    """Write `src` to tmp_path/prog (unless None) and trace it there (helpers.trace:
    it must exit 0 and write the trace)."""
    if src is not None:
        write(tmp_path / prog, src)
    return helpers.trace(out, prog, *args, cwd=tmp_path, opts=opts, quiet=quiet, stability_check=stability_check)


def edit(tmp_path: Path, old: str, new: str, prog: str = "prog.py") -> None:
    """Replace `old` (exactly once) by `new` in the program.

    The modification time is moved on by a few seconds: a real edit happens
    seconds after tracing, and an edit of the same size within the same second
    would otherwise be hidden by the bytecode cache written while tracing."""
    p = tmp_path / prog
    text = p.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {prog}"
    p.write_text(text.replace(old, new))
    t = time.time() + 5
    os.utime(p, (t, t))


def replay(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return retracer("replay", *args, cwd=tmp_path)


def replay_ok(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    r = replay(tmp_path, "t.trace", *args)
    assert r.returncode == 0, f"replay should pass:\n{r.stdout}\n{r.stderr}"
    assert "MISMATCH" not in r.stdout and "ERROR" not in r.stdout, r.stdout
    assert "0 mismatch, 0 error" in r.stderr, r.stderr
    return r


def replay_caught(tmp_path: Path, qualname: str, *fragments: str) -> str:
    """Replay must fail, naming `qualname` and showing each of `fragments`;
    returns the block of stdout about that function."""
    r = replay(tmp_path, "t.trace")
    assert r.returncode == 1, f"replay should report a mismatch:\n{r.stdout}\n{r.stderr}"
    blocks = _blocks(r.stdout)
    mine = [b for b in blocks if re.match(rf"MISMATCH {re.escape(qualname)} call #\d+ ", b)]
    assert mine, f"no mismatch reported for {qualname}:\n{r.stdout}"
    text = mine[0]
    for frag in fragments:
        assert frag in text, f"{frag!r} not in the report:\n{text}"
    assert "Traceback" not in r.stderr, r.stderr
    return text


def _blocks(stdout: str) -> List[str]:
    """The MISMATCH/ERROR (and UNSTABLE, SIDE EFFECT, ENVIRONMENT) blocks of replay's
    stdout: a headline and its indented lines."""
    blocks: List[str] = []
    for line in stdout.splitlines():
        if line.startswith(("MISMATCH ", "ERROR ", "UNSTABLE ", "SIDE EFFECT ", "ENVIRONMENT ")):
            blocks.append(line)
        elif line.startswith("    ") and blocks:
            blocks[-1] += "\n" + line
    return blocks


def captured(trace_path: Path) -> List[tuple]:
    """(qualname, status, info) of every captured call, read with sqlite3."""
    con = sqlite3.connect(f"file:{trace_path}?mode=ro", uri=True)
    try:
        return con.execute(
            "SELECT f.qualname, c.status, c.info FROM captured_calls c JOIN functions f ON f.fid = c.fid "
            "ORDER BY c.call_id").fetchall()
    finally:
        con.close()


def con_meta(trace_path: Path, key: str) -> str:
    con = sqlite3.connect(f"file:{trace_path}?mode=ro", uri=True)
    try:
        return con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]
    finally:
        con.close()


def statuses(trace_path: Path, qualname: str) -> List[str]:
    return [s for q, s, _ in captured(trace_path) if q == qualname]


# ------------------------------------------------------------------ callables


PLAIN = """
def add(a, b):
    return a + b

if __name__ == "__main__":
    print(add(2, 3), add(10, 20))
"""


def test_plain_function_change_caught(tmp_path):
    trace(tmp_path, PLAIN)
    replay_ok(tmp_path)
    edit(tmp_path, "return a + b", "return a + b + 1")
    text = replay_caught(tmp_path, "add", "expected 5", "got 6", "prog.py:1")
    assert "return" in text


def test_plain_function_preserving_edit_passes(tmp_path):
    trace(tmp_path, PLAIN)
    edit(tmp_path, "return a + b", "total = b\n    total += a\n    return total")
    replay_ok(tmp_path)


@pytest.mark.once
def test_replay_reports_every_mismatch(tmp_path):
    trace(tmp_path, """
        def f(x):
            return x * 2

        def g(x):
            return x - 1

        if __name__ == "__main__":
            print(f(1), f(2), g(5))
        """)
    edit(tmp_path, "return x * 2", "return x * 3")
    edit(tmp_path, "return x - 1", "return x - 2")
    r = replay(tmp_path, "t.trace")
    assert r.returncode == 1
    heads = [b.splitlines()[0] for b in _blocks(r.stdout)]
    assert [h.split(" call")[0] for h in heads] == ["MISMATCH f", "MISMATCH f", "MISMATCH g"], r.stdout
    assert "3 mismatch" in r.stderr


METHODS = """
import functools

class Counter:
    def __init__(self, start):
        self.value = start
        self.history = []

    def bump(self, n):
        self.value += n
        self.history.append(n)
        return n

    @classmethod
    def from_text(cls, text):
        return int(text) * 10

    @staticmethod
    def clamp(x, lo, hi):
        return max(lo, min(hi, x))

    @property
    def doubled(self):
        return self.value * 2


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


@logged
def scale(x, factor=3):
    return x * factor


if __name__ == "__main__":
    c = Counter(5)
    print(c.bump(2), c.bump(3), c.doubled)
    print(Counter.from_text("7"), Counter.clamp(15, 0, 10), scale(4), scale(2, factor=5))
"""

METHOD_EDITS = {
    # name: (qualname, old, new, fragments of the report)
    "method": ("Counter.bump", "return n\n", "return n + 1\n", ("expected 2", "got 3")),
    "method_mutating_self": ("Counter.bump", "self.value += n\n", "self.value += 2 * n\n",
                             ("args_after.self", "value")),
    "classmethod": ("Counter.from_text", "int(text) * 10", "int(text) * 100", ("expected 70", "got 700")),
    "staticmethod": ("Counter.clamp", "max(lo, min(hi, x))", "max(lo, min(hi + 1, x))",
                     ("expected 10", "got 11")),
    "__init__": ("Counter.__init__", "self.value = start\n", "self.value = start + 1\n",
                 ("args_after.self", "value")),
    "property_getter": ("Counter.doubled", "return self.value * 2", "return self.value * 3",
                        ("expected 20", "got 30")),
    "functools_wraps": ("scale", "return x * factor", "return x * factor + 1", ("expected 12", "got 13")),
}


@pytest.mark.parametrize("kind", list(METHOD_EDITS))
def test_methods_and_decorated_change_caught(tmp_path, kind):
    qualname, old, new, fragments = METHOD_EDITS[kind]
    trace(tmp_path, METHODS)
    replay_ok(tmp_path)
    edit(tmp_path, old, new)
    replay_caught(tmp_path, qualname, *fragments)


def test_methods_preserving_edits_pass(tmp_path):
    trace(tmp_path, METHODS)
    edit(tmp_path, "return int(text) * 10", "return 10 * int(text)")
    edit(tmp_path, "return max(lo, min(hi, x))", "return lo if x < lo else hi if x > hi else x")
    edit(tmp_path, "return self.value * 2", "return self.value + self.value")
    edit(tmp_path, "self.value += n\n", "self.value = self.value + n\n")
    r = replay_ok(tmp_path)
    # the wrapper produced by functools.wraps is a nested function: skipped, the
    # wrapped function itself is replayed
    assert "nested function cannot be re-found" in r.stderr


def test_method_self_mutation_shows_expected_and_got(tmp_path):
    trace(tmp_path, METHODS)
    edit(tmp_path, "self.history.append(n)", "self.history.append(-n)")
    text = replay_caught(tmp_path, "Counter.bump", "args_after.self")
    assert "history" in text and "expected" in text and "got" in text, text


GENERATOR = """
def evens(n):
    for i in range(n):
        yield i * 10
    return "done"

if __name__ == "__main__":
    print(list(evens(4)))
"""


def test_generator_yielded_value_change_caught(tmp_path):
    trace(tmp_path, GENERATOR)
    replay_ok(tmp_path)
    edit(tmp_path, "yield i * 10", "yield i * 10 if i != 2 else 21")
    replay_caught(tmp_path, "evens", "yielded", "20", "21")


def test_generator_one_more_value_caught(tmp_path):
    trace(tmp_path, GENERATOR)
    edit(tmp_path, '    return "done"', '    yield 999\n    return "done"')
    replay_caught(tmp_path, "evens", "yielded")


def test_generator_return_value_change_caught(tmp_path):
    trace(tmp_path, GENERATOR)
    edit(tmp_path, 'return "done"', 'return "finished"')
    replay_caught(tmp_path, "evens", "'done'", "'finished'")


def test_generator_preserving_edit_passes(tmp_path):
    trace(tmp_path, GENERATOR)
    edit(tmp_path, "    for i in range(n):\n        yield i * 10", "    yield from (j * 10 for j in range(n))")
    replay_ok(tmp_path)


def test_generator_closed_early_by_its_consumer(tmp_path):
    """A generator the caller stops after a few values (GeneratorExit on close)."""
    trace(tmp_path, stability_check=True, src="""
        def naturals():
            i = 0
            while True:
                yield i
                i += 1

        def first(n):
            out = []
            for x in naturals():
                if x >= n:
                    break
                out.append(x)
            return out

        if __name__ == "__main__":
            print(first(3), first(5))
            g = naturals()
            next(g)
            g.close()    # closed explicitly, still referenced
            print(g)
        """)
    assert statuses(tmp_path / "t.trace", "naturals") == ["ok"] * 3
    replay_ok(tmp_path)
    edit(tmp_path, "yield i\n", "yield i * 2\n")
    replay_caught(tmp_path, "naturals", "yielded")


def test_generator_raising_after_yields(tmp_path):
    trace(tmp_path, """
        def countdown(n):
            while n > 0:
                yield n
                n -= 1
            raise ValueError("liftoff")

        def run(n):
            out = []
            try:
                for x in countdown(n):
                    out.append(x)
            except ValueError as e:
                out.append(str(e))
            return out

        if __name__ == "__main__":
            print(run(3))
        """)
    replay_ok(tmp_path)
    edit(tmp_path, "yield n\n", "yield n + 1\n")
    replay_caught(tmp_path, "countdown", "yielded")


COROUTINE = """
import asyncio

async def fetch(x):
    await asyncio.sleep(0.001)
    return x * 2

async def quick(x):
    return x + 1

async def main():
    a = await fetch(3)
    b = await quick(4)
    return a + b

if __name__ == "__main__":
    print(asyncio.run(main()))
"""


def test_coroutine_awaited_result_change_caught(tmp_path):
    trace(tmp_path, COROUTINE, stability_check=True)
    t = tmp_path / "t.trace"
    assert statuses(t, "fetch") == ["ok"], captured(t)
    assert statuses(t, "quick") == ["ok"], captured(t)
    replay_ok(tmp_path)
    edit(tmp_path, "return x * 2", "return x * 3")
    replay_caught(tmp_path, "fetch", "expected 6", "got 9")


def test_coroutine_without_await_change_caught(tmp_path):
    trace(tmp_path, COROUTINE)
    edit(tmp_path, "return x + 1", "return x + 2")
    replay_caught(tmp_path, "quick", "expected 5", "got 6")


def test_nested_function_skipped_not_failed(tmp_path):
    trace(tmp_path, """
        def outer(x):
            def inner(y):
                return x + y
            return inner(1) * 2

        if __name__ == "__main__":
            print(outer(4))
        """)
    r = replay_ok(tmp_path)
    assert "nested function cannot be re-found" in r.stderr, r.stderr
    assert re.search(r"\b1 skipped\b", r.stderr), r.stderr
    # the closure's behaviour still shows through its enclosing function
    edit(tmp_path, "return x + y", "return x - y")
    replay_caught(tmp_path, "outer", "expected 10", "got 6")


LIST_MUTATION = """
def normalize(xs):
    xs.sort()
    return None

def tally(xs):
    xs.append(len(xs))
    return len(xs)

if __name__ == "__main__":
    data = [3, 1, 2]
    normalize(data)
    print(data, tally(data))
"""


def test_list_argument_mutation_change_caught(tmp_path):
    trace(tmp_path, LIST_MUTATION)
    replay_ok(tmp_path)
    edit(tmp_path, "xs.sort()", "xs.sort(reverse=True)")
    replay_caught(tmp_path, "normalize", "args_after.xs[0]", "expected 1", "got 3")


def test_list_argument_mutation_same_return_caught(tmp_path):
    trace(tmp_path, LIST_MUTATION)
    edit(tmp_path, "xs.append(len(xs))\n    return len(xs)", "xs.append(0)\n    return len(xs)")
    replay_caught(tmp_path, "tally", "args_after.xs", "expected 3", "got 0")


def test_list_argument_mutation_preserving_edit_passes(tmp_path):
    trace(tmp_path, LIST_MUTATION)
    edit(tmp_path, "xs.sort()", "xs[:] = sorted(xs)")
    replay_ok(tmp_path)


RAISING = """
def check(x):
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x

if __name__ == "__main__":
    for v in (3, -2):
        try:
            print(check(v))
        except ValueError as e:
            print("error", e)
"""


EXCEPTION_UNSEEN = pytest.mark.xfail(sys.version_info < (3, 11), strict=True, reason=(
    "the 3.9/3.10 profile hook cannot see which exception a call raised: the recording "
    "keeps only that it raised, so a changed message or type is not caught there (documented)"))


@EXCEPTION_UNSEEN
def test_exception_message_change_caught(tmp_path):
    trace(tmp_path, RAISING)
    replay_ok(tmp_path)
    edit(tmp_path, 'f"negative: {x}"', 'f"negative value: {x}"')
    replay_caught(tmp_path, "check", "exception", "negative: -2", "negative value: -2")


@EXCEPTION_UNSEEN
def test_exception_type_change_caught(tmp_path):
    trace(tmp_path, RAISING)
    edit(tmp_path, "raise ValueError(", "raise ArithmeticError(")
    replay_caught(tmp_path, "check", "ValueError", "ArithmeticError")


def test_exception_no_longer_raised_caught(tmp_path):
    trace(tmp_path, RAISING)
    edit(tmp_path, "    if x < 0:\n", "    if x < -5:\n")
    replay_caught(tmp_path, "check", "raise", "return")


FLOATS = """
import math

def third(x):
    return x / 3

def not_a_number(x):
    return x * float("nan")

if __name__ == "__main__":
    print(third(1.0), third(2.5), not_a_number(1.0))
"""


@pytest.mark.once
def test_float_change_within_isclose_passes(tmp_path):
    trace(tmp_path, FLOATS, stability_check=True)
    t = tmp_path / "t.trace"
    assert set(statuses(t, "not_a_number")) == {"ok"}, captured(t)  # NaN == NaN here
    replay_ok(tmp_path)
    edit(tmp_path, "return x / 3", "return x * (1 / 3)")
    edit(tmp_path, 'return x * float("nan")', "return math.nan + x")
    replay_ok(tmp_path)


@pytest.mark.once
def test_float_change_beyond_isclose_caught(tmp_path):
    trace(tmp_path, FLOATS)
    edit(tmp_path, "return x / 3", "return x / 3 + 1e-6")
    replay_caught(tmp_path, "third", "0.333333")


@pytest.mark.once
def test_nan_becoming_a_number_caught(tmp_path):
    trace(tmp_path, FLOATS)
    edit(tmp_path, 'return x * float("nan")', "return x * 0.0")
    replay_caught(tmp_path, "not_a_number", "nan", "0.0")


CONTAINERS = """
def as_dict(n):
    return {"n": n, "sq": n * n}

def as_list(n):
    return [n, n + 1, n + 2]

def as_set(n):
    return {n, n * 2}

def as_tuple(n):
    return (n, str(n))

if __name__ == "__main__":
    print(as_dict(3), as_list(3), sorted(as_set(3)), as_tuple(3))
"""

CONTAINER_EDITS = {
    "dict_value": ("as_dict", '"sq": n * n', '"sq": n * n + 1', ("'sq'", "9", "10")),
    "dict_key": ("as_dict", '"sq": n * n', '"square": n * n', ("'sq'",)),
    "list": ("as_list", "[n, n + 1, n + 2]", "[n, n + 1, n + 3]", ("[2]", "5", "6")),
    "list_longer": ("as_list", "[n, n + 1, n + 2]", "[n, n + 1, n + 2, 0]", ("return",)),
    "set": ("as_set", "{n, n * 2}", "{n, n * 3}", ("6", "9")),
    "tuple": ("as_tuple", "(n, str(n))", "(n, repr(float(n)))", ("'3'", "'3.0'")),
    "tuple_to_list": ("as_tuple", "(n, str(n))", "[n, str(n)]", ("tuple", "list")),
}


# the comparator's handling of each container is tested on every version in
# test_comparator; end to end, two kinds on every version and the others once
@pytest.mark.parametrize("kind", [k if k in ("list", "dict_key") else pytest.param(k, marks=pytest.mark.once)
                                  for k in CONTAINER_EDITS])
def test_container_results_change_caught(tmp_path, kind):
    qualname, old, new, fragments = CONTAINER_EDITS[kind]
    trace(tmp_path, CONTAINERS)
    replay_ok(tmp_path)
    edit(tmp_path, old, new)
    replay_caught(tmp_path, qualname, *fragments)


def test_container_results_preserving_edits_pass(tmp_path):
    trace(tmp_path, CONTAINERS)
    # (the keys in the same order: the order of a dict is observable, issue 11)
    edit(tmp_path, 'return {"n": n, "sq": n * n}', 'return dict(n=n, sq=n ** 2)')
    edit(tmp_path, "return {n, n * 2}", "return set([n * 2, n])")
    edit(tmp_path, "return [n, n + 1, n + 2]", "return list(range(n, n + 3))")
    replay_ok(tmp_path)


OBJECTS = """
class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

def midpoint(a, b):
    return Point((a.x + b.x) / 2, (a.y + b.y) / 2)

if __name__ == "__main__":
    m = midpoint(Point(0, 0), Point(4, 2))
    print(m.x, m.y)
"""


def test_object_without_eq_compared_by_state(tmp_path):
    trace(tmp_path, OBJECTS)
    replay_ok(tmp_path)  # no __eq__: identity would never match, the state does
    edit(tmp_path, "(a.y + b.y) / 2)", "(a.y + b.y) / 4)")
    replay_caught(tmp_path, "midpoint", "return.y", "1.0", "0.5")


NUMPY = """
import numpy as np

def ramp(n):
    return np.arange(n) * 2

def smooth(n):
    return np.linspace(0.0, 1.0, n) ** 2

if __name__ == "__main__":
    print(ramp(5).sum(), smooth(4).sum())
"""


def test_numpy_array_change_caught(tmp_path):
    pytest.importorskip("numpy")
    trace(tmp_path, NUMPY)
    replay_ok(tmp_path)
    edit(tmp_path, "np.arange(n) * 2", "np.arange(n) * 2 + (np.arange(n) == 3)")
    replay_caught(tmp_path, "ramp", "return")


@pytest.mark.once
def test_numpy_dtype_change_caught(tmp_path):
    pytest.importorskip("numpy")
    trace(tmp_path, NUMPY)
    edit(tmp_path, "np.arange(n) * 2", "(np.arange(n) * 2).astype(np.float64)")
    replay_caught(tmp_path, "ramp", "return")


@pytest.mark.once
def test_numpy_preserving_edit_passes(tmp_path):
    pytest.importorskip("numpy")
    trace(tmp_path, NUMPY)
    edit(tmp_path, "np.linspace(0.0, 1.0, n) ** 2", "np.square(np.linspace(0.0, 1.0, n))")
    edit(tmp_path, "np.arange(n) * 2", "np.arange(0, 2 * n, 2)")
    replay_ok(tmp_path)


# ------------------------------------------------ values that are not recorded


@pytest.mark.parametrize("make", ["threading.Lock()", "socket.socket()"])
def test_unpicklable_argument_skipped(tmp_path, make):
    src = f"""
        import socket, threading

        def use(resource, x):
            return x + 1

        if __name__ == "__main__":
            r = {make}
            print(use(r, 41))
            print("done")
        """
    write(tmp_path / "prog.py", src)
    plain = run(["prog.py"], tmp_path)
    r = trace(tmp_path)
    assert (r.returncode, r.stdout) == (plain.returncode, plain.stdout) == (0, "42\ndone\n")
    assert statuses(tmp_path / "t.trace", "use") == ["unpicklable"]
    rr = replay_ok(tmp_path)
    assert "could not be pickled" in rr.stderr, rr.stderr
    assert re.search(r"\b1 skipped\b", rr.stderr), rr.stderr


TOO_LARGE = """
def total(values):
    return sum(values)

def small(x):
    return x * 2

def main():
    print(total(list(range(10000))), small(4))

if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("how", ["cli", "api"])
def test_too_large_argument_skipped(tmp_path, how):
    """--max-value-bytes on the command line, or max_value_bytes= of the Tracer API."""
    if how == "cli":
        assert "--max-value-bytes" in retracer("trace", "--help", cwd=tmp_path).stdout
        r = trace(tmp_path, TOO_LARGE, opts=("--max-value-bytes", "2000"))
    else:
        write(tmp_path / "prog.py", TOO_LARGE.replace(
            "    main()", "    from retracer import Tracer\n"
                         "    with Tracer(output='t.trace', max_value_bytes=2000):\n"
                         "        main()"))
        r = run(["prog.py"], tmp_path)
        assert r.returncode == 0, r.stderr
    assert r.stdout == "49995000 8\n", r.stderr
    t = tmp_path / "t.trace"
    assert statuses(t, "total") == ["too_large"]
    assert statuses(t, "small") == ["ok"]
    rr = replay_ok(tmp_path)
    assert "over the size cap" in rr.stderr, rr.stderr
    assert "2 match" in rr.stderr and re.search(r"\b1 skipped\b", rr.stderr), rr.stderr


def test_password_argument_redacted(tmp_path):
    secret = "hunter2-Zq9xW7-unique"
    trace(tmp_path, f"""
        def login(user, password):
            return len(password) > 8

        def greet(user):
            return "hi " + user

        if __name__ == "__main__":
            print(login("bob", "{secret}"), greet("bob"))
        """)
    t = tmp_path / "t.trace"
    assert statuses(t, "login") == ["redacted"]
    con = sqlite3.connect(f"file:{t}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT c.args, c.result, c.args_after FROM captured_calls c "
                           "JOIN functions f ON f.fid = c.fid WHERE f.qualname = 'login'").fetchall()
    finally:
        con.close()
    assert rows == [(None, None, None)]
    # the trace keeps the program's own source (issue 11: replay can run the original
    # code), and the secret is a literal in it; no captured value holds it
    keys = [bytes.fromhex(k) for k in json.loads(con_meta(t, "sources")).values()]
    con = sqlite3.connect(f"file:{t}?mode=ro", uri=True)
    try:
        values = con.execute("SELECT data FROM blobs WHERE key NOT IN (%s)" % ",".join("?" * len(keys)),
                             keys).fetchall()
    finally:
        con.close()
    assert values, "the other calls' values are stored"
    for (data,) in values:
        assert secret.encode() not in data and secret.encode("utf-16-le") not in data
    for f in tmp_path.iterdir():  # the replay test file written next to the trace
        if f.is_file() and f.name not in ("prog.py", "t.trace"):
            data = f.read_bytes()
            assert secret.encode() not in data, f.name
            assert secret.encode("utf-16-le") not in data, f.name
    rr = replay_ok(tmp_path)
    assert "secret-looking" in rr.stderr, rr.stderr


# ---------------------------------------------------------------- nondeterminism


@pytest.mark.parametrize("source", [
    "random.random()",
    "random.randint(0, 10**12)",
    "time.time()",  # two replays a few ms apart: equal within math.isclose, not exactly
    "time.perf_counter() + 1.0",
])
def test_nondeterministic_call_marked_unstable(tmp_path, source):
    """Issue 11 changed this: tracing no longer replays anything (the trace keeps
    status ok); replay runs each call twice and shows the unstable one, with
    both values or what it reads, never as a mismatch."""
    trace(tmp_path, f"""
        import random, time

        def sample():
            return {source}

        def stable(x):
            return x + 1

        if __name__ == "__main__":
            print(sample() >= 0, stable(1))
        """)
    t = tmp_path / "t.trace"
    assert statuses(t, "sample") == ["ok"]  # tracing ran nothing again
    assert statuses(t, "stable") == ["ok"]
    r = replay_ok(tmp_path)
    assert "1 unstable" in r.stderr and "1 match" in r.stderr, r.stderr
    block = [b for b in _blocks(r.stdout) if b.startswith("UNSTABLE sample call #0")]
    assert block, r.stdout
    assert "stable (" not in r.stdout.split("replayed function")[0]   # no block for the stable one


def test_trace_check_stable_marks_unstable_calls(tmp_path):
    """trace --check-stable (opt-in) replays the calls, isolated, and marks the unstable ones."""
    r = trace(tmp_path, """
        import random

        def sample():
            return random.random()

        def stable(x):
            return x + 1

        if __name__ == "__main__":
            print(sample() >= 0, stable(1))
        """, quiet=False, stability_check=True)
    t = tmp_path / "t.trace"
    assert statuses(t, "sample") == ["unstable"]
    assert statuses(t, "stable") == ["ok"]
    assert "1 of 2 calls unstable" in r.stderr, r.stderr
    r = replay_ok(tmp_path)
    assert "1 unstable" in r.stderr and "1 match" in r.stderr, r.stderr


# ------------------------------------------------------------ replay test files


def test_replay_test_file(tmp_path):
    r = trace(tmp_path, PLAIN, quiet=False)
    m = re.search(r"replay tests written to (\S+)", r.stderr)
    assert m, r.stderr
    test_file = tmp_path / m.group(1)
    assert test_file.is_file() and test_file.parent == tmp_path  # next to the trace
    assert re.fullmatch(r"test_prog__replay_test_\d+\.py", test_file.name)
    head = test_file.read_text()[:600].lower()
    assert "generated" in head and "not meant for git" in head
    assert "not meant for git" in r.stderr

    p = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", test_file.name], tmp_path)
    assert p.returncode == 0 and "2 passed" in p.stdout, p.stdout + p.stderr

    # the replay command takes the test file in place of the trace
    rr = replay(tmp_path, test_file.name)
    assert rr.returncode == 0 and "2 match" in rr.stderr, rr.stdout + rr.stderr

    edit(tmp_path, "return a + b", "return a * b")
    p = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", test_file.name], tmp_path)
    assert p.returncode == 1 and "2 failed" in p.stdout, p.stdout + p.stderr
    assert "add" in p.stdout and "behaves differently" in p.stdout
    rr = replay(tmp_path, test_file.name)
    assert rr.returncode == 1 and "MISMATCH add" in rr.stdout, rr.stdout + rr.stderr


@pytest.mark.once
def test_replay_test_file_goes_into_tests_dir(tmp_path):
    (tmp_path / "tests").mkdir()
    r = trace(tmp_path, PLAIN, quiet=False)
    files = list((tmp_path / "tests").glob("test_prog__replay_test_*.py"))
    assert len(files) == 1, r.stderr
    assert os.path.join("tests", files[0].name) in r.stderr
    assert not list(tmp_path.glob("test_*.py"))
    p = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(files[0])], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    edit(tmp_path, "return a + b", "return a - b")
    p = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(files[0])], tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr


def test_replay_test_file_skips_what_is_not_replayable(tmp_path):
    trace(tmp_path, stability_check=True, src="""
        import random, threading

        def noisy():
            return random.random()

        def locked(lock, x):
            return x

        def closure(x):
            def inner():
                return x
            return inner()

        if __name__ == "__main__":
            print(noisy() < 1, locked(threading.Lock(), 1), closure(2))
        """)
    (test_file,) = tmp_path.glob("test_prog__replay_test_*.py")
    p = run(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", test_file.name], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 passed, 3 skipped" in p.stdout, p.stdout
    assert "unstable" in p.stdout and "could not be pickled" in p.stdout and "nested" in p.stdout


@pytest.mark.once
def test_bench_prints_a_table(tmp_path):
    trace(tmp_path, METHODS)
    r = replay(tmp_path, "--bench", "t.trace")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("function"))
    assert "min/call" in lines[header] and "median/call" in lines[header]
    table = "\n".join(lines[header + 1:])
    for name in ("Counter.bump", "Counter.from_text", "Counter.clamp", "Counter.doubled",
                 "Counter.__init__", "scale"):
        assert name in table, table


# ------------------------------------------------------------------ workloads


WORKLOAD_ARGS = {
    "calls_fib": ["15"],
    "oop_sim": ["10", "5"],
    "text_pipeline": ["200"],
    "json_roundtrip": ["300"],
    "async_jobs": ["100"],
    "threads_work": ["200"],
    "exceptions_deep": ["50"],
}


# on every version: recursion, coroutines, threads and exceptions (what differs between
# the versions' hooks and frames); the plain-object and text workloads once
ONCE_WORKLOADS = {"oop_sim", "text_pipeline", "json_roundtrip"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.once) if n in ONCE_WORKLOADS else n
                                  for n in WORKLOAD_ARGS])
def test_workload_replay_tests_pass(tmp_path, workloads, name):
    shutil.copy(workloads / f"{name}.py", tmp_path / f"{name}.py")
    args = WORKLOAD_ARGS[name]
    plain = run([f"{name}.py", *args], tmp_path)
    # 40 calls kept per function (not 100): every captured call is still replayed three
    # times here (the stability check, pytest, retracer replay), each in processes of its own
    r = trace(tmp_path, prog=f"{name}.py", args=args, stability_check=True, opts=["--max-function-count", "40"])
    assert r.stdout == plain.stdout
    (test_file,) = tmp_path.glob(f"test_{name}__replay_test_*.py")
    p = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", test_file.name], tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert re.search(r"\b\d+ passed\b", p.stdout), p.stdout
    rr = replay_ok(tmp_path)
    # nothing deterministic in these workloads may be called unstable
    unstable = {q for q, s, _ in captured(tmp_path / "t.trace") if s == "unstable"}
    assert not unstable, (unstable, rr.stderr)


# ------------------------------------------------------------- input errors


def _one_line(text: str) -> str:
    line = one_line(text)
    assert line.startswith("retracer: "), text
    return line


def test_missing_trace_exit_2(tmp_path):
    r = replay(tmp_path, "missing.trace")
    assert r.returncode == 2 and r.stdout == ""
    assert "missing.trace" in _one_line(r.stderr)


def test_missing_test_file_exit_2(tmp_path):
    r = replay(tmp_path, "test_missing__replay_test_0.py")
    assert r.returncode == 2 and r.stdout == ""
    assert "test_missing__replay_test_0.py" in _one_line(r.stderr)


def test_python_file_that_is_not_a_replay_test_exit_2(tmp_path):
    write(tmp_path / "other.py", PLAIN)
    r = replay(tmp_path, "other.py")
    assert r.returncode == 2 and r.stdout == ""
    line = _one_line(r.stderr)
    assert "other.py" in line and "not a replay test" in line


def test_trace_without_captured_calls(tmp_path):
    trace(tmp_path, PLAIN, opts=("--no-capture",))
    assert not list(tmp_path.glob("test_*.py"))  # no replay tests for nothing
    r = replay(tmp_path, "t.trace")
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    assert "--no-capture" in _one_line(r.stderr)


# ------------------------------------------------------- which calls are kept

SHAPES = """
def f(x):
    return x if x is None else (len(x) if isinstance(x, list) else x * 2)

def g(x):
    return x

if __name__ == "__main__":
    for i in range(1, 3001):
        if i == 500:
            f(None)
        elif i == 700:
            f(-5)
        elif i == 2900:
            f([0] * 100)   # a third new shape: no budget left for it
        else:
            f(i)
        g(i)
"""


def test_budget_keeps_calls_with_new_input_shapes(tmp_path):
    """--max-function-count 8 keeps the first 6 calls and 2 later calls whose
    arguments have a shape not seen before (None, a negative number), so a
    rare input is represented; they replay like the others."""
    trace(tmp_path, SHAPES, opts=("--max-function-count", "8"))
    import json
    rows = [(json.loads(i), s) for q, s, i in captured(tmp_path / "t.trace") if q == "f"]
    assert len(rows) == 8, rows
    assert all(s == "ok" for _, s in rows)
    assert [i.get("selected") for i, _ in rows] == [None] * 6 + ["shape", "shape"]
    from retracer.tracefile import TraceReader
    import pickle
    with TraceReader(str(tmp_path / "t.trace")) as r:
        fids = {f.qualname: fid for fid, f in r.functions.items()}
        args = [pickle.loads(c.args)["x"] for c in r.iter_captured() if c.fid == fids["f"]]
    assert args == [1, 2, 3, 4, 5, 6, None, -5]
    # g's inputs all have one shape: its first 6 calls only
    assert len(statuses(tmp_path / "t.trace", "g")) == 6
    replay_ok(tmp_path)


def test_captured_call_names_its_place_in_the_call_stream(tmp_path):
    """info.stream_call is the call's number in its thread's call stream: the
    ENTER event with that number is a call of the same function."""
    trace(tmp_path, SHAPES, opts=("--max-function-count", "4"))
    from retracer.tracefile import TraceReader
    from streamdecode import iter_events, ENTER, ENTER_CONT
    import json
    with TraceReader(str(tmp_path / "t.trace")) as r:
        calls = [c for c in r.iter_captured()]
        fid_at = [fid for tag, fid, _ in iter_events(r, 0) if tag in (ENTER, ENTER_CONT)]
    assert calls
    for c in calls:
        n = json.loads(c.info)["stream_call"]
        assert fid_at[n] == c.fid, (n, c)
