"""Differences between two traces (``retracer diff A.trace B.trace``).

Functions are matched by kind, qualified name and file *name* (not its directory,
not the line: a function that moved in its file, or a copy of the program in another
directory, is still the same function); the rows of one trace that share a key are
added up. Hidden frames (test runner, retracer, import machinery, see
:func:`retracer.analysis.ranking.hidden_reason`) are left out.

**Significant.** A trace is one run, so its times carry the run's noise and a diff
of two traces is *not* a statistical test (``retracer compare`` is: interleaved
rounds, confidence intervals). A change is marked significant when it is both

* relatively large: ``|B - A| >= threshold * A`` (default 20%; a function present in
  only one trace counts as an infinite change), and
* absolutely large: ``|B - A| >= floor * max(total A, total B)`` (default 1% of the
  larger run's traced time) and at least ``min_ns`` (default 100 us),

applied to own time (``own`` verdict) and separately to cumulative time (``cum``).

**Differential flame graph.** Built from both traces' folded stacks (own time per
distinct call stack, threads merged), with frames keyed as above: widths are B's
times, each frame's colour is the change of its own time at that stack against A
(red slower, blue faster, grey unchanged; a stack absent from A is "new").
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..tracefile import TraceReader

DEFAULT_THRESHOLD = 0.20
DEFAULT_FLOOR = 0.01
DEFAULT_MIN_NS = 100_000
JSON_VERSION = 1

Key = Tuple[str, str, str]


@dataclass
class Side:
    path: str
    meta: Dict[str, Any]
    total_ns: int                         # sum of own times (the time the trace measured)
    rows: Dict[Key, Dict[str, Any]]       # key -> {own, cum, calls, file, line, module}
    stacks: Dict[Tuple[str, ...], int]    # keyed frames -> own ns


@dataclass
class Row:
    key: Key
    name: str
    kind: str
    file: str
    line: Optional[int]
    a: Optional[Dict[str, Any]]
    b: Optional[Dict[str, Any]]
    own_verdict: str = ""                 # slower / faster / new / gone / ""
    cum_verdict: str = ""

    def val(self, side: str, what: str) -> int:
        d = self.a if side == "a" else self.b
        return int(d[what]) if d else 0

    @property
    def own_delta(self) -> int:
        return self.val("b", "own") - self.val("a", "own")

    @property
    def cum_delta(self) -> int:
        return self.val("b", "cum") - self.val("a", "cum")

    @property
    def significant(self) -> bool:
        return bool(self.own_verdict or self.cum_verdict)


@dataclass
class Diff:
    a: Side
    b: Side
    rows: List[Row]
    threshold: float
    floor: float
    min_ns: int
    floor_ns: int = 0
    tree: Dict[str, Any] = field(default_factory=dict)


def _key(kind: str, qualname: str, filename: str) -> Key:
    base = "" if kind == "c" else os.path.basename(filename or "")
    return (kind, qualname, base)


_LABEL = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def _frame_key(label: str) -> str:
    """A folded frame ``name (dir/file.py:12)`` as ``name (file.py)``."""
    m = _LABEL.match(label)
    if not m:
        return label
    return f"{m.group(1)} ({os.path.basename(m.group(2))})"


def read_side(path: str, trust: bool) -> Side:
    from ..render.stream import export_bytes
    from .ranking import hidden_reason

    with TraceReader(path, trust=trust) as r:
        meta = dict(r.meta)
        funcs = r.functions
        rows: Dict[Key, Dict[str, Any]] = {}
        total = 0
        for st in r.func_stats():
            total += st.own_ns
            fn = funcs.get(st.fid)
            if fn is None or hidden_reason(fn):
                continue
            qual = fn.qualname or fn.name or f"fid {st.fid}"
            k = _key(fn.kind, qual, fn.filename or "")
            d = rows.setdefault(k, {"own": 0, "cum": 0, "calls": 0, "file": fn.filename or "",
                                    "line": fn.firstlineno, "module": fn.module})
            d["own"] += st.own_ns
            d["cum"] += st.cum_ns
            d["calls"] += st.calls
        stacks: Dict[Tuple[str, ...], int] = {}
        folded = export_bytes(r, "folded", merge_threads=True).decode("utf-8", "replace")
    for line in folded.splitlines():
        stack, _, weight = line.rpartition(" ")
        if not stack or not weight.isdigit():
            continue
        k = tuple(_frame_key(f) for f in stack.split(";"))
        stacks[k] = stacks.get(k, 0) + int(weight)
    return Side(path, meta, total, rows, stacks)


def _verdict(a: int, b: int, present_a: bool, present_b: bool, threshold: float, floor_ns: int) -> str:
    delta = b - a
    if abs(delta) < floor_ns:
        return ""
    if not present_a:
        return "new"
    if not present_b:
        return "gone"
    if a == 0 or abs(delta) >= threshold * a:
        return "slower" if delta > 0 else "faster"
    return ""


def diff(a_path: str, b_path: str, trust: bool = False, threshold: float = DEFAULT_THRESHOLD,
         floor: float = DEFAULT_FLOOR, min_ns: int = DEFAULT_MIN_NS) -> Diff:
    a = read_side(a_path, trust)
    b = read_side(b_path, trust)
    floor_ns = max(int(floor * max(a.total_ns, b.total_ns)), int(min_ns))
    rows: List[Row] = []
    for k in sorted(set(a.rows) | set(b.rows)):
        ra, rb = a.rows.get(k), b.rows.get(k)
        src = rb or ra
        row = Row(k, k[1], k[0], src["file"], src["line"], ra, rb)
        row.own_verdict = _verdict(row.val("a", "own"), row.val("b", "own"), ra is not None, rb is not None,
                                   threshold, floor_ns)
        row.cum_verdict = _verdict(row.val("a", "cum"), row.val("b", "cum"), ra is not None, rb is not None,
                                   threshold, floor_ns)
        rows.append(row)
    rows.sort(key=lambda r: (-abs(r.own_delta), -abs(r.cum_delta), r.name))
    d = Diff(a, b, rows, threshold, floor, min_ns, floor_ns)
    d.tree = diff_tree(a.stacks, b.stacks)
    return d


def diff_tree(a: Dict[Tuple[str, ...], int], b: Dict[Tuple[str, ...], int]) -> Dict[str, Any]:
    """The differential call tree: ``{"n": name, "v": B total, "s": B own, "a": A own
    (None: not in A), "c": [children]}``; children sorted by B's width."""
    root: Dict[str, Any] = {"n": "all", "v": 0, "s": 0, "a": 0, "at": 0, "c": {}}

    def node(stack: Tuple[str, ...]) -> Dict[str, Any]:
        cur = root
        for f in stack:
            cur = cur["c"].setdefault(f, {"n": f, "v": 0, "s": 0, "a": None, "at": 0, "c": {}})
        return cur
    for stack, w in b.items():
        n = node(stack)
        n["s"] += w
    for stack, w in a.items():
        # A's own time at this stack (only where B has the stack too: widths are B's)
        cur = root
        ok = True
        for f in stack:
            cur = cur["c"].get(f)
            if cur is None:
                ok = False
                break
        if ok:
            cur["a"] = (cur["a"] or 0) + w
        root["at"] += w

    def finish(n: Dict[str, Any]) -> int:
        kids = sorted(n["c"].values(), key=lambda c: -finish(c))
        n["v"] = n["s"] + sum(c["v"] for c in kids)
        n["c"] = [c for c in kids if c["v"] > 0]
        return n["v"]
    finish(root)
    return root


def to_json(d: Diff, top: Optional[int] = None) -> Dict[str, Any]:
    rows = d.rows if top is None else d.rows[:top]

    def side(s: Side) -> Dict[str, Any]:
        return {"trace": os.path.abspath(s.path), "total_ns": s.total_ns, "duration_ns": s.meta.get("duration_ns"),
                "calls_total": s.meta.get("calls_total"), "sampled": s.meta.get("sampled")}

    def vals(x: Optional[Dict[str, Any]]) -> Optional[Dict[str, int]]:
        return None if x is None else {"own_ns": x["own"], "cumulative_ns": x["cum"], "calls": x["calls"]}
    return {
        "retracer_diff": JSON_VERSION,
        "a": side(d.a), "b": side(d.b),
        "significance": {"threshold": d.threshold, "floor": d.floor, "floor_ns": d.floor_ns, "min_ns": d.min_ns,
                         "statistical_test": False,
                         "rule": "|B-A| >= threshold*A and |B-A| >= floor_ns (own and cumulative separately); "
                                 "one run per trace: not a statistical test"},
        "functions": [{
            "name": r.name, "kind": r.kind, "file": r.file, "line": r.line,
            "a": vals(r.a), "b": vals(r.b),
            "own_delta_ns": r.own_delta, "cumulative_delta_ns": r.cum_delta,
            "own_ratio": (r.val("b", "own") / r.val("a", "own")) if r.a and r.b and r.val("a", "own") else None,
            "own_verdict": r.own_verdict or None, "cumulative_verdict": r.cum_verdict or None,
            "significant": r.significant,
        } for r in rows],
        "functions_total": len(d.rows),
    }
