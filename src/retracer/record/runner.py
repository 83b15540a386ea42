"""Run a script or a module as `__main__`, exactly as `python` would.

Same `sys.argv`, `sys.path[0]`, `__name__`, `__file__`, tracebacks (retracer's
own frames are removed), exit status for `sys.exit(n)`, uncaught exceptions
(1) and KeyboardInterrupt (killed by SIGINT, like Python does).
"""
from __future__ import annotations

import builtins
import importlib.machinery
import os
import re
import runpy
import signal
import sys
import threading
import types
from typing import Callable, List, Optional

from .. import _engine
from ..errors import RetracerError

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

# python's own __main__ starts with `__annotations__ = {}` (up to 3.13 at least)
_MAIN_HAS_ANNOTATIONS = "__annotations__" in vars(sys.modules.get("__main__") or types.ModuleType("_"))

# Up to 3.11 every entry into the eval loop from C (the bottom frame, exec) costs
# one more level of the recursion limit than the frame itself.
_C_ENTRY_COSTS = sys.version_info < (3, 12)


def _maybe_zip(path: str) -> bool:
    """Could `path` be a zip file (its last 64 KiB hold an end-of-central-directory
    record)? A cheap test before importing zipfile, which imports pathlib and more."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - (1 << 16) - 22))
            return b"PK\x05\x06" in f.read()
    except OSError:
        return True  # let zipfile say


def _is_zipfile(path: str) -> bool:
    import zipfile

    return zipfile.is_zipfile(path)


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
    if _maybe_zip(abspath) and _is_zipfile(abspath):  # a zip application, like python app.pyz
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

    mod = _new_main_module()
    mod.__file__ = abspath
    mod.__loader__ = importlib.machinery.SourceFileLoader("__main__", abspath)
    mod.__cached__ = None  # type: ignore[attr-defined]
    script_dir = os.path.dirname(abspath)
    argv = [path] + list(args)

    def run() -> None:
        sys.modules["__main__"] = mod
        sys.argv = argv
        sys.path[0] = script_dir
        if code is None:
            compile(source, abspath, "exec", dont_inherit=True)
        _give_back_recursion_budget(sys._getframe(), via_runpy=False)
        exec(code, mod.__dict__)

    run.startable = code is not None  # type: ignore[attr-defined]
    return run


def _new_main_module() -> types.ModuleType:
    """A fresh `__main__` holding what python's own holds before a program runs
    (not retracer's globals): __name__, __doc__, __package__, __loader__,
    __spec__, __builtins__ (the module, not its dict) and __annotations__."""
    mod = types.ModuleType("__main__")
    mod.__builtins__ = builtins  # type: ignore[attr-defined]
    if _MAIN_HAS_ANNOTATIONS:
        mod.__dict__["__annotations__"] = {}
    return mod


def _give_back_recursion_budget(frame, via_runpy: bool) -> None:
    """Raise the recursion limit by what retracer's own frames below the program
    use of it, so the program can recurse exactly as deep as under python (and
    its RecursionError traceback is the same).

    `frame` is the frame that starts the program; `via_runpy`: the program starts
    through runpy._run_module_as_main, which python itself calls from C."""
    cost = 0
    f = frame
    while f is not None:
        cost += 1
        if _C_ENTRY_COSTS and (f.f_back is None or f.f_code.co_name == "<module>"):
            cost += 1
        f = f.f_back
    if via_runpy and _C_ENTRY_COSTS:
        cost -= 1  # python enters runpy from C, retracer calls it from Python
    if cost > 0:
        _hide_recursion_budget(cost)


_REAL_GETRECURSIONLIMIT = sys.getrecursionlimit
_REAL_SETRECURSIONLIMIT = sys.setrecursionlimit
_TOO_LOW = re.compile(r"cannot set the recursion limit to (\d+) at the recursion depth (\d+)")


def _hide_recursion_budget(cost: int) -> None:
    """Raise the real limit by ``cost`` and let the program see the limit it would
    see under python: sys.getrecursionlimit() and sys.setrecursionlimit() work on
    the program's own count (set the real limit less ``cost``). Undone by
    :func:`restore_recursion_limit` when the program is over."""
    real_get, real_set = _REAL_GETRECURSIONLIMIT, _REAL_SETRECURSIONLIMIT
    real_set(real_get() + cost)

    def getrecursionlimit():
        return max(1, real_get() - cost)

    def setrecursionlimit(limit):
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            return real_set(limit)  # the very same TypeError/ValueError
        try:
            return real_set(limit + cost)
        except RecursionError as e:
            m = _TOO_LOW.match(str(e))
            if not m:
                raise
            # the depth python counts, without retracer's frames and this one
            text = str(e).replace(m.group(0), f"cannot set the recursion limit to {limit} at the recursion "
                                              f"depth {int(m.group(2)) - cost - 1}")
            raise RecursionError(text) from None

    for fake, real in ((getrecursionlimit, real_get), (setrecursionlimit, real_set)):
        fake.__name__ = fake.__qualname__ = real.__name__
        fake.__doc__ = real.__doc__
        fake.__module__ = "sys"
    sys.getrecursionlimit = getrecursionlimit
    sys.setrecursionlimit = setrecursionlimit
    _hidden[0] = cost


_hidden = [0]


def restore_recursion_limit() -> None:
    """The program is over: the real sys functions again, and the limit it set."""
    cost, _hidden[0] = _hidden[0], 0
    if not cost:
        return
    shown = sys.getrecursionlimit()
    sys.getrecursionlimit = _REAL_GETRECURSIONLIMIT
    sys.setrecursionlimit = _REAL_SETRECURSIONLIMIT
    try:
        _REAL_SETRECURSIONLIMIT(max(shown, 50))
    except (RecursionError, ValueError):
        pass


def _prepare_dir(abspath: str, path: str, args: List[str]) -> Callable[[], None]:
    """A directory or zip file with __main__.py: python puts it first on
    sys.path and runs its __main__ module with runpy."""
    def run() -> None:
        sys.argv = [path] + list(args)
        sys.path[0] = abspath
        sys.modules["__main__"] = _new_main_module()
        _give_back_recursion_budget(sys._getframe(), via_runpy=True)
        runpy._run_module_as_main("__main__", alter_argv=False)  # type: ignore[attr-defined]

    return run


def cannot_run_module(modname: str) -> Optional[str]:
    """What python would say when ``python -m modname`` cannot even start (no
    such top-level module), or None. Nothing is imported to find out."""
    import importlib.util

    top = modname.split(".", 1)[0]
    try:
        found = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        found = False
    return None if found or not modname else f"No module named {top}"


def prepare_module(modname: str, args: List[str]) -> Callable[[], None]:
    """Return a function that runs `modname` like `python -m modname args`."""
    if not modname:
        raise RetracerError("retracer: -m needs a module name, e.g. retracer trace -m pytest tests/", exit_code=2)

    # like python, argv[0] is "-m" while the module is found (its packages are
    # imported); runpy then replaces it with the module's file
    argv = ["-m"] + list(args)
    cwd = os.getcwd()

    def run() -> None:
        sys.argv = argv
        sys.path[0] = cwd
        sys.modules["__main__"] = _new_main_module()
        _give_back_recursion_budget(sys._getframe(), via_runpy=True)
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
        try:
            run()
        finally:
            restore_recursion_limit()
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
