"""The tracing session: start the C engine, stop it, write the trace file.

`Tracer` is the public object (context manager and decorator). The engine
records events into per-thread buffers and appends full chunks to a spool
file in this process's private run directory (retracer.tracefile.tempdir);
`stop()` turns the spool and the profile into one SQLite trace written to a
temporary name and moved into place. A trace that cannot be written does not
change the program's ending: one line says what was lost.
"""
from __future__ import annotations

import atexit
import functools
import itertools
import json
import os
import re
import signal
import _signal  # pthread_sigmask at fork without signal.py's Python wrappers (they would be in the profile)
import sys
import sysconfig
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

from .. import _engine, settings
from .._version import VERSION
from ..errors import RetracerError
from ..tracefile.schema import FLAG_IN_SCOPE, Function, Thread
from . import sources

# sqlite3 (the trace writer) and pickle (capture) are imported when first needed:
# Capturer in start() when capture is on, write_trace in _write()

__all__ = ["Tracer", "TraceSummary", "MECHANISM"]

MECHANISM: str = _engine.MECHANISM
# 3.12+: Python frames go through the PEP 523 hook, C functions through sys.monitoring
_C_CALLS_BY_MONITORING = "sys.monitoring" in MECHANISM
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_CHUNK_SIZE = 256 * 1024
# a followed child hands its call stream to its spool at least this often (ms): killed
# before it writes its part, it loses at most about that much of it (tracefile/recover.py)
_CHILD_FLUSH_MS = 500
def _grace_ms(warn: bool = True) -> int:
    """Capture time always allowed before --capture-share applies (README "What
    capture costs"): 50 ms, or $RETRACER_CAPTURE_GRACE_MS. `warn`: say so when it
    is not a number (the root process does; its followed children do not again)."""
    raw = os.environ.get("RETRACER_CAPTURE_GRACE_MS", "50")
    try:
        v = int(raw)
    except ValueError:
        v = -1
    if v < 0:
        if not warn:
            return 50
        print(f"retracer: warning: RETRACER_CAPTURE_GRACE_MS={raw!r} is not a number of milliseconds "
              f"(0 or more); using 50", file=sys.stderr, flush=True)
        return 50
    return v


class TraceSummary:
    """What a finished session recorded (printed by the CLI). A plain class: the
    dataclasses module imports inspect, which the traced program may import itself."""

    _FIELDS = ("path", "calls_total", "stream_calls", "threads", "duration_ns", "top", "error", "stopped_by",
               "captured_calls", "lost")

    def __init__(self, path: Optional[str], calls_total: int = 0, stream_calls: int = 0, threads: int = 0,
                 duration_ns: int = 0, top: Optional[List[Tuple[str, str, int, int]]] = None, error: str = "",
                 stopped_by: str = "end", captured_calls: int = 0, lost: bool = False) -> None:
        self.path = path
        self.calls_total = calls_total
        self.stream_calls = stream_calls
        self.threads = threads
        self.duration_ns = duration_ns
        self.top: List[Tuple[str, str, int, int]] = top if top is not None else []  # name, where, own_ns, calls
        self.error = error
        self.stopped_by = stopped_by
        self.captured_calls = captured_calls
        self.lost = lost  # the trace could not be written (one line said what was lost)
        self.processes = 1  # processes in the trace (the root and the children it followed)
        self.stream_cut: Optional[Dict[str, Any]] = None  # the call stream reached --max-stream-bytes

    def __repr__(self) -> str:
        return "TraceSummary(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self._FIELDS) + ")"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self._FIELDS)



def _dirprefix(path: str) -> str:
    p = os.path.abspath(path)
    return p if p.endswith(os.sep) else p + os.sep


def _stdlib_prefixes() -> Tuple[str, ...]:
    out = set()
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            out.add(_dirprefix(paths[key]))
    return tuple(sorted(out))


class _NameRecorder(dict):
    """Stands in for threading._active while tracing to remember thread names."""

    def __init__(self, base: dict, names: Dict[int, str]) -> None:
        super().__init__(base)
        self._names = names
        for ident, th in base.items():
            names[ident] = getattr(th, "name", str(ident))

    def __setitem__(self, key, value) -> None:  # called by Thread._bootstrap_inner
        self._names[key] = getattr(value, "name", str(key))
        super().__setitem__(key, value)


class Tracer:
    """Trace a block of code or a function.

    ::

        with Tracer(output="run.trace"):
            work()

        @Tracer(output="f.trace")
        def f(): ...

    Arguments left as None come from ``[tool.retracer]`` in pyproject.toml
    (found from ``config_file_path`` or the current directory), then from the
    defaults. ``disable=True`` makes the tracer do nothing. ``extra_scope``: file
    name prefixes also in the scope, compared as they are (``"<ipython-input-"``
    puts the cells of an IPython session in scope; the magics use it).
    """

    _lock = threading.Lock()

    def __init__(
        self,
        output: Optional[str] = None,
        max_function_count: Optional[int] = None,
        timeout: Optional[float] = None,
        disable: bool = False,
        config_file_path: Optional[str] = None,
        *,
        scope: Optional[Union[str, Sequence[str]]] = None,
        only_functions: Optional[Sequence[str]] = None,
        no_external_calls: Optional[bool] = None,
        no_imports: Optional[bool] = None,
        no_capture: Optional[bool] = None,
        c_calls: Optional[bool] = None,
        max_value_bytes: Optional[int] = None,
        redact: Optional[Sequence[str]] = None,
        capture_share: Optional[float] = None,
        max_capture_bytes: Optional[int] = None,
        max_stream_bytes: Optional[int] = None,
        follow: Optional[bool] = None,
        extra_scope: Sequence[str] = (),
        command: Optional[List[str]] = None,
        default_scope: Optional[str] = None,
        handle_signals: bool = True,
        on_finish: Optional[Callable[[TraceSummary], None]] = None,
    ) -> None:
        self._init_args = {k: v for k, v in locals().items() if k != "self"}  # for the decorator
        self.disable = disable
        cfg: Dict[str, Any] = {} if disable else settings.load_config(config_file_path)
        # the keywords that are settings (retracer.settings): resolved against
        # [tool.retracer] and the defaults, each an attribute of the same name
        explicit = {k: v for k, v in self._init_args.items() if k in settings.BY_NAME}
        self.settings = values = settings.resolve(explicit, cfg)
        for name in explicit:
            setattr(self, name, values[name])
        self.output = os.path.abspath(values["output"])
        #: your code: one or more directories (the first is the one reports show)
        self.scopes = [os.path.abspath(p) for p in (values["scope"] or [default_scope or os.getcwd()])]
        self.scope = self.scopes[0]
        self.only_functions = values["only_functions"] or None
        self._family: Optional[str] = None  # the root's family directory while following
        self._child_base: Optional[str] = None  # a followed child: its files' base name
        self._forked = False
        self._pid = os.getpid()  # the process this tracer records (set again by start())
        # more of your code: file name prefixes matched as they are (not directories),
        # e.g. "<ipython-input-" for the cells of an IPython session
        self.extra_scope = tuple(str(p) for p in extra_scope)
        self.tests_root = values["tests_root"]
        self.command = command if command is not None else list(sys.argv)
        self.handle_signals = handle_signals
        self.on_finish = on_finish
        self._running = False
        self._spool: Optional[str] = None
        self._rundir: Any = None
        self._git_probe: Any = None  # a sources.GitProbe from start() to the trace's writing
        self._capturer: Any = None  # a capture.Capturer while capturing
        self._tool_id: Optional[int] = None
        self._timer: Optional[threading.Timer] = None
        self._names: Dict[int, str] = {}
        self._saved_active: Optional[dict] = None
        self._old_sigterm: Any = None
        self._start_wall = 0.0
        self._stop_lock = threading.Lock()
        self.summary: Optional[TraceSummary] = None

    # ------------------------------------------------------------- control

    def start(self) -> "Tracer":
        """Begin recording. Raises RetracerError if the output cannot be written."""
        if self.disable or self._running:
            return self
        if _engine.active():
            print("retracer: a tracer is already running; this one is disabled", file=sys.stderr)
            self.disable = True
            return self
        self._pid = os.getpid()
        self._preflight()
        self._git_probe = None
        if not self.no_capture and self.max_function_count > 0 and self._child_base is None:
            self._git_probe = sources.GitProbe(self.scope)  # runs while the program does (not traced)
        if self.follow and self._child_base is None:
            from . import follow

            if follow._config is None:  # not inside a followed process already
                try:
                    self._family = follow.root_begin(self)
                except OSError as e:
                    self._remove_spools()
                    raise RetracerError(f"retracer: cannot create temporary files ({e.strerror or e}); "
                                        f"set RETRACER_TMPDIR to a writable directory")
        if not self.no_capture and self.max_function_count > 0:
            import ast  # noqa: F401 -- capture's first call reads the script with it: not in capture's time

            from .capture import Capturer

            cap_spool = os.path.join(self._rundir.path, "capture.spool")
            self._capturer = Capturer(cap_spool, max_value_bytes=self.max_value_bytes, redact=self.redact,
                                      scope=tuple(_dirprefix(p) for p in self.scopes) + self.extra_scope,
                                      max_capture_bytes=self.max_capture_bytes)
        if self.timeout is not None:
            # started before the engine so its waiting is not traced
            self._timer = threading.Timer(float(self.timeout), self._on_timeout)
            self._timer.daemon = True
            self._timer.start()
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                    self._old_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
                    # a SIGTERM that lands just before the main thread blocks (a pool
                    # worker going back to wait for a task) is sent to it again until
                    # _on_sigterm runs: without retracer it would have ended the process
                    _engine.sigterm_guard(True)
            except (ValueError, OSError):
                self._old_sigterm = None
        atexit.register(self._atexit)
        self._saved_active = threading._active  # type: ignore[attr-defined]
        threading._active = _NameRecorder(self._saved_active, self._names)  # type: ignore[attr-defined]
        self._start_wall = time.time()
        scopes = tuple(_dirprefix(p) for p in self.scopes)
        exclude = tuple(p for p in _stdlib_prefixes() if not any(s.startswith(p) for s in scopes))
        cwd = _dirprefix(os.getcwd())
        if MECHANISM == "setprofile":
            threading.setprofile(_engine.thread_bootstrap)  # new threads install the C hook
        self._running = True
        global _current
        _current = self
        try:
            # everything retracer does before this line is not traced: the
            # engine records from here on
            _engine.start(
                spool=self._spool, scope=scopes + self.extra_scope, exclude=exclude, ignore=(_PKG_DIR,),
                only=self.only_functions, cwd=cwd, no_external=self.no_external_calls,
                no_imports=self.no_imports, c_calls=self.c_calls, chunk_size=_CHUNK_SIZE,
                capture=self._capturer, max_count=self.max_function_count, shape_diverse=True,
                capture_share=self.capture_share, capture_grace_ms=_grace_ms(warn=self._child_base is None),
                stream_max_bytes=self.max_stream_bytes,
                **({"journal": self._child_base + ".funcs", "flush_ms": _CHILD_FLUSH_MS}
                   if self._child_base is not None else {}),
            )
            if _C_CALLS_BY_MONITORING and (self.c_calls or _engine.CLASS_CALLS_NEED_CALL_EVENTS):
                self._register_monitoring()
        except BaseException:
            _engine.stop()
            self._running = False
            _forget(self)
            self._cleanup_start()
            raise
        return self

    def _preflight(self) -> None:
        """Before the program runs: the output directory, the config directory and
        the signing key must be usable (one line, exit 2, otherwise), and this
        process gets its private run directory for the spools (see
        retracer.tracefile.tempdir)."""
        from ..tracefile import signing
        from ..tracefile.tempdir import RunDir, check_writable_dir

        parent = os.path.dirname(self.output)
        if parent and not os.path.exists(parent):
            # the output's directory is created (README, Configuration: output = "traces/run.trace")
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as e:
                raise RetracerError(f"retracer: cannot write the trace {self.output}: its directory cannot be "
                                    f"created ({e.strerror or e}); pass another -o") from None
        problem = check_writable_dir(self.output)
        if problem:
            raise RetracerError(f"retracer: cannot write the trace {self.output}: {problem}; "
                                f"pass another -o")
        signing.get_key()  # a TraceError line if the config directory or the key is unusable
        try:
            self._rundir = RunDir()
            # a followed child's stream and function journal go beside its part in the
            # root's family directory: a child killed before it writes its part still
            # leaves the root what it recorded (tracefile/recover.py)
            self._spool = (self._child_base + ".spool" if self._child_base is not None
                           else self._rundir.file("stream.spool"))
        except OSError as e:
            if self._rundir is not None:
                self._rundir.close()
                self._rundir = None
            raise RetracerError(f"retracer: cannot create temporary files ({e.strerror or e}); "
                                f"set RETRACER_TMPDIR to a writable directory")

    def _cleanup_start(self) -> None:
        self._end_family()
        self._unregister()
        if self._timer is not None:
            self._timer.cancel()
        try:
            atexit.unregister(self._atexit)
        except Exception:
            pass
        self._remove_spools()

    def _end_family(self) -> None:
        if self._family is not None:
            from . import follow

            follow.root_end()

    def _remove_spools(self) -> None:
        paths = [self._spool] + ([self._child_base + ".funcs"] if self._child_base is not None else [])
        if self._capturer is not None:
            try:
                self._capturer.close()
            except Exception:
                pass
            paths += [self._capturer.path, self._capturer.blob_path]
        for p in paths:
            if p and os.path.exists(p):
                os.unlink(p)
        rd, self._rundir = self._rundir, None
        if rd is not None:
            rd.close()

    def _register_monitoring(self) -> None:
        mon = sys.monitoring  # type: ignore[attr-defined]
        for tool in (mon.PROFILER_ID, 3, 4, 5):
            if mon.get_tool(tool) is None:
                mon.use_tool_id(tool, "retracer")
                self._tool_id = tool
                break
        else:
            raise RetracerError("retracer: no free sys.monitoring tool id (another profiler is running); stop it first")
        ev = mon.events
        _engine.set_disable(mon.DISABLE)
        # C functions only: Python frames are seen by the PEP 523 hook
        cbs = {ev.CALL: _engine.mon_call, ev.C_RETURN: _engine.mon_c_return, ev.C_RAISE: _engine.mon_c_raise}
        if not self.c_calls:  # 3.13: CALL only, to keep class call sites from skipping the hook
            cbs = {ev.CALL: _engine.mon_call}
        mask = 0
        for event, cb in cbs.items():
            mon.register_callback(self._tool_id, event, cb)
            mask |= event
        mon.restart_events()
        mon.set_events(self._tool_id, mask)
        self._mon_events = list(cbs)

    def _unregister(self) -> None:
        if _C_CALLS_BY_MONITORING and self._tool_id is not None:
            mon = sys.monitoring  # type: ignore[attr-defined]
            try:
                mon.set_events(self._tool_id, 0)
                for event in self._mon_events:
                    mon.register_callback(self._tool_id, event, None)
                mon.free_tool_id(self._tool_id)
            except Exception:
                pass
            self._tool_id = None
        elif MECHANISM == "setprofile":
            threading.setprofile(None)  # type: ignore[arg-type]
        if self._saved_active is not None:
            rec = threading._active  # type: ignore[attr-defined]
            if isinstance(rec, _NameRecorder):
                self._saved_active.clear()
                self._saved_active.update(rec)
                threading._active = self._saved_active  # type: ignore[attr-defined]
            self._saved_active = None

    def stop(self, stopped_by: str = "end", exit_status: Optional[int] = None) -> Optional[TraceSummary]:
        """Stop recording and write the trace file; returns what was recorded.

        Safe to call more than once and from any thread; only the first call
        writes.
        """
        _engine.pause()  # first: nothing retracer does from here on is recorded
        if os.getpid() != self._pid:
            # a forked child before (or without) the fork handler's work: the session and
            # the trace are the parent's, never stopped or written from here
            return None
        if threading.current_thread() is threading.main_thread():
            self._stopping = True  # a SIGTERM from now on waits for the trace (see _on_sigterm)
        with self._stop_lock:
            if not self._running:
                return self.summary
            self._running = False
            _forget(self)
            results = _engine.stop()
            self._unregister()
            if self._timer is not None and threading.current_thread() is not self._timer:
                self._timer.cancel()
            try:
                atexit.unregister(self._atexit)
            except Exception:
                pass
            if self._child_base is not None:
                from . import follow

                follow.mark_ending(self)
            self._end_family()  # processes started from now on are not followed
            import sqlite3  # the writer's errors (it is imported by the writer anyway)

            try:
                if getattr(self, "progress", False):
                    from ..term import status
                    with status("writing the trace"):
                        self.summary = self._write(results, stopped_by, exit_status)
                else:
                    self.summary = self._write(results, stopped_by, exit_status)
            except (RetracerError, OSError, sqlite3.Error, MemoryError) as e:
                # the program's own ending is kept: one line says what was lost
                self.summary = self._lost(results, stopped_by, e)
            finally:
                self._remove_spools()
                # only now: a SIGTERM while the trace was written waited for it (_on_sigterm)
                if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
                    try:
                        if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                            _engine.sigterm_guard(False)
                            signal.signal(signal.SIGTERM, self._old_sigterm)
                    except (ValueError, OSError):
                        pass
            if self.on_finish is not None:
                self.on_finish(self.summary)
        if getattr(self, "_sigterm_pending", False):
            self._sigterm_pending = False
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        return self.summary

    def _lost(self, results: Any, stopped_by: str, e: BaseException) -> TraceSummary:
        why = str(e) if isinstance(e, RetracerError) else (getattr(e, "strerror", None) or str(e)
                                                           or type(e).__name__)
        m = re.search(r"\(([^()]*)\)", why) if isinstance(e, RetracerError) else None
        reason = m.group(1) if m else why
        calls = sum(r.calls for r in results.func_stats or ())
        n_cap = self._capturer.count if self._capturer is not None else 0
        kept = " (the file already there is unchanged)" if os.path.exists(self.output) else ""
        print(f"retracer: the trace {self.output} could not be written ({reason}){kept}: its {calls:,} calls "
              f"and {n_cap:,} captured calls are lost; free some space or choose another -o, then trace again",
              file=sys.stderr, flush=True)
        return TraceSummary(path=None, calls_total=calls, stopped_by=stopped_by, error=f"not written: {reason}",
                            lost=True)

    def _on_timeout(self) -> None:
        self.stop(stopped_by="timeout")

    def _on_sigterm(self, signum, frame) -> None:
        _engine.sigterm_ack()  # first: the guard stops sending it again
        if os.getpid() != self._pid:  # a forked child that got the signal before its fork handler ran
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if getattr(self, "_stopping", False):
            # the trace is being written by this very thread (the handler interrupted
            # it): it is finished first, then the signal does what it would have done
            self._sigterm_pending = True
            return
        self.stop(stopped_by="signal", exit_status=-signum)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    def _atexit(self) -> None:
        self.stop(stopped_by="exit")

    # ------------------------------------------------------------- writing

    def _write(self, results: Any, stopped_by: str, exit_status: Optional[int]) -> TraceSummary:
        """Write the trace from `results`, the engine's Results (read by field name)."""
        from ..tracefile.spool import write_trace

        funcs = results.functions  # FunctionInfo per fid
        modules = _module_names()
        qualnames = (_qualnames_by_code(f.code for f in funcs if f.kind == "py")
                     if sys.version_info < (3, 11) else {})
        rows: List[Function] = []
        for f in funcs:
            if f.kind == "py":
                co = f.code
                filename = co.co_filename
                if not filename.startswith("<") and not os.path.isabs(filename):
                    filename = os.path.abspath(filename)
                qualname = getattr(co, "co_qualname", None) or qualnames.get(id(co), co.co_name)
                module = modules.get(filename, "")
                if module == "__mp_main__":  # the main script in a spawned child: the same function
                    module = "__main__"
                rows.append(Function(f.fid, "py", co.co_name, qualname, module, filename,
                                     co.co_firstlineno, f.flags))
            else:
                rows.append(Function(f.fid, "c", f.name, f.name, "", "~", 0, f.flags))
        stream_calls = sum(t.stream_calls for t in results.threads)
        stream_events = sum(t.n_events for t in results.threads)
        calls_total = sum(r.calls for r in results.func_stats)
        main_ident = threading.main_thread().ident
        thread_rows = []
        for t in results.threads:
            name = self._names.get(t.ident) or ("MainThread" if t.ident == main_ident else f"Thread-{t.ident}")
            thread_rows.append(Thread(t.thread_idx, t.ident, t.native_id, name, t.n_events))
        options = dict(settings.recorded(self.settings), scope=self.scopes, extra_scope=list(self.extra_scope),
                       only_functions=self.only_functions)
        meta = {
            "command": self.command, "cwd": os.getcwd(),
            "python_version": sys.version.split()[0],
            "python_implementation": sys.implementation.name,
            "retracer_version": VERSION, "hook": MECHANISM, "clock": results.clock,
            "start_time": self._start_wall, "end_time": time.time(),
            "duration_ns": results.duration_ns, "options": options,
            "exit_status": exit_status, "calls_total": calls_total,
            "stream_calls": stream_calls, "stream_events": stream_events,
            "complete": not results.error, "stopped_by": stopped_by,
            # the call stream reached --max-stream-bytes: the timeline ends there, the profile does not
            "stream_cut": None if results.stream_full_ns < 0 else {
                "after_s": round(results.stream_full_ns / 1e9, 3), "bytes": self.max_stream_bytes,
                "reason": f"the call stream reached {self.max_stream_bytes:,} bytes (--max-stream-bytes)"},
            "engine_error": results.error or None, "scope": self.scope, "scopes": self.scopes,
            "sys_path": [os.path.abspath(p) if p else os.getcwd() for p in sys.path],
        }
        cap = self._capturer
        captured: Any = ()
        source_blobs: List[Tuple[bytes, bytes]] = []
        if cap is not None:
            cap.close()  # calls still running are marked incomplete: the stats are final
            # get_token(): the return values of secret-looking functions are not written
            self._secret_calls, self._secret_keys = cap.secret_results(
                {fid: d.code.co_name for fid, d in enumerate(funcs) if d.kind == "py"})
            captured = self._captured_batches(funcs, rows, [t.stream_calls for t in results.threads])
            meta["capture"] = {"cut": cap.cut, "capture_ns": cap.capture_ns, "stored_bytes": cap.stored_bytes,
                               # calls the time budget skipped (the engine's policy)
                               "throttled": None if not results.capture_throttled else {
                                   "calls": results.capture_throttled,
                                   "first_after_s": round(results.capture_first_throttled_ns / 1e9, 3),
                                   "reason": f"capture is kept to {self.capture_share:.0%} of the run's time "
                                             f"(--capture-share)"},
                               "functions_stopped": sum(1 for s in cap.function_stats() if s[4]),
                               # per thread index: the time taken out of its timeline while capturing
                               "paused_ns": [t.paused_ns for t in results.threads]}
            # the code and environment the calls ran in, for replay (record/sources.py)
            meta["sources"], source_blobs = sources.collect(
                (r.filename for r in rows if r.kind == "py" and r.flags & FLAG_IN_SCOPE), self.scopes)
            probe = self._git_probe or sources.GitProbe(self.scope)
            self._git_probe = None
            meta["git"] = probe.result()
            meta["environment"] = sources.environment()
        meta["pid"] = os.getpid()
        info: Dict[str, Any] = {"forked": True} if self._forked else {}
        # a root that started no traced process writes the trace itself, as the merge of
        # its family would have written it (one process), instead of a part to merge
        alone = False
        if self._family is not None:
            alone = not _follow_module.children_started(self._family)
            if alone:
                meta["processes"] = 1
                info["calls_total"] = calls_total
        process = (0, os.getpid(), os.getppid(), json.dumps(self.command), self._start_wall, meta["end_time"],
                   exit_status, stopped_by, 0, json.dumps(info))
        tmp_dir = self._rundir.path if self._rundir is not None else None
        part = os.path.join(self._family, "root.part") if self._family is not None and not alone else self.output
        path, n_captured = write_trace(
            part, meta, rows, thread_rows, self._spool, results.func_stats, results.edge_stats,
            captured, blobs=itertools.chain(self._stored_blobs(), source_blobs) if cap is not None else (),
            capture_stats=cap.function_stats() if cap is not None else (),
            tmp_dir=tmp_dir, process=process)
        n_threads, n_procs = len(thread_rows), 1
        # a child whose start record appeared while the trace was written: merged after all
        merged = self._family is not None and (not alone or _follow_module.children_started(self._family))
        if merged:
            from ..tracefile.merge import merge_family

            path, totals = merge_family(self.output, part, self._family, tmp_dir, _engine.remap)
            calls_total, stream_calls = totals["calls_total"], totals["stream_calls"]
            n_threads, n_procs, n_captured = totals["threads"], totals["processes"], totals["captured_calls"]
        top = sorted(results.func_stats, key=lambda r: -r.own_ns)[:5]
        summary = TraceSummary(
            path=path, calls_total=calls_total, stream_calls=stream_calls,
            threads=n_threads, duration_ns=results.duration_ns,
            top=[(rows[r.fid].qualname, _where(rows[r.fid]), r.own_ns, r.calls) for r in top],
            error=results.error, stopped_by=stopped_by, captured_calls=n_captured,
        )
        summary.processes = n_procs
        summary.stream_cut = totals.get("stream_cut") if merged else meta["stream_cut"]
        # the calls as written (a merge numbers them again: then the tests file reads the trace)
        summary.cases = sorted(self._cases) if cap is not None and not merged else None
        return summary

    def _stored_blobs(self) -> Iterator[Tuple[bytes, bytes]]:
        """The capture spool's values, remembering their keys (written before the calls)."""
        assert self._capturer is not None
        self._blob_keys = keys = set()
        drop = getattr(self, "_secret_keys", set())
        for key, data in self._capturer.blobs():
            if key in drop:
                continue
            keys.add(key)
            yield key, data

    def _captured_batches(self, funcs: Sequence[Any], rows: Sequence[Function],
                          in_stream: Sequence[int]) -> Iterator[List[tuple]]:
        """The captured calls as ``captured_calls`` rows, in batches of 500. A call
        whose values did not all reach the spool (it could not be written: disk
        full) keeps no value and says so. ``in_stream``: per thread index, how many
        of its calls the call stream holds (a call past them, when the stream
        stopped at --max-stream-bytes, is not in it)."""
        import inspect  # after tracing (see _kind_of)

        cap = self._capturer
        assert cap is not None
        kinds: Dict[int, str] = {}
        batch = []
        keys = getattr(self, "_blob_keys", None)
        secret = getattr(self, "_secret_calls", set())
        cases = self._cases = []  # what the replay tests file lists (cli/trace.py), as the trace has them
        for row in cap.rows():
            fr = rows[row[1]]
            cases.append(CaseStub(row[0], row[3], fr.qualname or fr.name,
                                  f"{os.path.basename(fr.filename or '')}:{fr.firstlineno}"))
            if row[0] in secret:
                info = dict(row[11])
                info["redacted"] = ["the return value"]
                row = row[:6] + ("redacted", None, None, None, None, info)
            elif keys is not None and any(k is not None and k not in keys for k in row[7:11]):
                info = dict(row[11])
                info["error"] = "its values were lost: the capture spool could not be written"
                row = row[:6] + ("unpicklable", None, None, None, None, info)
            fid = row[1]
            if fid not in kinds:
                kinds[fid] = _kind_of(funcs[fid].code) if funcs[fid].kind == "py" else "c"
            info = dict(row[11])
            info["kind"] = kinds[fid]
            sc = info.get("stream_call")
            if sc is not None and not (row[2] < len(in_stream) and sc < in_stream[row[2]]):
                del info["stream_call"]
            co = funcs[fid].code
            info["argspec"] = [co.co_argcount, co.co_kwonlyargcount,
                               bool(co.co_flags & inspect.CO_VARARGS), bool(co.co_flags & inspect.CO_VARKEYWORDS)]
            batch.append(row[:11] + (json.dumps(info),))
            if len(batch) >= 500:
                yield batch
                batch = []
        if batch:
            yield batch

    # ------------------------------------------------- context manager, decorator

    def __enter__(self) -> "Tracer":
        return self.start()

    def __exit__(self, etype, value, tb) -> None:
        self.stop(stopped_by="end" if etype is None else "exception")

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with Tracer(**self._init_args):  # a fresh session for every call
                return func(*args, **kwargs)

        return wrapper


class CaseStub(NamedTuple):
    """A captured call as the replay tests file lists it (replay/testgen.py): the
    fields of replay's Case it reads, known here without reading the trace again."""
    call_id: int
    index: int
    qualname: str
    where: str


# The session running in this process, for the fork handler below.
_current: Optional[Tracer] = None


def _forget(tracer: Tracer) -> None:
    global _current
    if _current is tracer:
        _current = None


# SIGTERM is blocked around a traced process's fork (os.register_at_fork below): a
# SIGTERM that reached the child between the fork and its fork handler would be caught
# by the parent's Python handler, and Python drops a caught signal whose handler has
# been set back to SIG_DFL by the time it runs ("ignored due to race condition"): a
# pool worker terminated that early never died. Blocked, the signal waits in the
# kernel until the child has its own handlers, and is then delivered to them.
_mask_before_fork: Optional[Any] = None


# The spool writer's thread is stopped before the fork too, and started again in the
# parent with the next chunk after it (3.13 counts the threads after the parent's fork
# handlers): the program forks as the single-threaded process it is without retracer
# (CPython 3.12+ warns at a multi-threaded process's fork). The time the stop takes is
# retracer's own, out of the forking call's time (mute).
_spool_paused = False


def _before_fork() -> None:
    global _mask_before_fork, _spool_paused
    _mask_before_fork = None
    _spool_paused = False
    tracer = _current
    running = tracer is not None and tracer._running
    if not running and _follow_module._config is None:
        return  # nothing of retracer's runs in this process: its forks are left alone
    try:
        _mask_before_fork = _signal.pthread_sigmask(_signal.SIG_BLOCK, (_signal.SIGTERM,))
    except (AttributeError, OSError, ValueError):
        _mask_before_fork = None
    if running:
        was = _engine.mute(True)
        try:
            _spool_paused = _engine.spool_pause()
        finally:
            _engine.mute(was)


def _restore_mask_after_fork() -> None:
    global _mask_before_fork
    mask, _mask_before_fork = _mask_before_fork, None
    if mask is not None:
        was = _engine.mute(True)  # a child traces itself by now: this call is retracer's, not the program's
        try:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
        except (OSError, ValueError):
            pass
        finally:
            _engine.mute(was)


def _after_fork_in_parent() -> None:
    global _spool_paused
    if _spool_paused:
        _spool_paused = False
        was = _engine.mute(True)
        try:
            _engine.spool_resume()
        finally:
            _engine.mute(was)
    _restore_mask_after_fork()


def _after_fork_in_child() -> None:
    """A forked child (multiprocessing's default on Linux): its events must not
    reach the parent's spool, and it must neither write nor remove the parent's
    trace (not at exit, nor on SIGTERM). Without following it runs on untraced;
    when following (record/follow.py) it drops the inherited session and traces
    itself on its own. SIGTERM stays blocked until then (see _before_fork)."""
    global _spool_paused
    _spool_paused = False  # the parent's writer: abandoned in the child, never resumed
    try:
        _child_after_fork()
    finally:
        _restore_mask_after_fork()


def _child_after_fork() -> None:
    follow = _follow_module  # imported with this module: nothing is imported in the child here

    tracer = _current
    if tracer is None or not tracer._running:
        follow.after_fork()
        return
    _engine.pause()
    _silence_capture_files(tracer)
    tracer._running = False
    _forget(tracer)
    tracer._stop_lock = threading.Lock()  # another parent thread may have held it
    tracer._timer = None
    if tracer._old_sigterm is not None:
        try:
            if signal.getsignal(signal.SIGTERM) == tracer._on_sigterm:
                _engine.sigterm_guard(False)  # the parent's: its timer is not this process's
                signal.signal(signal.SIGTERM, tracer._old_sigterm)
        except (ValueError, OSError):
            pass
    if follow._config is not None:
        try:
            atexit.unregister(tracer._atexit)
        except Exception:
            pass
        tracer._unregister()  # the monitoring tool id, threading's table
        _engine.discard()
        # the child runs the parent's program: its command line is the parent's
        # (the one in /proc is the parent's too, with retracer's own command before it)
        follow.after_fork(command=tracer.command)


def _silence_capture_files(tracer: Tracer) -> None:
    """The capture spools' buffered files are the parent's: whatever they still
    buffer must never be written from this child (they append to the parent's
    files), so their descriptors now point at the null device."""
    cap = tracer._capturer
    if cap is None:
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        for f in (getattr(cap, "_file", None), getattr(cap, "_blobs", None)):
            try:
                if f is not None and not f.closed:
                    os.dup2(null, f.fileno())
            except (OSError, ValueError):
                pass
    finally:
        os.close(null)


if hasattr(os, "register_at_fork"):
    from . import follow as _follow_module

    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


def _kind_of(code) -> str:
    """function, generator, coroutine or asyncgen, from a code object's flags."""
    import inspect  # here, not at the top: the traced program's own import of it is traced

    f = code.co_flags
    if f & inspect.CO_ASYNC_GENERATOR:
        return "asyncgen"
    if f & (inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE):
        return "coroutine"
    if f & inspect.CO_GENERATOR:
        return "generator"
    return "function"


def _where(row: Function) -> str:
    if row.kind == "c":
        return "~"
    return f"{os.path.basename(row.filename)}:{row.firstlineno}"


def _qualnames_by_code(codes: Iterable[Any]) -> Dict[int, str]:
    """Before 3.11 code objects have no co_qualname. Take it from the function
    objects still alive, and derive the others the way the compiler does, from
    the code objects they are nested in (module → Class.method,
    function → f.<locals>.g)."""
    import gc
    import inspect
    import types

    out: Dict[int, str] = {}

    def walk(roots: List[Tuple[Any, Optional[str]]]) -> None:
        while roots:
            code, qual = roots.pop()
            is_function = bool(code.co_flags & inspect.CO_NEWLOCALS)  # a function, not a module/class body
            for c in code.co_consts:
                if not isinstance(c, types.CodeType):
                    continue
                if qual is None:
                    q = c.co_name
                elif is_function:
                    q = f"{qual}.<locals>.{c.co_name}"
                else:
                    q = f"{qual}.{c.co_name}"
                if id(c) not in out:
                    out[id(c)] = q
                    roots.append((c, q))

    # the structure of the code first: functools.wraps copies __qualname__ onto wrappers
    walk([(co, None) for co in codes if co.co_name == "<module>"])
    found = [(f.__code__, f.__qualname__) for f in gc.get_objects()
             if isinstance(f, types.FunctionType) and not hasattr(f, "__wrapped__")
             and id(f.__code__) not in out]
    for code, qual in found:
        out.setdefault(id(code), qual)
    walk(found)
    return out


def _module_names() -> Dict[str, str]:
    out: Dict[str, str] = {}
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if isinstance(f, str):
            out.setdefault(os.path.abspath(f), name)
    return out
