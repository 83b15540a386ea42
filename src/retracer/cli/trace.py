"""`retracer trace`: run a program as `python` would, traced."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Sequence, Tuple

from .. import settings
from ..errors import RetracerError

DESCRIPTION = ("Run a Python program as it would run with `python`, recording every call, the profile and "
               "the call stream into a trace file.")
USAGE = "retracer trace [options] (script.py | -m module) [args...]"

# options of the trace command itself (not trace settings) that take a value
_OWN_VALUE_FLAGS = ("--config",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    settings.add_arguments(p)
    p.add_argument("--check-stable", action="store_true",
                   help="after tracing, replay the captured calls (twice each, isolated, side effects "
                        "stopped) and mark the unstable ones in the trace; off by default: tracing does not "
                        "run the program's functions again ('retracer replay' checks every call anyway)")
    p.add_argument("--no-stability-check", action="store_true",
                   help="accepted for old scripts; does nothing (no check runs unless --check-stable)")
    p.add_argument("--config", metavar="FILE", help="pyproject.toml to read [tool.retracer] from")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the summary")
    p.add_argument("--print", dest="print_tree", action="store_true",
                   help="after the run, print the folded call tree to stdout (as 'retracer view TRACE --text')")
    p.add_argument("-m", dest="module", metavar="MODULE", help="run a module as a script")


def split_trace_args(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Split `trace` arguments into retracer's options and the program's
    command line (script or -m module, and their arguments)."""
    value_flags = set(settings.value_flags()) | set(_OWN_VALUE_FLAGS)
    i = 0
    argv = list(argv)
    while i < len(argv):
        a = argv[i]
        if a == "-m":
            return argv[:i + 2], argv[i + 2:]
        if a == "--":
            return argv[:i], argv[i + 1:]
        if a.startswith("-") and a != "-":
            i += 2 if a in value_flags else 1
            continue
        return argv[:i], argv[i:]
    return argv, []


def parse(p: argparse.ArgumentParser, argv: List[str]) -> argparse.Namespace:
    opts, prog = split_trace_args(argv)
    ns = p.parse_args(opts)
    ns.program = prog
    return ns


def run(ns: argparse.Namespace) -> int:
    from ..record import runner
    from ..record.tracer import Tracer

    prog = ns.program
    if ns.module:
        problem = runner.cannot_run_module(ns.module)
        if problem:  # as python says it; nothing is traced, an existing trace stays as it is
            print(f"{sys.executable}: {problem}", file=sys.stderr)
            return 1
        run_program = runner.prepare_module(ns.module, prog)
        default_scope = os.getcwd()
        command = ["-m", ns.module] + prog
        start_dir = os.getcwd()
    else:
        if not prog:
            raise RetracerError("retracer: nothing to trace: give a script (retracer trace script.py) or -m module; "
                                "see 'retracer trace --help'")
        run_program = runner.prepare_script(prog[0], prog[1:])
        default_scope = os.path.dirname(os.path.abspath(prog[0]))
        command = prog
        start_dir = default_scope
    if ns.config and not os.path.isfile(ns.config):
        raise RetracerError(f"retracer: config file {ns.config} does not exist; check --config")
    config_path = ns.config or settings.find_pyproject(start_dir)
    for d in ns.scope or ():
        if not os.path.isdir(d):
            raise RetracerError(f"retracer: --scope {d} is not a directory; pass your code's directory")
    if ns.output and os.path.isdir(ns.output):
        raise RetracerError(f"retracer: -o {ns.output} is a directory; pass a file name such as run.trace")
    explicit = {s.name: getattr(ns, s.name, None) for s in settings.SETTINGS if s.flag}
    explicit.pop("tests_root", None)
    tracer = Tracer(config_file_path=config_path, command=command, default_scope=default_scope, **explicit)
    quiet = ns.quiet

    def report(summary) -> None:
        if not quiet and summary is not None and not getattr(summary, "lost", False):
            print_summary(summary)

    tracer.on_finish = report
    tracer.progress = not quiet  # a spinner on a terminal's stderr while the trace is written
    if not getattr(run_program, "startable", True):
        # a script that does not compile: python prints the SyntaxError and exits 1;
        # so does this, without tracing (an existing trace stays as it is)
        return runner.run_program(run_program, lambda **kw: None)
    tracer.start()
    try:
        return runner.run_program(run_program, tracer.stop)
    finally:
        _after_trace(tracer, ns, command, quiet)
        if ns.print_tree and tracer.summary is not None and tracer.summary.path:
            from ..render.view.model import load
            from ..render.view.text import render_text
            render_text(load(tracer.summary.path, trust=True, captures=False), sys.stdout)


def _shown(path: str) -> str:
    """A path as the user would type it: relative when that is below the current directory."""
    rel = os.path.relpath(path)
    return path if rel.startswith(os.pardir) else rel


def _after_trace(tracer, ns, command, quiet: bool) -> None:
    """Write (or rewrite) the replay tests; with --check-stable, first mark the
    unstable calls (replaying them isolated, side effects stopped)."""
    s = tracer.summary
    if s is None or not s.path or tracer.no_capture or not s.captured_calls:
        return
    from ..replay.testgen import write_replay_tests  # not imported at all with --no-capture

    try:
        if getattr(ns, "check_stable", False):
            _check_stable(s, quiet)
        root = ns.tests_root or tracer.tests_root
        if not root:
            root = "tests" if os.path.isdir("tests") else (os.path.dirname(s.path) or ".")
        base = ns.module if ns.module else os.path.splitext(os.path.basename(command[0]))[0]
        # the trace was just written and signed by this process: no need to verify it again
        path = write_replay_tests(s.path, root, base, trust=True, cases=getattr(s, "cases", None))
        if path and not quiet:
            print(f"retracer: replay tests written to {_shown(path)} (generated, not meant for git; "
                  f"run them with pytest or: retracer replay {_shown(path)})", file=sys.stderr)
    except RetracerError as e:
        print(f"{e} (replay tests not written)", file=sys.stderr)
    except Exception as e:
        print(f"retracer: could not write replay tests: {type(e).__name__}: {e}", file=sys.stderr)


def _check_stable(s, quiet: bool) -> None:
    from ..replay import stability
    from ..replay.report import Progress

    if not quiet:
        print(f"retracer: checking {s.captured_calls} captured calls for nondeterminism (replaying each "
              f"twice, isolated, side effects stopped)...", file=sys.stderr, flush=True)
    progress = Progress(s.captured_calls, what="checking stability")
    try:
        unstable, counts = stability.find_unstable(s.path, on_result=lambda i, n, r: progress.update(i, r))
    finally:
        progress.finish()
    stability.mark(s.path, unstable)
    if not quiet:
        others = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in sorted(counts.items()) if v != "unstable")
        print(f"retracer: {len(unstable)} of {sum(counts.values())} calls unstable"
              + (" (marked in the trace)" if unstable else "") + (f"; the others: {others}" if others else ""),
              file=sys.stderr)


def print_summary(s) -> None:
    from ..units import fmt_ns

    err = sys.stderr
    try:
        sys.stdout.flush()
    except Exception:
        pass
    secs = s.duration_ns / 1e9
    extra = "" if s.stopped_by in ("end", "exit") else f", stopped by {s.stopped_by}"
    n_procs = getattr(s, "processes", 1)
    procs = f" in {n_procs} processes" if n_procs > 1 else ""
    from ..tracefile import stream_cut_clause

    cut = stream_cut_clause({"stream_cut": getattr(s, "stream_cut", None)})
    cut = f", which {cut}" if cut else ""
    print(f"retracer: {s.calls_total:,} calls traced ({s.stream_calls:,} in the call stream{cut}) "
          f"on {s.threads} thread(s){procs} in {secs:.2f} s{extra}", file=err)
    if s.top:
        print("retracer: top functions by own time:", file=err)
        for name, where, own, calls in s.top[:5]:
            print(f"retracer:   {fmt_ns(own):>11} {calls:>10,} calls  {name}  ({where})", file=err)
    if s.error:
        print(f"retracer: warning: {s.error}; the trace may be incomplete", file=err)
    if s.path:
        print(f"retracer: trace written to {s.path} (see it with: retracer profile {_shown(s.path)})",
              file=err)
