"""`retracer view`: the folded call tree of a trace as a self-contained HTML page,
as indented text, or served on 127.0.0.1.

The folding itself is C (``retracer._view``, csrc/rt_fold.c): this module reads the
trace, runs the folder on every thread, decodes its compact encoding for the text form
(docs/folding.md, "Encoding"), renders captured arguments safely, and fills the page
template in ``retracer/viewpage/``.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import pickle
import re
import reprlib
import sys
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

from . import outputs
from .errors import OneLineParser, RetracerError
from .tracefile import (FLAG_IMPORT_MACHINERY, Function, TraceError,
                        TraceReader)

# node kinds and end reasons (csrc/rt_fold.h, csrc/rt_walk.h)
KIND_CALL, KIND_RESUME, KIND_CONT, KIND_ROOT = range(4)
END_RETURN, END_RAISE, END_SUSPEND, END_OPEN = range(4)

DEFAULT_PERIOD = 64


# --------------------------------------------------------------------------- decoding

class Rec:
    """One decoded record of the folded tree: a span (a call, or a resumed slice of a
    generator) or a group of repetitions. ``kids``/``end`` are byte offsets of its
    items; ``call_no`` is the stream call number of a call span, and for the others the
    number of the first call inside."""

    __slots__ = ("group", "fid", "period", "kind", "how", "depth", "t0", "dur", "dur_sum",
                 "count", "calls", "aggs", "nitems", "kids", "end", "call_no")

    def __init__(self) -> None:
        self.group = False
        self.fid = -1
        self.period = 0
        self.kind = KIND_CALL
        self.how = END_RETURN
        self.depth = 1
        self.t0 = 0
        self.dur = 0
        self.dur_sum = 0
        self.count = 1
        self.calls = 0
        self.aggs: Optional[List[Tuple[int, int]]] = None
        self.nitems = 0
        self.kids = 0
        self.end = 0
        self.call_no = 0

    @property
    def t1(self) -> int:
        return self.t0 + self.dur

    @property
    def first_child_call(self) -> int:
        return self.call_no + (1 if (not self.group and self.kind != KIND_RESUME
                                     and self.kind != KIND_ROOT) else 0)


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    v = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v, pos
        shift += 7


def decode_root(buf: bytes) -> Rec:
    """The thread's root record (its items are the thread's top-level calls)."""
    version, pos = _varint(buf, 0)
    if version != 1:
        raise ValueError(f"unknown folded-tree encoding version {version}")
    w, pos = _varint(buf, pos)
    if w != 2:
        raise ValueError("folded tree does not start with its root")
    r = Rec()
    r.kind = KIND_ROOT
    r.t0, pos = _varint(buf, pos)
    r.dur, pos = _varint(buf, pos)
    r.calls, pos = _varint(buf, pos)
    r.nitems, pos = _varint(buf, pos)
    cb, pos = _varint(buf, pos)
    r.kids, r.end = pos, pos + cb
    r.call_no = 0
    return r


def read_rec(buf: bytes, pos: int, cursor: int, next_call: int) -> Rec:
    """Decode the record at ``pos``; ``cursor`` is the end of the previous item (or the
    owner's start) and ``next_call`` the call number of the next call in the list."""
    r = Rec()
    w, pos = _varint(buf, pos)
    gap, pos = _varint(buf, pos)
    r.t0 = cursor + gap
    r.call_no = next_call
    if w & 3 == 1:
        r.group = True
        r.period = w >> 2
        r.dur, pos = _varint(buf, pos)
        r.dur_sum, pos = _varint(buf, pos)
        r.count, pos = _varint(buf, pos)
        r.calls, pos = _varint(buf, pos)
        if r.period > 1:
            aggs = []
            for _ in range(r.period):
                d, pos = _varint(buf, pos)
                c, pos = _varint(buf, pos)
                aggs.append((d, c))
            r.aggs = aggs
        else:
            r.aggs = [(r.dur_sum, r.calls)]
        cb, pos = _varint(buf, pos)
        r.nitems = r.period * r.count
        r.kids, r.end = pos, pos + cb
        return r
    r.fid = w >> 2
    r.dur, pos = _varint(buf, pos)
    flags, pos = _varint(buf, pos)
    r.kind = flags & 3
    r.how = (flags >> 2) & 3
    r.depth = (flags >> 5) + 1
    r.dur_sum = r.dur
    if flags & 16:
        r.calls, pos = _varint(buf, pos)
        r.nitems, pos = _varint(buf, pos)
        cb, pos = _varint(buf, pos)
        r.kids, r.end = pos, pos + cb
    else:
        r.calls = 0 if r.kind == KIND_RESUME else 1
        r.kids = r.end = pos
    return r


def iter_items(buf: bytes, owner: Rec) -> Iterator[Rec]:
    """The items of a span, a group (every repetition, in order) or the root."""
    pos = owner.kids
    cursor = owner.t0
    nxt = owner.first_child_call
    for _ in range(owner.nitems):
        r = read_rec(buf, pos, cursor, nxt)
        pos = r.end
        cursor = r.t1
        nxt += r.calls
        yield r


# --------------------------------------------------------------------------- the model

@dataclass
class ThreadView:
    idx: int
    name: str
    tree: bytes            # rt_fold encoding of the folded tree
    paths: bytes           # rt_fold encoding of the merged call paths
    info: Dict[str, Any]

    @property
    def root(self) -> Rec:
        return decode_root(self.tree)


@dataclass
class ViewModel:
    path: str
    meta: Dict[str, Any]
    functions: Dict[int, Function]
    threads: List[ThreadView]
    captured: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # "thread:call_no" -> entry
    stats: Dict[str, Any] = field(default_factory=dict)


class _Stub:
    """Stands for an object of a class retracer does not import (the traced script's own
    classes): its repr shows the class name and the state pickle gave it."""

    _rt_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Stub":
        obj = object.__new__(cls)
        object.__setattr__(obj, "_rt_args", args)
        object.__setattr__(obj, "_rt_state", None)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "_rt_state", state)

    def __setattr__(self, name: str, value: Any) -> None:
        st = object.__getattribute__(self, "_rt_state")
        if not isinstance(st, dict):
            st = {}
            object.__setattr__(self, "_rt_state", st)
        st[name] = value

    def __call__(self, *args: Any, **kwargs: Any) -> "_Stub":
        return type(self)(*args)

    def __repr__(self) -> str:
        name = type(self)._rt_name
        st = object.__getattribute__(self, "_rt_state")
        args = object.__getattribute__(self, "_rt_args")
        items: Dict[str, Any] = {}
        if isinstance(st, tuple) and len(st) == 2 and all(s is None or isinstance(s, dict) for s in st):
            for part in st:
                items.update(part or {})
        elif isinstance(st, dict):
            items = st
        if items:
            return f"{name}(" + ", ".join(f"{k}={_repr(v)}" for k, v in items.items()) + ")"
        if args:
            return f"{name}(" + ", ".join(_repr(a) for a in args) + ")"
        if st is not None:
            return f"{name}({_repr(st)})"
        return f"<{name}>"


class _ReprUnpickler(pickle.Unpickler):
    """Unpickles captured values for display. Classes of the traced program (``__main__``
    and modules inside the scope) are not imported: they become stubs, so viewing a
    trace never runs the program's module code."""

    def __init__(self, data: bytes, scope: Optional[str]) -> None:
        super().__init__(io.BytesIO(data))
        self._scope = scope

    def _in_scope(self, module: str) -> bool:
        if module in ("__main__", "__retracer_main__", "__mp_main__"):
            return True
        if not self._scope or module in sys.modules:
            return False
        from importlib.machinery import PathFinder
        try:
            spec = PathFinder.find_spec(module.split(".")[0])
        except Exception:
            return True
        origin = getattr(spec, "origin", None) or ""
        locs = list(getattr(spec, "submodule_search_locations", None) or [])
        where = [p for p in [origin] + locs if p]
        scope = os.path.abspath(self._scope) + os.sep
        return any(os.path.abspath(p).startswith(scope) for p in where)

    def find_class(self, module: str, name: str) -> Any:
        if not self._in_scope(module):
            try:
                return super().find_class(module, name)
            except Exception:
                pass
        return type(name.rsplit(".", 1)[-1], (_Stub,), {"_rt_name": name, "__module__": module})


_REPR = reprlib.Repr()
_REPR.maxstring = 160
_REPR.maxother = 160
_REPR.maxlong = 80
_REPR.maxlevel = 4
for _attr in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque", "maxarray"):
    setattr(_REPR, _attr, 12)


def _repr(value: Any) -> str:
    """A bounded repr that never raises."""
    try:
        text = _REPR.repr(value)
    except Exception as e:  # a user __repr__ failing
        return f"<repr failed: {type(e).__name__}>"
    if len(text) > 400:
        text = text[:397] + "..."
    return text


def _load(blob: Optional[bytes], scope: Optional[str]) -> Tuple[bool, Any]:
    """(True, value) or (False, "<not loadable: why>")."""
    if blob is None:
        return True, None
    try:
        return True, _ReprUnpickler(blob, scope).load()
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        return False, f"<not loadable: {type(e).__name__}{': ' + msg[:120] if msg else ''}>"


def describe_capture(row: Any, scope: Optional[str]) -> Dict[str, Any]:
    """What the page shows for one captured call: status, argument reprs, outcome."""
    try:
        info = json.loads(row.info) if row.info else {}
    except ValueError:
        info = {}
    entry: Dict[str, Any] = {"status": row.status or "?", "id": row.call_id}
    if row.args is not None:
        ok, args = _load(row.args, scope)
        if ok and isinstance(args, dict):
            entry["args"] = [[str(k), _repr(v)] for k, v in args.items()]
        else:
            entry["args_error"] = args if not ok else f"<not loadable: {type(args).__name__}>"
    else:
        why = info.get("error") or row.status or "not recorded"
        entry["args_error"] = f"<not recorded: {why}>"
    outcome = info.get("outcome")
    if outcome == "raise" and row.exception is not None:
        ok, exc = _load(row.exception, scope)
        entry["raised"] = _repr(exc) if ok else exc
    elif row.result is not None:
        ok, res = _load(row.result, scope)
        if ok and info.get("yields") and isinstance(res, dict) and "yields" in res:
            ys = []
            for blob in list(res.get("yields") or [])[:12]:
                yok, yv = _load(blob, scope) if isinstance(blob, (bytes, bytearray)) else (True, blob)
                ys.append(_repr(yv) if yok else yv)
            entry["yields"] = ys
            ret = res.get("return")
            if isinstance(ret, (bytes, bytearray)):
                rok, rv = _load(ret, scope)
                entry["returned"] = _repr(rv) if rok else rv
        else:
            entry["returned"] = _repr(res) if ok else res
    elif outcome == "return":
        entry["returned"] = "None"
    if row.duration_ns is not None:
        entry["dur"] = row.duration_ns
    return entry


def stream_call_of(row: Any) -> Optional[int]:
    """The captured call's number in its thread's call stream, as the tracer recorded it
    (``info.stream_call``, or a ``stream_call`` column), or None."""
    v = getattr(row, "stream_call", None)
    if v is None and row.info:
        try:
            v = json.loads(row.info).get("stream_call")
        except (ValueError, AttributeError):
            v = None
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _progress(msg: str) -> None:
    if sys.stderr.isatty():
        print(f"retracer: {msg}", file=sys.stderr, flush=True)


def load(path: str, trust: bool = False, max_period: int = DEFAULT_PERIOD,
         captures: bool = True) -> ViewModel:
    """Read a trace and fold every thread's call tree (in C)."""
    from . import _view

    with TraceReader(path, trust=trust) as r:
        meta = dict(r.meta)
        funcs = dict(r.functions)
        rows = list(r.iter_captured()) if captures else []
        by_thread: Dict[int, list] = {}
        for row in rows:
            by_thread.setdefault(row.thread_idx, []).append(row)
        model = ViewModel(path=path, meta=meta, functions=funcs, threads=[])
        located: List[Tuple[int, int, Any]] = []
        n_threads = len(r.threads)
        for i, th in enumerate(r.threads):
            if n_threads > 1 or (th.n_events or 0) > 2_000_000:
                _progress(f"folding thread {i + 1}/{n_threads} ({th.name or th.thread_idx}, "
                          f"{th.n_events or 0:,} events)")
            mine = by_thread.get(th.thread_idx, [])
            direct = [stream_call_of(c) for c in mine]
            ask = [(c.fid, c.t_start_ns) for c, d in zip(mine, direct) if d is None]
            try:
                tree, paths, info = _view.fold(r.iter_chunks(th.thread_idx), max_period=max_period,
                                               captures=ask)
            except ValueError as e:
                raise TraceError(f"retracer: {path} is truncated or corrupt ({e} in thread "
                                 f"{th.thread_idx}); trace the program again") from None
            found = iter(info.pop("captures", []))
            for c, d in zip(mine, direct):
                call_no = d if d is not None else next(found)
                if call_no is not None:
                    located.append((th.thread_idx, int(call_no), c))
            model.threads.append(ThreadView(th.thread_idx, th.name or f"thread {th.thread_idx}",
                                            tree, paths, info))
        scope = meta.get("scope")
        if located:
            _progress(f"rendering {len(located):,} captured calls")
        for tidx, call_no, row in located:
            model.captured[f"{tidx}:{call_no}"] = describe_capture(row, scope)
        stats = r.func_stats()
    top = sorted(stats, key=lambda s: -s.own_ns)[:25]
    model.stats = {
        "calls": int(meta.get("calls_total") or sum(s.calls for s in stats)),
        "stream_calls": sum(t.info.get("calls", 0) for t in model.threads),
        "functions": sum(1 for s in stats if s.calls),
        "threads": len(model.threads),
        "top": [[s.fid, s.calls, s.own_ns, s.cum_ns] for s in top],
        "groups": sum(t.info.get("groups", 0) for t in model.threads),
    }
    return model


# --------------------------------------------------------------------------- names

_C_BUILTIN = re.compile(r"<built-in (?:method|function) ([^>\s]+)>$")
_C_METHOD = re.compile(r"<method '([^']+)' of '([^']+)' objects>$")


def func_label(fn: Optional[Function]) -> str:
    """A short name: the qualified name of a Python function; for a C function the
    name as Python spells it (``len``, ``sys._getframe``, ``_thread.lock.release``)
    rather than cProfile's ``<built-in method builtins.len>``."""
    if fn is None:
        return "?"
    name = fn.qualname or fn.name or "?"
    if fn.kind == "c":
        m = _C_BUILTIN.match(name)
        if m:
            name = m.group(1)
            if name.startswith("builtins."):
                name = name[len("builtins."):]
        else:
            m = _C_METHOD.match(name)
            if m:
                name = f"{m.group(2)}.{m.group(1)}"
        if fn.module and fn.module != "builtins" and "." not in name:
            name = f"{fn.module}.{name}"
    return name


def func_where(fn: Optional[Function]) -> str:
    if fn is None:
        return ""
    if fn.kind == "c" or not fn.filename:
        return fn.module or "builtin"
    return f"{os.path.basename(fn.filename)}:{fn.firstlineno or 0}"


def _fmt_ns(ns: float) -> str:
    from .report import fmt_ns
    return fmt_ns(ns)


# --------------------------------------------------------------------------- text

@dataclass
class _Glyphs:
    tee: str
    last: str
    pipe: str
    blank: str
    loop: str
    rec: str
    times: str
    dash: str


_UNICODE = _Glyphs("├── ", "└── ", "│   ", "    ", "🔄", "↻", "×", "–")
_ASCII = _Glyphs("|-- ", "`-- ", "|   ", "    ", "@", "(rec)", "x", "-")


def _glyphs(out: TextIO) -> _Glyphs:
    enc = getattr(out, "encoding", None) or "ascii"
    try:
        "├──└│🔄↻×–".encode(enc)
        return _UNICODE
    except (UnicodeEncodeError, LookupError):
        return _ASCII


def _hidden(model: ViewModel, fid: int, hide_imports: bool) -> bool:
    if not hide_imports:
        return False
    fn = model.functions.get(fid)
    return bool(fn and fn.flags & FLAG_IMPORT_MACHINERY)


def _group_hidden(model: ViewModel, buf: bytes, g: Rec, hide_imports: bool) -> bool:
    if not hide_imports:
        return False
    first = list(_first_rep(buf, g))
    return all((not r.group) and _hidden(model, r.fid, True) for r in first)


def _first_rep(buf: bytes, g: Rec) -> Iterator[Rec]:
    for k, r in enumerate(iter_items(buf, g)):
        if k >= g.period:
            return
        yield r


def _span_line(model: ViewModel, r: Rec, g: _Glyphs, agg: Optional[Tuple[int, int, int]] = None) -> str:
    fn = model.functions.get(r.fid)
    parts = [func_label(fn), f"[{func_where(fn)}]"]
    if r.kind == KIND_RESUME:
        parts.append("(resumed)")
    elif r.kind == KIND_CONT:
        parts.append("(continued from another thread)")
    if agg is not None:
        count, dur, calls = agg
        parts.append(f"{g.times}{count:,}  {_fmt_ns(dur)} total  {_plural(calls, 'call')}")
        if r.depth > 1:
            parts.append(f"{g.rec} recursion depth {r.depth} (first repetition)")
        return "  ".join(parts)
    if r.depth > 1:
        parts.append(f"{g.rec} recursion depth {r.depth}, {_plural(r.calls, 'call')}  {_fmt_ns(r.dur)}")
    else:
        parts.append(_fmt_ns(r.dur))
        if r.calls > 1:
            parts.append(f"{r.calls:,} calls")
    if r.how == END_RAISE:
        parts.append("raised")
    elif r.how == END_OPEN:
        parts.append("(still running when tracing stopped)")
    return "  ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def group_name(model: ViewModel, buf: bytes, r: Rec, times: str = "×", levels: int = 2,
               width: int = 5) -> str:
    """``N× [a, b, M× [c, d]]``: a group's template, nested groups spelled out
    ``levels`` deep and at most ``width`` items per level."""
    names = []
    for k, it in enumerate(_first_rep(buf, r)):
        if k == width:
            names.append("...")
            break
        if it.group:
            names.append(group_name(model, buf, it, times, levels - 1, width) if levels > 1
                         else f"{it.count}{times}[...]")
        else:
            names.append(func_label(model.functions.get(it.fid)))
    return f"{r.count:,}{times} [{', '.join(names)}]"


def _group_line(model: ViewModel, buf: bytes, r: Rec, g: _Glyphs,
                agg: Optional[Tuple[int, int, int]] = None) -> str:
    name = group_name(model, buf, r, g.times)
    if agg is not None:  # a group inside a pattern: what one repetition does, and the totals
        count, dur, calls = agg
        return (f"{g.loop} {name}  (in each repetition; over all {count:,}: "
                f"{_plural(calls, 'call')}, {_fmt_ns(dur)})")
    calls_range = (f"calls #{r.call_no:,}{g.dash}#{r.call_no + r.calls - 1:,}, " if r.calls else "")
    # fewer calls than repetitions: the repetitions are slices of generators or
    # coroutines resumed again and again (one call, many slices)
    slices = f" in {r.count:,} resumed slices" if r.period == 1 and r.calls < r.count else ""
    return f"{g.loop} {name}  ({calls_range}total: {_plural(r.calls, 'call')}{slices}, {_fmt_ns(r.dur_sum)})"


def render_text(model: ViewModel, out: TextIO, patterns: bool = True,
                hide_imports: bool = False, max_depth: Optional[int] = None) -> None:
    """Print the folded call tree of every thread as an indented tree.

    A group prints its pattern once: each item of the first repetition with the totals
    over all repetitions, followed by what that first repetition called. A recursive
    call prints as one line (its depth and total calls), not its re-entries."""
    g = _glyphs(out)
    for th in model.threads:
        root = th.root
        out.write(f"Thread {th.name} ({root.calls:,} calls, {_fmt_ns(root.dur)})\n")
        # explicit stack of (iterator over (rec, agg, nested) rows, prefix, depth)
        stack: List[Tuple[Iterator[Tuple[Rec, Optional[tuple], bool]], str, int]] = []
        stack.append((_rows(model, th.tree, root, patterns, hide_imports, False), "", 0))
        pending: List[Optional[Tuple[Rec, Optional[tuple], bool]]] = [None]
        # one look-ahead per level to know which row is the last
        pending[0] = next(stack[0][0], None)
        while stack:
            it, prefix, depth = stack[-1]
            row = pending[-1]
            if row is None:
                stack.pop()
                pending.pop()
                continue
            nxt = next(it, None)
            pending[-1] = nxt
            r, agg, nested = row
            last = nxt is None
            out.write(prefix + (g.last if last else g.tee))
            if r.group:
                out.write(_group_line(model, th.tree, r, g, agg) + "\n")
                child_rows = _template_rows(model, th.tree, r, hide_imports)
            else:
                out.write(_span_line(model, r, g, agg) + "\n")
                if r.depth > 1:
                    continue  # recursion: one node
                child_rows = _rows(model, th.tree, r, patterns, hide_imports, False)
            if max_depth is not None and depth + 1 >= max_depth:
                continue
            stack.append((child_rows, prefix + (g.blank if last else g.pipe), depth + 1))
            pending.append(next(child_rows, None))


def _rows(model: ViewModel, buf: bytes, owner: Rec, patterns: bool, hide_imports: bool,
          nested: bool) -> Iterator[Tuple[Rec, Optional[tuple], bool]]:
    """Rows of a span's items: groups as groups (or, without patterns, their items)."""
    stack = [iter_items(buf, owner)]
    while stack:
        r = next(stack[-1], None)
        if r is None:
            stack.pop()
            continue
        if r.group:
            if not patterns:
                stack.append(iter_items(buf, r))
                continue
            if _group_hidden(model, buf, r, hide_imports):
                continue
            yield r, None, nested
        elif not _hidden(model, r.fid, hide_imports):
            yield r, None, nested


def _template_rows(model: ViewModel, buf: bytes, grp: Rec,
                   hide_imports: bool) -> Iterator[Tuple[Rec, Optional[tuple], bool]]:
    """The pattern of a group: its first repetition, each span with the totals of that
    position over all repetitions."""
    for k, r in enumerate(_first_rep(buf, grp)):
        d, c = grp.aggs[k] if grp.aggs else (r.dur_sum, r.calls)
        if r.group:
            if not _group_hidden(model, buf, r, hide_imports):
                yield r, (grp.count, d, c), True
        elif not _hidden(model, r.fid, hide_imports):
            yield r, (grp.count, d, c), True


# --------------------------------------------------------------------------- page

_PAGE_DIR = os.path.join(os.path.dirname(__file__), "viewpage")


def _b64z(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 6)).decode("ascii")


def page_data(model: ViewModel, patterns: bool = True, hide_imports: bool = False) -> Dict[str, Any]:
    meta = model.meta
    fns = {}
    for fid, fn in model.functions.items():
        fns[str(fid)] = [func_label(fn), fn.qualname or fn.name or "", fn.module or "",
                         func_where(fn), fn.filename or "", fn.flags or 0, fn.kind]
    threads = []
    for th in model.threads:
        root = th.root
        threads.append({"idx": th.idx, "name": th.name, "calls": root.calls, "t0": root.t0,
                        "dur": root.dur, "groups": th.info.get("groups", 0),
                        "spans": th.info.get("spans", 0), "anomalies": th.info.get("anomalies", 0),
                        "max_depth": th.info.get("max_depth", 0),
                        "tree": _b64z(th.tree), "paths": _b64z(th.paths)})
    command = meta.get("command") or []
    return {
        "version": 1,
        "trace": os.path.abspath(model.path),
        "command": " ".join(str(c) for c in command) if isinstance(command, list) else str(command),
        "python": meta.get("python_version") or meta.get("python") or "",
        "complete": meta.get("complete", True),
        "stopped_by": meta.get("stopped_by"),
        "functions": fns,
        "threads": threads,
        "captured": model.captured,
        "stats": model.stats,
        "initial": {"patterns": bool(patterns), "hideImports": bool(hide_imports)},
    }


def _json_for_script(obj: Any) -> str:
    """JSON that can sit inside <script type="application/json">: no '<' at all."""
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _html_escape(text: str) -> str:
    import html
    return html.escape(text, quote=True)


_PLACEHOLDER = re.compile(r"\{\{([A-Z]+)\}\}")


def render_html(model: ViewModel, patterns: bool = True, hide_imports: bool = False) -> str:
    """One self-contained HTML page (no network needed to open it)."""
    def read(name: str) -> str:
        with open(os.path.join(_PAGE_DIR, name), encoding="utf-8") as f:
            return f.read()

    data = page_data(model, patterns, hide_imports)
    title = "retracer view — " + (data["command"] or os.path.basename(model.path))
    js = read("view.js")
    css = read("view.css")
    page = read("page.html")
    # the templates are ours; the data never contains '<' (see _json_for_script)
    return outputs.fill(page, _PLACEHOLDER, {"TITLE": _html_escape(title), "CSS": css,
                                             "JS": js.replace("</", "<\\/"),
                                             "DATA": _json_for_script(data)})


def write_page(html: str, out: str) -> str:
    return outputs.write_text(out, html)


def serve(html: str, port: int, out: TextIO = sys.stderr) -> int:
    """Serve the page on 127.0.0.1 until Ctrl-C."""
    import http.server
    import socketserver

    body = html.encode("utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0] in ("/", "/index.html"):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    try:
        httpd = Server(("127.0.0.1", port), Handler)
    except OSError as e:
        raise RetracerError(f"retracer: cannot serve on 127.0.0.1:{port} ({e.strerror}); "
                            f"pass another port (--serve PORT)") from None
    addr = f"http://127.0.0.1:{httpd.server_address[1]}/"
    print(f"retracer: serving the view at {addr} (Ctrl-C to stop)", file=out, flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("retracer: stopped serving", file=out, flush=True)
    finally:
        httpd.server_close()
    return 0


# --------------------------------------------------------------------------- CLI

def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="retracer view",
        description="See a run: the call tree with repeated call sequences folded into groups "
                    "(nested) and recursion collapsed, a flame graph, a per-thread timeline, "
                    "filters and statistics, as one self-contained HTML page; or the folded "
                    "tree as text.")
    p.add_argument("trace", help="trace file written by retracer trace")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="HTML page to write (default: the trace's name with .html)")
    p.add_argument("--serve", nargs="?", const=8000, type=_port, metavar="PORT",
                   help="serve the page on 127.0.0.1:PORT (default 8000; 0 picks a free port) "
                        "instead of writing it")
    p.add_argument("--text", action="store_true", help="print the folded call tree as text")
    p.add_argument("--no-patterns", action="store_true",
                   help="start with repeated call sequences unfolded")
    p.add_argument("--hide-imports", action="store_true",
                   help="start with import machinery hidden")
    p.add_argument("--max-period", type=int, default=DEFAULT_PERIOD, metavar="N",
                   help=f"longest repeated call sequence looked for (default {DEFAULT_PERIOD}, at most 1024)")
    p.add_argument("--max-depth", type=int, metavar="N", help="--text: print N levels at most")
    p.add_argument("--trust", action="store_true", help="read a trace that is not signed by you")
    return p


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: give a number 0-65535") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {v}: give a number 0-65535")
    return v


def cmd_view(argv: Sequence[str]) -> int:
    ns = _parser().parse_args(argv)
    if not 1 <= ns.max_period <= 1024:
        raise RetracerError(f"retracer: --max-period must be 1..1024 (got {ns.max_period})")
    if ns.max_depth is not None and ns.max_depth < 1:
        raise RetracerError(f"retracer: --max-depth must be 1 or more (got {ns.max_depth})")
    if ns.text and (ns.output or ns.serve is not None):
        raise RetracerError("retracer: --text prints to stdout; drop -o/--serve, or drop --text for the page")
    if ns.output and ns.serve is not None:
        raise RetracerError("retracer: choose either -o FILE (write the page) or --serve (serve it)")
    if ns.output:
        d = os.path.dirname(os.path.abspath(ns.output))
        if os.path.isdir(ns.output) or not os.path.isdir(d):
            write_page("", ns.output)  # raises the one-line error
    model = load(ns.trace, trust=ns.trust, max_period=ns.max_period, captures=not ns.text)
    if ns.text:
        render_text(model, sys.stdout, patterns=not ns.no_patterns, hide_imports=ns.hide_imports,
                    max_depth=ns.max_depth)
        return 0
    html = render_html(model, patterns=not ns.no_patterns, hide_imports=ns.hide_imports)
    if ns.serve is not None:
        return serve(html, ns.serve)
    out = ns.output or (os.path.splitext(ns.trace)[0] + ".html")
    write_page(html, out)
    print(f"retracer: page written to {out} ({len(html.encode('utf-8')) / 1e6:.1f} MB; "
          f"open it in a browser)", file=sys.stderr)
    return 0


def print_trace(path: str, out: TextIO = sys.stdout) -> None:
    """`retracer trace --print`: the folded call tree of the trace just written."""
    model = load(path, trust=True, captures=False)
    render_text(model, out)
