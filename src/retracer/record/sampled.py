"""Sampling with py-spy (``retracer sample``, ``%%rsample``): run py-spy and turn
the stacks it sampled into a retracer trace.

py-spy (https://github.com/benfred/py-spy, installed from PyPI with its binary) reads
the target's memory from outside: it needs ptrace permission on the target (see
:data:`PTRACE_HELP`). It is run as ``py-spy record --format raw --function
--full-filenames --threads [--native] --rate HZ``; its output, one line per distinct
stack (``thread (TID);frame;...;frame COUNT``), becomes a trace marked as sampled
(meta ``sampled``: ``{"rate", "native", "samples", "sampler", "interval_ns"}``):

* ``functions``: every distinct Python frame (``name (file:firstline)``, a function
  of your code when its file is under the scope, default the script's directory)
  and, with ``--native``, every native frame as a C function named
  ``symbol [library or source file]`` (anonymous addresses of one library are one
  frame ``[libz.so.1]``);
* ``func_stats``: own time = samples with the function on top x the sampling
  interval (1/rate); cumulative = samples with the function anywhere on the stack
  (once per sample) x interval; *calls* = those samples (a sampler sees no calls);
* ``edge_stats``: the same per caller -> callee pair;
* the call stream is **synthesized**: per thread, the merged call tree of the samples,
  each node one call whose duration is its samples x interval, laid end to end in
  the tree's order (heaviest child first). The timeline therefore shows where time
  went, not when; the view, the flame graph and every export read it as usual.
* no captured calls: a sampled trace has nothing to replay.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from typing import Dict, IO, Iterable, List, Optional, Sequence, Tuple

from .._version import VERSION
from ..errors import RetracerError
from ..tracefile.schema import FLAG_C_FUNCTION, FLAG_IMPORT_MACHINERY, FLAG_IN_SCOPE, FLAG_MODULE_BODY

DEFAULT_RATE = 100
PTRACE_HELP = ("sampling reads the target process's memory with ptrace: run as root, or as the target's user with "
               "kernel.yama.ptrace_scope = 0; in a container add CAP_SYS_PTRACE (docker run --cap-add SYS_PTRACE)")

_FRAME = re.compile(r"^(.*) \(([^()]*)\)$")
_THREAD = re.compile(r"^thread \((\d+|0x[0-9a-fA-F]+)\)(?:: (.*))?$")
_ADDR = re.compile(r"^0x[0-9a-fA-F]+$")
_EVENTS_PER_CHUNK = 1 << 16


def find_py_spy() -> str:
    """The py-spy binary: beside this Python (a venv's bin), else on PATH."""
    env = os.environ.get("RETRACER_PY_SPY")
    if env:  # another py-spy binary (a system install, a wrapper)
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise RetracerError(f"retracer: RETRACER_PY_SPY={env} is not an executable file; point it to py-spy "
                                f"or unset it")
        return env
    exe = "py-spy.exe" if os.name == "nt" else "py-spy"
    here = os.path.join(os.path.dirname(sys.executable), exe)
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    found = shutil.which(exe)
    if found:
        return found
    raise RetracerError("retracer: py-spy is not installed: pip install 'retracer[sample]' (or pip install py-spy); "
                        "retracer sample runs it")


def py_spy_command(out: str, fmt: str, rate: int, native: bool, pid: Optional[int],
                   program: Sequence[str], duration: Optional[float] = None, subprocesses: bool = False,
                   idle: bool = False) -> List[str]:
    cmd = [find_py_spy(), "record", "--format", fmt, "-o", out, "--rate", str(rate)]
    if fmt == "raw":
        cmd += ["--function", "--full-filenames", "--threads"]
    if native:
        cmd.append("--native")
    if idle:
        cmd.append("--idle")
    if duration:
        cmd += ["--duration", str(max(1, int(round(duration))))]
    if subprocesses:
        cmd.append("--subprocesses")
    if pid is not None:
        cmd += ["--pid", str(pid)]
    else:
        cmd += ["--"] + list(program)
    return cmd


def run_py_spy(cmd: Sequence[str], pid: Optional[int], err: IO[str] = None,
               on_start=None) -> Tuple[int, List[str]]:
    """Run py-spy; the program's own output passes through, py-spy's ``py-spy>``
    lines are kept (not shown). Returns (exit status, py-spy's lines). A refusal to
    attach is one RetracerError line."""
    err = sys.stderr if err is None else err
    try:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace", bufsize=1)
    except OSError as e:
        raise RetracerError(f"retracer: cannot run py-spy ({cmd[0]}): {e.strerror or e}") from None
    spy: List[str] = []
    out = sys.stdout

    def pump(src, dst) -> None:
        # py-spy's own lines ("py-spy> ...", its errors) are kept; the program's output passes through
        quiet_blank = [False]
        for line in src:
            if line.startswith("py-spy>"):
                spy.append(line.rstrip("\n"))
                quiet_blank[0] = True
                if on_start is not None and "Sampling process" in line:
                    on_start()
                continue
            if quiet_blank[0] and not line.strip():
                continue
            quiet_blank[0] = False
            if _is_spy_error(line) or (spy and spy[-1].startswith(("Error:", "Stack backtrace", "Caused by"))):
                spy.append(line.rstrip("\n"))
                continue
            try:
                dst.write(line)
                dst.flush()
            except (OSError, ValueError):
                pass
    pumps = [threading.Thread(target=pump, args=(proc.stdout, out), daemon=True),
             threading.Thread(target=pump, args=(proc.stderr, err), daemon=True)]
    for t in pumps:
        t.start()
    try:
        status = proc.wait()
    except KeyboardInterrupt:
        # py-spy got the SIGINT too (same process group): it writes what it has and ends
        try:
            status = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = proc.wait()
    for t in pumps:
        t.join(timeout=5)
    text = "\n".join(spy)
    if status != 0 and _permission_problem(text):
        who = f"process {pid}" if pid is not None else "the program"
        raise RetracerError(f"retracer: py-spy was not allowed to read {who}'s memory (permission denied): "
                            f"{PTRACE_HELP}")
    if pid is not None and status != 0 and ("No such process" in text or "Failed to open process" in text):
        raise RetracerError(f"retracer: no Python process {pid} to sample (py-spy: {_first_error(text)})")
    return status, spy


def _is_spy_error(line: str) -> bool:
    return line.startswith(("Error:", "Stack backtrace:", "Permission Denied", "Caused by:")) or \
        bool(re.match(r"^\s+\d+: ", line))


def _permission_problem(text: str) -> bool:
    t = text.lower()
    return "permission denied" in t or "operation not permitted" in t or "eperm" in t


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("Error:"):
            return line[len("Error:"):].strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no output"


# ------------------------------------------------------------------ conversion

class _Funcs:
    """Frames -> function rows (fid, kind, name, qualname, module, filename, firstlineno, flags)."""

    def __init__(self, scopes: Sequence[str]) -> None:
        self.rows: List[tuple] = []
        self.by_key: Dict[Tuple, int] = {}
        self.scopes = list(scopes)  # prefixes of your code's file names
        self.modules = _module_names()

    def fid(self, frame: str) -> int:
        m = _FRAME.match(frame)
        if m:
            name, where = m.group(1), m.group(2)
        else:
            name, where = frame, ""
        file, _, line = where.rpartition(":")
        if not (file and line.isdigit()):
            file, line = where, ""
        python = file.endswith((".py", ".pyw")) or file.startswith("<") or (
            os.path.isabs(file) and os.path.splitext(file)[1] in ("", ".py", ".pyw") and not native_lib(file))
        if python and not native_source(file):
            key = ("py", name, file, int(line) if line.isdigit() else 0)
        else:
            lib = os.path.basename(file) if file else "?"
            label = f"[{lib}]" if _ADDR.match(name) else f"{name} [{lib}]"
            key = ("c", label)
        got = self.by_key.get(key)
        if got is not None:
            return got
        fid = len(self.rows)
        if key[0] == "py":
            _, name, file, line = key
            flags = 0
            if any(file.startswith(s) for s in self.scopes):
                flags |= FLAG_IN_SCOPE
            if name == "<module>":
                flags |= FLAG_MODULE_BODY
            if file.startswith("<frozen importlib") or "importlib" + os.sep + "_bootstrap" in file:
                flags |= FLAG_IMPORT_MACHINERY
            short = name.rsplit(".", 1)[-1]
            self.rows.append((fid, "py", short, name, self.modules(file), file, line, flags))
        else:
            self.rows.append((fid, "c", key[1], key[1], "", "~", 0, FLAG_C_FUNCTION))
        self.by_key[key] = fid
        return fid


def native_lib(path: str) -> bool:
    base = os.path.basename(path)
    return ".so" in base or base.endswith((".dylib", ".dll", ".pyd")) or base.startswith("lib")


def native_source(path: str) -> bool:
    return os.path.splitext(path)[1] in (".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".rs", ".pyx", ".pxd") or \
        path.endswith(".c.h") or native_lib(path)


def _module_names():
    """A function mapping a file to its module name (from sys.path; best effort)."""
    paths = sorted({os.path.abspath(p) for p in sys.path if p and os.path.isdir(p)}, key=len, reverse=True)

    def mod(file: str) -> str:
        if not os.path.isabs(file):
            return ""
        for p in paths:
            if file.startswith(p + os.sep):
                rel = os.path.splitext(file[len(p) + 1:])[0].replace(os.sep, ".")
                return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel
        return ""
    return mod


def parse_raw(text: str) -> Dict[str, Dict[Tuple[str, ...], int]]:
    """py-spy's raw output -> {thread label: {stack (root first): samples}}."""
    threads: Dict[str, Dict[Tuple[str, ...], int]] = {}
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = "sampled"
        if frames and _THREAD.match(frames[0]):
            thread = frames.pop(0)
        if frames and frames[0].startswith("process ") and ":" in frames[0]:
            frames.pop(0)
        d = threads.setdefault(thread, {})
        t = tuple(frames)
        d[t] = d.get(t, 0) + int(count)
    return threads


def _varint(v: int, out: bytearray) -> None:
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


class _Stream:
    """The call stream encoder (docs/call-stream.md): ENTER/EXIT/TIME events, cut
    into chunks that each start with a TIME event."""

    def __init__(self) -> None:
        self.chunks: List[Tuple[bytes, int]] = []
        self.buf = bytearray()
        self.n = 0
        self.t = 0
        self.calls = 0
        self.events = 0
        self._time()

    def _time(self) -> None:
        _varint((self.t << 3) | 5, self.buf)
        self.n += 1

    def _cut(self) -> None:
        if self.n >= _EVENTS_PER_CHUNK:
            self.chunks.append((bytes(self.buf), self.n))
            self.events += self.n
            self.buf = bytearray()
            self.n = 0
            self._time()

    def enter(self, fid: int, t: int) -> None:
        self._cut()
        _varint(fid << 3, self.buf)
        _varint(t - self.t, self.buf)
        self.t = t
        self.n += 1
        self.calls += 1

    def exit(self, t: int) -> None:
        self._cut()
        _varint(((t - self.t) << 3) | 1, self.buf)
        self.t = t
        self.n += 1

    def finish(self) -> List[Tuple[bytes, int]]:
        if self.n > 1 or not self.chunks:
            self.chunks.append((bytes(self.buf), self.n))
            self.events += self.n
        return self.chunks


def _prefixes(scopes: Sequence[str]) -> List[str]:
    """Directories as file name prefixes (``/a/b`` -> ``/a/b/``); ``<...`` prefixes kept."""
    return [s if s.startswith("<") or s.endswith(os.sep) else os.path.abspath(s).rstrip(os.sep) + os.sep
            for s in scopes]


def convert(threads: Dict[str, Dict[Tuple[str, ...], int]], rate: int, scopes: Sequence[str],
            trim: Optional[str] = None):
    """(functions, thread rows, {thread_idx: chunks}, func_stats, edge_stats, samples, stream calls).

    ``trim``: a file name prefix; keep only what is below the first frame of such a
    file (samples without one are dropped): %%rsample's cell without IPython's frames."""
    interval = int(round(1e9 / rate))
    funcs = _Funcs(_prefixes(scopes))
    own: Dict[int, int] = {}
    cum: Dict[int, int] = {}
    edges: Dict[Tuple[int, int], List[int]] = {}   # (caller, callee) -> [samples, own samples]
    thread_rows = []
    streams: Dict[int, List[Tuple[bytes, int]]] = {}
    samples = 0
    calls = 0
    for idx, (label, stacks) in enumerate(sorted(threads.items(), key=lambda kv: -sum(kv[1].values()))):
        tree: Dict = {}
        for stack, n in stacks.items():
            fids = []
            for f in stack:
                fid = funcs.fid(f)
                if fids and fids[-1] == fid and funcs.rows[fid][1] == "c" and funcs.rows[fid][2].startswith("["):
                    continue  # anonymous addresses of one library: one frame
                fids.append(fid)
            # the interpreter's own entry frames (libc, Py_Main...) above the first Python frame are dropped
            first_py = next((i for i, f in enumerate(fids) if funcs.rows[f][1] == "py"), None)
            if first_py:
                fids = fids[first_py:]
            if trim:
                mine = next((i for i, f in enumerate(fids)
                             if funcs.rows[f][1] == "py" and str(funcs.rows[f][5]).startswith(trim)), None)
                fids = [] if mine is None else fids[mine:]
            if not fids:
                continue
            samples += n
            own[fids[-1]] = own.get(fids[-1], 0) + n
            for fid in set(fids):
                cum[fid] = cum.get(fid, 0) + n
            pairs = set()
            for i, fid in enumerate(fids):
                caller = fids[i - 1] if i else -1
                pairs.add((caller, fid))
            for p in pairs:
                e = edges.setdefault(p, [0, 0])
                e[0] += n
            leaf_pair = (fids[-2] if len(fids) > 1 else -1, fids[-1])
            edges[leaf_pair][1] += n
            node = tree
            for fid in fids:
                node = node.setdefault(fid, [0, 0, {}])  # [total, self, children]
                node[0] += n
                node = node[2]
            # the leaf's own samples
            leaf = tree
            for fid in fids[:-1]:
                leaf = leaf[fid][2]
            leaf[fids[-1]][1] += n
        st = _Stream()
        emit_iter(tree, st, interval)
        chunks = st.finish()
        streams[idx] = chunks
        calls += st.calls
        m = _THREAD.match(label)
        native_id = int(m.group(1), 0) if m else None
        name = (m.group(2) if m and m.group(2) else
                "MainThread" if idx == 0 else f"thread {native_id if native_id is not None else idx}")
        thread_rows.append((idx, native_id or idx, native_id, name, st.events))
    fstats = [(fid, cum.get(fid, 0), cum.get(fid, 0), own.get(fid, 0) * interval, cum.get(fid, 0) * interval)
              for fid in range(len(funcs.rows)) if cum.get(fid)]
    estats = [(a, b, n, n, o * interval, n * interval) for (a, b), (n, o) in sorted(edges.items())]
    return funcs.rows, thread_rows, streams, fstats, estats, samples, calls


def emit_iter(tree: Dict, st: _Stream, interval: int) -> None:
    """The tree as ENTER/EXIT events, heaviest child first, without recursion (deep stacks)."""
    t = 0
    stack: List = [iter(sorted(tree.items(), key=lambda kv: -kv[1][0]))]
    ends: List[int] = []
    while stack:
        try:
            fid, (total, _self, kids) = next(stack[-1])
        except StopIteration:
            stack.pop()
            if ends:
                t = ends.pop()
                st.exit(t)
            continue
        st.enter(fid, t)
        ends.append(t + total * interval)
        stack.append(iter(sorted(kids.items(), key=lambda kv: -kv[1][0])))


def write_sampled_trace(out: str, raw_text: str, rate: int, native: bool, command: List[str],
                        scopes: Sequence[str], started: float, ended: float, exit_status: Optional[int],
                        pid: Optional[int] = None, only_thread: Optional[int] = None,
                        trim: Optional[str] = None) -> Tuple[str, int]:
    """Write the trace ``out`` from py-spy's raw output; returns (path, samples).
    ``only_thread``: keep only that native thread's samples (when py-spy saw it)."""
    from ..tracefile.writer import TraceWriter

    threads = parse_raw(raw_text)
    if only_thread is not None:
        mine = {k: v for k, v in threads.items()
                if (_THREAD.match(k) or [None, None])[1] == str(only_thread)}
        threads = mine or threads
    funcs, thread_rows, streams, fstats, estats, samples, stream_calls = convert(threads, rate, scopes, trim)
    interval = int(round(1e9 / rate))
    events = sum(n for chunks in streams.values() for _, n in chunks)
    meta = {
        "command": list(command), "cwd": os.getcwd(),
        "python_version": sys.version.split()[0], "python_implementation": sys.implementation.name,
        "retracer_version": VERSION, "hook": "sampled (py-spy)", "clock": "samples",
        "start_time": started, "end_time": ended,
        "duration_ns": int((ended - started) * 1e9), "options": {}, "exit_status": exit_status,
        "calls_total": sum(r[1] for r in fstats), "stream_calls": stream_calls, "stream_events": events,
        "complete": True, "stopped_by": "end", "engine_error": None,
        "scope": scopes[0] if scopes else os.getcwd(), "scopes": list(scopes),
        "sampled": {"sampler": "py-spy", "rate": rate, "native": native, "samples": samples,
                    "interval_ns": interval, "pid": pid, "call_stream": "synthesized"},
    }
    with TraceWriter(out) as w:
        for k, v in meta.items():
            w.set_meta(k, v)
        w.add_functions(funcs)
        w.add_threads(thread_rows)
        for tidx, chunks in streams.items():
            for seq, (data, n) in enumerate(chunks):
                w.add_chunk(tidx, seq, data, n, codec="zlib")
        w.add_func_stats(fstats)
        w.add_edge_stats(estats)
        w.set_meta("captured_calls", 0)
        path = w.commit()
    return path, samples


def sample(out: str, program: Sequence[str] = (), module: Optional[str] = None, pid: Optional[int] = None,
           rate: int = DEFAULT_RATE, native: bool = False, fmt: str = "trace", scopes: Iterable[str] = (),
           duration: Optional[float] = None, quiet: bool = False, on_start=None, idle: bool = False) -> Dict:
    """Sample a program (``program``: script and arguments, or ``module``) or the
    running process ``pid``; write ``out`` as a retracer trace (``fmt`` "trace") or
    py-spy's own ``speedscope`` / retracer's ``pprof`` export. Returns a summary."""
    from ..outputs import check_target
    from ..tracefile.tempdir import RunDir

    find_py_spy()  # first: without py-spy there is nothing to do
    check_target(out)
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        os.makedirs(parent, exist_ok=True)
    if pid is None:
        if module:
            command = [sys.executable, "-m", module] + list(program)
            shown = ["-m", module] + list(program)
            default_scope = os.getcwd()
        else:
            if not program:
                raise RetracerError("retracer: nothing to sample: give a script, -m module or --pid PID")
            if not os.path.isfile(program[0]):
                raise RetracerError(f"retracer: {program[0]} does not exist; give the script to sample")
            command = [sys.executable] + list(program)
            shown = list(program)
            default_scope = os.path.dirname(os.path.abspath(program[0]))
    else:
        command, shown, default_scope = [], [f"--pid {pid}"], os.getcwd()
        check_pid(pid)
    scopes = [os.path.abspath(s) for s in scopes] or [default_scope]  # directories
    rd = RunDir()
    try:
        spy_fmt = "speedscope" if fmt == "speedscope" else "raw"
        tmp = os.path.join(rd.path, "pyspy.out")
        cmd = py_spy_command(tmp, spy_fmt, rate, native, pid, command, duration, idle=idle)
        started = time.time()
        status, spy_lines = run_py_spy(cmd, pid, on_start=on_start)
        ended = time.time()
        if not os.path.exists(tmp):
            raise RetracerError(f"retracer: py-spy wrote no samples (exit status {status}: "
                                f"{_first_error(chr(10).join(spy_lines))})")
        exit_status = _program_status(spy_lines, status)
        if fmt == "speedscope":
            from ..outputs import atomic_path
            with atomic_path(out) as t2:
                shutil.copyfile(tmp, t2)
            return {"path": out, "samples": None, "format": fmt, "status": status, "spy": spy_lines}
        with open(tmp, encoding="utf-8", errors="replace") as f:
            raw = f.read()
        trace_out = out if fmt == "trace" else os.path.join(rd.path, "sampled.trace")
        path, samples = write_sampled_trace(trace_out, raw, rate, native, shown, scopes, started, ended,
                                            exit_status, pid)
        if fmt == "pprof":
            from ..render.stream import export
            export(path, "pprof", out, trust=True)
            path = out
        return {"path": path, "samples": samples, "format": fmt, "status": status, "spy": spy_lines,
                "seconds": ended - started}
    finally:
        rd.close()


class SelfSampler:
    """py-spy attached to this very process (``%%rsample``): ``start()``, run the
    code, ``stop(out)``. A child attaching to its parent needs ptrace permission
    (root, or kernel.yama.ptrace_scope 0: scope 1 only lets a parent trace its children)."""

    def __init__(self, rate: int = DEFAULT_RATE, native: bool = False) -> None:
        from ..tracefile.tempdir import RunDir

        self.rate, self.native = rate, native
        self.rd = RunDir()
        self.raw = os.path.join(self.rd.path, "pyspy.out")
        self.proc: Optional[subprocess.Popen] = None
        self.lines: List[str] = []
        self.started = 0.0
        self.thread = threading.get_native_id()

    def start(self, timeout: float = 20.0) -> None:
        cmd = py_spy_command(self.raw, "raw", self.rate, self.native, os.getpid(), ())
        try:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                         errors="replace", start_new_session=True)
        except OSError as e:
            self.rd.close()
            raise RetracerError(f"retracer: cannot run py-spy ({cmd[0]}): {e.strerror or e}") from None
        ready = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if "Sampling process" in line:
                    ready.set()
            ready.set()
        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        ready.wait(timeout)
        if self.proc.poll() is not None:
            text = "\n".join(self.lines)
            self.rd.close()
            if _permission_problem(text):
                raise RetracerError(f"retracer: py-spy was not allowed to read this process's memory "
                                    f"(permission denied): {PTRACE_HELP}")
            raise RetracerError(f"retracer: py-spy could not sample this process: {_first_error(text)}")
        self.started = time.time()

    def stop(self, out: str, command: List[str], scopes: Sequence[str],
             trim: Optional[str] = None) -> Tuple[str, int]:
        import signal

        assert self.proc is not None
        ended = time.time()
        try:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes what it sampled and ends
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._pump.join(timeout=5)
            if not os.path.exists(self.raw):
                raise RetracerError(f"retracer: py-spy wrote no samples ({_first_error(chr(10).join(self.lines))})")
            with open(self.raw, encoding="utf-8", errors="replace") as f:
                raw = f.read()
            return write_sampled_trace(out, raw, self.rate, self.native, command, scopes, self.started, ended,
                                       None, os.getpid(), only_thread=self.thread, trim=trim)
        finally:
            self.rd.close()


def check_pid(pid: int) -> None:
    """A one-line error when there is no process ``pid``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise RetracerError(f"retracer: no process {pid} to sample") from None
    except PermissionError:
        pass  # it exists; py-spy says whether it may read it
    except (OverflowError, ValueError):
        raise RetracerError(f"retracer: no process {pid} to sample") from None


def _program_status(lines: List[str], status: int) -> Optional[int]:
    return status if status in (0,) else None
