"""The replay engine: find a recorded function again, load its recorded
arguments and outcome, call it, and say what it did.

Every function is re-imported the way the traced program found it (the traced
`sys.path`, script directory first; functions of the script itself are loaded
from its file under another name, so its `if __name__ == "__main__":` block
does not run), called with the recorded arguments, and its outcome — return
value or exception, the arguments' state after the call, the values a
generator yields — is an :class:`Outcome` the comparator judges.

This runs inside the replay child process (:mod:`.sandbox`), which sets the
process up like the traced program and guards it; the parent side
(:mod:`.session`) only reads the cases' metadata (nothing is unpickled there).
Values are read from the trace when a call needs them.
"""
from __future__ import annotations

import dataclasses
import functools
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


class BrokenImport(Exception):
    """The recorded function's module (or the traced script) imported when it was
    traced and now raises when imported: the code changed for the worse, which a
    replay reports as an error, not as a call it cannot replay."""


#: seconds one replayed call may run before it is reported as an error (0: no limit)
CALL_TIMEOUT = float(os.environ.get("RETRACER_CALL_TIMEOUT", "60"))


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
    args: Optional[bytes]          # keys of the trace's blobs (a version 1 trace: the values)
    result: Optional[bytes]
    exception: Optional[bytes]
    args_after: Optional[bytes]

    @property
    def label(self) -> str:
        return f"{self.qualname} call #{self.index}"

    @property
    def where(self) -> str:
        return f"{os.path.basename(self.filename)}:{self.lineno}"


    def callee_owned(self, args: Dict[str, Any]) -> Tuple[str, ...]:
        """The name of its ``**kwargs`` argument, if it has one: a dict the callee
        makes for itself (what it pops from it is no mutation a caller sees)."""
        spec = self.info.get("argspec")
        if not spec or not spec[3] or not args:
            return ()
        return (list(args)[-1],)


@dataclass
class Result:
    """The verdict on one recorded call (see :mod:`.verdicts` for what each means)."""

    case: Case
    verdict: str                      # one of verdicts.VERDICTS
    message: str = ""                 # why, for a user: the difference, what was tried, ...
    reason: str = ""                  # the short reason the report groups by
    stdout: str = ""                  # what the replayed call printed (first replay)
    stderr: str = ""
    detail: Dict[str, Any] = dataclasses.field(default_factory=dict)


def _find_class(rep: "Replayer", module: str, name: str, default: Callable[[str, str], Any]) -> Any:
    if module in ("__main__", MAIN_ALIAS) and rep._main is not None:
        return refs.resolve_path(rep._main, name)
    if module == "retracer.record.refs":
        if name == "ref":
            return rep._ref
        if name == "shared":
            return rep._shared
    return default(module, name)


class _Unpickler(pickle.Unpickler):
    """Loads captured values: ``__main__`` is the traced script (loaded under
    another name), references to module globals resolve in this process, and
    values stored once come from the trace's blobs."""

    def __init__(self, data: bytes, replayer: "Replayer") -> None:
        super().__init__(io.BytesIO(data))
        self._rep = replayer

    def find_class(self, module: str, name: str) -> Any:
        return _find_class(self._rep, module, name, super().find_class)


class _PatientUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """The pure-Python unpickler, used when the fast one fails: an exception
    whose ``__init__`` takes other arguments than its ``args`` (``Err(code,
    detail)`` calling ``super().__init__(message)``) cannot be rebuilt by calling
    its class with its args, as pickle does; it is made without calling
    ``__init__``, with its args and attributes as recorded."""

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, data: bytes, replayer: "Replayer") -> None:
        super().__init__(io.BytesIO(data))
        self._rep = replayer

    def find_class(self, module: str, name: str) -> Any:
        return _find_class(self._rep, module, name, super().find_class)

    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        try:
            stack[-1] = func(*args)
        except TypeError:
            if not (isinstance(func, type) and issubclass(func, BaseException)):
                raise
            exc = func.__new__(func, *args)
            exc.args = tuple(args)
            stack[-1] = exc

    dispatch[pickle.REDUCE[0]] = load_reduce


class Replayer:
    """Loads a trace's captured calls (metadata; values when a call needs them)
    and replays them in this process."""

    def __init__(self, trace: str, trust: bool = False, call_timeout: Optional[float] = None,
                 sources: Optional[Dict[str, bytes]] = None) -> None:
        self.trace = os.path.abspath(trace)
        #: seconds one replayed call may run (0: no limit; only bench uses it here)
        self.call_timeout = CALL_TIMEOUT if call_timeout is None else call_timeout
        #: path -> source to run instead of the file on disk (the original code)
        self.sources = sources
        # kept open (one read transaction: the data read is the data verified):
        # values are read from it when a call needs them
        self._reader = r = TraceReader(self.trace, trust=trust)
        weakref.finalize(self, r.close)
        self.meta = dict(r.meta)
        funcs = r.functions
        self.cases: List[Case] = []
        for row in r.iter_captured(values=False):
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
                                   _key(row.args), _key(row.result), _key(row.exception),
                                   _key(row.args_after)))
        self.by_id: Dict[int, Case] = {c.call_id: c for c in self.cases}
        self._verified = False
        self._modules: Dict[str, Any] = {}
        self._import_errors: Dict[str, Exception] = {}
        self._main: Any = None
        self._paths_done = False
        #: make the traced script, once loaded, this process's __main__ too (the
        #: replay child: code that imports __main__ finds the program)
        self.main_as_main = False

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
            source = (self.sources or {}).get(os.path.abspath(filename))
            if source is None:
                with open(filename, "rb") as f:
                    source = f.read()
            # compiled from the source itself (never a cached .pyc that may be stale)
            exec(compile(source, filename, "exec", dont_inherit=True), mod.__dict__)
        except BaseException as e:
            del sys.modules[MAIN_ALIAS]
            if _is_guard(e):
                raise
            raise BrokenImport(f"importing {filename} now fails: {type(e).__name__}: {e}") from None
        self._main = mod
        if self.main_as_main:
            sys.modules["__main__"] = mod
        return mod

    def _module(self, case: Case) -> Any:
        self._setup_paths()
        if case.module in ("__main__", "") or case.module == MAIN_ALIAS:
            if case.module == "" and not case.filename.endswith(".py"):
                raise Unresolvable(f"no module known for {case.qualname}")
            return self._main_module(case.filename)
        if case.module not in self._modules:
            failed = self._import_errors.get(case.module)
            if failed is not None:
                raise failed
            try:
                self._modules[case.module] = importlib.import_module(case.module)
            except BaseException as e:
                if _is_guard(e):
                    raise
                if isinstance(e, ModuleNotFoundError) and e.name == case.module:
                    err: Exception = Unresolvable(f"module {case.module} no longer exists")
                else:
                    err = BrokenImport(f"importing {case.module} now fails: {type(e).__name__}: {e}")
                self._import_errors[case.module] = err
                raise err from None
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
        if isinstance(obj, (functools.cached_property, functools.partialmethod)) or \
                type(obj).__name__ == "singledispatchmethod":
            obj = getattr(obj, "func", obj)
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
        try:
            return _Unpickler(data, self).load()
        except TypeError:
            # an exception class that pickle cannot rebuild by calling it
            return _PatientUnpickler(data, self).load()

    def loads(self, data: Optional[bytes]) -> Any:
        """A pickle made by retracer (the trace's, or another replay's), loaded here."""
        return self._loads(data)

    def verify_values(self) -> None:
        """Check every stored value the calls refer to against its key, once:
        a trace whose values were tampered with or damaged is refused as a
        whole (TraceError, one line) before anything is replayed, rather than
        reported as errors of single calls."""
        if self._verified:
            return
        seen = set()
        for c in self.cases:
            for key in (c.args, c.result, c.exception, c.args_after):
                if key is not None and key not in seen:
                    seen.add(key)
                    self._reader.blob(key)
        self._verified = True

    def _value(self, key: Optional[bytes]) -> Any:
        """The recorded value stored under ``key`` (None for None)."""
        if key is None:
            return None
        return self._loads(self._reader.blob(key))

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
        after = self._value(case.args_after) if case.args_after is not None else None
        if after is not None and not isinstance(after, dict):  # a malformed trace: this call is an error
            raise ValueError(f"the arguments after the call are a {type(after).__name__}, not a dict")
        value = self._value(case.result)
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
            exc = self._value(case.exception) if case.exception is not None else None
            return Outcome(kind="raise", exception=exc, args_after=after, yielded=yielded, truncated=truncated)
        return Outcome(kind="return", value=value, args_after=after, yielded=yielded, truncated=truncated)

    def _args(self, case: Case) -> Dict[str, Any]:
        if case.args is None:
            raise Unresolvable("its arguments were not recorded")
        args = self._value(case.args)
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

    def invoke(self, case: Case, fn: Callable, args: Dict[str, Any], expected: Optional[Outcome] = None,
               snapshot: Optional[Callable[[Any], Any]] = None) -> Outcome:
        """Call fn with the recorded arguments; returns what happened. Whatever
        it raises is its outcome, ``SystemExit`` and ``KeyboardInterrupt``
        included (they never end the replay). ``snapshot`` copies each
        yielded value when it is yielded (as capture pickles it then)."""
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
                        except BaseException as e:
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
                        value = next(res)
                        # as capture keeps it: the value as it is when yielded
                        yielded.append(snapshot(value) if snapshot is not None else value)
                    except StopIteration as stop:
                        ret = stop.value
                        break
                    except BaseException as e:
                        return Outcome(kind="raise", exception=e, args_after=args, yielded=yielded,
                                       truncated=truncated)
                return Outcome(kind="return", value=ret, args_after=args, yielded=yielded, truncated=truncated)
        except BaseException as e:
            return Outcome(kind="raise", exception=e, args_after=args)
        return Outcome(kind="return", value=res, args_after=args)

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
                except BaseException as e:
                    if _is_guard(e):
                        raise
                total += time.perf_counter() - t0
            return total

        s = measure(time_calls, number=1, repeat=3, min_time=min_time, max_repeat=max_repeat, warmup=False)
        return s.min, s.median, s.repeat


def _is_guard(e: BaseException) -> bool:
    """Is this the side-effect guard stopping a call (see :mod:`.guard`)?"""
    return type(e).__name__ == "SideEffectBlocked" and type(e).__module__.endswith("replay.guard")


def _key(v: Any) -> Optional[bytes]:
    return None if v is None else bytes(v)


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


def agrees(expected: Outcome, actual: Outcome, **opts: Any) -> Optional[Mismatch]:
    """Compare a recorded outcome with a replayed one (``opts``: those of
    :func:`compare_outcome`). A raise recorded without its exception (the
    3.9/3.10 profile hook cannot see it) accepts any exception; everything else
    (arguments after the call, yields) still counts."""
    if expected.kind == "raise" and expected.exception is None and actual.kind == "raise":
        expected = dataclasses.replace(expected, exception=actual.exception)
    return compare_outcome(expected, actual, **opts)


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


skip_reason = _skip_reason


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
