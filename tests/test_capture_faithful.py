"""Capture never changes the program (issue 10): generators, coroutines and
async generators closed, thrown into and garbage-collected, under `retracer
trace` with capture on, behave exactly as under plain Python -- same stdout,
stderr and exit status, no SystemError, no "Exception ignored", no new
warnings -- also when warnings are errors."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retracer.tracefile import TraceReader

PROGRAMS = Path(__file__).resolve().parent / "programs"
TIMEOUT = 300


def run(args, cwd):
    return subprocess.run([sys.executable, *args], cwd=str(cwd), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, errors="replace", timeout=TIMEOUT)


def same_as_plain(tmp_path: Path, args, *opts):
    plain = run(args, tmp_path)
    # --capture-share 1: on a loaded machine the time budget could cut capture before the
    # last generators of the program (this tests what capture keeps, not the budget)
    traced = run(["-m", "retracer", "trace", "-q", "--no-stability-check", "--capture-share", "1", *opts,
                  "-o", "t.trace", *args], tmp_path)
    assert (traced.returncode, traced.stdout, traced.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    return plain


@pytest.mark.parametrize("opts", [(), ("--max-function-count", "1000")], ids=["default", "every-call"])
def test_generators_closed_thrown_and_collected(tmp_path, opts):
    shutil.copy(PROGRAMS / "capture_generators.py", tmp_path / "prog.py")
    plain = same_as_plain(tmp_path, ["prog.py"], *opts)
    assert plain.returncode == 0 and plain.stdout.endswith(
        "unraisable [\"RuntimeWarning: coroutine 'coro' was never awaited\"]\ndone\n"), plain.stdout
    with TraceReader(str(tmp_path / "t.trace")) as r:
        names = {fid: f.name for fid, f in r.functions.items()}
        kept = {names[c.fid] for c in r.iter_captured()}
    assert {"gen", "guarded", "batched", "coro", "agen"} <= kept


def test_a_suite_with_warnings_as_errors(tmp_path):
    shutil.copy(PROGRAMS / "capture_generators_suite.py", tmp_path / "test_gens.py")
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "test_gens.py"]
    plain = run(args, tmp_path)
    assert plain.returncode == 0, plain.stdout
    traced = run(["-m", "retracer", "trace", "-q", "--no-stability-check", "--max-function-count", "1000",
                  "-o", "t.trace", *args], tmp_path)
    assert traced.returncode == 0, traced.stdout + traced.stderr
    for bad in ("SystemError", "Exception ignored", "Unraisable", "warning"):
        assert bad not in traced.stdout + traced.stderr, traced.stdout + traced.stderr
    assert "5 passed" in traced.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="signals")
def test_a_signal_handled_while_capturing_reaches_the_program(tmp_path):
    # the argument's pickling sends SIGTERM, so the program's handler runs
    # inside capture for sure: its sys.exit(4) must end the program, not be
    # swallowed by capture (the program then looped until killed)
    (tmp_path / "prog.py").write_text(
        "import os, signal, sys, time\n"
        "def handler(signum, frame):\n"
        "    print('got signal', signum, flush=True)\n"
        "    sys.exit(4)\n"
        "class Trigger:\n"
        "    def __reduce__(self):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(0.05)\n"
        "        return (Trigger, ())\n"
        "def f(x):\n"
        "    return 1\n"
        "if __name__ == '__main__':\n"
        "    signal.signal(signal.SIGTERM, handler)\n"
        "    f(Trigger())\n"
        "    for _ in range(100):\n"
        "        time.sleep(0.01)\n"
        "    print('not stopped')\n")
    r = run(["-m", "retracer", "trace", "-q", "--no-stability-check", "--capture-share", "1",
             "-o", "t.trace", "prog.py"], tmp_path)
    assert (r.returncode, r.stdout) == (4, "got signal 15\n"), (r.returncode, r.stdout, r.stderr)
    with TraceReader(str(tmp_path / "t.trace")) as tr:
        assert tr.meta["exit_status"] == 4
