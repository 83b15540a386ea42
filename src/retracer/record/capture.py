"""Capture of real inputs and outputs: what the engine hands over for the calls
of functions in scope that its capture policy keeps.

The C binding calls `enter` with the argument values at the start of a call,
`exit` with the return value or the exception at its end, and `yield_` with
each value a captured generator yields (`_engine.CallStart`, `CallEnd`,
`CallYield`). Everything here runs with the calling
thread muted (not traced) and never raises into the program: a value that
cannot be pickled, is too large, or belongs to an argument whose name looks
secret is recorded as such and that call is marked not replayable. A Ctrl-C
that arrives while capturing is handed back to the program.

Cost is bounded (README, "What capture costs"):

- values are content-addressed: each distinct pickle is stored once in the
  trace's ``blobs`` table (a large string passed to a hundred calls is one
  blob), and memory holds only the calls still running;
- a function whose capture costs far more than the function itself stops
  being captured after a few calls;
- capture never takes more than --capture-share of the run's time so far:
  over it, the engine's policy skips calls until the run has caught up (the
  trace says how many; this module reports its one-time import costs to it);
  it stops when it has stored ``max_capture_bytes``.
"""
from __future__ import annotations

import hashlib
import itertools
import pickle
import struct
import threading
import time
import warnings
import weakref
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from .. import _engine
from . import pickling
from .pickling import ModuleIndex, Serializer, TooLarge, Unpicklable
from .redact import Redactor, Secret
from .refs import Shared

DEFAULT_MAX_YIELDS = 100

#: status of a captured call (captured_calls.status)
OK = "ok"                      # replayable
UNPICKLABLE = "unpicklable"    # some value could not be serialised
TOO_LARGE = "too_large"        # some value exceeded the size cap
REDACTED = "redacted"          # an argument name matched the redaction list: nothing written
INCOMPLETE = "incomplete"      # the call had not ended when tracing stopped
STATUSES = (OK, UNPICKLABLE, TOO_LARGE, REDACTED, INCOMPLETE)

#: a top-level str/bytes argument this long or longer is stored once, by reference
SHARED_MIN = 4096
#: the per-function rule: a function's capture stops when this many captured
#: calls in a row each cost more than COST_FACTOR times the call itself and
#: more than COST_FLOOR_NS
COST_CALLS = 3
COST_FACTOR = 10
COST_FLOOR_NS = 200_000
#: the time budget (--capture-share) is kept by the engine's capture policy
#: (csrc/rt_capture.c), after a grace (record/tracer.py _grace_ms)

_LEN = struct.Struct("<I")


def blob_key(data: bytes) -> bytes:
    """The content address of a stored value (16 bytes of BLAKE2b)."""
    return hashlib.blake2b(data, digest_size=16).digest()


def _closed(g: Any) -> bool:
    """Has this generator, coroutine or async generator finished or been closed?"""
    for attr in ("gi_frame", "cr_frame", "ag_frame"):
        if hasattr(g, attr):
            return getattr(g, attr) is None
    return False


_IGNORE_ALL = ("ignore", None, Warning, None, 0)


class _QuietWarnings:
    """Warnings raised while capturing are ignored without touching the program's
    warning state: the filter is put in front of ``warnings.filters`` in place
    (no version bump: the registries of "once" warnings stay as they are) and
    an ignored warning is not recorded anywhere."""

    __slots__ = ("filters",)

    def __enter__(self) -> None:
        self.filters = warnings.filters
        self.filters.insert(0, _IGNORE_ALL)

    def __exit__(self, *exc: Any) -> None:
        f = self.filters
        for i, item in enumerate(f):
            if item is _IGNORE_ALL:
                del f[i]
                break


class _FnStats:
    __slots__ = ("kept", "cost_ns", "call_ns", "bytes", "stopped", "streak")

    def __init__(self) -> None:
        self.streak = 0  # captured calls in a row that cost far more than the call
        self.kept = 0
        self.cost_ns = 0
        self.call_ns = 0
        self.bytes = 0
        self.stopped: Optional[str] = None


class _Pending:
    __slots__ = ("fid", "call_no", "tidx", "names", "values", "args", "status", "info", "t0", "yields",
                 "yields_truncated", "gen_ref", "cost_ns")

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
        self.cost_ns = 0


class Capturer:
    """Receives captured calls from the engine and spools them to `path`
    (calls) and `path + ".blobs"` (the distinct values)."""

    def __init__(self, path: str, max_value_bytes: int, redact: Sequence[str],
                 max_yields: int = DEFAULT_MAX_YIELDS, scope: Sequence[str] = (),
                 max_capture_bytes: int = 32 << 20) -> None:
        self.path = path
        self.blob_path = path + ".blobs"
        self.max_value_bytes = max_value_bytes
        self.max_yields = max_yields
        # secret-looking names (retracer.record.redact): arguments, keys of the dicts
        # inside any stored value, functions whose results are secret
        self._redactor = Redactor([w for w in redact if w])
        self._index = ModuleIndex(tuple(scope))
        self._ser = Serializer(max_value_bytes, self._index,
                               secret=self._redactor if self._redactor else None)
        self._ids = itertools.count()
        self._pending: Dict[int, _Pending] = {}
        self._per_fid: Dict[int, int] = {}
        self._stats: Dict[int, _FnStats] = {}
        self._lock = threading.Lock()
        self._file = open(path, "ab")
        self._blobs = open(self.blob_path, "ab")
        self._seen: set = set()
        # large immutable arguments already stored, by identity: id -> (value, key)
        self._shared: Dict[int, Tuple[Any, bytes]] = {}
        self.count = 0
        self.stored_bytes = 0           # bytes of distinct values written
        self.capture_ns = 0             # time spent capturing, all threads
        self.max_capture_bytes = max_capture_bytes
        self._t_start = time.perf_counter_ns()
        self._imports_refunded = pickling.IMPORT_NS
        #: why capture stopped for the rest of the run, or None
        self.cut: Optional[Dict[str, Any]] = None

    # -- storage --------------------------------------------------------------

    def _store(self, data: bytes) -> bytes:
        key = blob_key(data)
        if key not in self._seen:
            with self._lock:
                if key not in self._seen:
                    self._seen.add(key)
                    self._blobs.write(key + _LEN.pack(len(data)))
                    self._blobs.write(data)
                    self.stored_bytes += len(data)
        return key

    def _where_secret(self, names: Tuple[str, ...], values: tuple) -> List[str]:
        """Which arguments hold a secret-looking key, and where (``cfg['db']['password']``)."""
        out = [w for w in (self._redactor.find(n, v) for n, v in zip(names, values)) if w]
        return out or ["a secret-looking key inside the arguments"]

    def _dumps(self, value: Any, key: Any) -> bytes:
        with _QuietWarnings():
            return self._ser.dumps(value, key)

    def _args_blob(self, fid: int, names: Tuple[str, ...], values: tuple) -> bytes:
        args: Dict[str, Any] = {}
        for n, v in zip(names, values):
            if type(v) in (str, bytes) and len(v) >= SHARED_MIN:
                known = self._shared.get(id(v))
                if known is None or known[0] is not v:
                    known = (v, self._store(self._dumps(v, None)))
                    if len(self._shared) >= 64:
                        self._shared.pop(next(iter(self._shared)))
                    self._shared[id(v)] = known
                v = Shared(known[1])
            args[n] = v
        return self._store(self._dumps(args, (fid, "args")))

    # -- budget ---------------------------------------------------------------

    def _over_budget(self) -> bool:
        if self.cut is not None:
            return True
        if self.stored_bytes > self.max_capture_bytes:
            self._cut("size", f"the captured values reached {self.max_capture_bytes:,} bytes "
                              f"(--max-capture-bytes)")
            return True
        # the time budget is the engine's: over it, calls are not handed over at all
        return False

    def _cut(self, kind: str, why: str) -> None:
        self.cut = {"kind": kind, "reason": why,
                    "after_s": round((time.perf_counter_ns() - self._t_start) / 1e9, 3),
                    "calls_kept": self.count + len(self._pending)}
        off = getattr(_engine, "capture_off", None)
        if off is not None:
            try:
                off()
            except Exception:
                pass

    def _spent(self, p: Optional[_Pending], fid: int, t0: int) -> None:
        dt = time.perf_counter_ns() - t0
        self.capture_ns += dt
        if p is not None:
            p.cost_ns += dt
        if pickling.IMPORT_NS != self._imports_refunded:
            # importing cloudpickle on first need is a one-time cost, not capture's
            # share of the run (the engine's time budget)
            _engine.capture_refund(pickling.IMPORT_NS - self._imports_refunded)
            self._imports_refunded = pickling.IMPORT_NS

    # -- callbacks (called by the C binding) --------------------------------

    def enter(self, call: Any):
        """A kept call begins. `call` is an `_engine.CallStart`: fid, thread_idx,
        names, values (at entry), t_ns, why ("first" or "shape"), stream_call
        (-1: not in the call stream) and generator (3.12+, or None)."""
        t0 = time.perf_counter_ns()
        p: Optional[_Pending] = None
        fid = -1
        try:
            fid, tidx, names, values, now = call.fid, call.thread_idx, call.names, call.values, call.t_ns
            why, stream_call, gen = call.why, call.stream_call, call.generator
            if self._over_budget():
                return None
            st = self._stats.get(fid)
            if st is None:
                st = self._stats[fid] = _FnStats()
            if st.stopped:
                return None
            self._index.refresh()
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
            red = self._redactor
            secret = [n for n, v in zip(names, values) if red.name_is_secret(n, v)] if red else []
            if secret:
                p.status = REDACTED
                p.info["redacted"] = secret
            else:
                try:
                    b0 = self.stored_bytes
                    p.args = self._args_blob(fid, names, values)
                    st.bytes += self.stored_bytes - b0
                except Secret:
                    p.status = REDACTED
                    p.info["redacted"] = self._where_secret(names, values)
                except Unpicklable as e:
                    p.status, p.info["error"] = UNPICKLABLE, f"arguments: {e}"
                except TooLarge as e:
                    p.status, p.info["error"] = TOO_LARGE, f"arguments: {e}"
            self._pending[cid] = p
            return cid
        except Exception:
            return None
        finally:
            self._spent(p, fid, t0)

    def yield_(self, y: Any) -> None:
        """A captured generator yields: `y` is an `_engine.CallYield` (id, value)."""
        t0 = time.perf_counter_ns()
        value = y.value
        p = self._pending.get(y.id)
        try:
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
                p.yields.append(self._dumps(value, (p.fid, "yield")))
            except Secret as e:
                p.status = REDACTED
                p.info["redacted"] = [f"a yielded value (key {e})"]
            except Unpicklable as e:
                p.info["yield_error"], p.info["yield_status"] = f"yielded value: {e}", UNPICKLABLE
            except TooLarge as e:
                p.info["yield_error"], p.info["yield_status"] = f"yielded value: {e}", TOO_LARGE
        except Exception:
            pass
        finally:
            self._spent(p, -1, t0)

    def exit(self, end: Any) -> None:
        """A captured call ends: `end` is an `_engine.CallEnd` (id, raised,
        value: the result or the exception, t_ns)."""
        t0 = time.perf_counter_ns()
        cid, raised, value, now = end.id, end.raised, end.value, end.t_ns
        p = self._pending.pop(cid, None)
        if p is None:
            return
        try:
            self._finish(cid, p, bool(raised), value, now)
        except Exception:
            pass
        finally:
            self._spent(p, -1, t0)
            self._account(p, now)

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

    def _account(self, p: _Pending, now: Optional[int]) -> None:
        """The per-function rule: stop capturing a function whose capture costs
        far more than the function itself, call after call."""
        st = self._stats.get(p.fid)
        if st is None:
            return
        st.kept += 1
        st.cost_ns += p.cost_ns
        if now is None:
            return
        # the call itself: t_ns are on the thread's timeline, where the engine
        # paused the clock while capturing (this call's and nested ones)
        call = max(0, now - p.t0)
        st.call_ns += call
        if p.cost_ns > COST_FLOOR_NS and p.cost_ns > COST_FACTOR * call:
            st.streak += 1
        else:
            st.streak = 0
        # (not fewer than three: a first call also pays for what later ones are spared -- a
        # large value stored once, a value that failed to pickle once, the module index --
        # and on a loaded machine two cheap calls in a row can each take milliseconds)
        if st.stopped is None and st.streak >= COST_CALLS:
            st.stopped = (f"capture cost {p.cost_ns / 1e3:,.0f} us per call, more than "
                          f"{COST_FACTOR}x the call itself")

    def _finish(self, cid: int, p: _Pending, raised: bool, value: Any, now: Optional[int]) -> None:
        result = exc = after = None
        ret: Optional[bytes] = None
        b0 = self.stored_bytes
        if p.status == OK:
            what = "the exception" if raised else "the return value"
            try:
                if raised:
                    if value is None:
                        p.info["exception_unknown"] = True  # the hook could not see it (<= 3.10)
                    exc = self._store(self._dumps(value, (p.fid, "exception")))  # drops the traceback
                else:
                    ret = self._dumps(value, (p.fid, "result"))
                what = "the arguments after the call"
                after = self._args_blob(p.fid, p.names, p.values)
            except Secret as e:
                p.status = REDACTED
                p.info["redacted"] = [f"{what} (key {e})"]
            except Unpicklable as e:
                p.status, p.info["error"] = UNPICKLABLE, f"{'exception' if raised else 'result'}: {e}"
            except TooLarge as e:
                p.status, p.info["error"] = TOO_LARGE, f"{'exception' if raised else 'result'}: {e}"
        if p.status == REDACTED:
            result = exc = after = ret = None
            p.yields = []
            p.yields_truncated = False
        if p.yields or p.yields_truncated:
            # a generator: the result holds its yielded values and its return value
            p.info["yields"] = len(p.yields)
            p.info["yields_truncated"] = p.yields_truncated
            result = self._store(pickle.dumps({"yields": p.yields, "return": ret}, protocol=5))
        elif ret is not None:
            result = self._store(ret)
        st = self._stats.get(p.fid)
        if st is not None:
            st.bytes += self.stored_bytes - b0
        p.info["outcome"] = "raise" if raised else "return"
        p.info["capture_ns"] = p.cost_ns
        row = (cid, p.fid, p.tidx, p.call_no, p.t0, (now - p.t0) if now is not None else None, p.status,
               p.args if p.status == OK else None, result, exc, after, p.info)
        self._write_row(row)
        p.values = None

    def _write_row(self, row: tuple) -> None:
        data = pickle.dumps(row, protocol=5)
        with self._lock:
            self._file.write(_LEN.pack(len(data)))
            self._file.write(data)
            self.count += 1

    def close(self) -> None:
        """Mark calls still running as incomplete and flush the spools."""
        for cid, p in list(self._pending.items()):
            g = p.gen_ref() if p.gen_ref is not None else None
            if p.gen_ref is not None and (g is None or _closed(g)):
                self._pending.pop(cid, None)
                self._finish(cid, p, True, GeneratorExit(), None)
                continue
            p.status = INCOMPLETE if p.status == OK else p.status
            p.info["outcome"] = "incomplete"
            self._write_row((cid, p.fid, p.tidx, p.call_no, p.t0, None, p.status, None, None, None, None, p.info))
        self._pending.clear()
        self._file.close()
        self._blobs.close()

    def function_stats(self) -> Iterator[tuple]:
        """(fid, calls kept, capture ns, bytes, why capture stopped or None) per
        function capture looked at."""
        for fid, st in sorted(self._stats.items()):
            yield fid, st.kept, st.cost_ns, st.bytes, st.stopped

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

    def blobs(self) -> Iterator[Tuple[bytes, bytes]]:
        """(key, data) of every distinct stored value."""
        return read_blobs(self.blob_path)

    def secret_results(self, function_names: Dict[int, str]) -> Tuple[set, set]:
        """The calls whose return value is secret by their function's name
        (``get_token``, see retracer.record.redact), after the run: (their call
        ids, the keys of stored values only they refer to, which must not be
        written). ``function_names``: fid -> name of the functions captured."""
        red = self._redactor
        kinds = {fid: k for fid, name in function_names.items()
                 for k in [red.function_is_secret(name)] if k is not None} if red else {}
        if not kinds:
            return set(), set()
        strong: set = set()
        candidates: Dict[int, Tuple[bytes, bool]] = {}
        for row in self.rows():
            if row[1] in kinds and row[6] == OK and row[8] is not None and row[11].get("outcome") == "return":
                if row[11].get("yields"):
                    if kinds[row[1]]:
                        strong.add(row[0])  # a generator of secrets
                else:
                    candidates[row[0]] = (row[8], kinds[row[1]])
        if candidates:
            wanted = {key for key, _ in candidates.values()}
            kind_of = {key: _pickled_kind(data) for key, data in self.blobs() if key in wanted}
            for cid, (key, is_strong) in candidates.items():
                k = kind_of.get(key)
                if k == "text" or (is_strong and k != "flag"):
                    strong.add(cid)  # check_password() -> True is not a secret
        if not strong:
            return set(), set()
        dropped, kept = set(), set()
        for row in self.rows():
            keys = {k for k in row[7:11] if k is not None}
            (dropped if row[0] in strong else kept).update(keys)
        return strong, dropped - kept


def _pickled_kind(data: bytes) -> str:
    """What a pickle holds, read without loading it: "text" (a str, bytes or
    bytearray), "flag" (None, True, False) or "other"."""
    import pickletools
    try:
        ops = [op.name for op, _, _ in itertools.islice(pickletools.genops(data), 8)]
    except Exception:
        return "other"
    ops = [o for o in ops if o not in ("PROTO", "FRAME", "MEMOIZE", "STOP")]
    if len(ops) != 1:
        return "other"
    if ops[0] in ("NONE", "NEWTRUE", "NEWFALSE"):
        return "flag"
    if ops[0] in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINBYTES", "BINBYTES",
                  "BINBYTES8", "BYTEARRAY8", "SHORT_BINSTRING", "BINSTRING", "STRING"):
        return "text"
    return "other"


def read_blobs(path: str) -> Iterator[Tuple[bytes, bytes]]:
    """(key, data) records of a blob spool; a truncated last record ends it."""
    try:
        f = open(path, "rb")
    except OSError:
        return
    with f:
        while True:
            head = f.read(16 + _LEN.size)
            if len(head) < 16 + _LEN.size:
                return
            (n,) = _LEN.unpack(head[16:])
            data = f.read(n)
            if len(data) < n:
                return
            yield head[:16], data


def dumps(obj: Any, max_bytes: int) -> bytes:
    """Pickle ``obj`` as capture does (see :mod:`retracer.record.pickling`)."""
    from .pickling import dumps as _dumps
    return _dumps(obj, max_bytes)


__all__ = ["Capturer", "dumps", "blob_key", "read_blobs", "STATUSES", "OK", "UNPICKLABLE", "TOO_LARGE",
           "REDACTED", "INCOMPLETE"]
