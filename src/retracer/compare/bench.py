"""What one round of `retracer compare` runs, always in a fresh process.

Three kinds of benchmark, in this order of precedence:

- :class:`CommandBench` -- the command after ``--`` (``python bench.py args``,
  ``-m pytest tests/perf``, ``bench.py``, or any program). A round runs it
  ``loops`` times back to back, each a new process, and its number is the mean
  wall time of one run, measured by compare around the process (start-up
  included: that is the command's end-to-end time).
- :class:`PytestBench` -- the project's benchmark files under ``benchmarks-root``
  of ``[tool.retracer]``, run by pytest with compare's plugin
  (``_child/retracer_compare_plugin.py``): the ``benchmark`` fixture of
  pytest-benchmark and plain test functions. A round's number is the sum, over the
  benchmarks both sides have, of the time of one execution of each (timed inside
  the process, ``loops`` executions each).
- :class:`ReplayBench` -- ``--trace T``: the recorded calls of the changed
  functions replayed on both sides (:mod:`.replaybench`). A round's number is the
  sum over the functions of the time to replay all their recorded calls once.

Each has ``calibrate`` (one untimed run that chooses ``loops`` so a round lasts
at least the target), ``round`` and, where per-function numbers come from
tracing, ``traced`` (the same work under ``retracer trace``).
"""
from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import RetracerError
from .sides import Side, keep_log

__all__ = ["BenchmarkFailed", "RoundTimeout", "Sample", "TracedRun", "CommandBench", "PytestBench",
           "ReplayBench", "run_child", "CHILD_DIR"]

CHILD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_child")
_OUTPUT_TAIL = 64 * 1024


class BenchmarkFailed(RetracerError):
    """The benchmark failed on one side; ``output`` is what it printed."""

    def __init__(self, message: str, output: str = "", side: str = "") -> None:
        super().__init__(message)
        self.output = output
        self.side = side


class RoundTimeout(Exception):
    """A round did not end before the time budget ran out (it was killed)."""


@dataclass
class Sample:
    """One round: seconds per unit of work, and per part (benchmark, function)."""

    total: float
    parts: Dict[str, float] = field(default_factory=dict)


@dataclass
class TracedRun:
    """One traced round: its trace file and the benchmark time in it (ns; None:
    the trace's duration)."""

    trace: str
    total_ns: Optional[int] = None


def _kill_group(p: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError, OSError):
            pass
        try:
            p.wait(timeout=2)
            # the group may still hold grandchildren
            if sig == signal.SIGTERM:
                continue
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _OUTPUT_TAIL))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def run_child(argv: Sequence[str], side: Side, timeout: Optional[float], scratch: str,
              extra_env: Optional[Dict[str, str]] = None, what: str = "the benchmark") -> Tuple[float, str]:
    """Run ``argv`` in ``side``'s worktree and environment; (wall seconds, output).

    The child is the leader of its own process group, so a timeout, Ctrl-C or an
    error here ends it and whatever it started. A non-zero exit raises
    :class:`BenchmarkFailed` naming the side, with its output."""
    env = dict(side.env)
    if extra_env:
        env.update(extra_env)
    out_path = os.path.join(scratch, f"{side.name}.out")
    if timeout is not None and timeout <= 0:
        raise RoundTimeout()
    with open(out_path, "wb") as out:
        t0 = time.perf_counter()
        try:
            p = subprocess.Popen(list(argv), cwd=side.workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            raise RetracerError(f"retracer: cannot run {what} on {side.label}: {argv[0]}: {e.strerror}; "
                                f"check the command after --") from None
        # a blocking wait: Popen.wait(timeout=...) polls with sleeps of up to
        # 50 ms, which would round every time to that grain; the time budget is
        # kept by a timer that kills the process group instead
        fired = threading.Event()

        def expire() -> None:
            fired.set()
            _kill_group(p)
        timer = threading.Timer(timeout, expire) if timeout is not None else None
        try:
            if timer is not None:
                timer.daemon = True
                timer.start()
            rc = p.wait()
            dt = time.perf_counter() - t0
        except BaseException:
            _kill_group(p)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if fired.is_set():
            raise RoundTimeout()
    # a benchmark may leave children behind: they go with the round
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    output = _tail(out_path)
    if rc != 0:
        how = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
        log = keep_log(side.name, f"$ {shlex.join(argv)}\n(in {side.workdir})\n{output}")
        raise BenchmarkFailed(f"retracer: {what} failed on {side.name.upper()} {side.label} ({how}): "
                              f"{_last_line(output)}; its output is in {log}", output, side.name)
    return dt, output


def _is_python(word: str) -> bool:
    base = os.path.basename(word)
    if word == sys.executable:
        return True
    v = sys.version_info
    return base in ("python", "python3", f"python{v[0]}.{v[1]}")


def _python_script(path: Optional[str]) -> bool:
    if not path or not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            first = f.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


class CommandBench:
    """The command after ``--``."""

    kind = "command"

    def __init__(self, argv: Sequence[str]) -> None:
        if not argv:
            raise RetracerError("retracer: the benchmark command after -- is empty; e.g. -- python bench.py")
        self.argv = list(argv)
        self.description = shlex.join(self.argv)

    def command(self, side: Side) -> List[str]:
        a = self.argv
        if _is_python(a[0]):
            return [side.python] + a[1:]
        if a[0].startswith("-") or a[0].endswith(".py"):
            return [side.python] + a
        return list(a)

    def _trace_program(self, side: Side) -> Optional[List[str]]:
        """The program's command line as `retracer trace` takes it, or None."""
        cmd = self.command(side)
        if cmd[0] == side.python:
            rest = cmd[1:]
            if rest and rest[0] == "-m" and len(rest) >= 2:
                return rest
            if rest and not rest[0].startswith("-"):
                return rest
            return None
        exe = shutil.which(cmd[0], path=side.env.get("PATH")) if os.sep not in cmd[0] \
            else os.path.join(side.workdir, cmd[0])
        if _python_script(exe):  # a console script: a Python file
            return [exe] + cmd[1:]
        return None

    def traceable(self, side: Side) -> bool:
        return self._trace_program(side) is not None

    @staticmethod
    def traced_loops(loops: Dict[str, int]) -> int:
        return 1  # a traced round: one run of the command

    def calibrate(self, side: Side, target: float, timeout: Optional[float], scratch: str) -> int:
        """Runs per round: target / the faster of two runs (one when it alone
        lasts the target), at most 100."""
        t0 = time.monotonic()
        dt, _ = run_child(self.command(side), side, timeout, scratch)
        if dt < target:
            left = None if timeout is None else timeout - (time.monotonic() - t0)
            dt = min(dt, run_child(self.command(side), side, left, scratch)[0])
        return max(1, min(100, int(math.ceil(target / dt)) if dt > 0 else 100))

    @staticmethod
    def combine(a: int, b: int) -> Dict[str, int]:
        n = _same_work(a, b)
        return {"base": n[0], "head": n[1]}

    def round(self, side: Side, loops: int, timeout_at: Optional[float], scratch: str) -> Sample:
        total = 0.0
        for _ in range(loops):
            dt, _ = run_child(self.command(side), side, _left(timeout_at), scratch)
            total += dt
        return Sample(total / loops)

    def traced(self, side: Side, loops: int, trace: str, timeout_at: Optional[float], scratch: str) -> Optional[TracedRun]:
        prog = self._trace_program(side)
        if prog is None:
            return None
        argv = [side.python, "-m", "retracer", "trace", *trace_flags(scratch), "--scope", side.root, "-o", trace,
                *prog]
        run_child(argv, side, _left(timeout_at), scratch, what="the traced benchmark")
        return TracedRun(trace)


#: how a traced round is traced: no argument capture, no replay check, no C calls
#: (a builtin's time stays in its caller's own time), quiet
TRACE_FLAGS = ("-q", "--no-capture", "--no-stability-check", "--no-c-calls")


def trace_flags(scratch: str) -> List[str]:
    """TRACE_FLAGS, and an empty config file: the project's [tool.retracer]
    (only-functions, no-imports, ...) must not change what a traced round records."""
    empty = os.path.join(scratch, "empty-pyproject.toml")
    if not os.path.exists(empty):
        with open(empty, "w"):
            pass
    return [*TRACE_FLAGS, "--config", empty]


def _same_work(a: int, b: int) -> Tuple[int, int]:
    """Loops of (base, head): the same on both sides (the larger calibration)
    unless the sides differ by more than 4x, where that would make the slower
    side's rounds last many times the target; then each side its own (the
    numbers compared are per loop either way)."""
    if max(a, b) <= _SAME_WORK_RATIO * min(a, b):
        return max(a, b), max(a, b)
    return a, b


_SAME_WORK_RATIO = 4


def _left(deadline: Optional[float]) -> Optional[float]:
    return None if deadline is None else deadline - time.monotonic()


def _combine_parts(a: Dict[str, int], b: Dict[str, int]) -> Dict[str, Dict[str, int]]:
    out: Dict[str, Dict[str, int]] = {"base": dict(a), "head": dict(b)}
    for k in set(a) & set(b):
        out["base"][k], out["head"][k] = _same_work(a[k], b[k])
    return out


class PytestBench:
    """The benchmark files under ``benchmarks-root`` (each side's own)."""

    kind = "pytest"

    def __init__(self, roots: Dict[str, str], shown: str) -> None:
        self.roots = roots          # side name -> absolute benchmarks directory in that side's worktree
        self.description = f"pytest benchmarks in {shown}"
        self.common: List[str] = []
        self.only: Dict[str, List[str]] = {}

    def _argv(self, side: Side, module_only: bool = False) -> List[str]:
        args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:benchmark", "-p",
                "retracer_compare_plugin", "--rootdir", side.root, self.roots[side.name]]
        return args if module_only else [side.python] + args

    def _run(self, side: Side, mode: str, loops: Dict[str, int], target: float, timeout: Optional[float],
             scratch: str, argv: Optional[List[str]] = None, what: str = "the benchmarks") -> Dict[str, Any]:
        out = os.path.join(scratch, f"{side.name}-bench.json")
        if os.path.exists(out):
            os.unlink(out)
        cfg = {"mode": mode, "loops": loops, "target": target, "out": out}
        env = {"RETRACER_COMPARE_BENCH": json.dumps(cfg),
               "PYTHONPATH": side.env.get("PYTHONPATH", "") + os.pathsep + CHILD_DIR}
        try:
            run_child(argv or self._argv(side), side, timeout, scratch, extra_env=env, what=what)
        except BenchmarkFailed as e:
            if "exit status 5" in str(e):
                raise BenchmarkFailed(f"retracer: pytest collected no benchmarks in {self.roots[side.name]} on "
                                      f"{side.name.upper()} {side.label}; put test functions there or set "
                                      f"benchmarks-root", e.output, side.name) from None
            raise
        try:
            with open(out) as f:
                return json.load(f)
        except (OSError, ValueError):
            raise RetracerError(f"retracer: the benchmarks on {side.label} wrote no results (pytest plugin "
                                f"retracer_compare_plugin not loaded?)") from None

    def calibrate(self, side: Side, target: float, timeout: Optional[float], scratch: str) -> Dict[str, int]:
        res = self._run(side, "calibrate", {}, target, timeout, scratch)
        return {k: int(v["loops"]) for k, v in res["benchmarks"].items()}

    def combine(self, a: Dict[str, int], b: Dict[str, int]) -> Dict[str, int]:
        self.common = sorted(set(a) & set(b))
        self.only = {"base": sorted(set(a) - set(b)), "head": sorted(set(b) - set(a))}
        if not self.common:
            raise RetracerError("retracer: the two sides have no benchmark in common (compared by pytest node id); "
                                "nothing to compare")
        return _combine_parts(a, b)

    def round(self, side: Side, loops: Dict[str, int], timeout_at: Optional[float], scratch: str) -> Sample:
        res = self._run(side, "round", loops, 0.0, _left(timeout_at), scratch)
        parts = {k: v["seconds"] / v["loops"] for k, v in res["benchmarks"].items() if k in self.common}
        missing = [k for k in self.common if k not in parts]
        if missing:
            raise RetracerError(f"retracer: benchmark {missing[0]} did not run on {side.label} in this round "
                                f"(skipped?); compare needs every benchmark in every round")
        return Sample(sum(parts.values()), parts)

    def traceable(self, side: Side) -> bool:
        return True

    @staticmethod
    def traced_loops(loops: Dict[str, Dict[str, int]]) -> Dict[str, int]:
        """The same work on both sides in a traced round: the smaller count."""
        b, h = loops["base"], loops["head"]
        return {k: min(b.get(k, h.get(k, 1)), h.get(k, b.get(k, 1))) for k in set(b) | set(h)}

    def traced(self, side: Side, loops: Dict[str, int], trace: str, timeout_at: Optional[float],
               scratch: str) -> Optional[TracedRun]:
        argv = [side.python, "-m", "retracer", "trace", *trace_flags(scratch), "--scope", side.root, "-o", trace,
                *self._argv(side, module_only=True)]
        res = self._run(side, "traced", loops, 0.0, _left(timeout_at), scratch, argv=argv,
                        what="the traced benchmarks")
        total = sum(v["seconds"] for k, v in res["benchmarks"].items() if k in self.common)
        return TracedRun(trace, int(total * 1e9))


class ReplayBench:
    """``--trace T``: the recorded calls of the changed functions, replayed."""

    kind = "replay"

    def __init__(self, trace: str, targets: List[Dict[str, Any]], original_root: str) -> None:
        self.trace = os.path.abspath(trace)
        self.targets = targets            # [{"key", "module", "qualname", "filename", "line"}]
        self.original_root = original_root
        self.description = f"recorded calls replayed from {trace}"
        self.common: List[str] = []

    def _run(self, side: Side, mode: str, loops: Dict[str, int], target: float, timeout: Optional[float],
             scratch: str) -> Dict[str, Any]:
        out = os.path.join(scratch, f"{side.name}-replay.json")
        if os.path.exists(out):
            os.unlink(out)
        cfg = {"mode": mode, "side": side.name, "loops": loops, "target": target, "out": out, "trace": self.trace,
               "targets": self.targets, "remap": [self.original_root, side.root], "paths": side.pythonpath}
        cfg_path = os.path.join(scratch, f"{side.name}-replay-config.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        run_child([side.python, "-m", "retracer.compare.replaybench", cfg_path], side, timeout, scratch,
                  what="replaying the recorded calls")
        try:
            with open(out) as f:
                return json.load(f)
        except (OSError, ValueError):
            raise RetracerError(f"retracer: replaying on {side.label} wrote no results") from None

    def calibrate(self, side: Side, target: float, timeout: Optional[float], scratch: str) -> Dict[str, int]:
        res = self._run(side, "calibrate", {}, target, timeout, scratch)
        return {k: int(v["loops"]) for k, v in res["functions"].items()}

    def combine(self, a: Dict[str, int], b: Dict[str, int]) -> Dict[str, int]:
        self.common = sorted(set(a) & set(b))
        if not self.common:
            raise RetracerError("retracer: no changed function with recorded calls can be replayed on both sides; "
                                "trace a run that calls them (retracer trace ...) or benchmark a command (-- ...)")
        return _combine_parts(a, b)

    def round(self, side: Side, loops: Dict[str, int], timeout_at: Optional[float], scratch: str) -> Sample:
        res = self._run(side, "round", loops, 0.0, _left(timeout_at), scratch)
        parts = {k: v["seconds"] / v["loops"] for k, v in res["functions"].items() if k in self.common}
        return Sample(sum(parts.values()), parts)

    def traceable(self, side: Side) -> bool:
        return False

    @staticmethod
    def traced_loops(loops: Any) -> Any:
        return None

    def traced(self, *a: Any, **k: Any) -> Optional[TracedRun]:
        return None
