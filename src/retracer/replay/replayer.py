"""Replay recorded calls against the code on disk and compare outcomes.

Every function is re-imported the way the traced program found it (the traced
`sys.path`, script directory first; functions of the script itself are loaded
from its file under another name, so its `if __name__ == "__main__":` block
does not run), called with the recorded arguments, and its outcome — return
value or exception, the arguments' state after the call, the values a
generator yields — is compared with the recording by `comparator`.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import io
import json
import os
import pickle
import sys
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..record import refs
from ..tracefile import TraceReader
from .comparator import Mismatch, Outcome, compare_outcome

MAIN_ALIAS = "__retracer_main__"


class Unresolvable(Exception):
    """The recorded function cannot be found or called again."""


class CallTimeout(BaseException):
    """A replayed call ran longer than the per-call limit."""


#: seconds one replayed call may run before it is reported as an error (0: no limit)
CALL_TIMEOUT = float(os.environ.get("RETRACER_CALL_TIMEOUT", "60"))


def _with_timeout(fn: Callable[[], Any], seconds: float) -> Any:
    """Run fn, raising CallTimeout after `seconds` (main thread only, POSIX)."""
    import signal
    import threading

    if seconds <= 0 or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "setitimer"):
        return fn()

    def on_alarm(signum, frame):
        raise CallTimeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Case:
    """One captured call."""

    call_id: int
    fid: int
    index: int            # position among the captured calls of its function
    qualname: str
    name: str
    module: str
    filename: str
    lineno: int
    status: str
    info: Dict[str, Any]
    args: Optional[bytes]
    result: Optional[bytes]
    exception: Optional[bytes]
    args_after: Optional[bytes]

    @property
    def label(self) -> str:
        return f"{self.qualname} call #{self.index}"

    @property
    def where(self) -> str:
        return f"{os.path.basename(self.filename)}:{self.lineno}"


@dataclass
class Result:
    case: Case
    verdict: str                      # match | mismatch | skipped | unstable | error
    message: str = ""
    mismatch: Optional[Mismatch] = None


class _Unpickler(pickle.Unpickler):
    """Loads captured values: ``__main__`` is the traced script (loaded under
    another name), references to module globals resolve in this process, and
    values stored once come from the trace's blobs."""

    def __init__(self, data: bytes, replayer: "Replayer") -> None:
        super().__init__(io.BytesIO(data))
        self._rep = replayer

    def find_class(self, module: str, name: str) -> Any:
        rep = self._rep
        if module == "__main__" and rep._main is not None:
            return refs.resolve_path(rep._main, name)
        if module == "retracer.record.refs":
            if name == "ref":
                return rep._ref
            if name == "shared":
                return rep._shared
        return super().find_class(module, name)


class Replayer:
    """Loads a trace's captured calls and replays them."""

    def __init__(self, trace: str, trust: bool = False, call_timeout: Optional[float] = None) -> None:
        self.trace = os.path.abspath(trace)
        #: seconds one replayed call may run (0: no limit)
        self.call_timeout = CALL_TIMEOUT if call_timeout is None else call_timeout
        # kept open (one read transaction: the data read is the data verified):
        # values stored once are read from it when a call needs them
        self._reader = r = TraceReader(self.trace, trust=trust)
        weakref.finalize(self, r.close)
        self.meta = dict(r.meta)
        funcs = r.functions
        self.cases: List[Case] = []
        for row in r.iter_captured():
            f = funcs.get(row.fid)
            if f is None:
                continue
            try:
                info = json.loads(row.info) if row.info else {}
            except ValueError:
                info = {}
            status = row.status
            if status == "ok" and info.get("yield_error") and info.get("kind") != "coroutine":
                # a generator yielded a value that could not be kept (what a
                # coroutine yields belongs to the event loop: not its outcome)
                status = info.get("yield_status") or "unpicklable"
                info["error"] = info["yield_error"]
            self.cases.append(Case(row.call_id, row.fid, row.call_no, f.qualname or f.name, f.name,
                                   f.module or "", f.filename, f.firstlineno, status, info,
                                   row.args, row.result, row.exception, row.args_after))
        self._modules: Dict[str, Any] = {}
        self._main: Any = None
        self._paths_done = False

    # ------------------------------------------------------------ import

    def _setup_paths(self) -> None:
        if self._paths_done:
            return
        self._paths_done = True
        for p in reversed(self.meta.get("sys_path") or []):
            if p not in sys.path and os.path.isdir(p):
                sys.path.insert(0, p)

    def _main_module(self, filename: str) -> Any:
        if self._main is not None:
            return self._main
        if not os.path.isfile(filename):
            raise Unresolvable(f"the traced script {filename} no longer exists")
        if not _has_main_guard(filename):
            raise Unresolvable(f"{os.path.basename(filename)} has no 'if __name__ == \"__main__\":' guard: "
                               "loading it would run the program again")
        d = os.path.dirname(filename)
        if d not in sys.path:
            sys.path.insert(0, d)
        spec = importlib.util.spec_from_file_location(MAIN_ALIAS, filename)
        if spec is None or spec.loader is None:
            raise Unresolvable(f"cannot load {filename}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[MAIN_ALIAS] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException as e:
            del sys.modules[MAIN_ALIAS]
            raise Unresolvable(f"importing {filename} failed: {type(e).__name__}: {e}") from None
        self._main = mod
        return mod

    def _module(self, case: Case) -> Any:
        self._setup_paths()
        if case.module in ("__main__", "") or case.module == MAIN_ALIAS:
            if case.module == "" and not case.filename.endswith(".py"):
                raise Unresolvable(f"no module known for {case.qualname}")
            return self._main_module(case.filename)
        if case.module not in self._modules:
            try:
                self._modules[case.module] = importlib.import_module(case.module)
            except BaseException as e:
                raise Unresolvable(f"importing {case.module} failed: {type(e).__name__}: {e}") from None
        return self._modules[case.module]

    def resolve(self, case: Case) -> Callable:
        """The plain function object behind the recorded function."""
        if "<locals>" in case.qualname.split("."):
            raise Unresolvable("a nested function cannot be re-found from its module")
        obj: Any = self._module(case)
        for part in case.qualname.split("."):
            d = getattr(obj, "__dict__", {})
            if part in d:
                obj = d[part]
            elif hasattr(obj, part):
                obj = getattr(obj, part)
            else:
                raise Unresolvable(f"{case.qualname} is no longer defined in {case.module or case.filename}")
        if isinstance(obj, (classmethod, staticmethod)):
            obj = obj.__func__
        if isinstance(obj, property):
            cands = [f for f in (obj.fget, obj.fset, obj.fdel) if f is not None]
            obj = next((f for f in cands if getattr(f, "__code__", None) is not None
                        and f.__code__.co_firstlineno == case.lineno), cands[0] if cands else None)
        if obj is not None and hasattr(obj, "__wrapped__"):
            obj = inspect.unwrap(obj)
        if not callable(obj):
            raise Unresolvable(f"{case.qualname} is not callable any more")
        return obj

    # ------------------------------------------------------------ values

    def _loads(self, data: Optional[bytes]) -> Any:
        if data is None:
            return None
        return _Unpickler(data, self).load()

    def _ref(self, module: str, path: str) -> Any:
        """An object captured by reference (module global), found again here."""
        if module in ("__main__", MAIN_ALIAS) and self._main is not None:
            return refs.resolve_path(self._main, path)
        return refs.ref(module, path)

    def _shared(self, key: bytes) -> Any:
        return self._loads(self._reader.blob(key))

    def close(self) -> None:
        self._reader.close()

    def expected(self, case: Case) -> Outcome:
        info = case.info
        after = self._loads(case.args_after) if case.args_after is not None else None
        if after is not None and not isinstance(after, dict):  # a malformed trace: this call is an error
            raise ValueError(f"the arguments after the call are a {type(after).__name__}, not a dict")
        value = self._loads(case.result)
        yielded: Optional[List[Any]] = None
        if isinstance(value, dict) and "yields" in value and "return" in value and "yields" in info:
            # the values yielded and the return value (a coroutine's yields go to the event loop)
            if info.get("kind") == "generator":
                yielded = [self._loads(b) for b in value["yields"]]
            value = self._loads(value["return"]) if value["return"] is not None else None
        elif info.get("kind") == "generator":
            yielded = []
        truncated = bool(info.get("yields_truncated")) if yielded is not None else False
        if info.get("outcome") == "raise":
            exc = self._loads(case.exception) if case.exception is not None else None
            return Outcome(kind="raise", exception=exc, args_after=after, yielded=yielded, truncated=truncated)
        return Outcome(kind="return", value=value, args_after=after, yielded=yielded, truncated=truncated)

    def _args(self, case: Case) -> Dict[str, Any]:
        if case.args is None:
            raise Unresolvable("its arguments were not recorded")
        args = self._loads(case.args)
        if not isinstance(args, dict):  # a malformed trace: this call is an error
            raise ValueError(f"the recorded arguments are a {type(args).__name__}, not a dict")
        return args

    # ------------------------------------------------------------ running

    def _prepare(self, case: Case) -> Tuple[Callable, Dict[str, Any]]:
        kind = case.info.get("kind", "function")
        if kind == "asyncgen":
            raise Unresolvable("async generators are not replayed")
        fn = self.resolve(case)
        self._module(case)  # make sure __main__ classes can be unpickled
        return fn, self._args(case)

    def invoke(self, case: Case, fn: Callable, args: Dict[str, Any], expected: Optional[Outcome] = None) -> Outcome:
        """Call fn with the recorded arguments; returns what happened."""
        kind = case.info.get("kind", "function")
        try:
            res = _call(fn, args, case.info.get("argspec"))
            if kind == "coroutine" or (kind == "function" and inspect.iscoroutine(res)):
                res = _run_coroutine(res)
            elif kind == "generator":
                limit = len(expected.yielded or []) if expected is not None else 100
                truncated = bool(expected.truncated) if expected is not None else True
                # recorded as closed by its consumer after `limit` values (GeneratorExit;
                # None: the hook could not see the exception, <= 3.10)
                closed = (expected is not None and expected.kind == "raise"
                          and (expected.exception is None or isinstance(expected.exception, GeneratorExit)))
                yielded: List[Any] = []
                ret = None
                if not inspect.isgenerator(res):
                    return Outcome(kind="return", value=res, args_after=args)
                while True:
                    if closed and len(yielded) >= limit:
                        try:
                            res.close()
                        except Exception as e:
                            return Outcome(kind="raise", exception=e, args_after=args, yielded=yielded,
                                           truncated=truncated)
                        return Outcome(kind="raise", exception=GeneratorExit(), args_after=args,
                                       yielded=yielded, truncated=truncated)
                    if truncated and len(yielded) >= limit:
                        res.close()
                        break
                    if len(yielded) > limit:  # yields more than recorded
                        res.close()
                        break
                    try:
                        yielded.append(next(res))
                    except StopIteration as stop:
                        ret = stop.value
                        break
                    except Exception as e:
                        return Outcome(kind="raise", exception=e, args_after=args, yielded=yielded,
                                       truncated=truncated)
                return Outcome(kind="return", value=ret, args_after=args, yielded=yielded, truncated=truncated)
        except Exception as e:
            return Outcome(kind="raise", exception=e, args_after=args)
        return Outcome(kind="return", value=res, args_after=args)

    def check(self, case: Case) -> Result:
        """Replay one call and compare it with the recording."""
        if case.status != "ok":
            return Result(case, "unstable" if case.status == "unstable" else "skipped",
                          _skip_reason(case))
        try:
            fn, args = self._prepare(case)
            expected = self.expected(case)
        except Unresolvable as e:
            return Result(case, "skipped", str(e))
        except Exception as e:
            return Result(case, "error", f"cannot load the recorded values: {type(e).__name__}: {e}")
        try:
            actual = _with_timeout(lambda: self.invoke(case, fn, args, expected), self.call_timeout)
        except CallTimeout:
            return Result(case, "error", f"the call did not return within {self.call_timeout:g} s "
                                         f"(set RETRACER_CALL_TIMEOUT to change the limit)")
        mm = agrees(expected, actual)
        if mm is None:
            return Result(case, "match")
        return Result(case, "mismatch", mm.describe(), mm)

    def outcome_twice_differs(self, case: Case) -> Optional[str]:
        """Replay twice on the code as it is; a reason if the outcomes differ
        from each other or from the recording (the call depends on more than its
        arguments), else None."""
        try:
            fn, _ = self._prepare(case)
            expected = self.expected(case)
            a = _with_timeout(lambda: self.invoke(case, fn, self._args(case), expected), self.call_timeout)
            b = _with_timeout(lambda: self.invoke(case, fn, self._args(case), expected), self.call_timeout)
        except CallTimeout:
            return f"the call did not return within {self.call_timeout:g} s"
        except Unresolvable:
            return None
        except Exception as e:
            return f"cannot be replayed: {type(e).__name__}: {e}"
        mm = compare_outcome(a, b, exact=True)
        if mm is not None:
            return f"two replays differ ({mm.path}: {mm.reason})"
        mm = agrees(expected, a)
        if mm is not None:
            return f"differs from the recording on unchanged code ({mm.path}: {mm.reason})"
        return None

    def bench(self, case: Case, min_time: float = 0.02, max_repeat: int = 200) -> Optional[Tuple[float, float, int]]:
        """(min, median, repeats) in seconds per call of one recorded call, each
        call on a fresh copy of its arguments (calls may mutate them)."""
        from ..analysis.measure import measure

        try:
            fn, _ = self._prepare(case)
        except Unresolvable:
            return None
        argspec = case.info.get("argspec")

        def time_calls(n: int) -> float:
            total = 0.0
            for _ in range(n):
                args = self._args(case)
                t0 = time.perf_counter()
                try:
                    res = _call(fn, args, argspec)
                    if inspect.isgenerator(res):
                        for _ in res:
                            pass
                    elif inspect.iscoroutine(res):
                        _run_coroutine(res)
                except Exception:
                    pass
                total += time.perf_counter() - t0
            return total

        s = measure(time_calls, number=1, repeat=3, min_time=min_time, max_repeat=max_repeat, warmup=False)
        return s.min, s.median, s.repeat


def _has_main_guard(filename: str) -> bool:
    """True if the script keeps its program under `if __name__ == "__main__":`,
    so that importing it only defines things."""
    import ast

    try:
        with open(filename, "rb") as f:
            tree = ast.parse(f.read(), filename)
    except (OSError, SyntaxError, ValueError):
        return False
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = [node.test.left] + list(node.test.comparators)
            if any(isinstance(n, ast.Name) and n.id == "__name__" for n in names) and \
                    any(isinstance(n, ast.Constant) and n.value == "__main__" for n in names):
                return True
    return False


def agrees(expected: Outcome, actual: Outcome) -> Optional[Mismatch]:
    """Compare a recorded outcome with a replayed one. A raise recorded without
    its exception (the 3.9/3.10 profile hook cannot see it) accepts any
    exception; everything else (arguments after the call, yields) still counts."""
    if expected.kind == "raise" and expected.exception is None and actual.kind == "raise":
        expected = dataclasses.replace(expected, exception=actual.exception)
    return compare_outcome(expected, actual)


def _skip_reason(case: Case) -> str:
    info = case.info
    if case.status == "unpicklable":
        return f"not replayable: a value could not be pickled ({info.get('error', '')})"
    if case.status == "too_large":
        return f"not replayable: a value is over the size cap ({info.get('error', '')})"
    if case.status == "redacted":
        return f"not replayable: secret-looking arguments were not recorded ({', '.join(info.get('redacted', []))})"
    if case.status == "incomplete":
        return "not replayable: the call had not ended when tracing stopped"
    if case.status == "unstable":
        return f"unstable: {info.get('unstable', 'its outcome changes from one run to the next')}"
    return f"not replayable ({case.status})"


def _run_coroutine(coro: Any) -> Any:
    """Run a coroutine to completion in a fresh event loop."""
    import asyncio  # only when needed: importing it costs ~25 ms

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def _call(fn: Callable, args: Dict[str, Any], argspec: Optional[List[Any]]) -> Any:
    names = list(args)
    if not argspec:
        return fn(**args)
    argcount, kwonly, varargs, varkw = argspec
    pos = [args[n] for n in names[:argcount]]
    i = argcount
    kw = {n: args[n] for n in names[i:i + kwonly]}
    i += kwonly
    if varargs:
        pos.extend(args[names[i]])
        i += 1
    if varkw:
        kw.update(args[names[i]])
    return fn(*pos, **kw)
