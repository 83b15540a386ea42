"""Run a script or a module as `__main__`, exactly as `python` would.

Same `sys.argv`, `sys.path[0]`, `__name__`, `__file__`, tracebacks (retracer's
own frames are removed), exit status for `sys.exit(n)`, uncaught exceptions
(1) and KeyboardInterrupt (killed by SIGINT, like Python does).
"""
from __future__ import annotations

import importlib.machinery
import os
import runpy
import signal
import sys
import threading
import types
from typing import Callable, List, Optional

from . import _engine
from .errors import RetracerError

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class ProgramExit(Exception):
    """How the program ended: `status` for sys.exit, or `exc` for an uncaught exception."""


def prepare_script(path: str, args: List[str]) -> Callable[[], None]:
    """Check the script and return a function that runs it as __main__."""
    abspath = os.path.abspath(path)
    if not os.path.exists(abspath):
        raise RetracerError(f"retracer: can't open file '{abspath}': no such file; check the path", exit_code=2)
    if os.path.isdir(abspath):
        main_py = os.path.join(abspath, "__main__.py")
        if not os.path.isfile(main_py):
            raise RetracerError(f"retracer: can't find '__main__' module in '{abspath}'; pass a .py file", exit_code=2)
        return _prepare_dir(abspath, path, args)
    try:
        with open(abspath, "rb") as f:
            source = f.read()
    except OSError as e:
        raise RetracerError(f"retracer: can't open file '{abspath}': {e.strerror}", exit_code=2)
    try:
        code = compile(source, abspath, "exec", dont_inherit=True)
    except SyntaxError:
        # let it surface exactly like python does: traceback + status 1
        code = None

    mod = types.ModuleType("__main__")
    mod.__file__ = abspath
    mod.__loader__ = importlib.machinery.SourceFileLoader("__main__", abspath)
    mod.__builtins__ = __builtins__
    mod.__cached__ = None  # type: ignore[attr-defined]
    script_dir = os.path.dirname(abspath)
    argv = [path] + list(args)

    def run() -> None:
        sys.modules["__main__"] = mod
        sys.argv = argv
        sys.path[0] = script_dir
        if code is None:
            compile(source, abspath, "exec", dont_inherit=True)
        exec(code, mod.__dict__)

    return run


def _prepare_dir(abspath: str, path: str, args: List[str]) -> Callable[[], None]:
    def run() -> None:
        sys.argv = [path] + list(args)
        sys.path[0] = abspath
        runpy.run_path(abspath, run_name="__main__")

    return run


def prepare_module(modname: str, args: List[str]) -> Callable[[], None]:
    """Return a function that runs `modname` like `python -m modname args`."""
    if not modname:
        raise RetracerError("retracer: -m needs a module name, e.g. retracer trace -m pytest tests/", exit_code=2)

    argv = [modname] + list(args)  # runpy replaces argv[0] with the file
    cwd = os.getcwd()

    def run() -> None:
        sys.argv = argv
        sys.path[0] = cwd
        runpy._run_module_as_main(modname, alter_argv=True)  # type: ignore[attr-defined]

    return run


def _strip_own_frames(tb):
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PKG_DIR):
        tb = tb.tb_next
    return tb


def run_program(run: Callable[[], None], stop: Callable[..., object]) -> int:
    """Run the program, call `stop(stopped_by=…, exit_status=…)` once it is over
    (also when it fails), then reproduce its ending. Returns the exit status for
    a normal end or sys.exit; re-raises SystemExit objects unchanged."""
    try:
        run()
    except SystemExit as e:
        _shutdown_threads()
        code = e.code
        status = 0 if code is None else (code if isinstance(code, int) else 1)
        stop(stopped_by="exit", exit_status=status)
        raise
    except KeyboardInterrupt as e:
        stop(stopped_by="exception", exit_status=130)
        _report_uncaught(e)
        _die_by_signal(signal.SIGINT)
        return 130
    except BaseException as e:
        _shutdown_threads()
        stop(stopped_by="exception", exit_status=1)
        _report_uncaught(e)
        return 1
    _shutdown_threads()
    stop(stopped_by="end", exit_status=0)
    return 0


def _report_uncaught(e: BaseException) -> None:
    tb = _strip_own_frames(e.__traceback__)
    e.__traceback__ = tb
    try:
        sys.stdout.flush()
    except Exception:
        pass
    sys.excepthook(type(e), e, tb)


def _die_by_signal(sig: int) -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


def _shutdown_threads() -> None:
    """Wait for non-daemon threads as the interpreter would at exit, so
    their work is traced too (the main thread's own waiting is not)."""
    _engine.mute(True)
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None and threading.current_thread() is threading.main_thread():
        try:
            shutdown()
        except Exception:
            pass
