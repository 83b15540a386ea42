"""`retracer diff A.trace B.trace`: what changed between two runs, per function."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, List

from ..errors import RetracerError

DESCRIPTION = ("Compare two traces function by function (own, cumulative, calls; significant changes marked) "
               "and draw a differential flame graph (widths from B, colour by change against A). One run per "
               "trace: not a statistical test (use retracer compare for that); see: python -m retracer help diff")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..analysis.diff import DEFAULT_FLOOR, DEFAULT_MIN_NS, DEFAULT_THRESHOLD

    p.add_argument("a", metavar="A.trace", help="the trace before (the base)")
    p.add_argument("b", metavar="B.trace", help="the trace after")
    p.add_argument("-o", "--output", metavar="FILE.html",
                   help="also write the differential flame graph and the table as a self-contained HTML page")
    p.add_argument("--json", action="store_true", help="print the differences as JSON instead of the table")
    p.add_argument("--top", type=int, default=20, metavar="N", help="rows in the table (default 20)")
    p.add_argument("--all", action="store_true", help="list every function, also the unchanged ones")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, metavar="R",
                   help=f"relative change marked significant (default {DEFAULT_THRESHOLD:g}: 20%%)")
    p.add_argument("--floor", type=float, default=DEFAULT_FLOOR, metavar="F",
                   help=f"... and absolute change of at least F x the larger run's traced time "
                        f"(default {DEFAULT_FLOOR:g}: 1%%; never under {DEFAULT_MIN_NS // 1000} us)")
    p.add_argument("--trust", action="store_true", help="read traces that are not signed by you")


def _fmt_delta(ns: int) -> str:
    from ..units import fmt_ns
    return ("+" if ns > 0 else "-" if ns < 0 else " ") + fmt_ns(abs(ns))


def _pct(r) -> str:
    a, b = r.val("a", "own"), r.val("b", "own")
    if r.a is None:
        return "new"
    if r.b is None:
        return "gone"
    if a == 0:
        return "-" if b == 0 else "from 0"
    return f"{100.0 * (b - a) / a:+.0f}%"


def _calls(r) -> str:
    ca, cb = r.val("a", "calls"), r.val("b", "calls")
    return f"{cb:,}" if ca == cb else f"{ca:,}->{cb:,}"


#: the change column: own time's verdict, else cumulative time's
_MARK = {"slower": "*SLOWER", "faster": "*faster", "new": "*new", "gone": "*gone"}
_CUM_MARK = {"slower": "*cum+", "faster": "*cum-", "new": "*new", "gone": "*gone"}


def table_lines(d, rows, width: int) -> List[Any]:
    from ..term import UNLIMITED, fit_name
    from ..units import fmt_ns

    def rel(path: str, meta) -> str:
        cwd = meta.get("cwd")
        if isinstance(cwd, str) and path.startswith(cwd.rstrip(os.sep) + os.sep):
            return path[len(cwd.rstrip(os.sep)) + 1:]
        return path
    def counted(meta) -> str:
        s = meta.get("sampled")
        if isinstance(s, dict):
            return f"{s.get('samples', 0):,} samples"
        return f"{meta.get('calls_total', 0):,} calls"
    lines: List[Any] = []
    lines.append(f"A: {d.a.path}: {fmt_ns(d.a.total_ns)} traced, {counted(d.a.meta)}")
    lines.append(f"B: {d.b.path}: {fmt_ns(d.b.total_ns)} traced, {counted(d.b.meta)} "
                 f"({_fmt_delta(d.b.total_ns - d.a.total_ns).strip()})")
    cols = [("own A", 9), ("own B", 9), ("own +/-", 10), ("own %", 6), ("cum A", 9), ("cum B", 9), ("calls", 7),
            ("change", 8)]
    cells = []
    for r in rows:
        mark = _MARK.get(r.own_verdict) or _CUM_MARK.get(r.cum_verdict, "")
        cells.append({"own A": fmt_ns(r.val("a", "own")) if r.a else "-",
                      "own B": fmt_ns(r.val("b", "own")) if r.b else "-",
                      "own +/-": _fmt_delta(r.own_delta), "own %": _pct(r),
                      "cum A": fmt_ns(r.val("a", "cum")) if r.a else "-",
                      "cum B": fmt_ns(r.val("b", "cum")) if r.b else "-",
                      "calls": _calls(r), "change": mark})
    cols = [(h, max([len(h)] + [len(c[h]) for c in cells])) for h, _ in cols]
    names = [(r.name, f"{os.path.basename(r.file)}" if r.kind == "c" or not r.file else
              f"{rel(r.file, d.b.meta)}:{r.line}") for r in rows]
    fixed = sum(w + 1 for _, w in cols) + 1
    longest = max([len(f"{n}  ({w})") for n, w in names] + [8])
    for drop in ("cum A", "own A", "cum B", "calls"):
        if width >= UNLIMITED or fixed + longest <= width or width - fixed >= 32:
            break
        cols = [c for c in cols if c[0] != drop]
        fixed = sum(w + 1 for _, w in cols) + 1
    room = max(16, width - fixed)
    lines.append([(" ".join(f"{h:>{w}}" for h, w in cols) + "  function", "bold")])
    for r, c, (name, where) in zip(rows, cells, names):
        style = {"slower": "bold red", "new": "red", "faster": "bold green", "gone": "green"}.get(
            r.own_verdict or r.cum_verdict, "")
        pieces = [(" ".join(f"{c[h]:>{w}}" for h, w in cols[:-1]) + " ", ""),
                  (f"{c['change']:>{cols[-1][1]}}", style)]
        where_s = where if r.kind != "c" else ""
        text = fit_name(name, where_s, room) if where_s else name[-room:] if len(name) > room else name
        cut = text.rfind("  (")
        pieces += ([("  " + text[:cut], "bold" if r.significant else ""), (text[cut:], "dim")] if cut > 0
                   else [("  " + text, "bold" if r.significant else "")])
        lines.append(pieces)
    return lines


def run(ns: argparse.Namespace) -> int:
    from .. import term
    from ..analysis import diff as dm
    from ..outputs import check_target

    if ns.top < 1:
        raise RetracerError(f"retracer: --top must be 1 or more (got {ns.top})")
    if not ns.threshold > 0 or not ns.floor >= 0:
        raise RetracerError("retracer: --threshold must be > 0 and --floor >= 0")
    if ns.output:
        if not ns.output.lower().endswith((".html", ".htm")):
            raise RetracerError(f"retracer: -o {ns.output}: the diff page is HTML; give a name ending in .html")
        check_target(ns.output)
    with term.status("reading both traces"):
        d = dm.diff(ns.a, ns.b, trust=ns.trust, threshold=ns.threshold, floor=ns.floor)
    shown = d.rows if ns.all else [r for r in d.rows if r.significant or r.own_delta or r.cum_delta]
    if ns.output:
        from ..render.diffpage import write_diff_page
        size = write_diff_page(d, ns.output)
        print(f"retracer: diff page written to {ns.output} ({size / 1e6:.1f} MB; open it in a browser)",
              file=sys.stderr)
    if ns.json:
        from ..render.diffpage import pruned_tree
        doc = dm.to_json(d, None if ns.all else ns.top)
        doc["tree"] = pruned_tree(d)
        print(json.dumps(doc, indent=1))
        return 0
    lines = table_lines(d, shown[:ns.top], term.width())
    sig = sum(1 for r in d.rows if r.significant)
    more = len(shown) - ns.top
    if more > 0:
        lines.append(f"... {more} more functions (--top N to see more)")
    from ..units import fmt_ns
    note = (f"*SLOWER/*faster: own time changed significantly; *cum+/*cum-: only the cumulative time did; "
            f"*new/*gone: in one trace only. Significant: changed by >= {100 * d.threshold:g}% and by >= "
            f"{fmt_ns(d.floor_ns)} ({100 * d.floor:g}% of the larger run); {sig} function(s). One run per "
            f"trace: this is not a statistical test (retracer compare is).")
    from ..analysis.ranking import _wrap
    lines += [[(t, "dim")] for t in _wrap(note, term.width())]
    if d.a.meta.get("sampled") or d.b.meta.get("sampled"):
        lines.append("note: sampled trace(s): times are estimates from samples, calls are sample counts")
    term.print_styled(lines)
    return 0
