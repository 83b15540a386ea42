"""The traced program behaves as it does without retracer (SPEC: "Behaviour that
users rely on"), and retracer's own errors are one line.

Every test drives the command line as a user would, in a subprocess
(``python -m retracer trace -q -o OUT ...``), and compares with the same program
run by plain ``python``. The programs live in ``tests/programs/behaviour_*.py``
and are copied into a temporary directory before they run.
"""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import List, Optional, Sequence

import pytest

from retracer.tracefile import TraceReader

import helpers
from helpers import (POSIX, TIMEOUT, finish, kill_group, one_line_error as assert_one_line_error, popen, retracer,
                     run_python, show, trace_options)

PROGRAMS = Path(__file__).resolve().parent / "programs"


def trace(out: Path, *prog, **kw) -> subprocess.CompletedProcess:
    """helpers.trace, unchecked: the programs here fail on purpose, the tests compare
    their exit status and output with plain python's themselves."""
    return helpers.trace(out, *prog, check=False, **kw)


# --------------------------------------------------------------------- fixtures


@pytest.fixture
def prog_dir(tmp_path) -> Path:
    d = tmp_path / "prog"
    d.mkdir()
    return d


@pytest.fixture
def out_dir(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


# ---------------------------------------------------------------------- helpers


def copy_program(name: str, dest: Path) -> str:
    """Copy tests/programs/<name> into dest; return its file name (relative)."""
    shutil.copy(PROGRAMS / name, dest / name)
    return name


def assert_same(traced: subprocess.CompletedProcess, plain: subprocess.CompletedProcess) -> None:
    assert traced.stdout == plain.stdout, show(traced)
    assert traced.stderr == plain.stderr, show(traced)
    assert traced.returncode == plain.returncode, show(traced)


def leftovers(directory: Path) -> List[str]:
    """Temporary files of the trace writer, the engine's spool, the capture spool:
    all hidden (.out.trace.tmp-*, .out.trace.spool-*, ...)."""
    return sorted(n for n in os.listdir(directory)
                  if n.startswith(".") or ".tmp-" in n or ".spool-" in n)


def function_calls(reader: TraceReader, name: str, filename: Optional[str] = None) -> int:
    """Total profiled calls of the Python functions called `name` (defined in a
    file of that base name, if given)."""
    fids = {f.fid for f in reader.functions.values() if f.kind == "py" and f.name == name
            and (filename is None or os.path.basename(f.filename) == filename)}
    return sum(s.calls for s in reader.func_stats() if s.fid in fids)


def wait_ready(p: subprocess.Popen) -> None:
    """Wait (at most TIMEOUT) for the program's first stdout line, "ready"."""
    got: List[str] = []
    t = threading.Thread(target=lambda: got.append(p.stdout.readline()), daemon=True)
    t.start()
    t.join(TIMEOUT)
    if not got or got[0].strip() != "ready":
        kill_group(p)
        out, err = p.communicate(timeout=TIMEOUT)
        pytest.fail(f"program did not print 'ready': got {got!r}\nstdout={out}\nstderr={err}")


SIGNALLED_TIMEOUT = 60  # seconds for a program to end once signalled (not TIMEOUT: a lost signal would cost minutes)


def signal_after_ready(args: Sequence[str], cwd, sig: int) -> subprocess.CompletedProcess:
    p = popen([sys.executable, *args], cwd)
    try:
        wait_ready(p)
        p.send_signal(sig)  # to the program's process only, like kill PID
    except BaseException:
        kill_group(p)
        raise
    return finish(p, SIGNALLED_TIMEOUT)


@pytest.fixture
def real_trace(prog_dir, out_dir) -> Path:
    """A trace made by `retracer trace` with this test's key."""
    name = copy_program("behaviour_streams.py", prog_dir)
    out = out_dir / "real.trace"
    cp = trace(out, name, cwd=prog_dir)
    assert cp.returncode == 0, show(cp)
    assert out.is_file()
    return out


# ------------------------------------------------ 1. streams, argv, __main__


def test_streams_argv_and_main_module_identical_to_python(prog_dir, out_dir):
    name = copy_program("behaviour_streams.py", prog_dir)
    args = [name, "--foo", "-x", "1", "plain arg"]
    out = out_dir / "out.trace"
    traced = trace(out, *args, cwd=prog_dir)
    plain = run_python(args, cwd=prog_dir)
    assert plain.returncode == 0, show(plain)
    assert_same(traced, plain)
    # the program saw what it expects (and the comparison above is not vacuous)
    assert "argv: ['behaviour_streams.py', '--foo', '-x', '1', 'plain arg']" in traced.stdout
    assert "name: '__main__'" in traced.stdout
    assert "spec: None" in traced.stdout
    assert "main_is_this: True" in traced.stdout
    assert f"path0: {str(prog_dir)!r}" in traced.stdout
    assert "to stderr, line 1\nto stderr, line 2\n" == traced.stderr
    assert "builtins: 'module'" in traced.stdout  # as in python's __main__, not a dict
    with TraceReader(out) as r:
        assert r.meta["exit_status"] == 0
        assert r.meta["stopped_by"] in ("end", "exit")
        assert function_calls(r, "describe") == 1


def test_traced_program_runs_exactly_once(prog_dir, out_dir):
    """A script's body (not guarded by `if __name__ == "__main__":`) has side
    effects: tracing must run it once, as python does -- nothing retracer does
    after the run (checking or replaying the captured calls) may run it again."""
    name = copy_program("behaviour_runs_once.py", prog_dir)
    log = prog_dir / "runs.log"
    plain = run_python([name], cwd=prog_dir)
    assert plain.returncode == 0, show(plain)
    assert log.read_text() == "ran\n"
    log.unlink()
    out = out_dir / "out.trace"
    traced = trace(out, name, cwd=prog_dir, stability_check=True)  # the check replays calls: not the program
    assert_same(traced, plain)
    assert log.read_text() == "ran\n", "the program ran more than once under retracer trace"
    with TraceReader(out) as r:
        assert function_calls(r, "log_run") == 1


def test_script_given_by_absolute_path_from_another_directory(prog_dir, out_dir, tmp_path):
    name = copy_program("behaviour_streams.py", prog_dir)
    script = str(prog_dir / name)
    traced = trace(out_dir / "out.trace", script, "-o", "x", cwd=tmp_path)
    plain = run_python([script, "-o", "x"], cwd=tmp_path)
    assert_same(traced, plain)
    assert f"path0: {str(prog_dir)!r}" in traced.stdout


def test_double_dash_separates_retracer_options_from_the_script(prog_dir, out_dir):
    name = copy_program("behaviour_streams.py", prog_dir)
    out = out_dir / "out.trace"
    traced = retracer("trace", *trace_options(out), "--", name, "-q", "-o", "y", cwd=prog_dir)
    plain = run_python([name, "-q", "-o", "y"], cwd=prog_dir)
    assert_same(traced, plain)
    assert out.is_file()


# ------------------------------------------------------------- 2. sys.exit


@pytest.mark.parametrize("mode, status", [("int", 3), ("none", 0), ("7", 7)])
def test_sys_exit_status_is_honoured(prog_dir, out_dir, mode, status):
    name = copy_program("behaviour_exit.py", prog_dir)
    out = out_dir / "out.trace"
    traced = trace(out, name, mode, cwd=prog_dir)
    plain = run_python([name, mode], cwd=prog_dir)
    assert plain.returncode == status
    assert_same(traced, plain)
    with TraceReader(out) as r:
        assert r.meta["exit_status"] == status
        assert r.meta["stopped_by"] == "exit"
        assert r.meta["complete"] is True
        assert function_calls(r, "leave") == 1
    assert leftovers(out_dir) == []


def test_sys_exit_with_message_prints_it_and_exits_1(prog_dir, out_dir):
    name = copy_program("behaviour_exit.py", prog_dir)
    out = out_dir / "out.trace"
    traced = trace(out, name, "message", cwd=prog_dir)
    plain = run_python([name, "message"], cwd=prog_dir)
    assert plain.returncode == 1
    assert_same(traced, plain)
    assert traced.stderr == "message: something went wrong\n"
    with TraceReader(out) as r:
        assert r.meta["exit_status"] == 1
    assert leftovers(out_dir) == []


# -------------------------------------------------- 3. uncaught exceptions


@pytest.mark.parametrize("mode, last_line", [
    ("value", "ValueError: bad value 42"),
    ("chained", "RuntimeError: wrapped"),
])
def test_uncaught_exception_same_traceback_and_status(prog_dir, out_dir, mode, last_line):
    name = copy_program("behaviour_raise.py", prog_dir)
    out = out_dir / "out.trace"
    traced = trace(out, name, mode, cwd=prog_dir)
    plain = run_python([name, mode], cwd=prog_dir)
    assert plain.returncode == 1
    assert_same(traced, plain)
    assert traced.stderr.startswith("Traceback (most recent call last):\n")
    assert traced.stderr.rstrip().endswith(last_line)
    assert "retracer" not in traced.stderr  # none of retracer's frames
    with TraceReader(out) as r:
        assert r.meta["stopped_by"] == "exception"
        assert r.meta["exit_status"] == 1
        assert r.meta["complete"] is True
        assert function_calls(r, "inner") == 1
        assert function_calls(r, "outer") == 1
    assert leftovers(out_dir) == []


def test_syntax_error_in_script_like_python(prog_dir, out_dir):
    (prog_dir / "bad.py").write_text("print('hi')\ndef f(:\n    pass\n")
    traced = trace(out_dir / "out.trace", "bad.py", cwd=prog_dir)
    plain = run_python(["bad.py"], cwd=prog_dir)
    assert plain.returncode == 1
    assert traced.returncode == plain.returncode, show(traced)
    assert traced.stdout == plain.stdout == ""
    assert traced.stderr.splitlines()[-1] == plain.stderr.splitlines()[-1], show(traced)
    assert "SyntaxError" in traced.stderr
    assert "retracer" not in traced.stderr, show(traced)


CONSOLE_SCRIPT = Path(sys.executable).parent / ("retracer.exe" if os.name == "nt" else "retracer")


@pytest.mark.parametrize("launcher", ["python -m retracer", "console script"])
def test_recursion_depth_and_recursion_error_like_python(prog_dir, out_dir, launcher):
    """retracer's own frames below the program must not eat its recursion budget:
    a program that fits under the limit with python fits under retracer, and the
    RecursionError traceback (with its "repeated N more times") is the same."""
    name = copy_program("behaviour_recursion.py", prog_dir)
    out = out_dir / "out.trace"
    if launcher == "python -m retracer":
        traced = trace(out, name, cwd=prog_dir)
    else:
        if not CONSOLE_SCRIPT.is_file():
            pytest.skip(f"no console script {CONSOLE_SCRIPT}")
        traced = finish(popen([CONSOLE_SCRIPT, "trace", *trace_options(out), name], cwd=prog_dir))
    plain = run_python([name], cwd=prog_dir)
    assert plain.returncode == 1
    assert "RecursionError" in plain.stderr
    assert_same(traced, plain)
    with TraceReader(out) as r:
        assert r.meta["stopped_by"] == "exception"
        assert function_calls(r, "boom") > 900


# --------------------------------------------------------- 4. KeyboardInterrupt


@pytest.mark.skipif(not POSIX, reason="death by SIGINT is POSIX")
def test_keyboard_interrupt_raised_by_program(prog_dir, out_dir):
    name = copy_program("behaviour_raise.py", prog_dir)
    out = out_dir / "out.trace"
    traced = trace(out, name, "kbd", cwd=prog_dir)
    plain = run_python([name, "kbd"], cwd=prog_dir)
    assert plain.returncode == -signal.SIGINT
    assert_same(traced, plain)
    assert traced.stderr.rstrip().endswith("KeyboardInterrupt")
    with TraceReader(out) as r:
        assert r.meta["stopped_by"] == "exception"
        assert r.meta["complete"] is True
        assert function_calls(r, "interrupt") == 1
    assert leftovers(out_dir) == []


@pytest.mark.skipif(not POSIX, reason="signals")
def test_real_sigint_to_looping_program(prog_dir, out_dir):
    name = copy_program("behaviour_loop.py", prog_dir)
    out = out_dir / "out.trace"
    plain = signal_after_ready([name], prog_dir, signal.SIGINT)
    traced = signal_after_ready(["-m", "retracer", "trace", *trace_options(out), name],
                                prog_dir, signal.SIGINT)
    assert plain.returncode == -signal.SIGINT, show(plain)
    assert traced.returncode == plain.returncode, show(traced)
    assert traced.stdout == plain.stdout == ""  # "ready" was read by wait_ready
    assert traced.stderr.rstrip().endswith("KeyboardInterrupt"), show(traced)
    assert "retracer" not in traced.stderr, show(traced)
    with TraceReader(out) as r:
        assert r.meta["complete"] is True
        assert function_calls(r, "spin") >= 10
    assert leftovers(out_dir) == []


# ------------------------------------------------------------------ 5. SIGTERM


@pytest.mark.skipif(not POSIX, reason="signals")
def test_sigterm_to_looping_program_leaves_a_complete_trace(prog_dir, out_dir):
    name = copy_program("behaviour_loop.py", prog_dir)
    out = out_dir / "out.trace"
    plain = signal_after_ready([name], prog_dir, signal.SIGTERM)
    traced = signal_after_ready(["-m", "retracer", "trace", *trace_options(out), name],
                                prog_dir, signal.SIGTERM)
    assert plain.returncode == -signal.SIGTERM, show(plain)
    assert traced.returncode == plain.returncode, show(traced)
    assert traced.stdout == plain.stdout
    assert traced.stderr == plain.stderr == "", show(traced)
    assert out.is_file()
    with TraceReader(out) as r:
        assert r.meta["stopped_by"] == "signal"
        assert r.meta["complete"] is True
        assert function_calls(r, "spin") >= 10
    assert leftovers(out_dir) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the guard's timer is Linux's (SIGEV_THREAD_ID)")
def test_sigterm_the_main_thread_missed_still_ends_the_program(prog_dir, out_dir):
    # a pool worker terminated just before it blocked waiting for its next task
    # never ended (the handler stayed pending): retracer sends the signal again
    # to the main thread until its handler runs (csrc/rt_sigguard.c)
    name = copy_program("behaviour_term_missed.py", prog_dir)
    out = out_dir / "out.trace"
    plain = finish(popen([sys.executable, name], prog_dir), SIGNALLED_TIMEOUT)
    traced = finish(popen([sys.executable, "-m", "retracer", "trace", *trace_options(out), name], prog_dir),
                    SIGNALLED_TIMEOUT)
    assert plain.returncode == -signal.SIGTERM, show(plain)
    assert traced.returncode == plain.returncode, show(traced)
    assert traced.stdout == plain.stdout == "waiting\n"
    assert traced.stderr == plain.stderr == "", show(traced)
    with TraceReader(out) as r:
        assert r.meta["stopped_by"] == "signal"
        assert r.meta["complete"] is True
        assert function_calls(r, "spin") == 10
    assert leftovers(out_dir) == []


@pytest.mark.skipif(not POSIX, reason="signals")
@pytest.mark.parametrize("opts", [(), ("--no-capture",)], ids=["capture", "no-capture"])
def test_program_with_its_own_sigterm_handler_keeps_it(prog_dir, out_dir, opts):
    name = copy_program("behaviour_term_handler.py", prog_dir)
    out = out_dir / "out.trace"
    plain = signal_after_ready([name], prog_dir, signal.SIGTERM)
    traced = signal_after_ready(["-m", "retracer", "trace", *trace_options(out, opts), name],
                                prog_dir, signal.SIGTERM)
    assert plain.returncode == 4, show(plain)
    assert_same(traced, plain)
    with TraceReader(out) as r:
        assert r.meta["exit_status"] == 4
        # with capture, Python may run the handler while retracer captures a call of
        # spin() (README: not in the profile then); without capture it always is
        handled = function_calls(r, "handler")
        assert handled == 1 if opts else handled in (0, 1), handled
    assert leftovers(out_dir) == []


def test_threads_and_atexit_like_python(prog_dir, out_dir):
    name = copy_program("behaviour_threads.py", prog_dir)
    out = out_dir / "out.trace"
    traced = trace(out, name, cwd=prog_dir)
    plain = run_python([name], cwd=prog_dir)
    assert plain.returncode == 0, show(plain)
    assert_same(traced, plain)
    assert plain.stdout == "main done\nlate thread done\natexit ran\n"
    assert "KeyError: 'in thread'" in traced.stderr
    with TraceReader(out) as r:
        assert function_calls(r, "late") == 1  # the thread still running at the end is traced
        assert function_calls(r, "bad") == 1
        assert {"MainThread", "Late", "Bad"} <= {t.name for t in r.threads}


# ------------------------------------------------------------------- 6. -m module


MODULE_SOURCE = '''\
import sys
print("globals", sorted(globals()), type(__builtins__).__name__)
print("argv", sys.argv)
print("path0", sys.path[0])
print("name", __name__)
print("file", __file__)
print("package", repr(__package__))
print("spec", __spec__.name if __spec__ else None)
print("main_is_this", sys.modules["__main__"].__dict__ is globals())
print("err line", file=sys.stderr)
'''


@pytest.fixture
def package_dir(tmp_path) -> Path:
    d = tmp_path / "pkgdir"
    (d / "mypkg").mkdir(parents=True)
    (d / "mymod.py").write_text(MODULE_SOURCE)
    # while the package is imported, python -m has sys.argv[0] == "-m"
    (d / "mypkg" / "__init__.py").write_text("import sys\nprint('init argv', sys.argv)\n")
    (d / "mypkg" / "tool.py").write_text(MODULE_SOURCE)
    (d / "mypkg" / "__main__.py").write_text(MODULE_SOURCE)
    return d


@pytest.mark.parametrize("module", ["mymod", "mypkg.tool", "mypkg"])
def test_dash_m_module_identical_to_python_dash_m(package_dir, out_dir, module):
    args = ["--foo", "-x", "1", "-m", "other"]
    out = out_dir / "out.trace"
    traced = trace(out, "-m", module, *args, cwd=package_dir)
    plain = run_python(["-m", module, *args], cwd=package_dir)
    assert plain.returncode == 0, show(plain)
    assert_same(traced, plain)
    assert "name __main__" in traced.stdout
    assert "main_is_this True" in traced.stdout
    assert f"path0 {package_dir}" in traced.stdout
    assert out.is_file()
    with TraceReader(out) as r:
        assert r.meta["exit_status"] == 0


APP_MAIN = '''\
import sys
print("argv", sys.argv)
print("path0", sys.path[0])
print("name", __name__, "file", __file__, "package", repr(__package__))
print("spec", __spec__ and __spec__.name)
print("globals", sorted(globals()), type(__builtins__).__name__)
print("main_is_this", sys.modules["__main__"].__dict__ is globals())


def fail():
    raise ValueError("from the app")


if sys.argv[1:] == ["fail"]:
    fail()
'''


@pytest.mark.parametrize("kind", ["dir", "zip"])
@pytest.mark.parametrize("arg", ["ok", "fail"])
def test_directory_or_zip_with_main_like_python(tmp_path, out_dir, kind, arg):
    """`python app/` and `python app.zip` run app's __main__.py."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "__main__.py").write_text(APP_MAIN)
    target = "app"
    if kind == "zip":
        import zipfile
        with zipfile.ZipFile(tmp_path / "app.pyz", "w") as z:
            z.write(app / "__main__.py", "__main__.py")
        shutil.rmtree(app)
        target = "app.pyz"
    out = out_dir / "out.trace"
    traced = trace(out, target, arg, cwd=tmp_path)
    plain = run_python([target, arg], cwd=tmp_path)
    assert plain.returncode == (1 if arg == "fail" else 0), show(plain)
    assert_same(traced, plain)
    with TraceReader(out) as r:
        assert r.meta["exit_status"] == plain.returncode


# ------------------------------------------------------------------ 7. -m pytest


PASSING_TEST = '''\
def helper(x):
    return x * 2


def test_helper():
    assert helper(21) == 42
'''

FAILING_TEST = '''\
def helper(x):
    return x * 2


def test_helper_fails():
    assert helper(2) == 5
'''


def test_dash_m_pytest_passing_session(tmp_path, out_dir):
    proj = tmp_path / "proj"
    (proj / "checks").mkdir(parents=True)
    (proj / "checks" / "test_sample.py").write_text(PASSING_TEST)
    pytest_args = ["-q", "-p", "no:cacheprovider", "checks"]
    out = out_dir / "out.trace"
    plain = run_python(["-m", "pytest", *pytest_args], cwd=proj)
    traced = trace(out, "-m", "pytest", *pytest_args, cwd=proj)
    assert plain.returncode == 0, show(plain)
    assert traced.returncode == plain.returncode, show(traced)
    assert "1 passed" in traced.stdout, show(traced)
    with TraceReader(out) as r:
        assert function_calls(r, "helper", "test_sample.py") == 1
        assert function_calls(r, "test_helper", "test_sample.py") == 1
        assert r.meta["exit_status"] == 0


def test_dash_m_pytest_failing_session(tmp_path, out_dir):
    proj = tmp_path / "proj"
    (proj / "checks").mkdir(parents=True)
    (proj / "checks" / "test_sample.py").write_text(FAILING_TEST)
    pytest_args = ["-q", "-p", "no:cacheprovider", "checks"]
    out = out_dir / "out.trace"
    plain = run_python(["-m", "pytest", *pytest_args], cwd=proj)
    traced = trace(out, "-m", "pytest", *pytest_args, cwd=proj)
    assert plain.returncode == 1, show(plain)
    assert traced.returncode == plain.returncode, show(traced)
    assert "1 failed" in traced.stdout, show(traced)
    with TraceReader(out) as r:
        assert r.meta["exit_status"] == 1
        assert function_calls(r, "helper", "test_sample.py") == 1
        assert function_calls(r, "test_helper_fails", "test_sample.py") == 1


# ------------------------------------------------------------------ forked children


@pytest.mark.parametrize("capture", [True, False], ids=["capture", "no-capture"])
def test_the_engines_memory_is_not_the_programs_in_tracemalloc(prog_dir, out_dir, capture):
    """The engine allocates with the C library, not PyMem_Raw*: a program that measures
    what its calls leave allocated with tracemalloc sees what it sees without retracer
    (a 20,000-call loop left about 530 KB of the engine's buffers in it)."""
    name = copy_program("behaviour_tracemalloc.py", prog_dir)
    plain = run_python([name], cwd=prog_dir)
    assert plain.stdout == "retained less than 64 KiB: True\n", show(plain)
    traced = trace(out_dir / "out.trace", name, cwd=prog_dir, opts=[] if capture else ["--no-capture"])
    assert_same(traced, plain)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("follow", [False, True], ids=["no-follow", "follow"])
@pytest.mark.parametrize("mode", ["pool", "fork"])
def test_forked_children_do_not_touch_the_parents_trace(prog_dir, out_dir, mode, follow):
    """Children made by fork (multiprocessing's default on Linux) never write into the
    parent's part of the trace: with --no-follow they run on untraced, and the trace is
    the parent's alone; followed, their calls are theirs (their own processes). The
    exit status and output are python's either way."""
    name = copy_program("behaviour_fork.py", prog_dir)
    out = out_dir / "out.trace"
    traced = trace(out, name, mode, cwd=prog_dir, opts=[] if follow else ["--no-follow"])
    plain = run_python([name, mode], cwd=prog_dir)
    assert plain.returncode == 0, show(plain)
    assert_same(traced, plain)
    assert traced.stdout.endswith("done\n")
    if mode == "fork":
        assert "child exit 5" in traced.stdout
    with TraceReader(out) as r:
        assert r.meta["stopped_by"] in ("end", "exit")
        assert r.meta["exit_status"] == 0
        assert r.meta["complete"] is True
        assert len(r.processes) == (1 + (2 if mode == "pool" else 1) if follow else 1)
        assert function_calls(r, "parent_side") == 2
        assert function_calls(r, "work") == (4 if mode == "pool" else 1) * follow
        r.select_processes([0])  # the parent: none of the children's calls
        assert function_calls(r, "work") == 0
        from streamdecode import ENTER, iter_events
        fids = {f.fid for f in r.functions.values() if f.name == "parent_side"}
        entered = sum(1 for t in r.threads for tag, fid, _ in iter_events(r, t.thread_idx)
                      if tag == ENTER and fid in fids)
        assert entered == 2
    assert leftovers(out_dir) == []


# ------------------------------------------------------------------- 8. errors


def test_missing_script_is_one_line_error(tmp_path, out_dir):
    out = out_dir / "out.trace"
    cp = trace(out, "no_such_script.py", cwd=tmp_path)
    assert_one_line_error(cp, "no_such_script.py")
    assert cp.stdout == ""
    assert os.listdir(out_dir) == []


def test_output_in_missing_directory_is_created(prog_dir, tmp_path):
    """The trace's directory is created (README, Configuration: output = "traces/run.trace")."""
    name = copy_program("behaviour_streams.py", prog_dir)
    out = tmp_path / "does" / "not" / "exist" / "out.trace"
    cp = trace(out, name, cwd=prog_dir)
    assert cp.returncode == 0 and out.is_file(), cp.stderr


def test_output_directory_that_cannot_be_made_is_one_line_error(prog_dir, tmp_path):
    name = copy_program("behaviour_streams.py", prog_dir)
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "sub" / "out.trace"   # below a regular file: no directory can be made
    cp = trace(out, name, cwd=prog_dir)
    line = assert_one_line_error(cp)
    assert str(out.parent) in line
    assert cp.stdout == ""  # the program did not run


def test_output_that_is_a_directory_is_one_line_error(prog_dir, out_dir):
    name = copy_program("behaviour_streams.py", prog_dir)
    cp = trace(out_dir, name, cwd=prog_dir)
    assert_one_line_error(cp, str(out_dir))
    assert cp.stdout == ""


def test_profile_of_missing_file(tmp_path):
    missing = tmp_path / "missing.trace"
    assert_one_line_error(retracer("profile", str(missing)), str(missing))


def test_profile_of_text_file(tmp_path):
    text = tmp_path / "notes.trace"
    text.write_text("this is not a trace\n" * 20)
    assert_one_line_error(retracer("profile", str(text)), str(text), "not a retracer trace")


def test_profile_of_truncated_trace(real_trace, tmp_path):
    data = real_trace.read_bytes()
    cut = tmp_path / "cut.trace"
    cut.write_bytes(data[: len(data) // 2])
    assert_one_line_error(retracer("profile", str(cut)), str(cut))
    # --trust does not make a broken file readable either
    assert_one_line_error(retracer("profile", "--trust", str(cut)), str(cut))


def test_profile_of_foreign_sqlite_database(tmp_path):
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE people (name TEXT, age INTEGER)")
    conn.execute("INSERT INTO people VALUES ('ada', 36)")
    conn.commit()
    conn.close()
    assert_one_line_error(retracer("profile", str(db)), str(db), "not a retracer trace")
    # a foreign database that happens to have a `meta` table
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('format', 'something-else')")
    conn.commit()
    conn.close()
    assert_one_line_error(retracer("profile", str(db)), str(db), "not a retracer trace")


def test_profile_of_tampered_trace_refused_unless_trusted(real_trace):
    ok = retracer("profile", str(real_trace))
    assert ok.returncode == 0, show(ok)
    assert "describe" in ok.stdout
    conn = sqlite3.connect(real_trace)
    n = conn.execute("UPDATE func_stats SET calls = calls + 1 "
                     "WHERE fid = (SELECT MIN(fid) FROM func_stats)").rowcount
    conn.commit()
    conn.close()
    assert n == 1
    assert_one_line_error(retracer("profile", str(real_trace)), str(real_trace), "--trust")
    trusted = retracer("profile", "--trust", str(real_trace))
    assert trusted.returncode == 0, show(trusted)
    assert "describe" in trusted.stdout
    assert "Traceback" not in trusted.stderr


def test_trace_signed_with_another_users_key_is_refused(prog_dir, out_dir, tmp_path):
    name = copy_program("behaviour_streams.py", prog_dir)
    other_cfg = tmp_path / "other-user-config"
    other_env = dict(os.environ, RETRACER_CONFIG_DIR=str(other_cfg))
    out = out_dir / "theirs.trace"
    cp = trace(out, name, cwd=prog_dir, env=other_env)
    assert cp.returncode == 0, show(cp)
    assert (other_cfg / "key").is_file()
    # its author reads it fine
    theirs = retracer("profile", str(out), env=other_env)
    assert theirs.returncode == 0, show(theirs)
    # this user (the autouse config dir) is refused, with one line
    assert_one_line_error(retracer("profile", str(out)), str(out), "--trust")
    mine = retracer("profile", "--trust", str(out))
    assert mine.returncode == 0, show(mine)


# -------------------------------------------------------------- 9. atomic write


def test_no_temporary_files_remain_after_a_run(prog_dir, out_dir):
    name = copy_program("behaviour_streams.py", prog_dir)
    cp = trace(out_dir / "out.trace", name, cwd=prog_dir)
    assert cp.returncode == 0, show(cp)
    assert (out_dir / "out.trace").is_file()
    assert leftovers(out_dir) == []
    assert leftovers(prog_dir) == []


def test_failed_program_leaves_no_temporary_files_next_to_existing_trace(prog_dir, out_dir):
    name = copy_program("behaviour_raise.py", prog_dir)
    out = out_dir / "out.trace"
    out.write_bytes(b"previous content")
    cp = trace(out, name, "value", cwd=prog_dir)
    assert cp.returncode == 1, show(cp)
    assert leftovers(out_dir) == []
    with TraceReader(out) as r:  # replaced as a whole by a complete trace
        assert r.meta["stopped_by"] == "exception"


# ------------------------------------------------------------------ 10. timeout


def test_timeout_stops_tracing_but_not_the_program(prog_dir, out_dir):
    name = copy_program("behaviour_slow.py", prog_dir)
    out = out_dir / "out.trace"
    traced = trace(out, name, cwd=prog_dir, opts=["--timeout", "0.5"])
    plain = run_python([name], cwd=prog_dir)
    assert plain.returncode == 0
    assert_same(traced, plain)
    assert traced.stdout.endswith("done\n")
    with TraceReader(out) as r:
        assert r.meta["stopped_by"] == "timeout"
        assert r.meta["complete"] is True
        # some steps were traced, not all 60 of them
        assert 1 <= function_calls(r, "step") < 60
    assert leftovers(out_dir) == []


# --------------------------------------------------------------- 11. Tracer API


def run_api(prog_dir, mode, out=None, cwd=None):
    name = copy_program("behaviour_api.py", prog_dir)
    args = [str(prog_dir / name), mode] + ([str(out)] if out is not None else [])
    return run_python(args, cwd=cwd or prog_dir)


def test_api_context_manager(prog_dir, out_dir):
    out = out_dir / "with.trace"
    cp = run_api(prog_dir, "with", out)
    assert cp.returncode == 0, show(cp)
    assert cp.stdout == "result 285\n"
    assert cp.stderr == ""
    with TraceReader(out) as r:
        assert function_calls(r, "work") == 1
        assert function_calls(r, "square") == 10
        assert r.meta["stopped_by"] == "end"
    assert leftovers(out_dir) == []


def test_api_decorator(prog_dir, out_dir):
    out = out_dir / "deco.trace"
    cp = run_api(prog_dir, "decorator", out)
    assert cp.returncode == 0, show(cp)
    assert cp.stdout == "result 570\n"
    with TraceReader(out) as r:  # the second call wrote the file again
        assert function_calls(r, "main") == 1
        assert function_calls(r, "square") == 10
    assert leftovers(out_dir) == []


def test_api_disabled_writes_nothing(prog_dir, out_dir):
    out = out_dir / "never.trace"
    cp = run_api(prog_dir, "disable", out)
    assert cp.returncode == 0, show(cp)
    assert cp.stdout == "result 285\n"
    assert os.listdir(out_dir) == []


PYPROJECT = '''\
[project]
name = "demo"

[tool.retracer]
output = "traces/from-config.trace"
max-function-count = 5
'''


@pytest.fixture
def project(tmp_path) -> Path:
    """A project with [tool.retracer] in its pyproject.toml; its program lives next
    to it and is run from a sub-directory."""
    proj = tmp_path / "proj"
    (proj / "traces").mkdir(parents=True)
    (proj / "sub").mkdir()
    (proj / "pyproject.toml").write_text(PYPROJECT)
    return proj


def test_api_reads_tool_retracer_config(project):
    cp = run_api(project, "config", cwd=project / "sub")
    assert cp.returncode == 0, show(cp)
    assert cp.stdout == "result 285\n"
    out = project / "traces" / "from-config.trace"  # relative to the pyproject
    assert out.is_file(), os.listdir(project)
    assert not (project / "sub" / "traces").exists()
    with TraceReader(out) as r:
        assert r.meta["options"]["max_function_count"] == 5
        assert function_calls(r, "square") == 10


def test_api_explicit_arguments_win_over_config(project, out_dir):
    out = out_dir / "explicit.trace"
    cp = run_api(project, "explicit", out, cwd=project / "sub")
    assert cp.returncode == 0, show(cp)
    assert out.is_file()
    assert not (project / "traces" / "from-config.trace").exists()
    with TraceReader(out) as r:
        assert r.meta["options"]["max_function_count"] == 7


def test_cli_reads_config_next_to_the_script(project, tmp_path):
    name = copy_program("behaviour_streams.py", project)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cp = retracer("trace", *trace_options(), str(project / name), cwd=elsewhere)
    assert cp.returncode == 0, show(cp)
    out = project / "traces" / "from-config.trace"
    assert out.is_file(), (os.listdir(project), os.listdir(elsewhere))
    assert not (elsewhere / "retracer.trace").exists()
    with TraceReader(out) as r:
        assert r.meta["options"]["max_function_count"] == 5


def test_cli_flags_win_over_config(project, out_dir):
    name = copy_program("behaviour_streams.py", project)
    out = out_dir / "flag.trace"
    cp = retracer("trace", *trace_options(out, ["--max-function-count", "9"]), name, cwd=project)
    assert cp.returncode == 0, show(cp)
    assert out.is_file()
    assert not (project / "traces" / "from-config.trace").exists()
    with TraceReader(out) as r:
        assert r.meta["options"]["max_function_count"] == 9


@pytest.mark.parametrize("content, needle", [
    ("[tool.retracer]\nbogus-key = 1\n", "bogus-key"),
    ("[tool.retracer]\noutput = \n", "TOML"),
    ("[tool.retracer]\nmax-function-count = \"many\"\n", "max-function-count"),
])
def test_invalid_config_is_one_line_error(project, out_dir, content, needle):
    (project / "pyproject.toml").write_text(content)
    name = copy_program("behaviour_streams.py", project)
    cp = retracer("trace", *trace_options(), name, cwd=project)
    line = assert_one_line_error(cp, needle)
    assert "pyproject.toml" in line
    assert cp.stdout == ""  # the program did not run
    # the API raises RetracerError with the same one-line message
    api = run_api(project, "config", cwd=project)
    assert api.returncode == 1, show(api)
    last = api.stderr.strip().splitlines()[-1]
    assert last.startswith("retracer.errors.RetracerError: retracer:"), show(api)
    assert needle in last and "pyproject.toml" in last


# ------------------------------------------------------------------- 12. help


def test_help():
    top = retracer("--help")
    assert top.returncode == 0, show(top)
    assert "trace" in top.stdout and "profile" in top.stdout
    sub = retracer("trace", "--help")
    assert sub.returncode == 0, show(sub)
    for opt in ("--output", "--max-function-count", "--timeout", "--scope", "-m MODULE", "-q"):
        assert opt in sub.stdout, opt
    prof = retracer("profile", "--help")
    assert prof.returncode == 0, show(prof)
    assert "--trust" in prof.stdout


def test_unknown_command_is_one_line_error():
    assert_one_line_error(retracer("frobnicate"), "frobnicate")
