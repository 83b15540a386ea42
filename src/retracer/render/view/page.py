"""The view page: one self-contained HTML file (no network), its data embedded."""
from __future__ import annotations

import base64
import json
import os
import zlib
from typing import Any, Dict

from ...outputs import write_text
from .. import templates
from .model import ViewModel, func_label, func_where


_PAGE_DIR = os.path.join(os.path.dirname(__file__), "viewpage")


def _b64z(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 6)).decode("ascii")


def page_data(model: ViewModel, patterns: bool = True, hide_imports: bool = False) -> Dict[str, Any]:
    meta = model.meta
    fns = {}
    for fid, fn in model.functions.items():
        fns[str(fid)] = [func_label(fn), fn.qualname or fn.name or "", fn.module or "",
                         func_where(fn), fn.filename or "", fn.flags or 0, fn.kind]
    threads = []
    for th in model.threads:
        root = th.root
        threads.append({"idx": th.idx, "name": th.name, "calls": root.calls, "t0": root.t0,
                        "dur": root.dur, "groups": th.info.get("groups", 0),
                        "spans": th.info.get("spans", 0), "anomalies": th.info.get("anomalies", 0),
                        "max_depth": th.info.get("max_depth", 0), "process": th.process,
                        "tree": _b64z(th.tree), "paths": _b64z(th.paths)})
    command = meta.get("command") or []
    return {
        "version": 1,
        "trace": os.path.abspath(model.path),
        "command": " ".join(str(c) for c in command) if isinstance(command, list) else str(command),
        "python": meta.get("python_version") or meta.get("python") or "",
        "complete": meta.get("complete", True),
        "stopped_by": meta.get("stopped_by"),
        # the call stream reached --max-stream-bytes: the tree and timeline end there
        "stream_cut": meta.get("stream_cut") if isinstance(meta.get("stream_cut"), dict) else None,
        "functions": fns,
        "threads": threads,
        "captured": model.captured,
        "stats": model.stats,
        "initial": {"patterns": bool(patterns), "hideImports": bool(hide_imports)},
    }


def _json_for_script(obj: Any) -> str:
    """JSON that can sit inside <script type="application/json">: no '<' at all."""
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _html_escape(text: str) -> str:
    import html
    return html.escape(text, quote=True)


def render_html(model: ViewModel, patterns: bool = True, hide_imports: bool = False) -> str:
    """One self-contained HTML page (no network needed to open it)."""
    data = page_data(model, patterns, hide_imports)
    title = "retracer view — " + (data["command"] or os.path.basename(model.path))
    # the templates are ours; the data never contains '<' (see _json_for_script)
    return templates.render("view.html", TITLE=_html_escape(title), CSS=templates.asset("view.css") + templates.asset("flame.css"),
                            JS=(templates.asset("flame.js") + templates.asset("view.js")).replace("</", "<\\/"),
                            DATA=_json_for_script(data))


def write_page(html: str, out: str) -> str:
    return write_text(out, html)
