"""Reports over a trace file: the pstats export (the ranked table is in ranking.py)."""
from __future__ import annotations

import marshal
import os
from typing import Dict, List, Tuple

from .errors import RetracerError
from .tracefile import TraceReader

def _label(fn) -> Tuple[str, int, str]:
    """The pstats key of a function, as cProfile builds it."""
    if fn.kind == "c":
        return ("~", 0, fn.name)
    return (fn.filename, fn.firstlineno, fn.name)


def pstats_dict(reader: TraceReader) -> Dict[tuple, tuple]:
    """The profile as the dict pstats.Stats loads (times in seconds)."""
    funcs = reader.functions
    stats: Dict[tuple, list] = {}
    for s in reader.func_stats():
        key = _label(funcs[s.fid])
        cur = stats.setdefault(key, [0, 0, 0.0, 0.0, {}])
        cur[0] += s.prim_calls
        cur[1] += s.calls
        cur[2] += s.own_ns / 1e9
        cur[3] += s.cum_ns / 1e9
    for e in reader.edge_stats():
        if e.caller_fid < 0 or e.caller_fid not in funcs:
            continue
        callee = _label(funcs[e.callee_fid])
        caller = _label(funcs[e.caller_fid])
        if callee not in stats:
            continue
        callers = stats[callee][4]
        prev = callers.get(caller, (0, 0, 0.0, 0.0))
        # cProfile stores caller tuples as (nc, cc, tt, ct)
        callers[caller] = (prev[0] + e.calls, prev[1] + e.prim_calls,
                           prev[2] + e.own_ns / 1e9, prev[3] + e.cum_ns / 1e9)
    return {k: tuple(v) for k, v in stats.items()}


def write_pstats(reader: TraceReader, out: str) -> str:
    """Write a file that `pstats.Stats(out)` and snakeviz open."""
    data = pstats_dict(reader)
    tmp = out + ".tmp"
    try:
        with open(tmp, "wb") as f:
            marshal.dump(data, f)
        os.replace(tmp, out)
    except OSError as e:
        raise RetracerError(f"retracer: cannot write {out}: {e.strerror}; choose another -o")
    return out


def rows(reader: TraceReader) -> List[dict]:
    """One dict per function with its totals (times in ns)."""
    funcs = reader.functions
    out = []
    for s in reader.func_stats():
        fn = funcs[s.fid]
        where = "~" if fn.kind == "c" else f"{fn.filename}:{fn.firstlineno}"
        out.append({
            "fid": s.fid, "name": fn.qualname or fn.name, "where": where, "kind": fn.kind,
            "calls": s.calls, "prim_calls": s.prim_calls, "own_ns": s.own_ns, "cum_ns": s.cum_ns,
            "in_scope": bool((fn.flags or 0) & 1),
        })
    return out


def fmt_ns(ns: float) -> str:
    if ns >= 1e9:
        return f"{ns / 1e9:.3f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.3f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.3f} us"
    return f"{ns:.0f} ns"


def table(reader: TraceReader, top: int = 20, sort: str = "saving") -> str:
    """The ranked table shown by `retracer profile` (see :mod:`retracer.ranking`)."""
    from . import ranking

    return ranking.render_table(ranking.rank(reader, sort=sort), top=top)
