"""`retracer profile`: the ranked table of a trace, or an export."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Optional

from ..errors import RetracerError

DESCRIPTION = ("Rank the functions of a trace by the time optimizing them could save (saving = own time + "
               "time of the code outside your code that they call), or export its profile. See: python -m retracer help profile")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..analysis.ranking import SORT_KEYS
    from ..render import RENDERERS

    p.add_argument("trace", help="trace file written by retracer trace")
    p.add_argument("--format", default="table", choices=["table"] + list(RENDERERS),
                   help="table (default): ranked terminal table; pstats: for pstats/snakeviz; chrome: Perfetto, "
                        "chrome://tracing; speedscope; pprof: gzipped profile.proto; folded: flamegraph.pl, inferno; "
                        "json: python -m retracer help export-json; flamegraph: self-contained HTML page (SVG if -o ends in .svg)")
    p.add_argument("-o", "--output", help="output file of an export (required except for table and pstats)")
    p.add_argument("--top", type=int, default=20, metavar="N", help="rows in the table (default 20)")
    p.add_argument("--sort", default="saving", metavar="KEY",
                   help=f"rank by {', '.join(SORT_KEYS)} (default saving; per-call is saving per call)")
    p.add_argument("--all", action="store_true",
                   help="also list functions outside your code (builtins, stdlib, libraries)")
    p.add_argument("--json", action="store_true",
                   help="print the ranking as JSON (structure: python -m retracer help profile) instead of a table")
    p.add_argument("--trust", action="store_true", help="read a trace that is not signed by you")
    p.add_argument("--pid", type=int, action="append", metavar="PID",
                   help="only the calls of this process (may be given several times); the table lists the "
                        "processes of a multi-process trace")
    p.add_argument("--no-process-frames", dest="process_frames", action="store_false",
                   help="folded, pprof: merge the processes of a multi-process trace instead of putting each "
                        "one's stacks under a root frame 'process PID: COMMAND' (pprof samples keep their pid label)")


def tty_progress(what: str) -> Optional[Callable[[float], None]]:
    """A progress bar ("retracer: <what>", percentage, elapsed, ETA) on a terminal's stderr, else None."""
    from .. import term
    return term.fraction_bar(what)


def run(ns: argparse.Namespace) -> int:
    from .. import render
    from ..analysis import ranking
    from ..tracefile import TraceReader

    if ns.top < 1:
        raise RetracerError(f"retracer: --top must be 1 or more (got {ns.top})")
    if ns.format not in ("table", "pstats") and not ns.output:
        example = os.path.basename(render.default_output(ns.trace, ns.format))
        raise RetracerError(f"retracer: --format {ns.format} writes a file: add -o FILE (e.g. -o {example})")
    sort = ranking.normalize_sort(ns.sort)
    if ns.json and ns.format != "table":
        raise RetracerError(f"retracer: --json prints the ranking; it does not go with --format {ns.format}")
    with TraceReader(ns.trace, trust=ns.trust) as r:
        procs = None
        if ns.pid:
            procs = [p.proc_idx for pid in ns.pid for p in r.find_processes(pid)]
            missing = [pid for pid in ns.pid if not r.find_processes(pid)]
            if missing:
                known = ", ".join(str(p.pid) for p in r.processes)
                raise RetracerError(f"retracer: {ns.trace} has no process with pid {missing[0]}; its processes: "
                                    f"{known}")
            r.select_processes(procs)
        if ns.format == "table":
            ranked = ranking.rank(r, sort=sort, include_all=ns.all)
            if ns.json:
                print(ranking.dumps(ranked, ns.top))
            else:
                from .. import term
                term.print_styled(ranking.table_lines(ranked, top=ns.top, width=term.width()))
                if len(r.processes) > 1:
                    print(_process_lines(r))
            return 0
        renderer = render.get(ns.format)
        out = ns.output or render.default_output(ns.trace, ns.format)
        progress = tty_progress(f"exporting to {ns.format}")
        try:
            what = renderer.render(r, out, progress, process_frames=ns.process_frames)
        finally:
            if progress is not None:
                progress.finish()
        hint = renderer.how_to_open.format(out=out)
        print(f"retracer: {ns.format} export written to {out}: {what} ({hint})", file=sys.stderr)
    return 0


def _process_lines(r) -> str:
    """Per-process totals of a multi-process trace: one line each."""
    from ..units import fmt_ns

    totals = r.process_totals()
    lines = [f"{len(r.processes)} processes:"]
    for p in r.processes:
        t = totals.get(p.proc_idx, {})
        status = "" if p.exit_status is None else f", exit {p.exit_status}"
        info = json.loads(p.info) if p.info else {}
        note = f" -- {info['note']}" if info.get("note") else ""
        cmd = " ".join(json.loads(p.command))[:60] if p.command else "?"
        lines.append(f"  pid {p.pid} (parent {p.ppid}): {t.get('calls', 0):,} calls, own {fmt_ns(t.get('own_ns', 0))}"
                     f", {p.ended}{status}  {cmd}{note}")
    return "\n".join(lines)
