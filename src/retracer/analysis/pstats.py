"""The profile of a trace as cProfile writes it, for pstats, snakeviz and gprof2dot."""
from __future__ import annotations

import marshal
from typing import Dict, Tuple

from ..outputs import atomic_path
from ..tracefile import TraceReader


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
    """Write a file that `pstats.Stats(out)` and snakeviz open (atomically)."""
    data = pstats_dict(reader)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            marshal.dump(data, f)
    return out
