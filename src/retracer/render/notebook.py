"""What the IPython magics show in a notebook: the flame graph inside an
``<iframe srcdoc>`` (its styles and scripts cannot reach the notebook's page, and
the notebook's cannot reach it) and the ranked table as an HTML table (text
where there is no HTML front end)."""
from __future__ import annotations

import html
import json
import re
from typing import Optional

from ..units import fmt_ns

__all__ = ["flame_frame", "RankingTable", "cell_threads"]

_DATA = re.compile(r'id="rtf-data">(.*?)</script>', re.S)


def _height(page: str) -> int:
    """The frame's height for the flame graph page: its controls, the axis and one
    row per stack level (the same sizes as flame.js), at most 720 px (it scrolls)."""
    depth = 8
    m = _DATA.search(page)
    if m:
        try:
            nodes = json.loads(m.group(1))["nodes"]
            d = [0] * len(nodes)
            for i, nd in enumerate(nodes):
                d[i] = 1 if nd[0] < 0 else d[nd[0]] + 1
            depth = max(d, default=0) + 1
        except (ValueError, KeyError, IndexError, TypeError):
            pass
    return max(220, min(720, 150 + 22 + depth * 17 + 24))


def flame_frame(page: str) -> str:
    """The page in a sandboxed iframe: scripts run in it, in an origin of their own;
    nothing of its styles reaches the notebook (no body margin, font or heading)."""
    return (f'<iframe class="retracer-flame" title="retracer flame graph" sandbox="allow-scripts" '
            f'style="width:100%;height:{_height(page)}px;border:0;display:block" '
            f'srcdoc="{html.escape(page, quote=True)}"></iframe>')


def cell_threads(cell_file: str):
    """For flamegraph_html(keep=...): the threads that ran code of the cell's file
    (not the kernel's own threads, such as its heartbeat's Event.wait)."""
    def keep(thread: dict, functions) -> bool:
        for nd in thread.get("nodes", ()):
            fn = functions.get(nd[1])
            if fn is not None and fn.filename == cell_file:
                return True
        return False
    return keep


class RankingTable:
    """The ranked profile: an HTML table in notebooks (``_repr_html_``), the text
    table of ``retracer profile`` elsewhere."""

    def __init__(self, ranking, text: str, top: int = 20):
        self.ranking, self.text, self.top = ranking, text, top

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        rk = self.ranking
        e = lambda s: html.escape(str(s), quote=True)
        total = rk.total_ns or 1
        head = self.text.splitlines()[0] if self.text else ""
        rows = []
        for r in rk.functions[:self.top]:
            calls = f"{r.calls:,}" if r.prim_calls == r.calls else f"{r.calls}/{r.prim_calls}"
            where = "~" if r.kind == "c" else f"{r.filename}:{r.line}"
            cells = [fmt_ns(r.saving_ns), f"{100.0 * r.saving_ns / total:.1f}%", fmt_ns(r.own_ns), fmt_ns(r.cum_ns),
                     calls, fmt_ns(r.saving_per_call_ns), str(r.captured_ok) if r.captured_ok else "-"]
            rows.append("<tr>" + "".join(f'<td style="text-align:right;white-space:nowrap">{e(c)}</td>' for c in cells)
                        + f'<td style="text-align:left"><b>{e(r.name)}</b> <span style="opacity:.65">{e(where)}</span></td></tr>')
        more = len(rk.functions) - self.top
        foot = f'<div style="opacity:.7">… {more} more functions (--top N to see more)</div>' if more > 0 else ""
        heads = ["saving", "share", "own", "cumulative", "calls", "saving/call", "replay", "function"]
        th = "".join(f'<th style="text-align:{"left" if h == "function" else "right"}">{h}</th>' for h in heads)
        notes = "".join(f'<div style="opacity:.7">{e(line)}</div>' for line in self.text.splitlines()[2 + len(rows):]
                        if not line.startswith("..."))
        return (f'<div class="retracer-table"><div>{e(head)}</div>'
                f'<table><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}</tbody></table>{foot}{notes}</div>')
