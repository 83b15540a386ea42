"""`retracer optimize [opts] script.py [args...]`: trace, rank, verify candidates by replay, measure, keep
what is identical and faster."""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import List, Tuple

from .. import settings
from ..errors import RetracerError
from .options import add_round_options, percent, positive

DESCRIPTION = (
    "Trace the program (as 'retracer trace'), rank its functions by possible saving and, for the top ones with "
    "replayable deterministic calls, try candidate implementations -- from --candidates DIR, --from-ref REF, "
    "--generator CMD and the built-in mechanical rewrites -- each in an isolated copy of the project: it is "
    "accepted only when it is identical to the recording on every replayable recorded call of the function and "
    "of its callers (and the unit tests that name it pass), and faster on the recorded inputs in compare's "
    "interleaved rounds with the 95% interval's lower bound above the noise floor. The accepted changes are "
    "re-verified together, measured end to end, and committed to a new local branch retracer/optimize-... "
    "(one commit per function; a pull request with gh when it is installed and logged in), or with --no-pr "
    "written into the working tree. Rejected candidates never touch your files.")
USAGE = ("retracer optimize [trace options] [--trace-only] [--candidates DIR] [--from-ref REF] [--generator CMD] "
         "[--functions SPEC] [--top N] [--no-pr] [--json] [-o report.md] (script.py | -m module) [args...]\n"
         "       retracer optimize --replay-test tests/test_x__replay_test_0.py [opts]")

# optimize's own options: (flags, takes a value)
_OWN = {"--trace-only": False, "--replay-test": True, "--candidates": True, "--from-ref": True,
        "--generator": True, "--generator-timeout": True, "--no-builtin": False, "--functions": True,
        "--top": True, "--no-pr": False, "--json": False, "--report": True, "--noise-floor": True,
        "--noise-floor-fast": True, "--rounds": True, "--max-rounds": True, "--round-time": True,
        "--candidate-timeout": True, "--no-end-to-end": False, "--trust": False, "--config": True,
        "-q": False, "--quiet": False}


def add_arguments(p: argparse.ArgumentParser) -> None:
    settings.add_arguments(p)
    g = p.add_argument_group("optimize")
    g.add_argument("--trace-only", action="store_true",
                   help="trace, rank and write the replay tests, then stop (print where they are)")
    g.add_argument("--replay-test", metavar="FILE",
                   help="start from an existing replay test and its trace instead of tracing")
    g.add_argument("--candidates", metavar="DIR",
                   help="Python files with replacement definitions by the targets' own names (a top-level "
                        "'def name' or 'class Name:' with the methods to replace); each file is one candidate")
    g.add_argument("--from-ref", metavar="REF", help="candidates: the same functions as they are in git ref REF")
    g.add_argument("--generator", metavar="CMD",
                   help="candidates from a local command: it reads a JSON request on stdin (source, file, callees, "
                        "profile numbers, a few recorded inputs and outputs as bounded reprs) and writes "
                        "definitions on stdout (several separated by a line '# --- candidate ---', or JSON "
                        "{\"candidates\": [...]}); its code is untrusted and only runs through the gate")
    g.add_argument("--generator-timeout", type=positive(float), default=60.0, metavar="S",
                   help="seconds the generator may take per function (default 60)")
    g.add_argument("--no-builtin", action="store_true", help="do not propose the built-in mechanical rewrites")
    g.add_argument("--functions", metavar="SPEC",
                   help='the functions to optimize instead of the top ranked: "f,Class.method" or "mod.py::f"')
    g.add_argument("--top", type=positive(int), default=5, metavar="N",
                   help="how many of the top ranked functions to try (default 5)")
    g.add_argument("--no-pr", action="store_true",
                   help="write the accepted changes into the working tree only (no branch, no commit, no PR)")
    g.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    g.add_argument("--report", metavar="FILE",
                   help="also write the report as Markdown to FILE (-o FILE.md does the same: -o with any other "
                        "name is the trace file, as for 'retracer trace')")
    g.add_argument("--noise-floor", type=percent(1000), default=0.05, metavar="P",
                   help="a candidate must be faster by more than P percent at the 95%% interval's lower bound "
                        "(default 5)")
    g.add_argument("--noise-floor-fast", type=percent(1000), default=0.15, metavar="P",
                   help="the same for functions under 10 µs per call, whose timings are noisier (default 15)")
    add_round_options(g, rounds=6, max_rounds=30, round_time=0.05)
    g.add_argument("--candidate-timeout", type=positive(float), default=120.0, metavar="S",
                   help="time budget of verifying and timing one candidate (default 120)")
    g.add_argument("--no-end-to-end", action="store_true",
                   help="do not time the whole command, original against optimized, at the end")
    g.add_argument("--trust", action="store_true", help="read a trace (of --replay-test) not signed by you")
    g.add_argument("--config", metavar="FILE", help="pyproject.toml to read [tool.retracer] from")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("-m", dest="module", metavar="MODULE", help="run a module as a script (-m pytest tests/)")


def _split(argv: List[str]) -> Tuple[List[str], List[str], List[str]]:
    """(optimize's own options, trace options, program)."""
    trace_values = set(settings.value_flags())
    own: List[str] = []
    trace: List[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-m":
            return own, trace + argv[i:i + 2], argv[i + 2:]
        if a == "--":
            return own, trace, argv[i + 1:]
        name = a.split("=", 1)[0]
        if name in _OWN or name in ("-h", "--help"):
            n = 2 if _OWN.get(name) and "=" not in a else 1
            own += argv[i:i + n]
            i += n
            continue
        if a.startswith("-") and a != "-":
            n = 2 if name in trace_values and "=" not in a else 1
            trace += argv[i:i + n]
            i += n
            continue
        return own, trace, argv[i:]
    return own, trace, []


def parse(p: argparse.ArgumentParser, argv: List[str]) -> argparse.Namespace:
    own, trace, prog = _split(argv)
    ns = p.parse_args(own + trace)
    ns.trace_args = trace
    ns.program = prog
    return ns


def _trace_of_replay_test(path: str) -> str:
    if not os.path.isfile(path):
        raise RetracerError(f"retracer: optimize: --replay-test {path} does not exist; give a replay test file "
                            f"written by 'retracer trace' or 'retracer optimize --trace-only'")
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(8192)
    m = re.search(r"^TRACE = (['\"])(.*?)\1$", head, re.M)
    if not m:
        raise RetracerError(f"retracer: optimize: {path} is not a replay test (no TRACE = line); give a file "
                            f"written by 'retracer trace'")
    trace = m.group(2)
    if not os.path.isfile(trace):
        raise RetracerError(f"retracer: optimize: the trace of {path} ({trace}) no longer exists; trace again")
    return trace


def run(ns: argparse.Namespace) -> int:
    from ..optimize.report import render_json, render_markdown, render_text
    from ..optimize.workflow import OptimizeOptions, run_optimize
    from ..outputs import check_target, write_text

    report_path = ns.report
    trace_args = list(ns.trace_args)
    if ns.output and ns.output.endswith((".md", ".markdown")):
        report_path = report_path or ns.output
        # -o report.md is the report: drop it from the trace's options
        out = []
        skip = False
        for i, a in enumerate(trace_args):
            if skip:
                skip = False
                continue
            if a in ("-o", "--output") and i + 1 < len(trace_args) and trace_args[i + 1] == ns.output:
                skip = True
                continue
            if a.startswith("--output=") and a.split("=", 1)[1] == ns.output:
                continue
            out.append(a)
        trace_args = out
        ns.output = None
    if report_path:
        check_target(report_path)
    existing = bool(ns.replay_test)
    if existing:
        trace = _trace_of_replay_test(ns.replay_test)
        if ns.program or ns.module:
            raise RetracerError("retracer: optimize: give either --replay-test or a program to trace, not both")
    else:
        if not ns.program and not ns.module:
            raise RetracerError("retracer: optimize: nothing to optimize: give a script (retracer optimize "
                                "script.py), -m module, or --replay-test FILE; see 'retracer optimize --help'")
        if ns.no_capture:
            raise RetracerError("retracer: optimize: --no-capture records no inputs: nothing could be verified; "
                                "leave it out")
        trace = ns.output or "retracer.trace"
        if not any(a in ("-o", "--output") or a.startswith("--output=") for a in trace_args):
            trace_args = ["-o", trace] + trace_args
        if ns.quiet:
            trace_args = ["-q"] + trace_args
        if ns.config:
            trace_args = ["--config", ns.config] + trace_args
    tests_root = ns.tests_root
    if tests_root is None:
        try:
            cfg = settings.load_config(ns.config, start=os.getcwd())
            tests_root = cfg.get("tests_root")
        except RetracerError:
            tests_root = None
    tty = sys.stderr.isatty() and not ns.quiet
    width = [0]
    last = [""]

    def progress(text: str) -> None:
        if ns.quiet:
            return
        if not tty:
            # not a terminal: one line per step, not one per round
            key = re.sub(r"\d+", "#", text)
            if text and key != last[0]:
                print(f"retracer optimize: {text}", file=sys.stderr, flush=True)
            last[0] = key
            return
        line = f"retracer optimize: {text}" if text else ""
        pad = max(0, width[0] - len(line))
        print("\r" + line + " " * pad, end="" if text else "\r", file=sys.stderr, flush=True)
        width[0] = len(line)

    def log(text: str) -> None:
        if ns.quiet:
            return
        progress("")
        print(text, file=sys.stderr, flush=True)

    program = (["-m", ns.module] if ns.module else []) + list(ns.program)
    opts = OptimizeOptions(program=program, trace_args=trace_args if not ns.module else
                           [a for a in trace_args if a != "-m" and a != ns.module],
                           trace=os.path.abspath(trace), existing_trace=existing, trust=ns.trust,
                           trace_only=ns.trace_only, functions=ns.functions, top=ns.top, candidates=ns.candidates,
                           from_ref=ns.from_ref, generator=ns.generator, generator_timeout=ns.generator_timeout,
                           builtin=not ns.no_builtin, tests_root=os.path.abspath(tests_root) if tests_root else None,
                           no_pr=ns.no_pr, noise_floor=ns.noise_floor, noise_floor_fast=ns.noise_floor_fast,
                           rounds=ns.rounds, max_rounds=ns.max_rounds, round_time=ns.round_time,
                           candidate_timeout=ns.candidate_timeout, end_to_end=not ns.no_end_to_end,
                           program_output_to_stderr=ns.json, progress=progress, log=log)
    try:
        rep = run_optimize(opts)
    finally:
        progress("")
    if rep.get("trace_only"):
        print(f"retracer optimize: --trace-only: trace written to {os.path.relpath(rep['trace'])}; optimize later "
              f"with: retracer optimize --replay-test <the replay test printed above>", file=sys.stderr)
        return 0
    if report_path:
        write_text(report_path, render_markdown(rep))
    print(render_json(rep) if ns.json else render_text(rep), end="")
    if report_path and not ns.json:
        print(f"report written to {report_path}", file=sys.stderr)
    return 0
