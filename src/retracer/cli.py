"""The `retracer` command line."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence, Tuple

from .errors import OneLineParser, RetracerError

USAGE = """retracer <command> [options]

commands:
  trace [opts] script.py [args...]    run a script traced (also: trace [opts] -m module [args...])
  profile TRACE [opts]                ranked table of a trace, or an export (--format chrome|speedscope|pprof|
                                      folded|json|flamegraph|pstats -o FILE)
  replay TRACE_OR_TEST [--bench]      call the recorded functions again and report every mismatch
  timeit [-s SETUP] STATEMENT         time a statement: warm-up, auto-ranging, min/median/IQR
  view TRACE [-o page.html | --serve [PORT] | --text]   the folded call tree, flame graph and timeline

Run 'retracer <command> --help' for the options of a command."""

# trace options that take a value (the others are flags)
_VALUE_OPTS = {"-o", "--output", "--max-function-count", "--timeout", "--only-functions",
               "--scope", "--tests-root", "--config", "--max-value-bytes", "--redact"}


def _trace_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="retracer trace",
        usage="retracer trace [options] (script.py | -m module) [args...]",
        description="Run a Python program as it would run with `python`, recording every call, "
                    "the profile and the call stream into a trace file.")
    p.add_argument("-o", "--output", help="trace file to write (default: retracer.trace)")
    p.add_argument("--max-function-count", type=int, metavar="N",
                   help="calls captured per function (default 100): the first 3/4, the rest only for calls whose argument shapes are new (README)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="stop tracing after S seconds and write the trace; the program runs on")
    p.add_argument("--only-functions", metavar="a,b",
                   help="only these functions (by name or qualified name) and their callees go into the call stream")
    p.add_argument("--scope", metavar="DIR",
                   help="your code: default the script's directory, or the current directory for -m")
    p.add_argument("--no-external-calls", action="store_true", default=None,
                   help="calls from your code to code outside the scope are not in the call stream")
    p.add_argument("--no-imports", action="store_true", default=None,
                   help="import machinery and module bodies are not in the call stream")
    p.add_argument("--no-capture", action="store_true", default=None,
                   help="record the profile and call stream only, not arguments and results")
    p.add_argument("--max-value-bytes", type=int, metavar="N",
                   help="size cap of one captured value, pickled (default 1 MiB); a call with a larger value is not replayable")
    p.add_argument("--redact", metavar="a,b",
                   help="argument names never written (a listed word as the name or one of its _-separated "
                        "parts, case-insensitive): default "
                        "password,passwd,secret,token,api_key,apikey,authorization,cookie")
    p.add_argument("--no-c-calls", action="store_true",
                   help="do not record calls of C functions (builtins)")
    p.add_argument("--tests-root", metavar="DIR", help="where replay tests go")
    p.add_argument("--no-stability-check", action="store_true",
                   help="do not replay the captured calls twice after tracing to find unstable ones "
                        "(run 'retracer replay --check-stable TRACE' later)")
    p.add_argument("--config", metavar="FILE", help="pyproject.toml to read [tool.retracer] from")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the summary")
    p.add_argument("--print", dest="print_tree", action="store_true",
                   help="after the run, print the folded call tree to stdout (as 'retracer view TRACE --text')")
    p.add_argument("-m", dest="module", metavar="MODULE", help="run a module as a script")
    return p


def split_trace_args(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Split `trace` arguments into retracer's options and the program's
    command line (script or -m module, and their arguments)."""
    i = 0
    argv = list(argv)
    while i < len(argv):
        a = argv[i]
        if a == "-m":
            return argv[:i + 2], argv[i + 2:]
        if a == "--":
            return argv[:i], argv[i + 1:]
        if a.startswith("-") and a != "-":
            if a in _VALUE_OPTS:
                i += 2
                continue
            i += 1
            continue
        return argv[:i], argv[i:]
    return argv, []


def cmd_trace(argv: Sequence[str]) -> int:
    from . import runner
    from .tracer import Tracer

    opts_part, prog = split_trace_args(argv)
    p = _trace_parser()
    ns = p.parse_args(opts_part)
    if ns.module:
        run = runner.prepare_module(ns.module, prog)
        default_scope = os.getcwd()
        command = ["-m", ns.module] + prog
        start_dir = os.getcwd()
    else:
        if not prog:
            raise RetracerError("retracer: nothing to trace: give a script (retracer trace script.py) or -m module; "
                                "see 'retracer trace --help'")
        run = runner.prepare_script(prog[0], prog[1:])
        default_scope = os.path.dirname(os.path.abspath(prog[0]))
        command = prog
        start_dir = default_scope
    if ns.config and not os.path.isfile(ns.config):
        raise RetracerError(f"retracer: config file {ns.config} does not exist; check --config")
    from .config import find_pyproject
    config_path = ns.config or find_pyproject(start_dir)
    if ns.scope and not os.path.isdir(ns.scope):
        raise RetracerError(f"retracer: --scope {ns.scope} is not a directory; pass your code's directory")
    if ns.output and os.path.isdir(ns.output):
        raise RetracerError(f"retracer: -o {ns.output} is a directory; pass a file name such as run.trace")
    only = [s.strip() for s in ns.only_functions.split(",") if s.strip()] if ns.only_functions else None
    tracer = Tracer(
        output=ns.output, max_function_count=ns.max_function_count, timeout=ns.timeout,
        config_file_path=config_path, scope=ns.scope, only_functions=only,
        no_external_calls=ns.no_external_calls, no_imports=ns.no_imports,
        no_capture=ns.no_capture, c_calls=False if ns.no_c_calls else None,
        max_value_bytes=ns.max_value_bytes, redact=ns.redact,
        command=command, default_scope=default_scope,
    )
    quiet = ns.quiet

    def report(summary) -> None:
        if not quiet and summary is not None:
            print_summary(summary)

    tracer.on_finish = report
    tracer.start()
    try:
        return runner.run_program(run, tracer.stop)
    finally:
        _after_trace(tracer, ns, command, quiet)
        if ns.print_tree and tracer.summary is not None and tracer.summary.path:
            from .view import print_trace
            print_trace(tracer.summary.path)


def _after_trace(tracer, ns, command, quiet: bool) -> None:
    """Check the captured calls for nondeterminism and write the replay tests."""
    import subprocess

    s = tracer.summary
    if s is None or not s.path or tracer.no_capture:
        return
    try:
        n = s.captured_calls
        if not n:
            return
        cmd = [sys.executable, "-m", "retracer", "replay", s.path, "--check-stable", "-q"]
        if ns.no_stability_check:
            cmd = None
        elif not quiet:
            print(f"retracer: checking {n} captured calls for nondeterminism (replaying them twice)...",
                  file=sys.stderr, flush=True)
        env = dict(os.environ, RETRACER_CALL_TIMEOUT=os.environ.get("RETRACER_CALL_TIMEOUT", "10"))
        try:
            p = None if cmd is None else subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, errors="replace", env=env,
                               timeout=float(os.environ.get("RETRACER_STABLE_TIMEOUT", "300")))
        except subprocess.TimeoutExpired:
            print("retracer: the stability check did not finish in time; run "
                  f"'retracer replay --check-stable {os.path.relpath(s.path)}' yourself", file=sys.stderr)
            p = None
        if p is not None and not quiet:  # only retracer's own lines, not what replayed code prints
            for line in p.stderr.splitlines():
                if line.startswith("retracer:"):
                    print(line, file=sys.stderr)
        from .replay import write_replay_tests
        root = ns.tests_root or tracer.tests_root
        if not root:
            root = "tests" if os.path.isdir("tests") else (os.path.dirname(s.path) or ".")
        base = ns.module if ns.module else os.path.splitext(os.path.basename(command[0]))[0]
        # the trace was just written and signed by this process: no need to verify it again
        path = write_replay_tests(s.path, root, base, trust=True)
        if path and not quiet:
            print(f"retracer: replay tests written to {os.path.relpath(path)} (generated, not meant for git; "
                  f"run them with pytest or: retracer replay {os.path.relpath(path)})", file=sys.stderr)
    except RetracerError as e:
        print(f"{e} (replay tests not written)", file=sys.stderr)
    except Exception as e:
        print(f"retracer: could not write replay tests: {type(e).__name__}: {e}", file=sys.stderr)


def print_summary(s) -> None:
    err = sys.stderr
    try:
        sys.stdout.flush()
    except Exception:
        pass
    secs = s.duration_ns / 1e9
    extra = "" if s.stopped_by in ("end", "exit") else f", stopped by {s.stopped_by}"
    print(f"retracer: {s.calls_total:,} calls traced ({s.stream_calls:,} in the call stream) "
          f"on {s.threads} thread(s) in {secs:.2f} s{extra}", file=err)
    if s.top:
        print("retracer: top functions by own time:", file=err)
        from .report import fmt_ns
        for name, where, own, calls in s.top[:5]:
            print(f"retracer:   {fmt_ns(own):>11} {calls:>10,} calls  {name}  ({where})", file=err)
    if s.error:
        print(f"retracer: warning: {s.error}; the trace may be incomplete", file=err)
    if s.path:
        print(f"retracer: trace written to {s.path} (see it with: retracer profile {os.path.relpath(s.path)})", file=err)


PROFILE_FORMATS = ["table", "pstats", "chrome", "speedscope", "pprof", "folded", "json", "flamegraph"]


def _profile_parser() -> argparse.ArgumentParser:
    from .ranking import SORT_KEYS

    p = OneLineParser(prog="retracer profile",
                                description="Rank the functions of a trace by the time optimizing them could "
                                            "save (saving = own time + time of the code outside your code "
                                            "that they call; see README), or export its profile.")
    p.add_argument("trace", help="trace file written by retracer trace")
    p.add_argument("--format", default="table", choices=PROFILE_FORMATS,
                   help="table (default): ranked terminal table; pstats: for pstats/snakeviz; chrome: Perfetto, "
                        "chrome://tracing; speedscope; pprof: gzipped profile.proto; folded: flamegraph.pl, inferno; "
                        "json: docs/export-json.md; flamegraph: self-contained HTML page (SVG if -o ends in .svg)")
    p.add_argument("-o", "--output", help="output file of an export (required except for table and pstats)")
    p.add_argument("--top", type=int, default=20, metavar="N", help="rows in the table (default 20)")
    p.add_argument("--sort", default="saving", metavar="KEY",
                   help=f"rank by {', '.join(SORT_KEYS)} (default saving; per-call is saving per call)")
    p.add_argument("--all", action="store_true",
                   help="also list functions outside your code (builtins, stdlib, libraries)")
    p.add_argument("--json", action="store_true",
                   help="print the ranking as JSON (structure documented in README) instead of a table")
    p.add_argument("--trust", action="store_true", help="read a trace that is not signed by you")
    return p


def cmd_profile(argv: Sequence[str]) -> int:
    from . import ranking, report
    from .tracefile import TraceReader

    ns = _profile_parser().parse_args(argv)
    if ns.top < 1:
        raise RetracerError(f"retracer: --top must be 1 or more (got {ns.top})")
    if ns.format not in ("table", "pstats") and not ns.output:
        ext = {"chrome": "json", "speedscope": "speedscope.json", "pprof": "pb.gz", "folded": "folded",
               "json": "json", "flamegraph": "html"}[ns.format]
        raise RetracerError(f"retracer: --format {ns.format} writes a file: add -o FILE "
                            f"(e.g. -o {os.path.splitext(os.path.basename(ns.trace))[0]}.{ext})")
    sort = ranking.normalize_sort(ns.sort)
    if ns.json and ns.format != "table":
        raise RetracerError(f"retracer: --json prints the ranking; it does not go with --format {ns.format}")
    with TraceReader(ns.trace, trust=ns.trust) as r:
        if ns.format not in ("table", "pstats"):
            from .export import write_export
            write_export(r, ns.format, ns.output)
        elif ns.format == "table":
            ranked = ranking.rank(r, sort=sort, include_all=ns.all)
            print(ranking.dumps(ranked, ns.top) if ns.json else ranking.render_table(ranked, top=ns.top))
        elif ns.format == "pstats":
            out = ns.output or os.path.splitext(ns.trace)[0] + ".prof"
            report.write_pstats(r, out)
            print(f"retracer: pstats profile written to {out} (open it with python -m pstats {out} or snakeviz {out})",
                  file=sys.stderr)
    return 0


def _timeit_parser() -> argparse.ArgumentParser:
    from .timing import DEFAULT_REPEAT, TARGET_S, UNIT_NAMES

    p = OneLineParser(
        prog="retracer timeit",
        description="Time a Python statement like python -m timeit: after SETUP, one warm-up run, then "
                    f"REPEAT repeats of N loops (N auto-ranged so one repeat takes >= {TARGET_S:g} s). "
                    "Prints the minimum, the median and the interquartile range (IQR = Q3 - Q1) of the "
                    "time per loop. Several statement arguments are lines of one statement.")
    p.add_argument("statement", nargs="*", help="statement to time (default: pass)")
    p.add_argument("-s", "--setup", action="append", default=[], metavar="SETUP",
                   help="run once before each repeat, untimed (may be given more than once)")
    p.add_argument("-n", "--number", type=int, metavar="N",
                   help="loops per repeat (default: auto-range)")
    p.add_argument("-r", "--repeat", type=int, default=DEFAULT_REPEAT, metavar="R",
                   help=f"repeats (default {DEFAULT_REPEAT})")
    p.add_argument("-u", "--unit", choices=UNIT_NAMES, help="time unit of the output (timeit's nsec, usec, "
                                                             "msec, sec work too)")
    p.add_argument("-p", "--process", action="store_true", help="measure process CPU time, not wall time")
    p.add_argument("--json", action="store_true", help="print the result as JSON (times in seconds)")
    return p


def cmd_timeit(argv: Sequence[str]) -> int:
    import json

    from . import timing

    ns = _timeit_parser().parse_args(argv)
    if ns.number is not None and ns.number < 1:
        raise RetracerError(f"retracer: -n/--number must be 1 or more (got {ns.number})")
    if ns.repeat < 1:
        raise RetracerError(f"retracer: -r/--repeat must be 1 or more (got {ns.repeat})")
    if os.curdir not in sys.path and "" not in sys.path:  # like python -m timeit: import from here
        sys.path.insert(0, os.curdir)

    def progress(what: str) -> None:
        if sys.stderr.isatty():
            print(f"retracer: timing: {what}", end="\r", file=sys.stderr, flush=True)

    res = timing.run("\n".join(ns.statement) or "pass", "\n".join(ns.setup) or "pass", number=ns.number or 0,
                     repeat=ns.repeat, process_time=ns.process, progress=progress)
    if sys.stderr.isatty():
        print(" " * 60, end="\r", file=sys.stderr, flush=True)
    print(json.dumps(res.to_json(), indent=2) if ns.json else timing.format_result(res, ns.unit))
    return 0


def _replay_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="retracer replay",
        description="Call every recorded function again with its recorded arguments, against the code "
                    "on disk, and report each call whose outcome differs. Exit 0: all match; 1: some "
                    "mismatch; 2: usage or input error.")
    p.add_argument("trace", help="a trace file, or a replay test file generated from one")
    p.add_argument("--bench", action="store_true", help="also time each function on its recorded inputs")
    p.add_argument("--check-stable", action="store_true",
                   help="replay twice on the code as it is and mark calls whose outcome varies as unstable "
                        "(stored in the trace, left out of later verdicts)")
    p.add_argument("--functions", metavar="a,b", help="only these functions (name or qualified name)")
    p.add_argument("--trust", action="store_true", help="read a trace that is not signed by you")
    p.add_argument("-q", "--quiet", action="store_true", help="print mismatches and the verdict only")
    return p


def _trace_of_test_file(path: str) -> str:
    import re
    try:
        text = open(path).read()
    except OSError as e:
        raise RetracerError(f"retracer: cannot read {path}: {e.strerror}")
    m = re.search(r"^TRACE = (['\"])(.*?)\1$", text, re.M)
    if not m:
        raise RetracerError(f"retracer: {path} is not a replay test generated by retracer; pass a trace file")
    return m.group(2)


def cmd_replay(argv: Sequence[str]) -> int:
    from . import replay
    from .tracefile import update_captured_status

    ns = _replay_parser().parse_args(argv)
    trace = ns.trace
    if trace.endswith(".py"):
        trace = _trace_of_test_file(trace)
    rep = replay.Replayer(trace, trust=ns.trust)
    cases = rep.cases
    if ns.functions:
        want = {w.strip() for w in ns.functions.split(",") if w.strip()}
        chosen = [c for c in cases if c.qualname in want or c.name in want]
        if not chosen and cases:
            known = sorted({c.qualname for c in cases})
            more = ", ..." if len(known) > 8 else ""
            raise RetracerError(f"retracer: no captured calls of {ns.functions} in {trace}; "
                                f"functions with captured calls: {', '.join(known[:8])}{more}")
        cases = chosen
    out = sys.stdout
    if not cases:
        print(f"retracer: {trace} has no captured calls to replay (traced with --no-capture?)", file=sys.stderr)
        return 0
    if ns.check_stable:
        unstable = {}
        for i, c in enumerate(cases):
            if c.status != "ok":
                continue
            why = rep.outcome_twice_differs(c)
            if why:
                unstable[c.call_id] = why
                if not ns.quiet:
                    print(f"unstable: {c.label} ({c.where}): {why}", file=out)
            _progress(i + 1, len(cases), "checking stability")
        if unstable:
            update_captured_status(trace, {cid: "unstable" for cid in unstable},
                                   meta={"unstable_calls": {str(k): v for k, v in unstable.items()}})
        print(f"retracer: {len(unstable)} of {len(cases)} calls unstable"
              + (" (marked in the trace and left out of the verdict)" if unstable else ""), file=sys.stderr)
        return 0
    unstable_why = rep.meta.get("unstable_calls") or {}
    counts = {"match": 0, "mismatch": 0, "skipped": 0, "unstable": 0, "error": 0}
    skipped_reasons: dict = {}
    for i, c in enumerate(cases):
        if c.status == "unstable" and str(c.call_id) in unstable_why:
            c.info["unstable"] = unstable_why[str(c.call_id)]
        res = rep.check(c)
        counts[res.verdict] += 1
        if res.verdict in ("mismatch", "error"):
            print(f"{res.verdict.upper()} {c.label} ({c.where}, call id {c.call_id})", file=out)
            for line in res.message.splitlines():
                print(f"    {line}", file=out)
        elif res.verdict in ("skipped", "unstable"):
            # the reason without its details: "not replayable: a value could not be pickled"
            why = "unstable" if res.verdict == "unstable" else res.message.split(" (")[0]
            skipped_reasons[why] = skipped_reasons.get(why, 0) + 1
        _progress(i + 1, len(cases), "replaying")
    nfun = len({c.fid for c in cases})
    print(f"retracer: replayed {len(cases)} calls of {nfun} functions: {counts['match']} match, "
          f"{counts['mismatch']} mismatch, {counts['error']} error, {counts['skipped']} skipped, "
          f"{counts['unstable']} unstable", file=sys.stderr)
    if skipped_reasons and not ns.quiet:
        for why, n in skipped_reasons.items():
            print(f"retracer:   {n} {why}", file=sys.stderr)
    if ns.bench:
        _print_bench(rep, cases)
    return 1 if counts["mismatch"] or counts["error"] else 0


def _progress(i: int, n: int, what: str) -> None:
    if sys.stderr.isatty() and (i == n or i % 20 == 0):
        end = "\n" if i == n else "\r"
        print(f"retracer: {what} {i}/{n}", end=end, file=sys.stderr, flush=True)


def _print_bench(rep, cases) -> None:
    import statistics

    from .report import fmt_ns
    by_fn: dict = {}
    for c in cases:
        if c.status != "ok":
            continue
        r = rep.bench(c)
        if r is None:
            continue
        by_fn.setdefault((c.qualname, c.where), []).append(r)
    print(f"{'function':40} {'calls':>6} {'min/call':>11} {'median/call':>12} {'sum of mins':>12}")
    for (name, where), rs in sorted(by_fn.items(), key=lambda kv: -sum(r[0] for r in kv[1])):
        mins = [r[0] for r in rs]
        meds = [r[1] for r in rs]
        print(f"{(name + ' (' + where + ')')[:40]:40} {len(rs):>6} {fmt_ns(min(mins) * 1e9):>11} "
              f"{fmt_ns(statistics.median(meds) * 1e9):>12} {fmt_ns(sum(mins) * 1e9):>12}")


def cmd_view(argv: Sequence[str]) -> int:
    from .view import cmd_view as view
    return view(argv)


COMMANDS = {"trace": cmd_trace, "profile": cmd_profile, "replay": cmd_replay, "timeit": cmd_timeit,
            "view": cmd_view}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "--version":
        from .tracer import _VERSION
        print(f"retracer {_VERSION}")
        return 0
    cmd = COMMANDS.get(argv[0])
    if cmd is None:
        print(f"retracer: unknown command '{argv[0]}'; run 'retracer --help' for the list", file=sys.stderr)
        return 2
    try:
        return cmd(argv[1:])
    except RetracerError as e:
        msg = str(e)
        print(msg if msg.startswith("retracer:") else f"retracer: {msg}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("retracer: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as e:  # an error of retracer itself: one line, no traceback
        if os.environ.get("RETRACER_DEBUG"):
            raise
        print(f"retracer: internal error: {type(e).__name__}: {e} (set RETRACER_DEBUG=1 for details and report it)",
              file=sys.stderr)
        return 3


def entry() -> None:
    sys.exit(main())
