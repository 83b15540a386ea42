"""Per-function numbers of a comparison, from the traced rounds.

A traced round runs the benchmark under retracer's own engine; its trace's
``func_stats`` give, per function, calls, own time and cumulative time (wall
clock, nanoseconds; a recursive function's time counted once, by its outermost
call). Per round and function this module keeps:

- ``inclusive``: the cumulative time (the function and everything it called);
- ``own``: the function's own time (with the builtins it called: traced rounds
  do not record C calls, so their time stays in their caller);
- ``attributed``: the time for which this function is the innermost *changed*
  function on the stack (from the trace's call tree, the ``json`` export); the
  attributed times of the changed functions add up to the time spent in any of
  them, so nested changed functions are not counted twice ("changed functions
  together" in the report).

Functions are identified across the sides by repository path and definition
(qualified name and property part, :mod:`.changes`), not by line numbers.

A changed function's speedup is the ratio of the medians of its inclusive time
per traced round (``base / head``), with the same interval, test and verdict rule
as end to end. Times include the tracer's overhead (a few tens of nanoseconds per
traced Python call) on both sides.

Regressions: every other function of the project whose own time is at least
1% of the benchmark time is tested the same way on its own time, the p-values
Holm-adjusted over all of them; those significantly slower are listed.
"""
from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..analysis import stats
from ..render.stream import export_bytes
from ..tracefile import TraceReader
from .bench import TracedRun
from .changes import ChangedFunction, FileIndex
from .sides import Side

__all__ = ["FnRound", "TracedSide", "read_side", "function_rows", "regressions", "REGRESSION_SHARE"]

#: an unchanged function is tested for a regression when its own time is at least this share
REGRESSION_SHARE = 0.01

Ident = Tuple[str, str, str, int]  # (path, qualname, part, ordinal)


@dataclass
class FnRound:
    calls: int = 0
    own_ns: int = 0
    cum_ns: int = 0
    attributed_ns: int = 0


@dataclass
class TracedSide:
    rounds: List[Dict[Ident, FnRound]] = field(default_factory=list)
    totals: List[int] = field(default_factory=list)     # benchmark ns per traced round
    together: List[int] = field(default_factory=list)   # ns in any changed function
    lines: Dict[Ident, int] = field(default_factory=dict)
    complete: bool = True


class _Indexes:
    def __init__(self, side: Side) -> None:
        self.side = side
        self.cache: Dict[str, FileIndex] = {}

    def get(self, rel: str) -> FileIndex:
        if rel not in self.cache:
            try:
                with open(os.path.join(self.side.root, rel), encoding="utf-8", errors="replace") as f:
                    text: Optional[str] = f.read()
            except OSError:
                text = None
            self.cache[rel] = FileIndex(rel, text)
        return self.cache[rel]


def read_side(runs: Sequence[TracedRun], side: Side, changed: Sequence[Ident]) -> TracedSide:
    """The traced rounds of one side; ``changed``: the idents of this side's changed functions."""
    out = TracedSide()
    idx = _Indexes(side)
    changed_set = set(changed)
    for run in runs:
        with TraceReader(run.trace, trust=True) as r:
            ident_of: Dict[int, Ident] = {}
            for fid, f in r.functions.items():
                if f.kind != "py":
                    continue
                rel = side.relpath(f.filename)
                if rel is None or not f.qualname:
                    continue
                d = idx.get(rel).by_line(f.qualname, f.firstlineno)
                ident = (rel, d.qualname, d.part, d.ordinal) if d is not None else (rel, f.qualname, "", 0)
                ident_of[fid] = ident
                if f.firstlineno:
                    out.lines.setdefault(ident, d.start if d is not None else f.firstlineno)
            per: Dict[Ident, FnRound] = {}
            for st in r.func_stats():
                ident = ident_of.get(st.fid)
                if ident is None:
                    continue
                fr = per.setdefault(ident, FnRound())
                fr.calls += st.calls
                fr.own_ns += st.own_ns
                fr.cum_ns += st.cum_ns
            duration = int(r.meta.get("duration_ns") or 0)
            complete = bool(r.meta.get("complete", True))
        total = run.total_ns if run.total_ns is not None else duration
        together = 0
        if changed_set:
            cfids = {fid for fid, i in ident_of.items() if i in changed_set}
            if complete and cfids:
                tree = json.loads(export_bytes(run.trace, "json", merge_threads=True, trust=True))
                nodes = tree["threads"][0]["nodes"] if tree.get("threads") else []
                nearest: List[Optional[int]] = [None] * len(nodes)
                for i, (parent, fid, _calls, tot, own) in enumerate(nodes):
                    above = nearest[parent] if parent >= 0 else None
                    if fid in cfids:
                        if above is None:
                            together += tot
                        nearest[i] = fid
                    else:
                        nearest[i] = above
                    if nearest[i] is not None:
                        per.setdefault(ident_of[nearest[i]], FnRound()).attributed_ns += own
            else:
                out.complete = out.complete and complete
                together = sum(per[i].cum_ns for i in changed_set if i in per)
        out.rounds.append(per)
        out.totals.append(total)
        out.together.append(together)
    return out


def ident(d: Any) -> Ident:
    return (d.path, d.qualname, d.part, d.ordinal)


def _med(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else 0.0


def _side_numbers(ts: TracedSide, i: Optional[Ident]) -> Optional[Dict[str, Any]]:
    if i is None or not ts.rounds:
        return None
    rows = [r.get(i, FnRound()) for r in ts.rounds]
    if not any(r.calls for r in rows):
        return {"called": False, "calls": 0, "total_ns": 0.0, "per_call_ns": None, "own_ns": 0.0,
                "own_per_call_ns": None, "attributed_ns": 0.0, "rounds": len(rows), "series": [0] * len(rows)}
    calls = _med([r.calls for r in rows])
    per_call = _med([r.cum_ns / r.calls for r in rows if r.calls])
    own_per_call = _med([r.own_ns / r.calls for r in rows if r.calls])
    return {"called": True, "calls": calls, "total_ns": _med([r.cum_ns for r in rows]), "per_call_ns": per_call,
            "own_ns": _med([r.own_ns for r in rows]), "own_per_call_ns": own_per_call,
            "attributed_ns": _med([r.attributed_ns for r in rows]), "rounds": len(rows),
            "series": [r.cum_ns for r in rows]}


def function_rows(changed: Sequence[ChangedFunction], tb: TracedSide, th: TracedSide,
                  min_effect: float) -> List[Dict[str, Any]]:
    """One row per changed function (see the JSON report in the README)."""
    rows = []
    base_total = _med(tb.totals) if tb.totals else 0.0
    head_total = _med(th.totals) if th.totals else 0.0
    for cf in changed:
        b = _side_numbers(tb, ident(cf.base) if cf.base else None)
        h = _side_numbers(th, ident(cf.head) if cf.head else None)
        d = cf.head or cf.base
        line = (th.lines.get(ident(cf.head)) if cf.head else None) or (tb.lines.get(ident(cf.base)) if cf.base else None)
        row: Dict[str, Any] = {
            "name": cf.label, "qualname": d.qualname if d else cf.name, "file": cf.path,
            "line": line or (d.start if d else None), "status": cf.status, "kind": d.kind if d else "",
            "base": _public(b), "head": _public(h), "speedup": None, "ci": None, "p": None, "verdict": "same",
            "share": None, "share_head": None, "note": "",
        }
        if b and b["called"] and base_total:
            row["share"] = b["total_ns"] / base_total
        if h and h["called"] and head_total:
            row["share_head"] = h["total_ns"] / head_total
        if row["share"] is None:
            row["share"] = row["share_head"]
        if b and h and b["called"] and h["called"]:
            comp = stats.compare_samples(b["series"], h["series"], min_effect)
            row.update(speedup=comp.speedup, ci=list(comp.ci), p=comp.p, verdict=comp.verdict,
                       paired={"speedup": comp.paired_speedup, "ci": list(comp.paired_ci) if comp.paired_ci else None})
            if b["calls"] != h["calls"]:
                row["note"] = f"calls per round differ: {b['calls']:g} -> {h['calls']:g}"
        elif cf.status == "added":
            row["note"] = "added in HEAD" + ("" if h and h["called"] else "; not called by the benchmark")
        elif cf.status == "removed":
            row["note"] = "removed in HEAD" + ("" if b and b["called"] else "; not called by the benchmark")
        else:
            who = [n for n, x in (("BASE", b), ("HEAD", h)) if x is not None and not x["called"]]
            row["note"] = "not called by the benchmark" + (f" on {' and '.join(who)}" if len(who) == 1 else "")
        rows.append(row)
    return rows


def together_row(tb: TracedSide, th: TracedSide, min_effect: float) -> Optional[Dict[str, Any]]:
    if not tb.together or not th.together or not any(tb.together) or not any(th.together):
        return None
    comp = stats.compare_samples(tb.together, th.together, min_effect)
    base_total = _med(tb.totals)
    return {"name": "changed functions together", "base_ns": _med(tb.together), "head_ns": _med(th.together),
            "speedup": comp.speedup, "ci": list(comp.ci), "p": comp.p, "verdict": comp.verdict,
            "share": _med(tb.together) / base_total if base_total else None, "exact": tb.complete and th.complete}


def regressions(tb: TracedSide, th: TracedSide, changed: Sequence[ChangedFunction],
                min_effect: float) -> Tuple[List[Dict[str, Any]], int]:
    """(functions not changed whose own time got significantly slower, how many were tested)."""
    if len(tb.rounds) < 2 or len(th.rounds) < 2:
        return [], 0
    skip = {ident(cf.base) for cf in changed if cf.base} | {ident(cf.head) for cf in changed if cf.head}
    base_total = _med(tb.totals)
    if not base_total:
        return [], 0
    common = set().union(*[set(r) for r in tb.rounds]) & set().union(*[set(r) for r in th.rounds])
    cands = []
    for i in sorted(common - skip):
        bs = [r.get(i, FnRound()).own_ns for r in tb.rounds]
        hs = [r.get(i, FnRound()).own_ns for r in th.rounds]
        if _med(bs) < REGRESSION_SHARE * base_total or _med(hs) <= 0:
            continue
        cands.append((i, bs, hs, stats.compare_samples(bs, hs, min_effect, paired=False)))
    adj = stats.holm([c[3].p for c in cands])
    out = []
    for (i, bs, hs, comp), p in zip(cands, adj):
        verdict = stats.decide(comp.speedup, comp.ci, p, min_effect)
        if verdict != "slower":
            continue
        path, qual, part, _ = i
        name = qual.replace(".<locals>.", ".") + (f" ({part})" if part else "")
        out.append({"name": name, "file": path, "line": tb.lines.get(i), "base_own_ns": _med(bs),
                    "head_own_ns": _med(hs), "speedup": comp.speedup, "ci": list(comp.ci), "p": p,
                    "verdict": verdict, "share": _med(bs) / base_total})
    out.sort(key=lambda r: r["speedup"])
    return out, len(cands)


def _public(x: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if x is None:
        return None
    return {k: v for k, v in x.items() if k != "series"}
