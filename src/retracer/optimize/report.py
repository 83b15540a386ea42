"""The report of `retracer optimize`: a terminal table, Markdown (``-o report.md``) and JSON (``--json``)."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence

from ..compare.report import _md_table, _table

__all__ = ["render_text", "render_markdown", "render_json"]


def _ns(v: Optional[float]) -> str:
    if v is None:
        return "-"
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if v >= div:
            return f"{v / div:.3g} {unit}"
    return f"{v:.0f} ns"


def _x(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _ci(ci: Optional[Sequence[float]]) -> str:
    return "-" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _sections(rep: Dict[str, Any], md: bool) -> List[str]:
    table = _md_table if md else _table
    out: List[str] = []
    h = "## " if md else ""
    out.append(f"{'# ' if md else ''}retracer optimize: {len(rep['functions'])} function(s) tried, "
               f"{sum(1 for f in rep['functions'] if f.get('accepted'))} made faster")
    out.append("")
    if rep.get("command"):
        out.append(f"trace: {rep.get('trace')} (command: {' '.join(rep['command'])})")
    s = rep.get("settings") or {}
    if s:
        out.append(f"accepted: identical on every replayable recorded call (and its callers') and faster with the "
                   f"95% CI's lower bound above +{100 * s['noise_floor']:.0f}% "
                   f"(+{100 * s['noise_floor_fast']:.0f}% under {s['fast_call_ns'] / 1000:.0f} µs per call)")
    out.append("")
    rows = []
    for f in rep["functions"]:
        rows.append([f["name"], f["file"], f"{f['calls_verified']}+{f['caller_calls_verified']}",
                     _ns(f.get("before_per_call_ns")), _ns(f.get("after_per_call_ns")), _x(f.get("speedup")),
                     _ci(f.get("ci")), f.get("accepted") or "-"])
    if rows:
        out.append(f"{h}Functions")
        out.append("")
        out += table(["function", "file", "calls verified (own+callers)", "before/call", "after/call", "speedup",
                      "95% CI", "accepted"], rows, (2, 3, 4, 5))
        out.append("")
    for f in rep["functions"]:
        out.append(f"{h}{f['name']} ({f['file']}:{f['line']})" if md else f"{f['name']} ({f['file']}:{f['line']}):")
        if md:
            out.append("")
        if not f["candidates"]:
            out.append(f"  {f.get('note') or 'no candidate'}")
        crow = []
        for c in f["candidates"]:
            msg = (c.get("message") or "").replace("\n", " ")
            if len(msg) > 160 and not md:
                msg = msg[:157] + "..."
            crow.append([c["file"], c["verdict"], _x(c.get("speedup")), _ci(c.get("ci")), msg])
        if crow:
            out += ["  " + ln if not md else ln for ln in
                    table(["candidate", "verdict", "speedup", "95% CI", "detail"], crow, (2,))]
        if f.get("note") and f["candidates"]:
            out.append(f"  note: {f['note']}")
        out.append("")
    e = rep.get("end_to_end")
    out.append(f"{h}End to end" if md else "end to end:")
    if md:
        out.append("")
    if e is None:
        out.append("  not measured (nothing accepted)" if not any(f.get("accepted") for f in rep["functions"])
                   else "  not measured")
    elif e.get("error"):
        out.append(f"  could not be measured: {e['error']}")
    else:
        out.append(f"  {' '.join(e['command'])}: {_x(e.get('speedup'))} faster, 95% CI {_ci(e.get('ci'))}, "
                   f"verdict {e.get('verdict')} ({e.get('base', {}).get('rounds', '?')} rounds per side)")
    out.append("")
    a = rep.get("applied")
    if a:
        out.append(f"{h}Applied" if md else "applied:")
        if md:
            out.append("")
        if a["mode"] == "branch":
            out.append(f"  branch {a['branch']}: {len(a['commits'])} commit(s) on {a['base'][:10]}; your working "
                       f"tree is unchanged")
            if a.get("pull_request"):
                out.append(f"  pull request: {a['pull_request']}")
            elif a.get("note"):
                out.append(f"  {a['note']}")
        elif a["mode"] == "working-tree":
            out.append(f"  written into the working tree (nothing committed): {', '.join(a['files'])}")
        else:
            out.append(f"  {a.get('note')}")
        out.append("")
    else:
        out.append("nothing applied: your files are unchanged")
        out.append("")
    for sk in rep.get("skipped") or []:
        out.append(f"skipped {sk['name']} ({sk['file']}): {sk['why']}")
    for w in rep.get("warnings") or []:
        out.append(f"warning: {w}")
    return out


def render_text(rep: Dict[str, Any]) -> str:
    return "\n".join(_sections(rep, md=False)).rstrip() + "\n"


def render_markdown(rep: Dict[str, Any]) -> str:
    return "\n".join(_sections(rep, md=True)).rstrip() + "\n"


def render_json(rep: Dict[str, Any]) -> str:
    return json.dumps(rep, indent=2, sort_keys=False, default=str) + "\n"
