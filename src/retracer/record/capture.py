"""Capture of real inputs and outputs: what the engine hands over for the calls
of functions in scope that its capture policy (csrc/rt_capture.c) keeps.

The C binding calls `enter` with the argument values at the start of a call,
`exit` with the return value or the exception at its end, and `yield_` with
each value a captured generator yields; each gets one named structure
(`_engine.CallStart`, `CallEnd`, `CallYield`). Everything here runs with the calling
thread muted (not traced) and never raises into the program: a value that
cannot be pickled, is too large, or belongs to an argument whose name looks
secret is recorded as such and that call is marked not replayable.

Rows go to an append-only spool file as they complete, so memory holds only
the calls still running.
"""
from __future__ import annotations

import copyreg
import io
import itertools
import pickle
import re
import struct
import sys
import threading
import weakref
from typing import Any, Dict, Iterator, List, Optional, Sequence

from .. import _engine

DEFAULT_MAX_YIELDS = 100

#: status of a captured call (captured_calls.status)
OK = "ok"                      # replayable
UNPICKLABLE = "unpicklable"    # some value could not be serialised
TOO_LARGE = "too_large"        # some value exceeded the size cap
REDACTED = "redacted"          # an argument name matched the redaction list: nothing written
INCOMPLETE = "incomplete"      # the call had not ended when tracing stopped
STATUSES = (OK, UNPICKLABLE, TOO_LARGE, REDACTED, INCOMPLETE)

_LEN = struct.Struct("<I")


class _Unpicklable(Exception):
    pass


class _TooLarge(Exception):
    pass


# On 3.11 and 3.12 an instance keeps its attributes inline until its __dict__
# is asked for; after that the interpreter's specialised attribute access no
# longer applies to it (measured: capturing the first 100 calls of oop_sim's
# methods made the rest of the run 13% slower). Default pickling asks for the
# __dict__ of every plain object, so for those we pickle the same reduction
# (copyreg.__newobj__, (cls,), state) with the state read by the engine
# without materialising the dict.
_instance_state = getattr(_engine, "instance_state", None) if sys.version_info[:2] in ((3, 11), (3, 12)) else None
_PLAIN: Dict[type, bool] = {}
_OBJECT_HOOKS = tuple((n, getattr(object, n, None)) for n in ("__reduce_ex__", "__reduce__", "__getstate__"))


def _is_plain(tp: type) -> bool:
    """Does default pickling reduce instances of tp to (__newobj__, (tp,), __dict__)?"""
    try:
        if tp in copyreg.dispatch_table or issubclass(tp, (list, dict, type)):
            return False
        for name, base in _OBJECT_HOOKS:
            if getattr(tp, name, None) is not base:
                return False
        if hasattr(tp, "__getnewargs_ex__") or hasattr(tp, "__getnewargs__"):
            return False
        return not any("__slots__" in vars(c) for c in tp.__mro__)
    except Exception:
        return False


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        tp = type(obj)
        plain = _PLAIN.get(tp)
        if plain is None:
            plain = _PLAIN[tp] = _is_plain(tp)
        if not plain:
            return NotImplemented
        state = _instance_state(obj)
        if state is None:
            return NotImplemented
        return (copyreg.__newobj__, (tp,), state or None)


def _pickle(obj: Any) -> bytes:
    if _instance_state is None:
        return pickle.dumps(obj, protocol=5)
    f = io.BytesIO()
    _Pickler(f, protocol=5).dump(obj)
    return f.getvalue()


def dumps(obj: Any, max_bytes: int) -> bytes:
    """Pickle `obj` (protocol 5), falling back to cloudpickle for what plain
    pickle cannot do (lambdas, local classes, ...). Raises _Unpicklable or
    _TooLarge."""
    try:
        data = _pickle(obj)
    except Exception:
        try:
            import cloudpickle
            data = cloudpickle.dumps(obj, protocol=5)
        except Exception as e:
            raise _Unpicklable(f"{type(e).__name__}: {e}"[:200]) from None
    if len(data) > max_bytes:
        raise _TooLarge(f"{len(data)} bytes > {max_bytes}")
    return data


def _closed(g: Any) -> bool:
    """Has this generator, coroutine or async generator finished or been closed?"""
    for attr in ("gi_frame", "cr_frame", "ag_frame"):
        if hasattr(g, attr):
            return getattr(g, attr) is None
    return False


class _Pending:
    __slots__ = ("fid", "call_no", "tidx", "names", "values", "args", "status", "info", "t0", "yields",
                 "yields_truncated", "gen_ref")

    def __init__(self, fid, call_no, tidx, names, values, t0):
        self.fid = fid
        self.call_no = call_no
        self.tidx = tidx
        self.names = names
        self.values = values
        self.args: Optional[bytes] = None
        self.status = OK
        self.info: Dict[str, Any] = {}
        self.t0 = t0
        self.yields: List[bytes] = []
        self.yields_truncated = False
        self.gen_ref: Optional[weakref.ref] = None


class Capturer:
    """Receives captured calls from the engine and spools them to `path`."""

    def __init__(self, path: str, max_value_bytes: int, redact: Sequence[str],
                 max_yields: int = DEFAULT_MAX_YIELDS) -> None:
        self.path = path
        self.max_value_bytes = max_value_bytes
        self.max_yields = max_yields
        words = [re.escape(w.lower()) for w in redact if w]
        # a listed word as the whole name or as one of its _-separated parts:
        # "password", "user_password", "api_key_old" are secret; "tokens" is not
        self._redact = re.compile(r"(?:^|_)(?:%s)(?:_|$)" % "|".join(words)) if words else None
        self._ids = itertools.count()
        self._pending: Dict[int, _Pending] = {}
        self._per_fid: Dict[int, int] = {}
        self._lock = threading.Lock()
        self._file = open(path, "ab")
        self.count = 0

    # -- callbacks (called by the C binding) --------------------------------

    def enter(self, call: Any):
        """A kept call begins. `call` is an `_engine.CallStart`: fid, thread_idx,
        names, values (at entry), t_ns, why ("first" or "shape"), stream_call
        (-1: not in the call stream) and generator (3.12+, or None)."""
        try:
            fid, tidx, names, values, now = call.fid, call.thread_idx, call.names, call.values, call.t_ns
            why, stream_call, gen = call.why, call.stream_call, call.generator
            cid = next(self._ids)
            call_no = self._per_fid.get(fid, 0)
            self._per_fid[fid] = call_no + 1
            p = _Pending(fid, call_no, tidx, names, values, now)
            if why != "first":
                p.info["selected"] = why  # "shape": kept because its input shape was new
            if stream_call >= 0:
                p.info["stream_call"] = stream_call
            if gen is not None:
                # 3.13 closes a generator suspended outside try/with without
                # running it: no event reaches the engine. Its end is seen here.
                p.gen_ref = weakref.ref(gen, lambda _r, cid=cid: self._generator_gone(cid))
            secret = [n for n in names if self._redact is not None and self._redact.search(n.lower())]
            if secret:
                p.status = REDACTED
                p.info["redacted"] = secret
            else:
                try:
                    p.args = dumps(dict(zip(names, values)), self.max_value_bytes)
                except _Unpicklable as e:
                    p.status, p.info["error"] = UNPICKLABLE, f"arguments: {e}"
                except _TooLarge as e:
                    p.status, p.info["error"] = TOO_LARGE, f"arguments: {e}"
            self._pending[cid] = p
            return cid
        except BaseException:
            return None

    def yield_(self, y: Any) -> None:
        """A captured generator yields: `y` is an `_engine.CallYield` (id, value)."""
        try:
            cid, value = y.id, y.value
            p = self._pending.get(cid)
            if p is None or p.status != OK or "yield_error" in p.info:
                return
            if len(p.yields) >= self.max_yields:
                p.yields_truncated = True
                return
            # A value that cannot be kept does not change the call's status here:
            # a coroutine awaiting a future "yields" it to the event loop, and that
            # is not part of its outcome. Replay decides by the function's kind
            # (a generator with a yield_error is not replayable).
            try:
                p.yields.append(dumps(value, self.max_value_bytes))
            except _Unpicklable as e:
                p.info["yield_error"], p.info["yield_status"] = f"yielded value: {e}", UNPICKLABLE
            except _TooLarge as e:
                p.info["yield_error"], p.info["yield_status"] = f"yielded value: {e}", TOO_LARGE
        except BaseException:
            pass

    def exit(self, end: Any) -> None:
        """A captured call ends: `end` is an `_engine.CallEnd` (id, raised,
        value: the result or the exception, t_ns)."""
        try:
            p = self._pending.pop(end.id, None)
            if p is None:
                return
            self._finish(end.id, p, bool(end.raised), end.value, end.t_ns)
        except BaseException:
            pass

    def _generator_gone(self, cid: int) -> None:
        """A captured generator was destroyed while suspended: its consumer
        closed it (GeneratorExit), as the engine would have seen on <= 3.12."""
        was = _engine.mute(True)
        try:
            p = self._pending.pop(cid, None)
            if p is not None:
                self._finish(cid, p, True, GeneratorExit(), None)
        except BaseException:
            pass
        finally:
            _engine.mute(was)

    # -- internals ------------------------------------------------------------

    def _finish(self, cid: int, p: _Pending, raised: bool, value: Any, now: Optional[int]) -> None:
        result = exc = after = None
        if p.status == OK:
            try:
                if raised:
                    if value is None:
                        p.info["exception_unknown"] = True  # the hook could not see it (<= 3.10)
                    exc = dumps(value, self.max_value_bytes)  # pickling drops the traceback
                else:
                    result = dumps(value, self.max_value_bytes)
                after = dumps(dict(zip(p.names, p.values)), self.max_value_bytes)
            except _Unpicklable as e:
                p.status, p.info["error"] = UNPICKLABLE, f"{'exception' if raised else 'result'}: {e}"
            except _TooLarge as e:
                p.status, p.info["error"] = TOO_LARGE, f"{'exception' if raised else 'result'}: {e}"
        if p.yields or p.yields_truncated:
            # a generator: the result column holds its yielded values and its return value
            p.info["yields"] = len(p.yields)
            p.info["yields_truncated"] = p.yields_truncated
            result = pickle.dumps({"yields": p.yields, "return": result}, protocol=5)
        p.info["outcome"] = "raise" if raised else "return"
        row = (cid, p.fid, p.tidx, p.call_no, p.t0, (now - p.t0) if now is not None else None, p.status,
               p.args if p.status == OK else None, result, exc, after, p.info)
        data = pickle.dumps(row, protocol=5)
        p.values = None
        with self._lock:
            self._file.write(_LEN.pack(len(data)))
            self._file.write(data)
            self.count += 1

    def close(self) -> None:
        """Mark calls still running as incomplete and flush the spool."""
        for cid, p in list(self._pending.items()):
            g = p.gen_ref() if p.gen_ref is not None else None
            if p.gen_ref is not None and (g is None or _closed(g)):
                self._pending.pop(cid, None)
                self._finish(cid, p, True, GeneratorExit(), None)
                continue
            p.status = INCOMPLETE if p.status == OK else p.status
            p.info["outcome"] = "incomplete"
            row = (cid, p.fid, p.tidx, p.call_no, p.t0, None, p.status, None, None, None, None, p.info)
            data = pickle.dumps(row, protocol=5)
            with self._lock:
                self._file.write(_LEN.pack(len(data)))
                self._file.write(data)
        self._pending.clear()
        self._file.close()

    def rows(self) -> Iterator[tuple]:
        """The spooled rows, in the order calls ended."""
        with open(self.path, "rb") as f:
            while True:
                head = f.read(_LEN.size)
                if len(head) < _LEN.size:
                    return
                (n,) = _LEN.unpack(head)
                data = f.read(n)
                if len(data) < n:
                    return
                yield pickle.loads(data)

