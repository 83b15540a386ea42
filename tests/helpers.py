"""How the tests run things: `python -m retracer ...`, traced programs and plain
`python`, each in a subprocess, as a user would.

One copy of each helper for the whole suite (the fixtures are in conftest.py).
Every subprocess runs in its own process group with stdin from /dev/null, its output
captured as text; whatever it leaves running is ended with it. The timeout is generous
(the machine may be busy) and never a speed assertion: a process that hangs fails the
test with its output.

`trace()` runs `retracer trace` as a user does, without the opt-in stability check
(`--check-stable`: replays the captured calls twice, isolated, right after tracing); it
costs child processes per call and only the tests of the check itself need it: they
pass stability_check=True.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 300  # seconds, for every subprocess
POSIX = os.name == "posix"

#: the shared workloads (conftest.py's `workloads` fixture) and their small sizes
WORKLOAD_ARGS = {
    "calls_fib.py": ["18"], "oop_sim.py": ["20", "10"], "text_pipeline.py": ["300"],
    "json_roundtrip.py": ["500"], "async_jobs.py": ["200"], "threads_work.py": ["400"],
    "exceptions_deep.py": ["100"],
}


def popen(cmd: Sequence, cwd=None, env: Optional[Dict[str, str]] = None,
          preexec_fn: Optional[Callable[[], None]] = None) -> subprocess.Popen:
    """Start cmd in its own process group, so that whatever it starts can be ended with it.
    preexec_fn runs in the child before cmd (a umask, a resource limit)."""
    return subprocess.Popen([str(c) for c in cmd], cwd=None if cwd is None else str(cwd), env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", start_new_session=POSIX, preexec_fn=preexec_fn)


def kill_group(p: subprocess.Popen) -> None:
    """End p and the processes it started (only those: its own process group)."""
    if POSIX:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    elif p.poll() is None:
        p.kill()


def where_they_wait(pgid: int) -> str:
    """What each process of the group `pgid` is doing: its Python and native stacks
    (py-spy dump, a test dependency) and its signal masks -- for a hang's report."""
    if not POSIX or not os.path.isdir("/proc"):
        return ""
    pids = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and os.getpgid(int(d)) == pgid:
                pids.append(int(d))
        except OSError:
            pass
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    parts = []
    for pid in sorted(pids):
        try:
            with open(f"/proc/{pid}/status") as f:
                status = " ".join(ln.strip() for ln in f if ln.startswith(("PPid", "State", "SigBlk", "SigPnd",
                                                                          "ShdPnd", "SigCgt", "Threads")))
        except OSError:
            status = "?"
        try:
            dump = subprocess.run([spy, "dump", "--native", "--pid", str(pid)], capture_output=True, text=True,
                                  timeout=20).stdout
        except (OSError, subprocess.SubprocessError) as e:
            dump = f"(py-spy: {e})"
        parts.append(f"--- process {pid}: {status}\n{dump}")
    return "\n".join(parts)


def finish(p: subprocess.Popen, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Wait (at most `timeout`) for p; a process that hangs fails the test, with where
    each of its processes waited."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stacks = where_they_wait(p.pid) if POSIX else ""
        kill_group(p)
        out, err = p.communicate()
        pytest.fail(f"{p.args} did not finish within {timeout} s\n--- stdout\n{out}\n--- stderr\n{err}\n"
                    f"--- where its processes waited\n{stacks}")
    finally:
        kill_group(p)  # leftovers of a finished process, if any
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def show(cp: subprocess.CompletedProcess) -> str:
    return f"{cp.args}\nrc={cp.returncode}\n--- stdout\n{cp.stdout}\n--- stderr\n{cp.stderr}"


def run(cmd: Sequence, cwd=None, env: Optional[Dict[str, str]] = None, timeout: float = TIMEOUT,
        check: bool = False, preexec_fn: Optional[Callable[[], None]] = None) -> subprocess.CompletedProcess:
    """Run cmd to its end; with check, it must exit 0."""
    cp = finish(popen(cmd, cwd, env, preexec_fn), timeout)
    if check:
        assert cp.returncode == 0, show(cp)
    return cp


def run_python(args: Sequence, cwd=None, env: Optional[Dict[str, str]] = None, timeout: float = TIMEOUT,
               check: bool = False, preexec_fn: Optional[Callable[[], None]] = None) -> subprocess.CompletedProcess:
    """`python ARGS` with this interpreter; with check, it must exit 0."""
    return run([sys.executable, *args], cwd, env, timeout, check, preexec_fn)


def retracer(*args, cwd=None, env: Optional[Dict[str, str]] = None, timeout: float = TIMEOUT,
             check: bool = False, preexec_fn: Optional[Callable[[], None]] = None) -> subprocess.CompletedProcess:
    """`python -m retracer ARGS`; with check, it must exit 0."""
    return run_python(["-m", "retracer", *args], cwd=cwd, env=env, timeout=timeout, check=check,
                      preexec_fn=preexec_fn)


def trace_options(out=None, opts: Sequence = (), quiet: bool = True, stability_check: bool = False) -> list:
    """The options of `retracer trace` before the program: [-q] [-o OUT] [--check-stable] OPTS."""
    return ((["-q"] if quiet else []) + ([] if out is None else ["-o", str(out)])
            + (["--check-stable"] if stability_check else []) + [str(o) for o in opts])


def trace(out, *program, cwd=None, opts: Sequence = (), env: Optional[Dict[str, str]] = None,
          quiet: bool = True, stability_check: bool = False, check: bool = True,
          timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """`python -m retracer trace -q -o OUT [--check-stable] OPTS PROGRAM...` in cwd.

    With check (the default) it must exit 0 and write OUT (relative to cwd)."""
    cp = retracer("trace", *trace_options(out, opts, quiet, stability_check), *program, cwd=cwd, env=env,
                  timeout=timeout)
    if check:
        assert cp.returncode == 0, show(cp)
        assert Path(cwd or ".", out).is_file(), show(cp)
    return cp


def one_line(text: str) -> str:
    """The only line of `text`: retracer's messages are one line, never a traceback."""
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def one_line_error(cp: subprocess.CompletedProcess, *needles: str, warned: bool = False) -> str:
    """cp failed as retracer's usage and input errors do: exit status 2 and one line
    on stderr, holding every needle. Returns the line.

    With warned, that line comes after the one warning --trust prints for a trace
    not signed by you ("retracer: warning: ..."), which must be there."""
    assert cp.returncode == 2, show(cp)
    assert "Traceback" not in cp.stderr and "internal error" not in cp.stderr, show(cp)
    lines = cp.stderr.strip().splitlines()
    if warned:
        assert len(lines) == 2 and lines[0].startswith("retracer: warning: "), show(cp)
        lines = lines[1:]
    assert len(lines) == 1, show(cp)
    for needle in needles:
        assert needle in lines[0], show(cp)
    return lines[0]


def run_tty(cmd: Sequence, cwd=None, env: Optional[Dict[str, str]] = None, timeout: float = TIMEOUT,
            stdout_tty: bool = True, stderr_tty: bool = True, columns: int = 80):
    """Run cmd with stdout and/or stderr on a pseudo-terminal of `columns` columns (a
    terminal as a user has one); the other streams are pipes. Returns (rc, what the
    terminal received, stdout pipe text, stderr pipe text)."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    p = subprocess.Popen([str(c) for c in cmd], cwd=None if cwd is None else str(cwd), env=env,
                         stdin=subprocess.DEVNULL, stdout=slave if stdout_tty else subprocess.PIPE,
                         stderr=slave if stderr_tty else subprocess.PIPE, start_new_session=True)
    os.close(slave)
    pipes = {}

    def drain(name, f) -> None:
        pipes[name] = f.read().decode("utf-8", "replace")
    readers = [threading.Thread(target=drain, args=(n, f), daemon=True)
               for n, f in (("out", p.stdout), ("err", p.stderr)) if f is not None]
    for t in readers:
        t.start()
    chunks = []
    import time
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                kill_group(p)
                pytest.fail(f"{cmd} did not finish within {timeout} s; terminal so far:\n"
                            + b"".join(chunks).decode("utf-8", "replace"))
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the terminal's other side is closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif p.poll() is not None:
                # the child ended: read what is left
                try:
                    while select.select([master], [], [], 0.1)[0]:
                        data = os.read(master, 65536)
                        if not data:
                            break
                        chunks.append(data)
                except OSError:
                    pass
                break
    finally:
        os.close(master)
        p.wait()
        for t in readers:
            t.join(timeout=10)
        kill_group(p)
    return p.returncode, b"".join(chunks).decode("utf-8", "replace"), pipes.get("out", ""), pipes.get("err", "")


def strip_ansi(text: str) -> str:
    """Text without terminal escape sequences and carriage returns."""
    import re
    return re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\r", "", text)
