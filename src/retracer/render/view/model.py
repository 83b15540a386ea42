"""The view's model of a trace: every thread's call tree folded by the C folder
(``retracer._view``, csrc/rt_fold.c), the functions, the captured calls placed
in the stream, and statistics. :mod:`.text` prints it, :mod:`.page` draws it."""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ... import _view
from ...errors import TraceError
from ...tracefile import Function, TraceReader
from .captures import describe_capture, stream_call_of
from .decode import Rec, decode_root

DEFAULT_PERIOD = 64  # longest repeated call sequence looked for (retracer view --max-period)


@dataclass
class ThreadView:
    idx: int
    name: str
    tree: bytes            # rt_fold encoding of the folded tree
    paths: bytes           # rt_fold encoding of the merged call paths
    info: Dict[str, Any]
    process: Optional[str] = None  # a multi-process trace: "process PID: COMMAND", the tree's level above

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



def _bar(what: str, total: int):
    """A progress bar on a terminal's stderr (nothing otherwise)."""
    from ...term import Bar
    return Bar(what, total=total)


def load(path: str, trust: bool = False, max_period: int = DEFAULT_PERIOD,
         captures: bool = True) -> ViewModel:
    """Read a trace and fold every thread's call tree (in C)."""

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
        events = sum(th.n_events or 0 for th in r.threads)
        # one bar step per thread (a thread is folded by one C call)
        bar = _bar(f"folding {events / 1e6:.1f}M events", n_threads) if events > 1_000_000 else None
        for i, th in enumerate(r.threads):
            if bar is not None:
                bar.update(i)
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
            name = th.name or f"thread {th.thread_idx}"
            process = None
            if len(r.processes) > 1:  # the process level of the tree, the timeline's lane groups
                from ..stream import process_frame

                process = process_frame(r.process_of(th.thread_idx))
            model.threads.append(ThreadView(th.thread_idx, name, tree, paths, info, process))
        if bar is not None:
            bar.finish()
        # each process's threads together (stable: the threads' order within a process stays)
        first: Dict[Optional[str], int] = {}
        for t in model.threads:
            first.setdefault(t.process, len(first))
        model.threads.sort(key=lambda t: first[t.process])
        resolve = r.blob if r.version >= 2 else None
        cbar = _bar("reading captured calls", len(located)) if len(located) > 2000 else None
        for k, (tidx, call_no, row) in enumerate(located):
            model.captured[f"{tidx}:{call_no}"] = describe_capture(row, resolve=resolve)
            if cbar is not None and k % 256 == 0:
                cbar.update(k)
        if cbar is not None:
            cbar.finish()
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
