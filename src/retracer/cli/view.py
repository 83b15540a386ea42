"""`retracer view`: the folded call tree as a page, served, or as text."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import RetracerError
from ..outputs import check_target

from ..render.view.model import DEFAULT_PERIOD
DESCRIPTION = ("See a run: the call tree with repeated call sequences folded into groups (nested) and "
               "recursion collapsed, a flame graph, a per-thread timeline, filters and statistics, as one "
               "self-contained HTML page; or the folded tree as text.")


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: give a number 0-65535") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {v}: give a number 0-65535")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace", help="trace file written by retracer trace")
    p.add_argument("-o", "--output", metavar="FILE", help="HTML page to write (default: the trace's name with .html)")
    p.add_argument("--serve", nargs="?", const=8000, type=_port, metavar="PORT",
                   help="serve the page on 127.0.0.1:PORT (default 8000; 0 picks a free port) instead of writing it")
    p.add_argument("--text", action="store_true", help="print the folded call tree as text")
    p.add_argument("--no-patterns", action="store_true", help="start with repeated call sequences unfolded")
    p.add_argument("--hide-imports", action="store_true", help="start with import machinery hidden")
    p.add_argument("--max-period", type=int, default=DEFAULT_PERIOD, metavar="N",
                   help=f"longest repeated call sequence looked for (default {DEFAULT_PERIOD}, at most 1024)")
    p.add_argument("--max-depth", type=int, metavar="N", help="--text: print N levels at most")
    p.add_argument("--trust", action="store_true", help="read a trace that is not signed by you")


def run(ns: argparse.Namespace) -> int:
    from ..render.view.model import load

    if not 1 <= ns.max_period <= 1024:
        raise RetracerError(f"retracer: --max-period must be 1..1024 (got {ns.max_period})")
    if ns.max_depth is not None and ns.max_depth < 1:
        raise RetracerError(f"retracer: --max-depth must be 1 or more (got {ns.max_depth})")
    if ns.text and (ns.output or ns.serve is not None):
        raise RetracerError("retracer: --text prints to stdout; drop -o/--serve, or drop --text for the page")
    if ns.output and ns.serve is not None:
        raise RetracerError("retracer: choose either -o FILE (write the page) or --serve (serve it)")
    if ns.output:
        check_target(ns.output)  # before the work: a bad -o is one line
    model = load(ns.trace, trust=ns.trust, max_period=ns.max_period, captures=not ns.text)
    if ns.text:
        from ..render.view.text import render_text
        render_text(model, sys.stdout, patterns=not ns.no_patterns, hide_imports=ns.hide_imports,
                    max_depth=ns.max_depth)
        return 0
    from ..render.view.page import render_html, write_page
    from ..term import status
    with status("drawing the page"):  # a spinner with elapsed time, on a terminal's stderr only
        html = render_html(model, patterns=not ns.no_patterns, hide_imports=ns.hide_imports)
    if ns.serve is not None:
        from ..render.view.server import serve
        return serve(html, ns.serve)
    out = ns.output or (os.path.splitext(ns.trace)[0] + ".html")
    with status(f"writing {out}"):
        write_page(html, out)
    print(f"retracer: page written to {out} ({len(html.encode('utf-8')) / 1e6:.1f} MB; "
          f"open it in a browser)", file=sys.stderr)
    return 0
