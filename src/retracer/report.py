"""Reports over a trace file: the ranked terminal table and the pstats export."""
from __future__ import annotations

import marshal
import os
from typing import Dict, List, Optional, Tuple

from .errors import RetracerError
from .tracefile import TraceReader

SORT_KEYS = ("own", "cum", "calls", "percall", "name")


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


def _short_where(where: str, cwd: Optional[str]) -> str:
    if cwd and where.startswith(cwd + os.sep):
        return where[len(cwd) + 1:]
    return where


def table(reader: TraceReader, top: int = 20, sort: str = "own") -> str:
    """The ranked table shown by `retracer profile`."""
    if sort not in SORT_KEYS:
        raise RetracerError(f"retracer: unknown --sort '{sort}'; choose one of {', '.join(SORT_KEYS)}")
    data = rows(reader)
    total_own = sum(r["own_ns"] for r in data) or 1
    keyf = {
        "own": lambda r: -r["own_ns"], "cum": lambda r: -r["cum_ns"], "calls": lambda r: -r["calls"],
        "percall": lambda r: -(r["own_ns"] / max(r["calls"], 1)), "name": lambda r: r["name"],
    }[sort]
    data.sort(key=keyf)
    cwd = reader.meta.get("cwd")
    lines = []
    meta = reader.meta
    lines.append(f"{meta.get('calls_total', 0):,} calls, {len(reader.threads)} thread(s), "
                 f"{fmt_ns(meta.get('duration_ns', 0) or 0)} traced [{meta.get('hook', '?')}]")
    hdr = f"{'own':>11} {'share':>6} {'cumulative':>11} {'calls':>11} {'own/call':>10}  function"
    lines.append(hdr)
    for r in data[:top]:
        calls = f"{r['calls']:,}" if r["calls"] == r["prim_calls"] else f"{r['calls']}/{r['prim_calls']}"
        lines.append(
            f"{fmt_ns(r['own_ns']):>11} {100.0 * r['own_ns'] / total_own:5.1f}% {fmt_ns(r['cum_ns']):>11} "
            f"{calls:>11} {fmt_ns(r['own_ns'] / max(r['calls'], 1)):>10}  {r['name']}  "
            f"({_short_where(r['where'], cwd)})")
    if len(data) > top:
        lines.append(f"... {len(data) - top} more functions (--top N to see more)")
    return "\n".join(lines)
