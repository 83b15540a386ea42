"""The comparison report: one structure (the JSON report, documented in the
README under "Comparing two revisions"), drawn as a terminal table or as Markdown.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Sequence

from ..units import format_time

__all__ = ["render_text", "render_markdown", "render_json"]


def _t(seconds: Optional[float]) -> str:
    return "-" if seconds is None else format_time(seconds)


def _ns(ns: Optional[float]) -> str:
    return "-" if ns is None else format_time(ns / 1e9)


def _x(v: Optional[float]) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return "inf"
    return f"{v:.2f}x" if v < 100 else f"{v:.0f}x"


def _ci(ci: Optional[Sequence[float]]) -> str:
    if not ci:
        return "-"
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if max(ci) < 100 else f"[{ci[0]:.0f}, {ci[1]:.0f}]"


def _p(p: Optional[float]) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _pct(v: Optional[float]) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _calls(b: Optional[Dict[str, Any]], h: Optional[Dict[str, Any]]) -> str:
    cb = f"{b['calls']:,.0f}" if b else "-"
    ch = f"{h['calls']:,.0f}" if h else "-"
    return cb if cb == ch else f"{cb} -> {ch}"


#: the terminal width tables are fitted to (set by render_text; None: no limit)
_WIDTH: List[Optional[int]] = [None]


def _table(header: List[str], rows: List[List[str]], right: Sequence[int]) -> List[str]:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    limit = _WIDTH[0]
    total = sum(widths) + 2 * (len(widths) - 1)
    if limit is not None and total > limit and widths[0] > 16:
        # names are cut from the left (the end of a qualified name stays); file:line is kept whole
        from ..term import cut_left
        widths[0] = max(16, widths[0] - (total - limit))
        rows = [[cut_left(str(r[0]), widths[0])] + list(r[1:]) for r in rows]

    def line(r: List[str]) -> str:
        cells = [str(c).rjust(widths[i]) if i in right else str(c).ljust(widths[i]) for i, c in enumerate(r)]
        return "  ".join(cells).rstrip()
    return [line(header)] + [line(r) for r in rows]


def _md_table(header: List[str], rows: List[List[str]], right: Sequence[int]) -> List[str]:
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return out


def _sections(rep: Dict[str, Any], md: bool) -> List[str]:
    table = _md_table if md else _table
    h1 = (lambda s: f"## {s}") if md else (lambda s: s)
    out: List[str] = []
    base, head = rep["base"], rep["head"]
    title = f"retracer compare: BASE {base['label']} -> HEAD {head['label']}"
    out.append(f"# {title}" if md else title)
    b = rep["benchmark"]
    rounds = rep["rounds"]
    unit = b.get("unit_of_work", "")
    item = "- " if md else ""
    if md:
        out.append("")
    out.append(item + (f"benchmark: {b['description']}; {unit}" if unit else f"benchmark: {b['description']}"))
    out.append(item + f"rounds: {rounds['timed_per_side']} per side, each a fresh process, interleaved "
               f"({rounds['order']}); {rounds['warmup_per_side']} warm-up round(s) per side discarded; "
               f"stopped: {rounds['stopped_by_text']}")
    out.append("")
    e = rep["end_to_end"]
    out.append(h1("End to end"))
    if md:
        out.append("")
    rows = []
    for name, s in (("BASE", e["base"]), ("HEAD", e["head"])):
        rev = base["label"] if name == "BASE" else head["label"]
        rows.append([name, rev, str(s["rounds"]), _t(s["min"]), _t(s["median"]), _t(s["mean"]), _t(s["iqr"]),
                     _pct(s["cv"])])
    out += table(["side", "revision", "rounds", "min", "median", "mean", "IQR", "noise"], rows, (2, 3, 4, 5, 6, 7))
    paired = e.get("paired") or {}
    line = (f"speedup {_x(e['speedup'])} (base/head median), 95% CI {_ci(e['ci'])}"
            + (f", paired {_x(paired.get('speedup'))} {_ci(paired.get('ci'))}" if paired.get("ci") else "")
            + f", p = {_p(e['p'])} (Mann-Whitney U): {e['verdict'].upper()}")
    out += ["", f"**{line}**" if md else line]
    if rep.get("benchmarks"):
        out += ["", h1("Benchmarks")]
        if md:
            out.append("")
        rows = [[r["name"], _t(r["base_median_s"]), _t(r["head_median_s"]), _x(r["speedup"]), _ci(r["ci"]),
                 _p(r["p"]), r["verdict"]] for r in rep["benchmarks"]]
        out += table(["benchmark", "base median", "head median", "speedup", "95% CI", "p", "verdict"], rows,
                     (1, 2, 3, 5))
    fns = rep.get("functions") or []
    pf = rep.get("per_function") or {}
    out += ["", h1("Per function")]
    if md:
        out.append("")
    if pf.get("note"):
        out.append(pf["note"])
        if md:
            out.append("")
    if fns and pf.get("source") is None:
        out.append("changed: " + ", ".join(f"{r['name']} ({r['status']}, {r['file']})" for r in fns))
    elif fns:
        rows = []
        for r in fns:
            bb, hh = r.get("base"), r.get("head")
            bb = bb if bb and bb.get("called", True) else None   # not called: shown as '-'
            hh = hh if hh and hh.get("called", True) else None
            rows.append([
                r["name"] + ("" if r["status"] in ("modified", "selected") else f" ({r['status']})"),
                f"{r['file']}:{r['line']}" if r.get("line") else r["file"],
                _ns(bb.get("per_call_ns")) if bb else "-", _ns(hh.get("per_call_ns")) if hh else "-",
                _ns(bb.get("total_ns")) if bb else "-", _ns(hh.get("total_ns")) if hh else "-",
                _ns(bb.get("own_ns")) if bb else "-", _ns(hh.get("own_ns")) if hh else "-",
                _x(r.get("speedup")), _ci(r.get("ci")), r["verdict"] if r.get("speedup") is not None else "-",
                _pct(r.get("share")), _calls(bb, hh)])
        tog = rep.get("changed_together")
        if tog and len(fns) > 1:
            rows.append(["(changed functions together)", "", "", "", _ns(tog["base_ns"]), _ns(tog["head_ns"]), "",
                         "", _x(tog["speedup"]), _ci(tog["ci"]), tog["verdict"], _pct(tog.get("share")), ""])
        out += table(["function", "file:line", "base/call", "head/call", "base total", "head total", "base own",
                      "head own", "speedup", "95% CI", "verdict", "share", "calls"], rows,
                     (2, 3, 4, 5, 6, 7, 8, 11, 12))
        notes = [f"{r['name']}: {r['note']}" for r in fns if r.get("note")]
        if notes:
            out += [""] + [("- " if md else "  ") + n for n in notes]
    else:
        out.append("no changed function")
    regs = rep.get("regressions")
    if regs is not None:
        out += ["", h1("Regressions (unchanged functions whose own time grew significantly)")]
        if md:
            out.append("")
        tested = rep.get("regressions_tested")
        if tested is not None:
            out.append(f"tested: {tested} unchanged function(s) with at least 1% of the benchmark time in own "
                       f"time; p-values Holm-adjusted over them")
            if md:
                out.append("")
        if regs:
            rows = [[r["name"], f"{r['file']}:{r['line']}" if r.get("line") else r["file"], _ns(r["base_own_ns"]),
                     _ns(r["head_own_ns"]), _x(r["speedup"]), _ci(r["ci"]), _p(r["p"]), _pct(r["share"])]
                    for r in regs]
            out += table(["function", "file:line", "base own", "head own", "speedup", "95% CI", "p (Holm)", "share"],
                         rows, (2, 3, 4, 6, 7))
        else:
            out.append("none")
    if rep.get("warnings"):
        out.append("")
        out += [("- " if md else "") + f"warning: {w}" for w in rep["warnings"]]
    m = rep.get("machine") or {}
    out += ["", (f"machine: {m.get('cpus')} CPUs, load average {m.get('load_before', 0):.2f} at the start, "
                 f"{m.get('load_after', 0):.2f} at the end; Python {m.get('python')}; {rep['elapsed_s']:.0f} s")]
    return out


def render_text(rep: Dict[str, Any], width: Optional[int] = None) -> str:
    """The terminal report; ``width``: the terminal's (function names are cut from the
    left so that tables fit it when they can)."""
    _WIDTH[0] = width
    try:
        return "\n".join(_sections(rep, md=False)) + "\n"
    finally:
        _WIDTH[0] = None


def render_markdown(rep: Dict[str, Any]) -> str:
    return "\n".join(_sections(rep, md=True)) + "\n"


def render_json(rep: Dict[str, Any]) -> str:
    """The report as JSON; infinite or NaN numbers are null."""
    return json.dumps(_clean(rep), indent=2, allow_nan=False) + "\n"


def _clean(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set)):
        return [_clean(v) for v in o]
    return o
