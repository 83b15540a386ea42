"""The ``retracer diff -o diff.html`` page: a differential flame graph (widths from
B, colour by the change of own time at each stack against A) and the table, one
self-contained file (its Content-Security-Policy lets it load nothing)."""
from __future__ import annotations

import json
import os

from ..outputs import write_text

_TEMPLATE = os.path.join(os.path.dirname(__file__), "assets", "diff.html")
#: functions listed in the page's table at most (the most changed first)
MAX_ROWS = 2000


def _prune(node, min_v: float):
    """Drop frames narrower than ``min_v`` (they would be under a pixel wide)."""
    node["c"] = [_prune(c, min_v) for c in node["c"] if c["v"] >= min_v]
    return node


def pruned_tree(d):
    """The differential tree without frames under 1/20000 of the total."""
    return _prune(d.tree, max(1.0, d.tree.get("v", 0) / 20000.0))


def diff_html(d) -> str:
    from ..analysis.diff import to_json

    doc = to_json(d, MAX_ROWS)
    doc["tree"] = pruned_tree(d)
    data = json.dumps(doc, separators=(",", ":")).replace("<", "\\u003c")
    with open(_TEMPLATE, encoding="utf-8") as f:
        page = f.read()
    return page.replace("__DATA__", data)


def write_diff_page(d, out: str) -> int:
    html = diff_html(d)
    write_text(out, html)
    return len(html.encode("utf-8"))
