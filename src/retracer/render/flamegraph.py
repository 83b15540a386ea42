"""A self-contained flame graph of a trace: one HTML (or SVG) file, no network.

The data is the call tree aggregated by the C exporter (``retracer._export``,
JSON format): one frame per distinct stack, its width the time spent in it
(children included), so memory and file size grow with the number of distinct
stacks, not with the number of calls. The root is at the top (an icicle layout)
so deep stacks read from the top down.

The HTML page is drawn by ``assets/flame.js``, the renderer the view page's flame
graph tab uses too: it fills the width of the window, has a time axis that
follows the zoom, search (matches highlighted, their share of the total shown),
colours by module or by own time with a legend, a sandwich view (callers and
callees of one function) and keyboard navigation. The SVG follows the same
layout rules (positions in percent of the width, so it fills any width too) with
a small script for hover and zoom, and a ``<title>`` per frame where scripts do
not run.

``flamegraph_html(trace)`` is the public entry point (the IPython magics use it,
with ``embed=True`` and the cell's threads only).
"""
from __future__ import annotations

import html
import json
import os
import re
import zlib
from typing import Callable, Dict, List, Optional, Tuple, Union

from ..outputs import check_target, write_text
from ..tracefile import TraceReader
from ..units import fmt_ns
from . import stream
from .stream import TraceArg, export_bytes
from .templates import asset, fill

__all__ = ["flamegraph_html", "flamegraph_svg", "write_flamegraph", "flame_data"]

SVG_WIDTH = 1200      # px: the SVG's width where it is not laid out by a page (it scales: positions are in %)
PAD = 10              # px left and right (SVG)
ROW = 17              # px per stack level (both)
TOP = 66              # px above the first row of the SVG (title, details line, time axis)
CHAR_W = 6.6          # px per character of an 11px label (estimate for truncation)
MIN_SHARE = 1 / 20000  # frames narrower than this share of the total are left out (0.1 px at 2000 px)

# characters XML 1.0 does not allow, even escaped (control characters, surrogates)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _esc(s: str) -> str:
    """Text for SVG/HTML: escaped, and characters XML forbids replaced by U+FFFD."""
    return html.escape(_NOT_XML.sub("\ufffd", s), quote=True)


def _module_color(module: str) -> str:
    """The colour of a module's frames: the same hue rule as flame.js (hash of the name)."""
    if not module:
        return "#c9ced6"
    h = 0
    units = module.encode("utf-16-le", "surrogatepass")
    for k in range(0, len(units), 2):  # UTF-16 code units, as JavaScript's charCodeAt
        h = (h * 31 + units[k] + 256 * units[k + 1]) & 0xFFFFFFFF
    if h >= 1 << 31:
        h -= 1 << 32
    return f"hsl({abs(h) % 360},58%,70%)"


def _fit(label: str, width: float) -> str:
    n = int((width - 6) // CHAR_W)
    if n < 3:
        return ""
    return label if len(label) <= n else label[:n - 2] + ".."


def _json_for_script(obj) -> str:
    """JSON that can sit inside <script type="application/json">: no '<', '>' or '&'."""
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _threads(reader: TraceReader, keep: Optional[Callable[[dict, Dict[int, object]], bool]]) -> List[list]:
    """The call tree, [parent, fid, calls, total_ns, own_ns] per node, parents first:
    every thread merged, or (``keep``) the threads it keeps, side by side."""
    if keep is None:
        data = json.loads(export_bytes(reader, "json", merge_threads=True).decode("utf-8"))
        return data["threads"][0]["nodes"] if data["threads"] else []
    data = json.loads(export_bytes(reader, "json", merge_threads=False).decode("utf-8"))
    out: List[list] = []
    for th in data["threads"]:
        if not keep(th, reader.functions):
            continue
        base = len(out)
        for p, fid, calls, total, own in th["nodes"]:
            out.append([p + base if p >= 0 else -1, fid, calls, total, own])
    return out


def flame_data(trace: TraceArg, *, trust: bool = False, keep=None) -> dict:
    """What the flame graph shows: functions and the call tree (frames narrower
    than MIN_SHARE of the total left out), children sorted by name."""
    own = not isinstance(trace, TraceReader)
    reader = TraceReader(trace, trust=trust) if own else trace
    try:
        nodes = _threads(reader, keep)
        cwd = reader.meta.get("cwd") if isinstance(reader.meta.get("cwd"), str) else None
        fns: Dict[int, list] = {}
        for fid, fn in reader.functions.items():
            nm = stream.names(fn, cwd)
            where = f"{stream.short_path(fn.filename, cwd)}:{fn.firstlineno or 0}" if fn.kind != "c" and fn.filename \
                else (fn.module or "builtins")
            fns[fid] = [nm[0], nm[4], fn.module or ("builtins" if fn.kind == "c" else ""), where, fn.kind or "py"]
        name = os.path.basename(reader.path)
        calls_total = reader.meta.get("stream_calls")
    finally:
        if own:
            reader.close()
    total = sum(nd[3] for nd in nodes if nd[0] < 0)
    min_ns = total * MIN_SHARE
    used: Dict[int, int] = {}
    fn_rows: List[list] = []
    kept_index = [-1] * len(nodes)
    out: List[list] = []
    for i in range(len(nodes)):  # parents come before their children
        p, fid, calls, tot, own_ns = nodes[i]
        if tot <= 0 or tot < min_ns or (p >= 0 and kept_index[p] < 0):
            continue
        if fid not in used:
            used[fid] = len(fn_rows)
            fn_rows.append(fns.get(fid, [f"<fid {fid}>", f"<fid {fid}>", "", "", "py"]))
        kept_index[i] = len(out)
        out.append([kept_index[p] if p >= 0 else -1, used[fid], calls, tot, own_ns])
    root_calls = sum(nodes[i][2] for i in range(len(nodes)) if nodes[i][0] < 0)
    return {"name": name, "title": f"Flame graph of {name}", "total": total, "root_calls": root_calls,
            "stream_calls": calls_total if isinstance(calls_total, int) else None,
            "functions": fn_rows, "nodes": out}


def _layout(data: dict) -> Tuple[List[int], List[int], List[int], List[List[int]]]:
    """x (ns from the left), depth (root = 0) and children (sorted by name) of the
    nodes, plus the list of roots; the rule flame.js follows too."""
    nodes, fns = data["nodes"], data["functions"]
    n = len(nodes)
    kids: List[List[int]] = [[] for _ in range(n)]
    roots: List[int] = []
    for i, nd in enumerate(nodes):
        (roots if nd[0] < 0 else kids[nd[0]]).append(i)
    key = lambda k: fns[nodes[k][1]][0]
    roots.sort(key=key)
    for k in kids:
        k.sort(key=key)
    x, depth = [0] * n, [0] * n
    cx = 0
    for r in roots:
        x[r], depth[r] = cx, 1
        cx += nodes[r][3]
    for i in range(n):
        cx = x[i]
        for c in kids[i]:
            x[c], depth[c] = cx, depth[i] + 1
            cx += nodes[c][3]
    return x, depth, roots, kids


def _ticks(span: float, n: int = 10) -> List[Tuple[float, str]]:
    """Time-axis ticks over [0, span] ns: a step of 1, 2 or 5 times a power of ten (as flame.js)."""
    import math
    if span <= 0:
        return []
    raw = span / n
    p = 10 ** math.floor(math.log10(raw))
    m = raw / p
    step = (1 if m <= 1 else 2 if m <= 2 else 5 if m <= 5 else 10) * p
    unit = (1e9, "s") if step >= 1e8 else (1e6, "ms") if step >= 1e5 else (1e3, "µs") if step >= 100 else (1, "ns")
    digits = 0 if step / unit[0] >= 1 else min(6, math.ceil(-math.log10(step / unit[0])))
    out, k = [], 0
    while k * step <= span * (1 + 1e-9):
        t = k * step
        out.append((t, "0" if k == 0 else f"{t / unit[0]:.{digits}f}\u00a0{unit[1]}"))
        k += 1
    return out


def _svg(data: dict, standalone: bool) -> str:
    nodes, fns, total = data["nodes"], data["functions"], data["total"]
    x, depth, roots, kids = _layout(data)
    W = SVG_WIDTH
    inner = W - 2 * PAD
    max_depth = max(depth, default=0)
    height = TOP + (max_depth + 1) * ROW + PAD

    def pct(v: float) -> str:  # a position or width in percent of the whole SVG
        return f"{100.0 * v / W:.4f}%"

    frames = [[0, total, 0]]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="100%" height="{height}" '
        f'font-family="Verdana, DejaVu Sans, sans-serif" font-size="12" data-width="{W}">',
        "<style>.rt-f rect{stroke:#fff;stroke-width:0.5;cursor:pointer}.rt-f:hover rect{stroke:#000;stroke-width:1}"
        ".rt-f text{pointer-events:none;font-size:11px;fill:#000}.rt-parent rect{opacity:0.55}"
        ".rt-tick{font-size:10px;fill:#4b5057}.rt-tickline{stroke:#b9bec6}"
        "#rt-unzoom{cursor:pointer;fill:#0645ad;text-decoration:underline}#rt-details{font-size:12px;fill:#222}</style>",
        f'<rect x="0" y="0" width="100%" height="{height}" fill="#fbfbf8"/>',
    ]
    if standalone:
        parts.append(f'<text x="{PAD}" y="18" font-size="15">{_esc(data["title"])}</text>')
    parts.append(f'<text id="rt-unzoom" x="99%" y="18" text-anchor="end" style="display:none">Reset zoom</text>')
    parts.append(f'<text id="rt-details" x="{PAD}" y="38"> </text>')
    # the time axis (the script redraws it when zooming)
    parts.append('<g id="rt-axis">')
    for t, lab in _ticks(total):
        px = PAD + (t / total * inner if total else 0)
        parts.append(f'<line class="rt-tickline" x1="{pct(px)}" x2="{pct(px)}" y1="{TOP - 8}" y2="{TOP - 2}"/>'
                     f'<text class="rt-tick" x="{pct(px + 2)}" y="{TOP - 10}">{_esc(lab)}</text>')
    parts.append("</g>")
    if not total:
        parts.append(f'<text x="{PAD}" y="{TOP + 12}">No calls in the call stream of this trace.</text>')
    else:
        all_info = f"all: {fmt_ns(total)} traced, {data['root_calls']:,} root calls"
        if isinstance(data.get("stream_calls"), int):
            all_info += f", {data['stream_calls']:,} calls in the stream"
        parts.append(
            f'<g id="f0" class="rt-f" data-label="all" tabindex="0"><title>{_esc(all_info)}</title>'
            f'<rect x="{pct(PAD)}" y="{TOP}" width="{pct(inner)}" height="{ROW - 1}" fill="rgb(200,200,200)"/>'
            f'<text x="{pct(PAD + 3)}" y="{TOP + ROW - 5}">all</text></g>')
        scale = inner / total
        # document order: depth first, children by name (the HTML renderer's order)
        order: List[int] = []
        stack = list(reversed(roots))
        while stack:
            i = stack.pop()
            order.append(i)
            stack.extend(reversed(kids[i]))
        for i in order:
            p, fi, calls, tot, own_ns = nodes[i]
            name, label, module, _, _ = fns[fi]
            k = len(frames)
            frames.append([x[i], tot, depth[i]])
            px, w, y = PAD + x[i] * scale, tot * scale, TOP + depth[i] * ROW
            info = (f"{label}\ntotal {fmt_ns(tot)} ({100.0 * tot / total:.2f}%), "
                    f"own {fmt_ns(own_ns)}, {calls:,} call{'' if calls == 1 else 's'}")
            parts.append(
                f'<g id="f{k}" class="rt-f" data-label="{_esc(name)}"><title>{_esc(info)}</title>'
                f'<rect x="{pct(px)}" y="{y}" width="{pct(max(w, 0.1))}" height="{ROW - 1}" '
                f'fill="{_module_color(module)}"/>'
                f'<text x="{pct(px + 3)}" y="{y + ROW - 5}">{_esc(_fit(name, w))}</text></g>')
    script = fill(asset("flamegraph.js"), FRAMES=json.dumps(frames, separators=(",", ":")),
                  WIDTH=str(W), PAD=str(PAD), CHARW=str(CHAR_W), TOP=str(TOP))
    if standalone:
        parts.append(f'<script type="text/ecmascript"><![CDATA[\n{script}\n]]></script>')
    parts.append("</svg>")
    return "\n".join(parts)


def flamegraph_svg(trace: TraceArg, *, trust: bool = False) -> str:
    """The flame graph as a standalone SVG document (scripts for zoom inside); it
    fills the width it is given (positions in percent)."""
    return '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + _svg(flame_data(trace, trust=trust), True) + "\n"


def flamegraph_html(trace: Union[str, "os.PathLike[str]", TraceReader], *, trust: bool = False,
                    embed: bool = False, keep=None) -> str:
    """The flame graph of a trace (a path or an open TraceReader) as one
    self-contained HTML page: no network access, opens in any browser.
    ``embed``: for a notebook's output frame (no page title, no margins);
    ``keep(thread, functions)``: only the threads it returns true for."""
    data = flame_data(trace, trust=trust, keep=keep)
    sub = ("call tree of every thread, merged" if keep is None else "call tree of the cell's thread") + \
        "; width = time including callees"
    return fill(asset("flamegraph.html"), TITLE=_esc(data["title"]), SUBTITLE=_esc(sub),
                CSS=asset("flame.css"), JS=asset("flame.js").replace("</", "<\\/"),
                DATA=_json_for_script(data), MODE="embed" if embed else "page")


def write_flamegraph(trace: TraceArg, out_path: "str | os.PathLike[str]", *, trust: bool = False) -> str:
    """Write the flame graph to ``out_path``: SVG when it ends in .svg, else HTML.
    Written to a temporary file renamed into place. Returns the path."""
    out = os.fspath(out_path)
    check_target(out)
    text = flamegraph_svg(trace, trust=trust) if out.lower().endswith(".svg") else flamegraph_html(trace, trust=trust)
    write_text(out, text)
    return out
