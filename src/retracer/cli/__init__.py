"""The `retracer` command line: one module per command behind a small protocol.

A command module has ``DESCRIPTION`` (its --help text), ``add_arguments(parser)``
and ``run(args) -> exit status``; it may define ``parse(parser, argv)`` when its
command line is not plain argparse (``trace`` hands the program's own arguments
through). :data:`COMMANDS` is the table ``retracer --help`` lists.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Dict, Optional, Sequence, Tuple

from ..errors import RetracerError


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (RetracerError, exit 2)
    naming the command and where its options are described."""

    def error(self, message: str):  # type: ignore[override]
        cmd = self.prog.split(" ", 1)[-1]
        raise RetracerError(f"retracer: {cmd}: {message}; see '{self.prog} --help'")


#: command name -> (module under retracer.cli, usage line, summary)
COMMANDS: Dict[str, Tuple[str, str, str]] = {
    "trace": ("trace", "trace [opts] script.py [args...]",
              "run a script traced (also: trace [opts] -m module [args...])"),
    "profile": ("profile", "profile TRACE [opts]",
                "ranked table of a trace, or an export (--format chrome|speedscope|pprof|folded|json|"
                "flamegraph|pstats -o FILE)"),
    "replay": ("replay", "replay TRACE_OR_TEST [--bench]",
               "call the recorded functions again and report every mismatch"),
    "timeit": ("timeit", "timeit [-s SETUP] STATEMENT",
               "time a statement: warm-up, auto-ranging, min/median/IQR"),
    "view": ("view", "view TRACE [-o page.html | --serve [PORT] | --text]",
             "the folded call tree, flame graph and timeline"),
    "sample": ("sample", "sample [--native] script.py [args...] | --pid PID",
               "sample a program or a running process with py-spy (native frames with --native)"),
    "diff": ("diff", "diff A.trace B.trace [-o diff.html | --json]",
             "what changed between two traces, per function, and a differential flame graph"),
    "help": ("help", "help [TOPIC]", "documentation topics, offline (also: python -m retracer help TOPIC)"),
    "compare": ("compare", "compare BASE [HEAD] [opts] [-- BENCHMARK...]",
                "benchmark two git revisions in interleaved rounds: speedup with 95% CI, end to end and per function"),
    "optimize": ("optimize", "optimize [opts] script.py [args...]",
                 "trace, rank, verify candidate implementations by replay, measure; keep what is identical and "
                 "faster (also: --replay-test FILE, -m pytest tests/)"),
}


def usage() -> str:
    from ..term import UNLIMITED, width as term_width

    entries = [(u, summary) for _, u, summary in COMMANDS.values()]
    entries.append(("--replay-test FILE [opts]",
                    "optimize, starting from a replay test and its trace (= optimize --replay-test FILE)"))
    width = max(len(u) for u, _ in entries) + 2
    cols = term_width()
    lines = ["retracer <command> [options]", "", "commands:"]
    if cols >= UNLIMITED or all(2 + width + len(summary) <= cols for _, summary in entries):
        lines += [f"  {u:<{width}}{summary}" for u, summary in entries]
    else:  # a narrow terminal: each summary under its command, wrapped
        import textwrap
        for u, summary in entries:
            lines.append(f"  {u}")
            lines += textwrap.wrap(summary, width=max(cols, 40), initial_indent="      ", subsequent_indent="      ")
    lines += ["", "Run 'retracer <command> --help' for the options of a command;",
              "the documentation: python -m retracer help [TOPIC]."]
    return "\n".join(lines)


def parser_for(name: str):
    """(module, parser) of the command ``name``."""
    modname, _, _ = COMMANDS[name]
    mod = importlib.import_module(f"{__name__}.{modname}")
    p = OneLineParser(prog=f"retracer {name}", description=mod.DESCRIPTION,
                      usage=getattr(mod, "USAGE", None))
    mod.add_arguments(p)
    return mod, p


def run_command(name: str, argv: Sequence[str]) -> int:
    """Parse ``argv`` for command ``name`` and run it; errors propagate."""
    mod, p = parser_for(name)
    parse = getattr(mod, "parse", None)
    args = parse(p, list(argv)) if parse is not None else p.parse_args(list(argv))
    return mod.run(args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from .._version import VERSION
        print(f"retracer {VERSION}")
        return 0
    if argv[0] == "--replay-test" or argv[0].startswith("--replay-test="):
        argv = ["optimize"] + argv  # the form the documents use: retracer --replay-test FILE
    if argv[0] not in COMMANDS:
        print(f"retracer: unknown command '{argv[0]}'; run 'retracer --help' for the list", file=sys.stderr)
        return 2
    try:
        return run_command(argv[0], argv[1:])
    except RetracerError as e:
        msg = str(e)
        print(msg if msg.startswith("retracer:") else f"retracer: {msg}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("retracer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_output()
    except SystemExit:
        raise
    except Exception as e:  # an error of retracer itself: one line, no traceback
        if os.environ.get("RETRACER_DEBUG"):
            raise
        print(f"retracer: internal error: {type(e).__name__}: {e} (set RETRACER_DEBUG=1 for details and report it)",
              file=sys.stderr)
        return 3


#: the exit status of a command whose output was closed early (as a process killed by SIGPIPE)
EXIT_PIPE = 141


def _closed_output() -> int:
    """Who reads our output went away (``retracer view --text | head``): end quietly.
    What is still buffered for stdout goes nowhere (not into a second error at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    return EXIT_PIPE


def entry() -> None:
    sys.exit(main())
