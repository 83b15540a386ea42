"""Following the processes a traced program starts (docs/trace-format.md, "Processes").

The root process (``retracer trace``) makes a *family directory* inside its
private run directory and exports ``RETRACER_FOLLOW`` (JSON: that directory,
the root's pid, the trace options) and puts ``_boot/`` first on
``PYTHONPATH``. Every Python process started from then on -- multiprocessing's
spawn and forkserver children, ``subprocess``/``os.exec*``/``os.spawn*`` of
this or another Python that can import retracer -- runs ``_boot/sitecustomize.py``
at start-up, which calls :func:`child_start`: the process traces itself with
the root's options. Forked children (``os.fork``, multiprocessing's fork and
the forkserver's children) drop the session they inherited (the engine's
``discard``) and start their own in the fork handler (:func:`after_fork`).

Each traced child writes, in the family directory,

- ``<id>.start``: JSON {pid, ppid, command, start_time, forked} when it starts;
- ``<id>.ending``: empty, when it begins writing its part (the root waits for it);
- ``<id>.part``: its own complete signed trace (one process), written at exit
  (atexit, ``os._exit`` -- multiprocessing's workers end that way -- or SIGTERM);

and every followed process that reaps a child (``os.waitpid``) writes
``exit-<pid>``: the exit status its parent saw. When the root ends it merges
every part into the one trace (:mod:`retracer.tracefile.merge`); a child that
started but left no part (killed by SIGKILL, crashed in C) is a process row
saying so, one still running (it outlived the root) too.
"""
from __future__ import annotations

import json
import os
import secrets
import sys
import time
from typing import Any, Dict, List, Optional

ENV = "RETRACER_FOLLOW"
BOOT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_boot")
_LIB_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: the options a child is traced with (Tracer keywords)
_CHILD_OPTIONS = ("max_function_count", "only_functions", "no_external_calls", "no_imports", "no_capture",
                  "c_calls", "max_value_bytes", "redact", "capture_share", "max_capture_bytes",
                  "max_stream_bytes")
#: multiprocessing's helper processes: not traced (they live until the root ends); the
#: forkserver's children are
_HELPERS = ("from multiprocessing.forkserver import main", "from multiprocessing.resource_tracker import main",
            "from multiprocessing.semaphore_tracker import main")

# this process's family configuration (root or child), or None
_config: Optional[Dict[str, Any]] = None
_real_exit = os._exit
_real_waitpid = getattr(os, "waitpid", None)
_saved_env: Dict[str, Optional[str]] = {}


def command_line() -> List[str]:
    """This process's command line as it was started."""
    orig = getattr(sys, "orig_argv", None)
    if orig:
        return list(orig)
    try:
        with open("/proc/self/cmdline", "rb") as f:
            parts = f.read().split(b"\0")
        return [os.fsdecode(p) for p in parts if p] or [sys.executable] + list(getattr(sys, "argv", []))
    except OSError:
        return [sys.executable] + list(getattr(sys, "argv", []))


def _write_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


# ------------------------------------------------------------------ the root


def root_begin(tracer: Any) -> str:
    """Make the family directory in the root's run directory and export the
    configuration to the processes the program starts. Returns the directory."""
    global _config
    family = os.path.join(tracer._rundir.path, "procs")
    os.mkdir(family, 0o700)
    opts = {k: getattr(tracer, k) for k in _CHILD_OPTIONS}
    deadline = (time.time() + tracer.timeout) if tracer.timeout is not None else None
    cfg = {"dir": family, "root": os.getpid(), "options": opts, "scopes": tracer.scopes,
           "extra_scope": list(tracer.extra_scope), "deadline": deadline, "lib": _LIB_DIR}
    _config = dict(cfg, is_root=True)
    for k in (ENV, "PYTHONPATH"):
        _saved_env[k] = os.environ.get(k)
    os.environ[ENV] = json.dumps(cfg)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = BOOT_DIR + (os.pathsep + old if old else "")
    _install_wrappers()
    return family


def root_end() -> None:
    """The root stops following: its environment as it was."""
    global _config
    _config = None
    for k, v in _saved_env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    _saved_env.clear()
    _uninstall_wrappers()


# ------------------------------------------------------------------ children


def child_start(raw: str) -> None:
    """Called at start-up by _boot/sitecustomize.py in a Python process whose
    parent is traced: trace this process too (multiprocessing's helper
    processes only pass it on to their forked children)."""
    global _config
    try:
        cfg = json.loads(raw)
        if not isinstance(cfg, dict) or not os.path.isdir(cfg.get("dir", "")):
            return  # the root is gone (or a stale variable): nothing to follow
    except (ValueError, TypeError):
        return
    _config = dict(cfg, is_root=False)
    _install_wrappers()
    cmd = " ".join(command_line())
    if any(h in cmd for h in _HELPERS):
        return  # not traced itself; its forked children are (see _install_wrappers)
    _start_child(forked=False)


def after_fork(command: Optional[List[str]] = None) -> None:
    """In a forked child of a followed process (the inherited session is already
    dropped): trace this child on its own."""
    if _config is None:
        return
    _start_child(forked=True, command=command)


def _start_child(forked: bool, command: Optional[List[str]] = None) -> None:
    from .tracer import Tracer

    cfg = _config
    assert cfg is not None
    timeout = None
    if cfg.get("deadline") is not None:
        timeout = cfg["deadline"] - time.time()
        if timeout <= 0:
            return
    import signal

    # a SIGTERM while the session starts waits for its handler (it writes what was recorded)
    mask = None
    if hasattr(signal, "pthread_sigmask"):
        try:
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        except (OSError, ValueError):
            pass
    try:
        _start_session(cfg, timeout, forked, command)
    finally:
        if mask is not None:
            from .. import _engine

            was = _engine.mute(True)  # the session records from now on: this call is retracer's own
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            finally:
                _engine.mute(was)


def _start_session(cfg: Dict[str, Any], timeout: Optional[float], forked: bool,
                   command: Optional[List[str]] = None) -> None:
    from .tracer import Tracer

    ident = f"{os.getpid()}-{secrets.token_hex(4)}"
    base = os.path.join(cfg["dir"], ident)
    opts = dict(cfg.get("options") or {})
    try:
        tracer = Tracer(output=base + ".part", timeout=timeout, scope=cfg.get("scopes"),
                        extra_scope=tuple(cfg.get("extra_scope") or ()), config_file_path=os.devnull,
                        command=list(command) if command else command_line(), follow=True, **opts)
        tracer._child_base = base
        tracer._forked = forked
        _write_json(base + ".start", {"pid": os.getpid(), "ppid": os.getppid(), "command": tracer.command,
                                      "start_time": time.time(), "forked": forked})
        tracer.start()
    except Exception:
        if os.environ.get("RETRACER_DEBUG_FOLLOW"):
            import traceback

            traceback.print_exc()
        return  # a child that cannot be traced runs on untraced, as it would without retracer


def children_started(family: str) -> bool:
    """Did a traced child write its start record in the family directory (what
    tracefile/merge.py's children() lists)? Without importing the merge."""
    try:
        return any(n.endswith(".start") for n in os.listdir(family))
    except OSError:
        return False


def mark_ending(tracer: Any) -> None:
    base = getattr(tracer, "_child_base", None)
    if base:
        try:
            os.close(os.open(base + ".ending", os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError:
            pass


# ------------------------------------------------------------ os wrappers


def _exit(status: int) -> None:
    """os._exit in a followed process: this process's part is written first
    (multiprocessing's workers and forked children end this way)."""
    from . import tracer as _tracer

    t = _tracer._current
    if t is not None and getattr(t, "_child_base", None):
        try:
            t.stop(stopped_by="exit", exit_status=status if isinstance(status, int) else None)
        except BaseException:
            pass
    _real_exit(status)


def _waitpid(pid: int, options: int):
    got = _real_waitpid(pid, options)  # type: ignore[misc]
    try:
        if got[0] > 0 and _config is not None:
            code = os.waitstatus_to_exitcode(got[1]) if hasattr(os, "waitstatus_to_exitcode") else None
            _write_json(os.path.join(_config["dir"], f"exit-{got[0]}"), {"status": code, "time": time.time()})
    except (OSError, ValueError):
        pass
    return got


def _install_wrappers() -> None:
    # the tracer module's fork handlers (registered when it is imported) trace every
    # forked child, those of the forkserver (which is not traced itself) too
    from . import tracer  # noqa: F401

    _exit.__name__ = "_exit"
    os._exit = _exit
    if _real_waitpid is not None:
        _waitpid.__name__ = "waitpid"
        _waitpid.__doc__ = _real_waitpid.__doc__
        os.waitpid = _waitpid


def _uninstall_wrappers() -> None:
    if os._exit is _exit:
        os._exit = _real_exit
    if _real_waitpid is not None and os.waitpid is _waitpid:
        os.waitpid = _real_waitpid
