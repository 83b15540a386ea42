"""A self-contained flame graph of a trace: one HTML (or SVG) file, no network.

The data is the call tree aggregated by the C exporter (``retracer._export``,
JSON format with the threads merged): one frame per distinct stack, its width the
time spent in it (children included), so memory and file size grow with the
number of distinct stacks, not with the number of calls.  The root is at the top
(an icicle layout) so deep stacks read from the top down.  Hovering a frame shows
its function, file:line, total and own time and calls (also as a tooltip where
scripts do not run); clicking zooms into it; "Reset zoom" or Escape goes back.

``flamegraph_html(trace)`` is the public entry point (the IPython magics use it).
"""
from __future__ import annotations

import html
import json
import os
import re
import zlib
from typing import List, Tuple, Union

from ..outputs import check_target, write_text
from ..tracefile import TraceReader
from ..units import fmt_ns
from . import stream
from .stream import TraceArg, export_bytes
from .templates import asset, fill

__all__ = ["flamegraph_html", "flamegraph_svg", "write_flamegraph"]

WIDTH = 1200          # px
PAD = 10              # px left and right
ROW = 17              # px per stack level
TOP = 48              # px above the first row (title, details line)
CHAR_W = 6.6          # px per character of an 11px label (estimate for truncation)
MIN_PX = 0.1          # frames narrower than this (at full zoom-out) are left out, as flamegraph.pl does


# characters XML 1.0 does not allow, even escaped (control characters, surrogates)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _esc(s: str) -> str:
    """Text for SVG/HTML: escaped, and characters XML forbids replaced by U+FFFD."""
    return html.escape(_NOT_XML.sub("\ufffd", s), quote=True)


def _color(label: str, kind: str) -> str:
    h = zlib.crc32(label.encode("utf-8", "replace"))
    if kind == "c":  # builtins: a cool palette
        return f"rgb({50 + h % 60},{165 + (h >> 8) % 55},{165 + (h >> 16) % 55})"
    return f"rgb({205 + h % 50},{(h >> 8) % 230},{(h >> 16) % 55})"


def _fit(label: str, width: float) -> str:
    n = int((width - 6) // CHAR_W)
    if n < 3:
        return ""
    return label if len(label) <= n else label[:n - 2] + ".."


def _tree(reader: TraceReader) -> List[list]:
    """The merged call tree: [parent, fid, calls, total_ns, own_ns] per node, parents first."""
    data = json.loads(export_bytes(reader, "json", merge_threads=True).decode("utf-8"))
    return data["threads"][0]["nodes"] if data["threads"] else []


def _build(trace: TraceArg, trust: bool, standalone: bool) -> Tuple[str, str, str]:
    """(svg, script, title) for the trace."""
    own = not isinstance(trace, TraceReader)
    reader = TraceReader(trace, trust=trust) if own else trace
    try:
        nodes = _tree(reader)
        cwd = reader.meta.get("cwd") if isinstance(reader.meta.get("cwd"), str) else None
        labels = {}   # what the hover shows: name (file:line)
        names = {}    # what the frame shows: the name
        kinds = {}
        for fid, fn in reader.functions.items():
            nm = stream.names(fn, cwd)
            labels[fid] = nm[4]
            names[fid] = nm[0]
            kinds[fid] = fn.kind or "py"
        title = f"Flame graph of {os.path.basename(reader.path)}"
        calls_total = reader.meta.get("stream_calls")
    finally:
        if own:
            reader.close()

    n = len(nodes)
    total = sum(nd[3] for nd in nodes if nd[0] < 0)
    label_of = [labels.get(nd[1], f"<fid {nd[1]}>") for nd in nodes]
    name_of = [names.get(nd[1], f"<fid {nd[1]}>") for nd in nodes]
    children: List[List[int]] = [[] for _ in range(n)]
    roots: List[int] = []
    for i, nd in enumerate(nodes):
        (roots if nd[0] < 0 else children[nd[0]]).append(i)
    min_ns = total * MIN_PX / (WIDTH - 2 * PAD) if total else 0
    x = [0] * n
    depth = [0] * n
    kept = [False] * n
    # parents come before their children in the node list: one pass, no recursion
    cx = 0
    for r in sorted(roots, key=lambda k: label_of[k]):
        x[r] = cx
        depth[r] = 1
        kept[r] = nodes[r][3] > 0 and nodes[r][3] >= min_ns
        cx += nodes[r][3]
    for i in range(n):
        if not kept[i]:
            continue
        cx = x[i]
        for c in sorted(children[i], key=lambda k: label_of[k]):
            x[c] = cx
            depth[c] = depth[i] + 1
            kept[c] = nodes[c][3] > 0 and nodes[c][3] >= min_ns
            cx += nodes[c][3]
    order = [i for i in range(n) if kept[i]]
    max_depth = max((depth[i] for i in order), default=0)
    height = TOP + (max_depth + 1) * ROW + PAD
    scale = (WIDTH - 2 * PAD) / total if total else 0.0

    frames = [[0, total, 0]]
    root_calls = sum(nodes[r][2] for r in roots)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="Verdana, DejaVu Sans, sans-serif" font-size="12">',
        "<style>.rt-f rect{stroke:#fff;stroke-width:0.5;cursor:pointer}.rt-f:hover rect{stroke:#000;stroke-width:1}"
        ".rt-f text{pointer-events:none;font-size:11px;fill:#000}.rt-parent rect{opacity:0.55}"
        "#rt-unzoom{cursor:pointer;fill:#0645ad;text-decoration:underline}#rt-details{font-size:12px;fill:#222}</style>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#fbfbf8"/>',
    ]
    if standalone:
        parts.append(f'<text x="{PAD}" y="18" font-size="15">{_esc(title)}</text>')
    parts.append(f'<text id="rt-unzoom" x="{WIDTH - PAD}" y="18" text-anchor="end" style="display:none">Reset zoom</text>')
    parts.append(f'<text id="rt-details" x="{PAD}" y="38"> </text>')
    if not total:
        parts.append(f'<text x="{PAD}" y="{TOP + 12}">No calls in the call stream of this trace.</text>')
    else:
        all_info = f"all: {fmt_ns(total)} traced, {root_calls:,} root calls"
        if isinstance(calls_total, int):
            all_info += f", {calls_total:,} calls in the stream"
        parts.append(
            f'<g id="f0" class="rt-f" data-label="all" tabindex="0"><title>{_esc(all_info)}</title>'
            f'<rect x="{PAD}" y="{TOP}" width="{WIDTH - 2 * PAD}" height="{ROW - 1}" fill="rgb(200,200,200)"/>'
            f'<text x="{PAD + 3}" y="{TOP + ROW - 5}">all</text></g>')
        for i in order:
            nd = nodes[i]
            label, name = label_of[i], name_of[i]
            k = len(frames)
            frames.append([x[i], nd[3], depth[i]])
            px = PAD + x[i] * scale
            w = nd[3] * scale
            y = TOP + depth[i] * ROW
            info = (f"{label}\ntotal {fmt_ns(nd[3])} ({100.0 * nd[3] / total:.2f}%), "
                    f"own {fmt_ns(nd[4])}, {nd[2]:,} call{'' if nd[2] == 1 else 's'}")
            parts.append(
                f'<g id="f{k}" class="rt-f" data-label="{_esc(name)}"><title>{_esc(info)}</title>'
                f'<rect x="{px:.2f}" y="{y}" width="{max(w, 0.1):.2f}" height="{ROW - 1}" '
                f'fill="{_color(label, kinds.get(nd[1], "py"))}"/>'
                f'<text x="{px + 3:.2f}" y="{y + ROW - 5}">{_esc(_fit(name, w))}</text></g>')
    script = fill(asset("flamegraph.js"), FRAMES=json.dumps(frames, separators=(",", ":")),
                   WIDTH=str(WIDTH), PAD=str(PAD), CHARW=str(CHAR_W))
    if standalone:
        parts.append(f'<script type="text/ecmascript"><![CDATA[\n{script}\n]]></script>')
    parts.append("</svg>")
    return "\n".join(parts), script, title


def flamegraph_svg(trace: TraceArg, *, trust: bool = False) -> str:
    """The flame graph as a standalone SVG document (scripts for zoom inside)."""
    svg, _, _ = _build(trace, trust, standalone=True)
    return '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + svg + "\n"


def flamegraph_html(trace: Union[str, "os.PathLike[str]", TraceReader], *, trust: bool = False) -> str:
    """The flame graph of a trace (a path or an open TraceReader) as one
    self-contained HTML page: no network access, opens in any browser."""
    svg, script, title = _build(trace, trust, standalone=False)
    sub = "call tree of every thread, merged; width = time including callees"
    return fill(asset("flamegraph.html"), TITLE=_esc(title), SUBTITLE=_esc(sub), SVG=svg, SCRIPT=script)


def write_flamegraph(trace: TraceArg, out_path: "str | os.PathLike[str]", *, trust: bool = False) -> str:
    """Write the flame graph to ``out_path``: SVG when it ends in .svg, else HTML.
    Written to a temporary file renamed into place. Returns the path."""
    out = os.fspath(out_path)
    check_target(out)
    text = flamegraph_svg(trace, trust=trust) if out.lower().endswith(".svg") else flamegraph_html(trace, trust=trust)
    write_text(out, text)
    return out
