"""`retracer compare BASE [HEAD] [-- BENCHMARK...]`: before/after benchmarks of two git revisions."""
from __future__ import annotations

import argparse
import sys
from typing import List

from ..errors import RetracerError
from .options import add_round_options, count, percent, positive

DESCRIPTION = ("Benchmark two git revisions, each checked out into its own temporary worktree (HEAD omitted: the "
               "working tree with its uncommitted changes), in interleaved rounds of fresh processes; report "
               "the speedup end to end and per changed function with 95% confidence intervals and a verdict "
               "(faster / slower / same). The benchmark: the command after --, else the pytest files under "
               "benchmarks-root of [tool.retracer], else --trace T (recorded calls replayed).")
USAGE = ("retracer compare BASE [HEAD] [--functions SPEC] [--timeout S] [--rounds N] [--min-effect P] "
         "[-o report.md] [--json] [-- BENCHMARK...]")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", metavar="BASE", help="the revision before (any git ref: branch, tag, commit, HEAD~1)")
    p.add_argument("head", metavar="HEAD", nargs="?",
                   help="the revision after (default: the working tree, uncommitted changes included)")
    p.add_argument("--functions", metavar="SPEC",
                   help='the functions to time, instead of the changed ones: "pkg/mod.py::f,Class.method;other.py::g"')
    p.add_argument("--trace", metavar="T",
                   help="benchmark: replay the recorded calls of the changed functions from trace T on both sides")
    p.add_argument("--trust", action="store_true", help="read a --trace file not signed by you")
    p.add_argument("--timeout", type=positive(float), default=300.0, metavar="S",
                   help="time budget of the whole comparison in seconds (default 300): rounds stop when it runs out")
    add_round_options(p, rounds=10, max_rounds=100, round_time=0.1)
    p.add_argument("--trace-rounds", type=count, default=8, metavar="N",
                   help="traced rounds per side for the per-function numbers (default 8; 0: none; 5 or more "
                        "for a verdict)")
    p.add_argument("--warmup", type=count, default=1, metavar="N",
                   help="warm-up rounds per side, discarded (default 1, after the calibration run)")
    p.add_argument("--min-effect", type=percent(), default=0.02, metavar="P",
                   help="smallest speedup or slowdown, in percent, that is called faster or slower (default 2)")
    p.add_argument("--fail-on-regression", type=percent(), default=None, metavar="P",
                   help="exit with status 1 when HEAD is slower by more than P percent (end to end, or any "
                        "benchmark of benchmarks-root) with the verdict slower")
    p.add_argument("--install", choices=("auto", "yes", "no"), default="auto",
                   help="install each side into its own environment: auto (when the project builds a C "
                        "extension), yes, no (run from the worktree)")
    p.add_argument("-o", "--output", metavar="FILE", help="also write the report as Markdown to FILE")
    p.add_argument("--json", action="store_true", help="print the report as JSON (structure: python -m retracer help compare) instead of the table")


def parse(p: argparse.ArgumentParser, argv: List[str]) -> argparse.Namespace:
    if "--" in argv:
        i = argv.index("--")
        opts, command = argv[:i], argv[i + 1:]
        if not command:
            raise RetracerError("retracer: compare: nothing after --; give the benchmark command, "
                                "e.g. -- python bench.py")
    else:
        opts, command = argv, []
    ns = p.parse_args(opts)
    ns.command = command
    return ns


def run(ns: argparse.Namespace) -> int:
    from ..compare.report import render_json, render_markdown, render_text
    from ..compare.workflow import CompareOptions, run_compare
    from ..outputs import check_target, write_text

    if ns.output:
        check_target(ns.output)
    from .. import term

    bar = term.Bar("compare", total=None)

    def progress(text: str) -> None:
        if text:
            bar.update(description=f"compare: {text}")

    opts = CompareOptions(base=ns.base, head=ns.head, command=ns.command, functions=ns.functions, trace=ns.trace,
                          trust=ns.trust,
                          timeout=ns.timeout, rounds=ns.rounds, max_rounds=ns.max_rounds,
                          trace_rounds=ns.trace_rounds, warmup=ns.warmup, round_time=ns.round_time,
                          min_effect=ns.min_effect, install=ns.install, progress=progress)
    try:
        rep = run_compare(opts)
    finally:
        bar.finish()
    if ns.output:
        write_text(ns.output, render_markdown(rep))
    if ns.json:
        print(render_json(rep), end="")
    else:
        w = term.width()
        print(render_text(rep, width=None if w >= term.UNLIMITED else w), end="")
    if ns.output and not ns.json:
        print(f"report written to {ns.output}", file=sys.stderr)
    if ns.fail_on_regression is not None:
        hits = _regressions(rep, ns.fail_on_regression)
        if hits:
            print(f"retracer: HEAD is slower than BASE by more than {100 * ns.fail_on_regression:g}%: "
                  + "; ".join(hits), file=sys.stderr)
            return 1
    return 0


def _regressions(rep, limit: float) -> List[str]:
    out = []
    rows = [("end to end", rep["end_to_end"])] + [(b["name"], b) for b in rep.get("benchmarks") or []]
    for name, r in rows:
        s = r.get("speedup")
        if r.get("verdict") == "slower" and s and 1.0 / s - 1.0 > limit:
            out.append(f"{name} {100 * (1.0 / s - 1.0):.1f}% slower, 95% CI of the speedup "
                       f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]")
    return out
