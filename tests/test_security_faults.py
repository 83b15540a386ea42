"""Faults lose nothing (issue 12): a full disk keeps the program's exit status and
says what was lost; an unusable output directory, config directory or key is
found before the program runs; SIGKILL and os._exit leave nothing beside the
output and the next run removes what they left in the temporary directory; the
recursion limit is python's; a closed stdout ends a command quietly.

A full disk is a small tmpfs when the tests run as root (mount works), else a
file-size limit (RLIMIT_FSIZE: writes fail with EFBIG); a read-only directory
is a read-only tmpfs as root, else a directory without write permission.
"""
from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import textwrap

import pytest

from helpers import TIMEOUT, finish, kill_group, popen, retracer, run_python

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

pytestmark = pytest.mark.usefixtures("run_tmpdir")  # RETRACER_TMPDIR is tmp_path/"tmp"


def write(d, name, src):
    p = d / name
    p.write_text(textwrap.dedent(src))
    return p


def run_dirs(tmp_path):
    """The private run directories retracer has in this test's RETRACER_TMPDIR."""
    d = tmp_path / "tmp"
    return sorted(os.listdir(d)) if d.exists() else []


def beside(directory, keep=()):
    """Files in the output directory other than the ones expected."""
    return sorted(n for n in os.listdir(directory) if n not in keep and not n.endswith(".py"))


@contextlib.contextmanager
def tmpfs(path, size="256k", ro=False):
    """A small tmpfs at ``path`` (root only); yields True if mounted."""
    path.mkdir(exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    ok = ROOT and subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                                 capture_output=True).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def limit_file_size(n):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
    return pre


BUSY = """
    import sys

    def f(i, s):
        return s * 2

    for i in range(20000):
        f(i, "x" * (i % 50))
    print("program done")
    sys.exit(3)
"""


def assert_lost_line(p, out):
    assert p.returncode == 3, (p.returncode, p.stderr)  # the program's own status
    assert p.stdout == "program done\n"
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert str(out) in lines[0] and "could not be written" in lines[0] and "lost" in lines[0], lines[0]


def test_disk_full_keeps_the_exit_status(tmp_path):
    prog = write(tmp_path, "busy.py", BUSY)
    full = tmp_path / "full"
    with tmpfs(full, "200k") as mounted:
        if mounted:  # a real ENOSPC: the trace is bigger than the file system
            out = full / "busy.trace"
            p = retracer("trace", "-o", str(out), str(prog), cwd=tmp_path)
        else:
            full.mkdir(exist_ok=True)
            out = full / "busy.trace"
            p = retracer("trace", "-o", str(out), str(prog), cwd=tmp_path, preexec_fn=limit_file_size(150_000))
        assert_lost_line(p, out)
        assert not out.exists()
        assert beside(full) == []
    assert run_dirs(tmp_path) == []


def test_spool_write_failure_keeps_the_exit_status(tmp_path):
    """The temporary files themselves cannot be written (RLIMIT_FSIZE: EFBIG)."""
    prog = write(tmp_path, "busy.py", BUSY)
    out = tmp_path / "busy.trace"
    out.write_bytes(b"the previous trace")
    p = retracer("trace", "-o", str(out), str(prog), cwd=tmp_path, preexec_fn=limit_file_size(60_000))
    assert_lost_line(p, out)
    assert "unchanged" in p.stderr
    assert out.read_bytes() == b"the previous trace"
    assert beside(tmp_path, keep=("busy.trace", "tmp")) == []
    assert run_dirs(tmp_path) == []


PROBE = """
    open("ran", "w").close()
    def f():
        return 1
    f()
"""


def test_read_only_config_dir_is_found_before_the_program_runs(tmp_path, monkeypatch):
    prog = write(tmp_path, "probe.py", PROBE)
    cfg = tmp_path / "rocfg"
    with tmpfs(cfg, "64k", ro=True) as mounted:
        if not mounted:
            if ROOT:
                pytest.fail("running as root but a read-only tmpfs cannot be mounted")
            cfg.chmod(0o500)
        monkeypatch.setenv("RETRACER_CONFIG_DIR", str(cfg / "retracer"))
        p = retracer("trace", "-o", str(tmp_path / "p.trace"), str(prog), cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "signing key" in lines[0] and "RETRACER_CONFIG_DIR" in lines[0], p.stderr
    assert not (tmp_path / "ran").exists()  # the program did not run
    assert not (tmp_path / "p.trace").exists()


def test_unusable_output_directory_is_found_before_the_program_runs(tmp_path):
    prog = write(tmp_path, "probe.py", PROBE)
    ro = tmp_path / "ro"
    with tmpfs(ro, "64k", ro=True) as mounted:
        if not mounted:
            if ROOT:
                pytest.fail("running as root but a read-only tmpfs cannot be mounted")
            ro.chmod(0o500)
        (tmp_path / "afile").write_text("x")
        # a missing directory is created; one below a regular file cannot be
        for out in (ro / "p.trace", tmp_path / "afile" / "missing" / "p.trace"):
            p = retracer("trace", "-o", str(out), str(prog), cwd=tmp_path)
            assert p.returncode == 2, p.stderr
            lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
            assert len(lines) == 1 and str(out) in lines[0], p.stderr
            assert not (tmp_path / "ran").exists()


SLEEPER = """
    import sys, time

    def f(x):
        return x * 2

    for i in range(5000):
        f(i)
    print("ready", flush=True)
    time.sleep(120)
"""


def test_sigkill_while_running_leaves_nothing_beside_the_output(tmp_path):
    prog = write(tmp_path, "sleeper.py", SLEEPER)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "s.trace"
    p = popen([sys.executable, "-m", "retracer", "trace", "-o", str(out), str(prog)], cwd=tmp_path)
    try:
        assert p.stdout.readline().strip() == "ready"
        assert len(run_dirs(tmp_path)) == 1  # its spools, in its private run directory
        p.kill()
    finally:
        finish(p)
    assert os.listdir(out_dir) == []  # nothing under the final name, nothing hidden beside it
    assert len(run_dirs(tmp_path)) == 1
    # the next run removes what the dead one left
    small = write(tmp_path, "small.py", "def g():\n    return 1\ng()\n")
    r = retracer("trace", "-q", "--no-capture", "-o", str(out_dir / "n.trace"), str(small), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert run_dirs(tmp_path) == []
    assert os.listdir(out_dir) == ["n.trace"]


def test_sigkill_while_writing_the_trace(tmp_path):
    """Killed after everything went into the temporary trace, before the rename."""
    prog = write(tmp_path, "busy.py", BUSY)
    out = tmp_path / "out" / "b.trace"
    out.parent.mkdir()
    code = ("import os, signal, sys\n"
            "from retracer.tracefile import writer\n"
            "def die(self):\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "writer.TraceWriter.commit = die\n"
            "from retracer.cli import main\n"
            f"sys.exit(main(['trace', '-o', {str(out)!r}, {str(prog)!r}]))\n")
    p = run_python(["-c", code], cwd=tmp_path)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert os.listdir(out.parent) == []
    left = run_dirs(tmp_path)
    assert len(left) == 1 and any(n.endswith(".trace") or ".tmp-" in n
                                  for n in os.listdir(tmp_path / "tmp" / left[0]))
    r = retracer("trace", "-q", "--no-capture", "-o", str(out), str(prog), cwd=tmp_path)
    assert r.returncode == 3 and out.exists()
    assert run_dirs(tmp_path) == [] and os.listdir(out.parent) == ["b.trace"]


def test_os_exit_leaves_nothing_beside_the_output(tmp_path):
    prog = write(tmp_path, "ex.py", """
        import os
        def f(x):
            return x
        for i in range(1000):
            f(i)
        os._exit(5)
    """)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    p = retracer("trace", "-o", str(out_dir / "x.trace"), str(prog), cwd=tmp_path)
    assert p.returncode == 5
    assert os.listdir(out_dir) == []
    assert len(run_dirs(tmp_path)) == 1
    small = write(tmp_path, "small.py", "def g():\n    return 1\ng()\n")
    assert retracer("trace", "-q", "-o", str(out_dir / "n.trace"), str(small), cwd=tmp_path).returncode == 0
    assert run_dirs(tmp_path) == []


RECURSION = """
    import sys, traceback
    print(sys.getrecursionlimit(), sys.getrecursionlimit.__name__, sys.setrecursionlimit.__name__)

    def down(n):
        return down(n + 1)

    def depth_reached():
        try:
            down(0)
        except RecursionError as e:
            return len(traceback.extract_tb(e.__traceback__))

    print(depth_reached())
    sys.setrecursionlimit(1500)
    print(sys.getrecursionlimit(), depth_reached())
    for bad in (0, "a", 2.5):
        try:
            sys.setrecursionlimit(bad)
        except (ValueError, TypeError) as e:
            print(type(e).__name__, e)

    def deep(n):
        if n == 0:
            try:
                sys.setrecursionlimit(10)
            except RecursionError as e:
                print(e)
            return
        deep(n - 1)

    deep(30)
    sys.setrecursionlimit(1000)
    down(0)
"""


def test_recursion_limit_and_error_are_pythons(tmp_path):
    prog = write(tmp_path, "rec.py", RECURSION)
    plain = run_python([str(prog)], cwd=tmp_path)
    for opts in ((), ("--no-capture",)):
        traced = retracer("trace", "-q", *opts, "-o", str(tmp_path / "r.trace"), str(prog), cwd=tmp_path)
        assert traced.stdout == plain.stdout
        assert traced.stderr == plain.stderr
        assert traced.returncode == plain.returncode == 1
    # python's own default (not this process's: the test session may have changed its limit)
    default = run_python(["-c", "import sys; print(sys.getrecursionlimit())"], check=True).stdout.strip()
    assert plain.stdout.startswith(f"{default} getrecursionlimit setrecursionlimit\n")


def test_closed_stdout_ends_quietly(tmp_path):
    prog = write(tmp_path, "many.py", "\n".join(f"def f{i}():\n    pass\n" for i in range(3000))
                 + "\n" + "\n".join(f"f{i}()" for i in range(3000)) + "\n")
    t = tmp_path / "m.trace"
    assert retracer("trace", "-q", "--no-capture", "-o", str(t), str(prog), cwd=tmp_path).returncode == 0
    for args in (["view", str(t), "--text", "--no-patterns"], ["profile", str(t), "--all", "--top", "100000"]):
        p = popen([sys.executable, "-m", "retracer", *args], cwd=tmp_path)
        try:
            p.stdout.readline()
            p.stdout.close()  # like `| head -1`
            err = p.stderr.read()
            p.stderr.close()
            assert p.wait(timeout=TIMEOUT) == 141, err
        finally:
            kill_group(p)
        assert err == "", err
